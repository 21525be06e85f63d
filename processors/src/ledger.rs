//! The ledger as a sink: each tenant's events, in log order, become the leaves of that
//! tenant's Merkle tree (`auditlog-ledger`), stored as `tlog-tiles` in the [`LedgerStore`], and
//! every batch that grows a tree ends with a signed checkpoint, saved and published on the
//! compacted checkpoint topic.
//!
//! Per tenant and batch, in this order, each step durable before the next:
//! 1. records below the tenant's saved position (same topic and partition) are skipped: a
//!    replay after a crash resumes exactly where the saved tree ends;
//! 2. ids that already hold a leaf below the saved size are skipped, and so is a second copy
//!    within the batch: a retried duplicate never becomes a second leaf;
//! 3. the new tiles are written (put-if-absent), then the leaf rows (id ↔ index), then the
//!    state (size, builder state, next position) in one write;
//! 4. a checkpoint of the new size is signed by every configured key, saved, and published.
//!
//! The tenants of a batch are appended concurrently (at most [`TENANT_CONCURRENCY`] at once),
//! each tenant's events in log order by one task; within one append the tiles and the leaf
//! rows are written concurrently (both before the state), and the checkpoint is saved and
//! published concurrently (both before the batch is acknowledged).
//!
//! The pipeline commits the batch's offsets only after [`Sink::write`] returned, so a crash
//! anywhere replays the batch; steps 1–3 make the replay land on the same tree. A crash after
//! step 3 but before step 4 leaves a tree its checkpoint does not cover yet: the replay finds
//! nothing new, and the first batch that meets a tenant after a (re)start with nothing to
//! append re-issues the checkpoint of the saved tree (signing is deterministic, so a
//! checkpoint that was already saved and published is the same note again); a checkpoint that
//! failed to save or publish drops the tenant's cached tree, so the retried batch meets it as
//! after a restart and re-issues it. The tree state is cached per tenant; a tile conflict (another writer moved the tree, or a stale
//! cache) drops the cache and the batch is retried from the stored state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt as _;
use auditlog_ledger::{Checkpoint, Signer, TreeState, event_leaf_hash, origin};
use auditlog_seams::ledger_store::{LeafEntry, LedgerState, LedgerStore, LedgerStoreError, SigningKeyRecord, StoredCheckpoint};
use auditlog_seams::{Conflict, EventLog, LogPosition, OutgoingRecord, StoredEvent};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::sink::{Sink, SinkError};

/// The compacted topic checkpoints are published on (key = tenant id, value = the note).
pub const CHECKPOINT_TOPIC: &str = "audit.ledger.checkpoints.v1";

/// Tenants of one batch appended at once.
pub const TENANT_CONCURRENCY: usize = 16;

/// Where checkpoints are published besides the store.
pub struct CheckpointTopic {
    /// The log (Kafka, or the embedded log).
    pub log: Arc<dyn EventLog>,
    /// The topic name.
    pub topic: String,
}

/// The ledger sink.
pub struct LedgerSink {
    store: Arc<dyn LedgerStore>,
    signers: Vec<Signer>,
    deployment: String,
    publish: Option<CheckpointTopic>,
    trees: Mutex<HashMap<String, Tree>>,
}

/// A tenant's tree as last saved.
#[derive(Clone)]
struct Tree {
    state: TreeState,
    /// The first record not yet in the tree.
    position: Option<LogPosition>,
}

fn from_store(err: LedgerStoreError) -> SinkError {
    match err {
        LedgerStoreError::Invalid(e) => SinkError::Refused(e),
        other => SinkError::Unavailable(other.to_string()),
    }
}

impl LedgerSink {
    /// A sink signing with `signers` (at least one) under origins `<deployment>/<tenant>`.
    pub fn new(store: Arc<dyn LedgerStore>, signers: Vec<Signer>, deployment: impl Into<String>, publish: Option<CheckpointTopic>) -> Self {
        Self { store, signers, deployment: deployment.into(), publish, trees: Mutex::new(HashMap::new()) }
    }

    /// Lists the public halves of the signing keys in the store (first use kept), so the
    /// query API can serve them and old ones stay listed after a rotation.
    pub async fn register_keys(&self) -> Result<(), LedgerStoreError> {
        let now = OffsetDateTime::now_utc();
        for signer in &self.signers {
            let record = SigningKeyRecord {
                public_key: signer.verifier().public_key().to_vec(),
                name: signer.name().to_string(),
                not_before: now,
                not_after: None,
            };
            self.store.put_key(&record).await?;
        }
        Ok(())
    }

    /// The tenant's tree, and whether it came from the store (not from this incarnation's cache).
    async fn tree(&self, tenant: &str) -> Result<(Tree, bool), SinkError> {
        if let Some(tree) = self.trees.lock().await.get(tenant) {
            return Ok((tree.clone(), false));
        }
        let tree = match self.store.load_state(tenant).await.map_err(from_store)? {
            None => Tree { state: TreeState::empty(), position: None },
            Some(saved) => {
                let state = TreeState::from_bytes(&saved.builder).map_err(|e| SinkError::Unavailable(format!("ledger state of {tenant}: {e}")))?;
                if state.size() != saved.size {
                    return Err(SinkError::Unavailable(format!("ledger state of {tenant}: size {} but builder holds {}", saved.size, state.size())));
                }
                Tree { state, position: Some(saved.position) }
            }
        };
        Ok((tree, true))
    }

    /// Appends one tenant's events (in log order) to its tree.
    async fn append(&self, tenant: &str, events: &[&StoredEvent]) -> Result<(), SinkError> {
        let (tree, loaded) = self.tree(tenant).await?;
        let replayed = |p: &LogPosition| {
            tree.position.as_ref().is_some_and(|saved| saved.topic == p.topic && saved.partition == p.partition && p.offset < saved.offset)
        };
        let mut seen = HashSet::new();
        let fresh: Vec<&StoredEvent> = events.iter().copied().filter(|e| !replayed(&e.position) && seen.insert(e.event.id.as_str())).collect();
        let Some(last) = events.last() else { return Ok(()) };
        let next = LogPosition { offset: last.position.offset + 1, ..last.position.clone() };
        let ids: Vec<String> = fresh.iter().map(|e| e.event.id.clone()).collect();
        let known = self.store.leaf_indexes(tenant, &ids).await.map_err(from_store)?;
        let size = tree.state.size();
        let new: Vec<&StoredEvent> = fresh.into_iter().filter(|e| known.get(&e.event.id).is_none_or(|&i| i >= size)).collect();
        if new.is_empty() {
            if !loaded {
                return Ok(());
            }
            // A replay after a crash, or retried duplicates: make sure the saved tree has its
            // checkpoint, saved and published, before the offsets are committed.
            let (size, root) = (tree.state.size(), tree.state.root());
            self.trees.lock().await.insert(tenant.to_string(), tree);
            return if size > 0 { self.checkpoint(tenant, size, root).await } else { Ok(()) };
        }
        let mut hashes = Vec::with_capacity(new.len());
        for e in &new {
            let hash = event_leaf_hash(&e.event).map_err(|err| SinkError::Rejected { ids: vec![e.event.id.clone()], reason: format!("no leaf encoding: {err}") })?;
            hashes.push(hash);
        }
        let appended = tree.state.append(&hashes);
        let tiles: Vec<(String, Vec<u8>)> = appended.tiles.iter().map(|(tile, data)| (tile.path(), data.clone())).collect();
        let stored = async {
            let leaves: Vec<LeafEntry> = new.iter().enumerate().map(|(i, e)| LeafEntry { index: size + i as u64, id: e.event.id.clone() }).collect();
            futures::try_join!(self.store.put_tiles(tenant, &tiles), self.store.put_leaves(tenant, &leaves))?;
            let state = LedgerState { size: appended.state.size(), builder: appended.state.to_bytes(), position: next.clone() };
            self.store.save_state(tenant, &state).await
        };
        if let Err(err) = stored.await {
            // Whatever moved the stored tree, the next attempt starts from it.
            self.trees.lock().await.remove(tenant);
            if let LedgerStoreError::Conflict { path, .. } = &err {
                tracing::error!(tenant, path, "a ledger tile differs from the one this batch produces: another writer, or a diverged replay");
            }
            return Err(from_store(err));
        }
        let new_size = appended.state.size();
        self.trees.lock().await.insert(tenant.to_string(), Tree { state: appended.state, position: Some(next) });
        metrics::counter!("auditlog_ledger_leaves_total").increment(new.len() as u64);
        self.checkpoint(tenant, new_size, appended.root).await
    }

    /// Issues a checkpoint of `tenant`'s saved tree now, signed by this sink's keys (on demand:
    /// after a key rotation, so an idle tenant's latest checkpoint carries the new key, or for
    /// a witness); answers its size, `None` before the tenant's first leaf.
    ///
    /// Safe beside a running ledger processor: it saves a tree's state before that tree's
    /// checkpoint, so when the state read again after this checkpoint is saved is still the one
    /// signed, any checkpoint of a larger tree is saved after this one and stays the latest; when
    /// the tree grew meanwhile, its new size is signed and saved too.
    pub async fn checkpoint_now(&self, tenant: &str) -> Result<Option<u64>, SinkError> {
        let Some(mut saved) = self.store.load_state(tenant).await.map_err(from_store)? else { return Ok(None) };
        loop {
            let state = TreeState::from_bytes(&saved.builder).map_err(|e| SinkError::Unavailable(format!("ledger state of {tenant}: {e}")))?;
            self.issue_checkpoint(tenant, state.size(), state.root()).await?;
            match self.store.load_state(tenant).await.map_err(from_store)? {
                Some(now) if now.size != saved.size => saved = now,
                _ => return Ok(Some(state.size())),
            }
        }
    }

    /// Signs, saves and publishes the checkpoint of `size`; on failure the tenant's cached tree
    /// is dropped, so the retry re-issues it (see the module notes).
    async fn checkpoint(&self, tenant: &str, size: u64, root: auditlog_ledger::Hash) -> Result<(), SinkError> {
        let issued = self.issue_checkpoint(tenant, size, root).await;
        if issued.is_err() {
            self.trees.lock().await.remove(tenant);
        }
        issued
    }

    async fn issue_checkpoint(&self, tenant: &str, size: u64, root: auditlog_ledger::Hash) -> Result<(), SinkError> {
        let origin = origin(&self.deployment, tenant).map_err(|e| SinkError::Refused(format!("origin of {tenant}: {e}")))?;
        let note = Checkpoint { origin, size, root, extensions: Vec::new() }
            .sign(&self.signers)
            .map_err(|e| SinkError::Unavailable(format!("signing the checkpoint of {tenant}: {e}")))?;
        let save = async { self.store.save_checkpoint(tenant, &StoredCheckpoint { size, note: note.clone() }).await.map_err(from_store) };
        let publish = async {
            let Some(publish) = &self.publish else { return Ok(()) };
            let record = OutgoingRecord { topic: publish.topic.clone(), key: tenant.to_string(), payload: note.clone().into_bytes(), headers: Vec::new() };
            publish.log.append(record).await.map(drop).map_err(|e| SinkError::Unavailable(format!("publishing the checkpoint of {tenant}: {e}")))
        };
        futures::try_join!(save, publish)?;
        metrics::counter!("auditlog_ledger_checkpoints_total").increment(1);
        Ok(())
    }
}

#[async_trait]
impl Sink for LedgerSink {
    fn name(&self) -> &'static str {
        crate::SinkKind::Ledger.as_str()
    }

    /// Never reports conflicts: a second copy of an id is no leaf, and the event store's sink
    /// dead-letters it.
    async fn write(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, SinkError> {
        // Group by tenant, keeping log order within each.
        let mut groups: Vec<(&str, Vec<&StoredEvent>)> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for e in events {
            let tenant = e.event.tenant_id.as_str();
            let i = *slot.entry(tenant).or_insert_with(|| {
                groups.push((tenant, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(e);
        }
        // Every append runs to its end (none is cancelled half-way by another's failure), then
        // the first failure fails the batch.
        let mut appends = Vec::with_capacity(groups.len());
        for (tenant, group) in &groups {
            let append: std::pin::Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + '_>> = Box::pin(self.append(tenant, group));
            appends.push(append);
        }
        let done: Vec<Result<(), SinkError>> = futures::stream::iter(appends).buffer_unordered(TENANT_CONCURRENCY).collect().await;
        done.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(Vec::new())
    }

    async fn check_ready(&self) -> Result<(), SinkError> {
        self.store.keys().await.map(|_| ()).map_err(from_store)
    }
}
