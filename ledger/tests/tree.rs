//! The builder, tiles and proofs agree with each other and with an in-memory RFC 6962 tree,
//! for every size and batching.

use std::collections::HashMap;

use auditlog_ledger::proof::{consistency_tiles, inclusion_tiles, root_tiles};
use auditlog_ledger::{Hash, Tile, TileHashReader, TreeState, leaf_hash, prove_consistency, prove_inclusion, root_of, tree_root, verify_consistency, verify_inclusion};
use proptest::prelude::*;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
}

/// Builds the tree in the given batch sizes; returns the state and every tile written, failing
/// if one path is ever written with two different values.
fn build(leaves: &[Hash], batches: &[usize]) -> (TreeState, HashMap<Tile, Vec<u8>>) {
    let mut state = TreeState::empty();
    let mut tiles: HashMap<Tile, Vec<u8>> = HashMap::new();
    let mut at = 0;
    for batch in batches.iter().copied().cycle() {
        if at >= leaves.len() {
            break;
        }
        let end = (at + batch.max(1)).min(leaves.len());
        let appended = state.append(&leaves[at..end]);
        if leaves.len() < 5000 || end == leaves.len() {
            assert_eq!(appended.root, root_of(&leaves[..end]), "root at {end}");
        }
        for (tile, data) in appended.tiles {
            if let Some(old) = tiles.insert(tile, data.clone()) {
                assert_eq!(old, data, "tile {tile} rewritten with other bytes");
            }
        }
        state = appended.state;
        at = end;
    }
    (state, tiles)
}

fn reader(tiles: &HashMap<Tile, Vec<u8>>, wanted: &[Tile], stored: u64) -> TileHashReader {
    let mut reader = TileHashReader::new(stored);
    for tile in wanted {
        let data = tiles.get(tile).unwrap_or_else(|| panic!("tile {tile} was never written"));
        reader.insert(*tile, data.clone()).expect("tile length");
    }
    reader
}

fn check_tree(n: u64, batches: &[usize], probes: &[(u64, u64)]) {
    let all = leaves(n);
    let (state, tiles) = build(&all, batches);
    assert_eq!(state.size(), n);
    assert_eq!(TreeState::from_bytes(&state.to_bytes()).ok().as_ref(), Some(&state));
    let recovered = TreeState::from_tiles(n, |t| tiles.get(t).cloned()).expect("state from tiles");
    assert_eq!(recovered, state);

    let full = reader(&tiles, &root_tiles(n, n).expect("root tiles"), n);
    assert_eq!(tree_root(n, &full).expect("root from tiles"), root_of(&all));

    for &(a, b) in probes {
        let (size, index) = (a % n + 1, b % n);
        let index = index % size;
        let root = root_of(&all[..size as usize]);
        let r = reader(&tiles, &inclusion_tiles(index, size, n).expect("tiles"), n);
        let proof = prove_inclusion(index, size, &r).expect("inclusion proof");
        verify_inclusion(&proof, index, size, &all[index as usize], &root).expect("inclusion verifies");
        let wrong = leaf_hash(b"forged");
        assert!(verify_inclusion(&proof, index, size, &wrong, &root).is_err());
        if size > 1 {
            assert!(verify_inclusion(&proof, (index + 1) % size, size, &all[index as usize], &root).is_err());
        }

        let old = (b % size) + 1;
        let old_root = root_of(&all[..old as usize]);
        let r = reader(&tiles, &consistency_tiles(old, size, n).expect("tiles"), n);
        let proof = prove_consistency(old, size, &r).expect("consistency proof");
        verify_consistency(&proof, old, &old_root, size, &root).expect("consistency verifies");
        if old < size {
            assert!(verify_consistency(&proof, old, &wrong, size, &root).is_err());
            assert!(verify_consistency(&proof, old, &old_root, size, &wrong).is_err());
            let mut tampered = proof.clone();
            tampered[0] = wrong;
            assert!(verify_consistency(&tampered, old, &old_root, size, &root).is_err());
        }
    }
}

#[test]
fn every_small_size_one_leaf_at_a_time() {
    for n in 1..=40 {
        let probes: Vec<(u64, u64)> = (0..n).flat_map(|a| (0..n).map(move |b| (a, b))).collect();
        check_tree(n, &[1], &probes);
    }
}

#[test]
fn crosses_level_one_tile_boundary() {
    // 256·256 leaves fill tile 1/000; go one tile and some past it, in uneven batches.
    let n = 256 * 256 + 256 * 3 + 7;
    check_tree(n, &[1000, 3, 4096, 255, 1], &[(0, 0), (65_535, 65_535), (65_536, 12), (n - 1, n - 1), (70_000, 256), (31, 300)]);
}

#[test]
fn state_rejects_mismatched_shape() {
    let appended = TreeState::empty().append(&leaves(300));
    let mut bytes = appended.state.to_bytes();
    bytes[8] ^= 1; // size no longer matches the partial tiles
    assert!(TreeState::from_bytes(&bytes).is_err());
    assert!(TreeState::from_bytes(&[]).is_err());
    assert!(TreeState::from_tiles(300, |_| None).is_err(), "missing tiles must be an error");
}

#[test]
fn proofs_refuse_out_of_range() {
    let (_, tiles) = build(&leaves(10), &[10]);
    let r = reader(&tiles, &[Tile { level: 0, index: 0, width: 10 }], 10);
    assert!(prove_inclusion(10, 10, &r).is_err());
    assert!(prove_consistency(0, 5, &r).is_err());
    assert!(prove_consistency(6, 5, &r).is_err());
    assert!(inclusion_tiles(0, 11, 10).is_err(), "size beyond the stored tree");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_batching_gives_the_same_tree(n in 1u64..2000, batches in prop::collection::vec(1usize..600, 1..6), probes in prop::collection::vec((0u64..5000, 0u64..5000), 1..6)) {
        check_tree(n, &batches, &probes);
    }
}
