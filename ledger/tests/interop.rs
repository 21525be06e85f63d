//! Interoperability: Go's checksum-database code (`golang.org/x/mod/sumdb/note`, `sumdb/tlog`)
//! verifies a checkpoint (signed by two keys, as during a rotation), the stored tiles and the
//! proofs this crate produces, and regenerates the same proofs from our tiles.
//!
//! Runs the Go program in `tests/interop/`. Go is required: without it this test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use auditlog_ledger::proof::{consistency_tiles, inclusion_tiles};
use auditlog_ledger::{Checkpoint, Hash, Signer, Tile, TileHashReader, TreeState, leaf_hash, origin, prove_consistency, prove_inclusion, root_of};
use serde_json::json;

fn go_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("go"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/local/go/bin/go")).filter(|p| p.is_file()))
        .expect("the interop test needs Go (https://go.dev) on PATH or at /usr/local/go/bin/go; install it, this test does not skip")
}

fn write_tiles(dir: &Path, tiles: &[(Tile, Vec<u8>)]) {
    for (tile, data) in tiles {
        let path = dir.join(tile.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write tile");
    }
}

fn read_into(dir: &Path, wanted: &[Tile], stored: u64) -> TileHashReader {
    let mut reader = TileHashReader::new(stored);
    for tile in wanted {
        reader.insert(*tile, std::fs::read(dir.join(tile.path())).expect("tile on disk")).expect("tile");
    }
    reader
}

#[test]
fn go_sumdb_verifies_our_checkpoint_tiles_and_proofs() {
    let go = go_binary();
    let work = tempfile::tempdir().expect("tempdir");
    let tile_dir = work.path().join("tiles");

    let n: u64 = 256 * 256 + 1000;
    let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(format!("event {i}").as_bytes())).collect();
    let mut state = TreeState::empty();
    for batch in leaves.chunks(997) {
        let appended = state.append(batch);
        write_tiles(&tile_dir, &appended.tiles);
        state = appended.state;
    }
    let root = state.root();

    let old_key = Signer::generate("auditlog.example.com").expect("key");
    let new_key = Signer::generate("auditlog.example.com").expect("key");
    let origin = origin("auditlog.example.com", "acme").expect("origin");
    let checkpoint = Checkpoint { origin: origin.clone(), size: n, root, extensions: vec![] };
    let note = checkpoint.sign(&[old_key.clone(), new_key.clone()]).expect("sign");
    let verifier_keys: Vec<String> = [&old_key, &new_key].iter().map(|k| k.verifier().renamed(&origin).expect("name").to_string()).collect();
    let signer_key = new_key.renamed(&origin).expect("name").to_key_text();

    let mut inclusions = Vec::new();
    for (index, size) in [(0, 1), (0, n), (n - 1, n), (65_535, 65_536), (65_536, 65_537), (300, 997), (12_345, 54_321), (66_000, n)] {
        let reader = read_into(&tile_dir, &inclusion_tiles(index, size, n).unwrap_or_else(|e| panic!("{index} {size}: {e}")), n);
        let proof = prove_inclusion(index, size, &reader).expect("proof");
        inclusions.push(json!({
            "index": index, "size": size, "root": root_of(&leaves[..size as usize]).to_base64(),
            "leaf": leaves[index as usize].to_base64(), "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        }));
    }
    let mut consistency = Vec::new();
    for (old, new) in [(1, n), (997, 1994), (65_536, n), (4096, 65_536), (12_345, 54_321), (n, n), (255, 257)] {
        let reader = read_into(&tile_dir, &consistency_tiles(old, new, n).expect("tiles"), n);
        let proof = prove_consistency(old, new, &reader).expect("proof");
        consistency.push(json!({
            "old": old, "old_root": root_of(&leaves[..old as usize]).to_base64(),
            "new": new, "new_root": root_of(&leaves[..new as usize]).to_base64(),
            "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        }));
    }
    let case = json!({
        "verifier_keys": verifier_keys, "signer_key": signer_key, "note": note, "origin": origin,
        "tile_dir": tile_dir, "size": n, "root": root.to_base64(),
        "inclusions": inclusions, "consistency": consistency,
    });
    let case_path = work.path().join("case.json");
    std::fs::write(&case_path, serde_json::to_vec(&case).expect("json")).expect("write case");

    let output = Command::new(&go)
        .args(["run", "."])
        .arg(&case_path)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop"))
        .output()
        .expect("run go");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "Go rejected our ledger output:\n{stdout}\n{stderr}");
    assert!(stdout.contains("interop ok"), "{stdout}\n{stderr}");
}

#[test]
fn go_program_fails_on_a_tampered_proof() {
    // The checker itself must be able to fail: a one-leaf tree whose proof claims another root.
    let go = go_binary();
    let work = tempfile::tempdir().expect("tempdir");
    let key = Signer::generate("auditlog.example.com/t").expect("key");
    let leaf = leaf_hash(b"only");
    let appended = TreeState::empty().append(&[leaf, leaf_hash(b"second")]);
    write_tiles(&work.path().join("tiles"), &appended.tiles);
    let checkpoint = Checkpoint { origin: "auditlog.example.com/t".into(), size: 2, root: appended.root, extensions: vec![] };
    let case = json!({
        "verifier_keys": [key.verifier().to_string()], "signer_key": key.to_key_text(),
        "note": checkpoint.sign(std::slice::from_ref(&key)).expect("sign"), "origin": "auditlog.example.com/t",
        "tile_dir": work.path().join("tiles"), "size": 2, "root": appended.root.to_base64(),
        "inclusions": [{"index": 0, "size": 2, "root": appended.root.to_base64(), "leaf": leaf.to_base64(), "proof": [leaf.to_base64()]}],
        "consistency": [],
    });
    let case_path = work.path().join("case.json");
    std::fs::write(&case_path, serde_json::to_vec(&case).expect("json")).expect("write case");
    let output = Command::new(&go)
        .args(["run", "."])
        .arg(&case_path)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop"))
        .output()
        .expect("run go");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a wrong proof passed Go's check");
    assert!(stderr.contains("CheckRecord"), "{stderr}");
}
