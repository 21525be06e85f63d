//! The embedded [`EventStore`] on `fjall` (an LSM-tree key-value store), for standalone mode.
//!
//! # Writes
//! One `upsert` call is one atomic fjall write batch committed with `fsync` before it
//! returns. Upserts are serialized by a lock, so the "does this id exist?" check and the
//! write cannot interleave: the first write of a `(tenant_id, id)` wins, across calls and
//! within one call, exactly like the ScyllaDB store's lightweight transaction.
//!
//! # Reads
//! See [`keys`] for the layout: time-range, actor and target lists are reverse range scans
//! of one index, never a scan of the whole tenant; the remaining filters apply in memory.

mod keys;
mod read;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditlog_schemas::AuditEvent;
use auditlog_schemas::avro::to_micros;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use read::{MAX_PAGE, SCAN_LIMIT};

use crate::event_store::{EventStore, StoreError};
use crate::query::{EventFilter, Page, PageRequest, StoredEvent};
use crate::LogPosition;

/// Kind written into the store directory's format file.
pub const FORMAT_KIND: &str = "auditlog-event-store";
/// Format version of the store directory (key layout and row encoding).
pub const FORMAT_VERSION: u32 = 1;
/// Events deleted per durable batch by `purge_before`.
const PURGE_BATCH: usize = 1_000;

/// The stored form of an event: the event and its log position.
#[derive(Serialize, Deserialize)]
struct Row {
    event: AuditEvent,
    topic: String,
    partition: i32,
    offset: i64,
}

/// The keyspaces of the store.
pub(super) struct Tables {
    db: Database,
    events: Keyspace,
    by_time: Keyspace,
    by_actor: Keyspace,
    by_target: Keyspace,
}

/// The event store in a local directory.
#[derive(Clone)]
pub struct FjallEventStore {
    tables: Arc<Tables>,
    /// Serializes writers: the first-write-wins check and the write are one step.
    write_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for FjallEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallEventStore").finish_non_exhaustive()
    }
}

pub(super) fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

pub(super) fn decode_row(bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let row: Row = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("event store row: {e}")))?;
    Ok(StoredEvent { event: row.event, position: LogPosition { topic: row.topic, partition: row.partition, offset: row.offset } })
}

fn encode_row(stored: &StoredEvent) -> Result<Vec<u8>, StoreError> {
    let p = &stored.position;
    let row = Row { event: stored.event.clone(), topic: p.topic.clone(), partition: p.partition, offset: p.offset };
    serde_json::to_vec(&row).map_err(|e| StoreError::Invalid(format!("event {}: {e}", stored.event.id)))
}

/// The index keys of an event, one per keyspace entry besides `events`.
fn index_keys(event: &AuditEvent) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let (t, us) = (event.tenant_id.as_str(), to_micros(event.occurred_at));
    let time = keys::timed(&keys::prefix(t, &[]), us, &event.id);
    let actor = keys::timed(&keys::prefix(t, &[&event.actor.id]), us, &event.id);
    let mut seen = HashSet::new();
    let targets = event
        .targets
        .iter()
        .filter(|x| seen.insert((x.kind.as_str(), x.id.as_str())))
        .map(|x| keys::timed(&keys::prefix(t, &[&x.kind, &x.id]), us, &event.id))
        .collect();
    (time, actor, targets)
}

impl FjallEventStore {
    /// Opens (or creates) the store in `dir`, checking its format file. Blocking.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        crate::event_log::embedded::files::check_format(dir, FORMAT_KIND, FORMAT_VERSION).map_err(StoreError::Invalid)?;
        let db = Database::builder(dir.join("fjall")).open().map_err(|e| unavailable(format!("opening {}: {e}", dir.display())))?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default).map_err(unavailable);
        let tables = Tables {
            events: keyspace("events")?,
            by_time: keyspace("by_time")?,
            by_actor: keyspace("by_actor")?,
            by_target: keyspace("by_target")?,
            db,
        };
        Ok(Self { tables: Arc::new(tables), write_lock: Arc::new(Mutex::new(())) })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await.map_err(|e| unavailable(format!("store task failed: {e}")))?
    }

    fn upsert_blocking(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let t = &self.tables;
        let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = t.db.batch().durability(Some(PersistMode::SyncAll));
        let mut claimed = HashSet::new();
        for stored in events {
            let e = &stored.event;
            let id_key = keys::by_id(&e.tenant_id, &e.id);
            if !claimed.insert(id_key.clone()) || t.events.contains_key(&id_key).map_err(unavailable)? {
                continue;
            }
            let row = encode_row(stored)?;
            let (time, actor, targets) = index_keys(e);
            batch.insert(&t.events, id_key, row.clone());
            batch.insert(&t.by_time, time, row.clone());
            batch.insert(&t.by_actor, actor, row.clone());
            for target in targets {
                batch.insert(&t.by_target, target, row.clone());
            }
        }
        batch.commit().map_err(unavailable)
    }

    fn purge_blocking(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, StoreError> {
        let t = &self.tables;
        let prefix = keys::prefix(tenant_id, &[]);
        let (low, high) = (keys::timed(&prefix, i64::MIN, ""), keys::timed(&prefix, to_micros(before), ""));
        let mut purged = 0;
        loop {
            let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
            let mut batch = t.db.batch().durability(Some(PersistMode::SyncAll));
            let mut n = 0;
            for item in t.by_time.range(low.as_slice()..high.as_slice()).take(PURGE_BATCH) {
                let (_, value) = item.into_inner().map_err(unavailable)?;
                let e = decode_row(&value)?.event;
                let (time, actor, targets) = index_keys(&e);
                batch.remove(&t.events, keys::by_id(&e.tenant_id, &e.id));
                batch.remove(&t.by_time, time);
                batch.remove(&t.by_actor, actor);
                for target in targets {
                    batch.remove(&t.by_target, target);
                }
                n += 1;
            }
            batch.commit().map_err(unavailable)?;
            purged += n;
            if n < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
}

#[async_trait]
impl EventStore for FjallEventStore {
    async fn upsert(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.blocking(move |s| s.upsert_blocking(&events)).await
    }

    async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let key = keys::by_id(tenant_id, id);
        self.blocking(move |s| s.tables.events.get(&key).map_err(unavailable)?.map(|v| decode_row(&v)).transpose()).await
    }

    async fn list(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, StoreError> {
        let (filter, page) = (filter.clone(), page.clone());
        self.blocking(move |s| read::list(&s.tables, &filter, &page)).await
    }

    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, StoreError> {
        let tenant_id = tenant_id.to_owned();
        self.blocking(move |s| s.purge_blocking(&tenant_id, before)).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.blocking(|s| s.tables.events.first_key_value().map_or(Ok(()), |g| g.key().map(|_| ()).map_err(unavailable))).await
    }
}
