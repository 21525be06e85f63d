//! LedgerStore scenarios, run against every implementation (embedded and CQL).

#![allow(dead_code, missing_docs)]

use auditlog_ledger::proof::inclusion_tiles;
use auditlog_ledger::{TileHashReader, TreeState, leaf_hash, prove_inclusion, root_of, verify_inclusion};
use auditlog_seams::LogPosition;
use auditlog_seams::ledger_store::{LedgerState, LedgerStore, LedgerStoreError, StoredCheckpoint};

fn tenant(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn tiles_are_put_once(store: &dyn LedgerStore) {
    let t = tenant("tiles");
    let path = "tile/0/x001/x234/067.p/3";
    assert_eq!(store.get_tile(&t, path).await.expect("get"), None);
    store.put_tile(&t, path, &[7u8; 96]).await.expect("first put");
    store.put_tile(&t, path, &[7u8; 96]).await.expect("same bytes again is a no-op");
    let err = store.put_tile(&t, path, &[8u8; 96]).await.expect_err("other bytes must conflict");
    assert!(matches!(err, LedgerStoreError::Conflict { .. }), "{err}");
    assert_eq!(store.get_tile(&t, path).await.expect("get"), Some(vec![7u8; 96]), "a conflict changes nothing");
}

pub async fn tenant_scoped(store: &dyn LedgerStore) {
    let (a, b) = (tenant("a"), tenant("b"));
    store.put_tile(&a, "tile/0/000.p/1", &[1u8; 32]).await.expect("put");
    assert_eq!(store.get_tile(&b, "tile/0/000.p/1").await.expect("get"), None);
    store.put_tile(&b, "tile/0/000.p/1", &[2u8; 32]).await.expect("another tenant's same path is its own");
    let position = LogPosition { topic: "audit.events".into(), partition: 3, offset: 10 };
    store.save_state(&a, &LedgerState { size: 1, builder: vec![1], position }).await.expect("save");
    assert_eq!(store.load_state(&b).await.expect("load"), None);
    store.save_checkpoint(&a, &StoredCheckpoint { size: 1, note: "n\n".into() }).await.expect("save");
    assert_eq!(store.load_checkpoint(&b).await.expect("load"), None);
}

pub async fn state_and_checkpoint_round_trip(store: &dyn LedgerStore) {
    let t = tenant("state");
    assert_eq!(store.load_state(&t).await.expect("load"), None);
    assert_eq!(store.load_checkpoint(&t).await.expect("load"), None);
    let first = LedgerState { size: 5, builder: vec![1, 2, 3], position: LogPosition { topic: "audit.events".into(), partition: 0, offset: 42 } };
    store.save_state(&t, &first).await.expect("save");
    assert_eq!(store.load_state(&t).await.expect("load"), Some(first));
    // The largest builder state: 8 levels of 255 hashes.
    let big = LedgerState { size: u64::MAX >> 1, builder: vec![0xab; 1 + 8 + 8 * (1 + 255 * 32)], position: LogPosition { topic: "t".into(), partition: 7, offset: i64::MAX } };
    store.save_state(&t, &big).await.expect("save");
    assert_eq!(store.load_state(&t).await.expect("load"), Some(big));

    let checkpoint = StoredCheckpoint { size: 9, note: "o/t\n9\nAAAA\n\n\u{2014} o/t sig\n".into() };
    store.save_checkpoint(&t, &checkpoint).await.expect("save");
    assert_eq!(store.load_checkpoint(&t).await.expect("load"), Some(checkpoint));
    let later = StoredCheckpoint { size: 10, note: "later\n".into() };
    store.save_checkpoint(&t, &later).await.expect("save");
    assert_eq!(store.load_checkpoint(&t).await.expect("load"), Some(later));
}

pub async fn invalid_requests(store: &dyn LedgerStore) {
    for bad_tenant in ["", "..", "a/b", "a b"] {
        assert!(matches!(store.get_tile(bad_tenant, "tile/0/000").await, Err(LedgerStoreError::Invalid(_))), "{bad_tenant:?}");
    }
    for bad_path in ["tile/../x", "tile/0/../../state.json", "state.json", "tile/", "tile/0//000"] {
        assert!(matches!(store.put_tile("acme", bad_path, b"x").await, Err(LedgerStoreError::Invalid(_))), "{bad_path:?}");
    }
}

/// The builder's tiles stored through the seam resume the tree and prove inclusion, the way
/// the ledger processor and the query API will use it.
pub async fn builder_resumes_from_stored_tiles(store: &dyn LedgerStore) {
    let t = tenant("resume");
    let leaves: Vec<_> = (0..700u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut state = TreeState::empty();
    for (batch, chunk) in leaves.chunks(300).enumerate() {
        let appended = state.append(chunk);
        let tiles: Vec<(String, Vec<u8>)> = appended.tiles.iter().map(|(tile, data)| (tile.path(), data.clone())).collect();
        store.put_tiles(&t, &tiles).await.expect("tiles");
        // Replaying the same batch (a crash before the state was saved) rewrites the same bytes.
        store.put_tiles(&t, &tiles).await.expect("replay is idempotent");
        let position = LogPosition { topic: "audit.events".into(), partition: 0, offset: batch as i64 + 1 };
        store.save_state(&t, &LedgerState { size: appended.state.size(), builder: appended.state.to_bytes(), position }).await.expect("state");
        state = appended.state;
    }
    let saved = store.load_state(&t).await.expect("load").expect("saved");
    assert_eq!(TreeState::from_bytes(&saved.builder).expect("builder state"), state);
    let mut from_tiles = std::collections::HashMap::new();
    for tile in TreeState::state_tiles(saved.size) {
        from_tiles.insert(tile, store.get_tile(&t, &tile.path()).await.expect("get").expect("state tile stored"));
    }
    assert_eq!(TreeState::from_tiles(saved.size, |tile| from_tiles.get(tile).cloned()).expect("recover"), state);

    let (index, size) = (123, 650);
    let mut reader = TileHashReader::new(saved.size);
    for tile in inclusion_tiles(index, size, saved.size).expect("tiles") {
        reader.insert(tile, store.get_tile(&t, &tile.path()).await.expect("get").expect("tile stored")).expect("tile");
    }
    let proof = prove_inclusion(index, size, &reader).expect("proof");
    verify_inclusion(&proof, index, size, &leaves[index as usize], &root_of(&leaves[..size as usize])).expect("verifies");
}

pub async fn leaves_both_ways(store: &dyn LedgerStore) {
    use auditlog_seams::ledger_store::LeafEntry;
    let (t, other) = (tenant("leaves"), tenant("leaves-other"));
    // Enough leaves to cross the CQL store's bucket boundary would be slow; 300 cross nothing
    // but show order, paging and the provisional overwrite.
    let leaves: Vec<LeafEntry> = (0..300).map(|i| LeafEntry { index: i, id: format!("ev-{i:04}") }).collect();
    store.put_leaves(&t, &leaves[..200]).await.expect("put");
    store.put_leaves(&t, &leaves[200..]).await.expect("put");
    let ids: Vec<String> = ["ev-0000", "ev-0150", "ev-0299", "missing"].iter().map(|s| s.to_string()).collect();
    let found = store.leaf_indexes(&t, &ids).await.expect("indexes");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found["ev-0000"], 0);
    assert_eq!(found["ev-0150"], 150);
    assert_eq!(found["ev-0299"], 299);
    assert!(store.leaf_indexes(&other, &ids).await.expect("indexes").is_empty(), "another tenant sees no leaf");
    let page = store.leaves(&t, 250, 20).await.expect("leaves");
    assert_eq!(page.iter().map(|l| l.index).collect::<Vec<_>>(), (250..270).collect::<Vec<_>>());
    assert_eq!(page[0].id, "ev-0250");
    let tail = store.leaves(&t, 290, 100).await.expect("leaves");
    assert_eq!(tail.len(), 10, "the tree ends at 300");
    assert!(store.leaves(&t, 300, 10).await.expect("leaves").is_empty());
    // A provisional row (a crash before the state was saved) is rewritten by the replay.
    store.put_leaves(&t, &[LeafEntry { index: 299, id: "ev-replayed".into() }]).await.expect("overwrite");
    assert_eq!(store.leaves(&t, 299, 1).await.expect("leaves")[0].id, "ev-replayed");
}

/// One call with many leaves: more rows than one write batch or one read holds per partition
/// (the CQL store groups them), every one found both ways.
pub async fn many_leaves_in_one_call(store: &dyn LedgerStore) {
    use auditlog_seams::ledger_store::LeafEntry;
    let t = tenant("many");
    let n = 20_000u64;
    let leaves: Vec<LeafEntry> = (0..n).map(|i| LeafEntry { index: i, id: format!("{:016x}-{i}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) }).collect();
    store.put_leaves(&t, &leaves).await.expect("put");
    let mut ids: Vec<String> = leaves.iter().map(|l| l.id.clone()).collect();
    ids.push("never-written".into());
    let found = store.leaf_indexes(&t, &ids).await.expect("indexes");
    assert_eq!(found.len() as u64, n, "every written id, and only those, is found");
    assert!(leaves.iter().all(|l| found.get(&l.id) == Some(&l.index)), "each id maps to its own index");
    let all = store.leaves(&t, 0, n as usize + 10).await.expect("leaves");
    assert_eq!(all, leaves, "index order, nothing missing, nothing extra");
}

pub async fn keys_are_listed_once_and_retired(store: &dyn LedgerStore) {
    use auditlog_seams::ledger_store::SigningKeyRecord;
    use time::OffsetDateTime;
    let key = |byte: u8, at: i64| SigningKeyRecord {
        public_key: vec![byte; 32],
        name: format!("key-{byte}"),
        not_before: OffsetDateTime::from_unix_timestamp(at).expect("time"),
        not_after: None,
    };
    // Keys are global to the store; use random bytes so runs against a shared keyspace differ.
    let (a, b) = (rand_byte(), rand_byte().wrapping_add(1));
    let before = store.keys().await.expect("keys").len();
    store.put_key(&key(a, 1_700_000_000)).await.expect("put");
    store.put_key(&key(a, 1_800_000_000)).await.expect("listing again keeps the first not_before");
    store.put_key(&key(b, 1_750_000_000)).await.expect("put");
    store.retire_key(&[a; 32], OffsetDateTime::from_unix_timestamp(1_760_000_000).expect("time")).await.expect("retire");
    let keys = store.keys().await.expect("keys");
    let mine: Vec<_> = keys.iter().filter(|k| k.public_key == vec![a; 32] || k.public_key == vec![b; 32]).collect();
    assert!(keys.len() > before, "{keys:?}");
    let first = mine.iter().find(|k| k.public_key == vec![a; 32]).expect("a listed");
    assert_eq!(first.not_before.unix_timestamp(), 1_700_000_000);
    assert_eq!(first.not_after.map(|t| t.unix_timestamp()), Some(1_760_000_000));
    let second = mine.iter().find(|k| k.public_key == vec![b; 32]).expect("b listed");
    assert_eq!(second.not_after, None);
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}
