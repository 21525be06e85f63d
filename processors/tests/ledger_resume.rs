//! A ledger processor killed between saving a grown tree and saving its checkpoint: the
//! restarted process replays the batch, finds nothing new to append, and still issues the
//! checkpoint of the saved tree before the offsets are committed, so the latest checkpoint
//! never stays behind the tree. Runs on the embedded ledger store, as standalone uses it.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use auditlog_ledger::{Checkpoint, Signer, event_leaf_hash, root_of};
use auditlog_processors::Sink as _;
use auditlog_processors::ledger::LedgerSink;
use auditlog_seams::ledger_store::embedded::FileLedgerStore;
use auditlog_seams::ledger_store::{LeafEntry, LedgerState, LedgerStore, LedgerStoreError, SigningKeyRecord, StoredCheckpoint};
use auditlog_seams::{LogPosition, StoredEvent};
use common::event;
use time::OffsetDateTime;

/// The embedded store, except that saving a checkpoint fails as a process killed at that
/// moment would leave it: everything before is durable, the checkpoint is not.
struct DiesBeforeCheckpoint(Arc<FileLedgerStore>);

#[async_trait]
impl LedgerStore for DiesBeforeCheckpoint {
    async fn put_tile(&self, tenant: &str, path: &str, data: &[u8]) -> Result<(), LedgerStoreError> {
        self.0.put_tile(tenant, path, data).await
    }
    async fn get_tile(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, LedgerStoreError> {
        self.0.get_tile(tenant, path).await
    }
    async fn save_state(&self, tenant: &str, state: &LedgerState) -> Result<(), LedgerStoreError> {
        self.0.save_state(tenant, state).await
    }
    async fn load_state(&self, tenant: &str) -> Result<Option<LedgerState>, LedgerStoreError> {
        self.0.load_state(tenant).await
    }
    async fn save_checkpoint(&self, _: &str, _: &StoredCheckpoint) -> Result<(), LedgerStoreError> {
        Err(LedgerStoreError::Unavailable("the process was killed here".into()))
    }
    async fn load_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>, LedgerStoreError> {
        self.0.load_checkpoint(tenant).await
    }
    async fn put_leaves(&self, tenant: &str, leaves: &[LeafEntry]) -> Result<(), LedgerStoreError> {
        self.0.put_leaves(tenant, leaves).await
    }
    async fn leaf_indexes(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, u64>, LedgerStoreError> {
        self.0.leaf_indexes(tenant, ids).await
    }
    async fn leaves(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<LeafEntry>, LedgerStoreError> {
        self.0.leaves(tenant, from, limit).await
    }
    async fn put_key(&self, key: &SigningKeyRecord) -> Result<(), LedgerStoreError> {
        self.0.put_key(key).await
    }
    async fn retire_key(&self, public_key: &[u8], at: OffsetDateTime) -> Result<(), LedgerStoreError> {
        self.0.retire_key(public_key, at).await
    }
    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, LedgerStoreError> {
        self.0.keys().await
    }
}

fn batch(tenant: &str, from: usize, to: usize) -> Vec<StoredEvent> {
    (from..to)
        .map(|n| StoredEvent { event: event(tenant, &format!("ev-{n:04}"), n), position: LogPosition { topic: "audit.events.v1".into(), partition: 0, offset: n as i64 } })
        .collect()
}

#[tokio::test]
async fn a_crash_before_the_checkpoint_is_repaired_by_the_replay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(FileLedgerStore::open(dir.path()).expect("ledger store"));
    let signer = Signer::generate("resume-test").expect("key");
    let tenant = "acme";
    let first = batch(tenant, 0, 30);
    let second = batch(tenant, 30, 70);

    let sink = LedgerSink::new(store.clone(), vec![signer.clone()], "resume.test", None);
    sink.write(&first).await.expect("the first batch is ledgered");
    assert_eq!(store.load_checkpoint(tenant).await.expect("load").expect("checkpoint").size, 30);

    // The second batch grows the tree, then the process dies before the checkpoint.
    let dying = LedgerSink::new(Arc::new(DiesBeforeCheckpoint(store.clone())), vec![signer.clone()], "resume.test", None);
    dying.write(&second).await.expect_err("the checkpoint was not saved");
    assert_eq!(store.load_state(tenant).await.expect("load").expect("state").size, 70, "the tree itself was saved");
    assert_eq!(store.load_checkpoint(tenant).await.expect("load").expect("checkpoint").size, 30, "the checkpoint is behind");

    // The offsets were not committed: a new process replays the second batch.
    let restarted = LedgerSink::new(store.clone(), vec![signer.clone()], "resume.test", None);
    restarted.write(&second).await.expect("the replay succeeds");
    let stored = store.load_checkpoint(tenant).await.expect("load").expect("checkpoint");
    let origin = auditlog_ledger::origin("resume.test", tenant).expect("origin");
    let (checkpoint, _) = Checkpoint::open(&stored.note, &[signer.verifier()], Some(&origin)).expect("the checkpoint verifies");
    let all: Vec<_> = first.iter().chain(&second).map(|e| event_leaf_hash(&e.event).expect("leaf")).collect();
    assert_eq!((checkpoint.size, checkpoint.root), (70, root_of(&all)), "the replay issued the checkpoint of the whole saved tree");
    assert_eq!(store.leaves(tenant, 0, 100).await.expect("leaves").len(), 70, "and appended nothing twice");
}

/// On demand: after a key rotation an idle tenant's latest checkpoint is re-issued, signed by
/// the new key too, for the same tree; a tenant without a tree has none to issue.
#[tokio::test]
async fn a_checkpoint_on_demand_carries_the_rotated_key_for_the_same_tree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(FileLedgerStore::open(dir.path()).expect("ledger store"));
    let (old, new) = (Signer::generate("old-key").expect("key"), Signer::generate("new-key").expect("key"));
    let sink = LedgerSink::new(store.clone(), vec![old.clone()], "resume.test", None);
    sink.write(&batch("acme", 0, 12)).await.expect("ledgered");
    let origin = auditlog_ledger::origin("resume.test", "acme").expect("origin");
    let before = store.load_checkpoint("acme").await.expect("load").expect("checkpoint");
    assert!(Checkpoint::open(&before.note, &[new.verifier()], Some(&origin)).is_err(), "not yet signed by the new key");

    let rotated = LedgerSink::new(store.clone(), vec![old.clone(), new.clone()], "resume.test", None);
    assert_eq!(rotated.checkpoint_now("acme").await.expect("issued"), Some(12));
    assert_eq!(rotated.checkpoint_now("nobody").await.expect("answered"), None);
    let after = store.load_checkpoint("acme").await.expect("load").expect("checkpoint");
    let (by_new, _) = Checkpoint::open(&after.note, &[new.verifier()], Some(&origin)).expect("signed by the new key");
    let (by_old, _) = Checkpoint::open(&before.note, &[old.verifier()], Some(&origin)).expect("signed by the old key");
    assert_eq!((by_new.size, by_new.root), (by_old.size, by_old.root), "the same tree head");
    Checkpoint::open(&after.note, &[old.verifier()], Some(&origin)).expect("and still by the old key, while both overlap");
}
