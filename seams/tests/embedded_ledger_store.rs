//! The LedgerStore scenarios against the embedded (file) implementation, plus its durability
//! and concurrency specifics.

mod ledger_scenarios;

use std::sync::Arc;

use auditlog_seams::ledger_store::embedded::FileLedgerStore;
use auditlog_seams::ledger_store::{LedgerStore, LedgerStoreError, StoredCheckpoint};
use ledger_scenarios as s;

fn store() -> (tempfile::TempDir, FileLedgerStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileLedgerStore::open(dir.path().join("ledger")).expect("open");
    (dir, store)
}

#[tokio::test]
async fn tiles_are_put_once() {
    s::tiles_are_put_once(&store().1).await;
}

#[tokio::test]
async fn tenant_scoped() {
    s::tenant_scoped(&store().1).await;
}

#[tokio::test]
async fn state_and_checkpoint_round_trip() {
    s::state_and_checkpoint_round_trip(&store().1).await;
}

#[tokio::test]
async fn invalid_requests() {
    s::invalid_requests(&store().1).await;
}

#[tokio::test]
async fn builder_resumes_from_stored_tiles() {
    s::builder_resumes_from_stored_tiles(&store().1).await;
}

#[tokio::test]
async fn survives_reopen_and_leaves_no_temporary_files() {
    let (dir, store) = store();
    store.put_tile("acme", "tile/0/000.p/2", &[5u8; 64]).await.expect("put");
    store.save_checkpoint("acme", &StoredCheckpoint { size: 2, note: "n\n".into() }).await.expect("save");
    drop(store);
    let reopened = FileLedgerStore::open(dir.path().join("ledger")).expect("reopen");
    assert_eq!(reopened.get_tile("acme", "tile/0/000.p/2").await.expect("get"), Some(vec![5u8; 64]));
    assert_eq!(reopened.load_checkpoint("acme").await.expect("load").map(|c| c.size), Some(2));
    let tile_dir = dir.path().join("ledger/tenants/acme/tile/0");
    let names: Vec<String> = std::fs::read_dir(&tile_dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[tokio::test]
async fn a_tenant_named_like_a_store_file_is_just_a_tenant() {
    let (_dir, store) = store();
    store.put_tile("FORMAT", "tile/0/000.p/1", &[1u8; 32]).await.expect("tenant FORMAT does not clash with the format file");
    drop(store); // one open store per directory: its leaf database is locked while open
    assert!(FileLedgerStore::open(_dir.path().join("ledger")).is_ok());
}

#[tokio::test]
async fn concurrent_writers_of_one_tile_one_wins() {
    let (_dir, store) = store();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move { store.put_tile("acme", "tile/1/000.p/1", &[i % 2; 32]).await }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let stored = store.get_tile("acme", "tile/1/000.p/1").await.expect("get").expect("written");
    for (i, result) in results.iter().enumerate() {
        let same = stored == vec![(i as u8) % 2; 32];
        assert_eq!(result.is_ok(), same, "writer {i}: {result:?}");
        if !same {
            assert!(matches!(result, Err(LedgerStoreError::Conflict { .. })));
        }
    }
}

#[tokio::test]
async fn many_leaves_in_one_call() {
    s::many_leaves_in_one_call(&store().1).await;
}

#[tokio::test]
async fn leaves_both_ways() {
    s::leaves_both_ways(&store().1).await;
}

#[tokio::test]
async fn keys_are_listed_once_and_retired() {
    s::keys_are_listed_once_and_retired(&store().1).await;
}
