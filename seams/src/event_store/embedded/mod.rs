//! The embedded [`EventStore`] on `fjall` (an LSM-tree key-value store), for standalone mode.
//!
//! # Writes
//! One `upsert` call is one atomic fjall write batch committed with `fsync` before it
//! returns. Upserts are serialized by a lock, so the "does this id exist?" check and the
//! write cannot interleave: the first write of a `(tenant_id, id)` wins, across calls and
//! within one call, as in the ScyllaDB store. The id's entry keeps the content digest of that
//! first copy, so the same check that finds an id taken tells a retry (same digest) from a
//! conflict (other digest, reported by [`EventStore::upsert_checked`]).
//!
//! # Reads
//! See [`keys`] for the layout: time-range, actor and target lists are reverse range scans
//! of one index, never a scan of the whole tenant (an actor or target entry resolved by a
//! point read of its `by_time` row); the remaining filters apply in memory.

mod keys;
mod read;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditlog_schemas::avro::to_micros;
use auditlog_schemas::{AuditEvent, ContentDigest, content_digest};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use read::{MAX_PAGE, SCAN_LIMIT};

use crate::event_store::{Conflict, EventStore, StoreError};
use crate::query::{EventFilter, Page, PageRequest, StoredEvent};
use crate::LogPosition;

/// Kind written into the store directory's format file.
pub const FORMAT_KIND: &str = "auditlog-event-store";
/// Format version of the store directory (key layout and row encoding). Version 1 wrote the
/// whole row into every keyspace; version 2 writes it once, into `by_time` (see [`keys`]);
/// version 3 adds the content digest to each `events` entry. Version 3 reads all three
/// (entries without a digest are ids whose content is unknown: never claimed to conflict),
/// and upgrades the format file of an older directory when it opens it, since it will write
/// entries that an older version cannot read.
pub const FORMAT_VERSION: u32 = 3;
/// Bytes of an `events` entry: the time of the `by_time` row, then the content digest (8
/// bytes only in a format version 2 directory).
const ENTRY_LEN: usize = 8 + 32;
/// The value of an actor or target entry: empty, a reference to the `by_time` row of the time
/// and id its key ends with.
const REFERENCE: &[u8] = &[];
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

/// The row an index entry stands for. `index_key` is `prefix | time | id`, with `prefix_len`
/// the length of `prefix`: the entry's own value when it holds the row (every `by_time` entry;
/// every entry of a format version 1 directory), else the `by_time` row at `tenant | time | id`.
/// `None` when the event is gone (purged after the scan that found the entry began).
pub(super) fn row_of(tables: &Tables, tenant: &str, index_key: &[u8], prefix_len: usize, value: &[u8]) -> Result<Option<StoredEvent>, StoreError> {
    if !value.is_empty() {
        return decode_row(value).map(Some);
    }
    let time_and_id = index_key
        .get(prefix_len..)
        .filter(|rest| rest.len() >= 8)
        .ok_or_else(|| StoreError::Corrupt(format!("event store index key of {} bytes is too short", index_key.len())))?;
    let mut key = keys::prefix(tenant, &[]);
    key.extend_from_slice(time_and_id);
    tables.by_time.get(&key).map_err(unavailable)?.map(|v| decode_row(&v)).transpose()
}

/// The time an `events` entry points at; `None` for a format version 1 entry (the row).
fn entry_time(entry: &[u8]) -> Option<&[u8]> {
    (entry.len() == 8 || entry.len() == ENTRY_LEN).then(|| &entry[..8])
}

/// The content digest an `events` entry keeps; `None` when it keeps none (written by format
/// version 1 or 2).
fn entry_digest(entry: &[u8]) -> Option<ContentDigest> {
    entry.get(8..).filter(|_| entry.len() == ENTRY_LEN).and_then(|d| d.try_into().ok())
}

/// The event `id` of `tenant`: its `events` entry holds the time of its `by_time` row (or, in
/// a format version 1 directory, the row itself).
fn get_blocking(tables: &Tables, tenant: &str, id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let Some(entry) = tables.events.get(keys::by_id(tenant, id)).map_err(unavailable)? else { return Ok(None) };
    let Some(time) = entry_time(&entry) else { return decode_row(&entry).map(Some) };
    let mut key = keys::prefix(tenant, &[]);
    key.extend_from_slice(time);
    key.extend_from_slice(id.as_bytes());
    tables.by_time.get(&key).map_err(unavailable)?.map(|v| decode_row(&v)).transpose()
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
        let found = crate::event_log::embedded::files::check_format(dir, FORMAT_KIND, FORMAT_VERSION).map_err(StoreError::Invalid)?;
        let db = Database::builder(dir.join("fjall")).open().map_err(|e| unavailable(format!("opening {}: {e}", dir.display())))?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default).map_err(unavailable);
        let tables = Tables {
            events: keyspace("events")?,
            by_time: keyspace("by_time")?,
            by_actor: keyspace("by_actor")?,
            by_target: keyspace("by_target")?,
            db,
        };
        if found < FORMAT_VERSION {
            crate::event_log::embedded::files::upgrade_format(dir, FORMAT_KIND, FORMAT_VERSION).map_err(StoreError::Invalid)?;
        }
        Ok(Self { tables: Arc::new(tables), write_lock: Arc::new(Mutex::new(())) })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await.map_err(|e| unavailable(format!("store task failed: {e}")))?
    }

    /// Writes the events whose id is not taken; reports those taken with another digest.
    fn upsert_blocking(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, StoreError> {
        let t = &self.tables;
        let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = t.db.batch().durability(Some(PersistMode::SyncAll));
        // The digest each id of the call is held under (`None`: held, content unknown).
        let mut claimed: HashMap<Vec<u8>, Option<ContentDigest>> = HashMap::new();
        let mut conflicts = Vec::new();
        for (index, stored) in events.iter().enumerate() {
            let e = &stored.event;
            let digest = content_digest(e);
            let id_key = keys::by_id(&e.tenant_id, &e.id);
            let held = match claimed.get(&id_key) {
                Some(held) => Some(*held),
                None => t.events.get(&id_key).map_err(unavailable)?.map(|entry| entry_digest(&entry)),
            };
            if let Some(held) = held {
                if let Some(first) = held.filter(|first| *first != digest) {
                    conflicts.push(Conflict { index, stored: first, refused: digest });
                }
                claimed.insert(id_key, held);
                continue;
            }
            let row = encode_row(stored)?;
            let (time, actor, targets) = index_keys(e);
            let mut entry = Vec::with_capacity(ENTRY_LEN);
            entry.extend_from_slice(&keys::time_bytes(to_micros(e.occurred_at)));
            entry.extend_from_slice(&digest);
            claimed.insert(id_key.clone(), Some(digest));
            batch.insert(&t.events, id_key, entry);
            batch.insert(&t.by_time, time, row);
            batch.insert(&t.by_actor, actor, REFERENCE);
            for target in targets {
                batch.insert(&t.by_target, target, REFERENCE);
            }
        }
        batch.commit().map_err(unavailable)?;
        Ok(conflicts)
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
                let (key, value) = item.into_inner().map_err(unavailable)?;
                n += 1;
                let Some(stored) = row_of(t, tenant_id, &key, prefix.len(), &value)? else {
                    batch.remove(&t.by_time, key); // an entry whose event is gone
                    continue;
                };
                let e = stored.event;
                let (time, actor, targets) = index_keys(&e);
                batch.remove(&t.events, keys::by_id(&e.tenant_id, &e.id));
                batch.remove(&t.by_time, time);
                batch.remove(&t.by_actor, actor);
                for target in targets {
                    batch.remove(&t.by_target, target);
                }
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
        self.upsert_checked(events).await.map(drop)
    }

    async fn upsert_checked(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events = events.to_vec();
        self.blocking(move |s| s.upsert_blocking(&events)).await
    }

    async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let (tenant_id, id) = (tenant_id.to_owned(), id.to_owned());
        self.blocking(move |s| get_blocking(&s.tables, &tenant_id, &id)).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{EventFilter, PageRequest};

    fn stored(id: &str, minute: u32, actor: &str) -> StoredEvent {
        let event: AuditEvent = serde_json::from_value(serde_json::json!({
            "id": id, "tenant_id": "t", "action": "document.read",
            "occurred_at": format!("2026-11-20T12:{minute:02}:00Z"), "received_at": "2026-11-20T13:00:00Z",
            "actor": {"id": actor, "type": "user"}, "targets": [{"type": "document", "id": "doc-1"}],
        }))
        .expect("event");
        StoredEvent { event, position: LogPosition { topic: "audit.events.v1".into(), partition: 0, offset: i64::from(minute) } }
    }

    async fn ids(store: &FjallEventStore, filter: EventFilter) -> Vec<String> {
        let page = store.list(&filter, &PageRequest { limit: 100, after: None }).await.expect("list");
        page.events.into_iter().map(|e| e.event.id).collect()
    }

    /// A directory of format version 1 (every index entry holding the whole row) opens, is
    /// marked version 2, and serves its old events beside new ones, in every index; its
    /// old entries are purged like new ones.
    #[tokio::test]
    async fn a_version_1_directory_is_read_upgraded_and_purged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = stored("evt-old", 1, "alice");
        {
            let store = FjallEventStore::open(dir.path()).expect("store opens");
            let (t, row) = (&store.tables, encode_row(&old).expect("row"));
            let (time, actor, targets) = index_keys(&old.event);
            let mut batch = t.db.batch().durability(Some(PersistMode::SyncAll));
            batch.insert(&t.events, keys::by_id("t", "evt-old"), row.clone());
            batch.insert(&t.by_time, time, row.clone());
            batch.insert(&t.by_actor, actor, row.clone());
            for target in targets {
                batch.insert(&t.by_target, target, row.clone());
            }
            batch.commit().expect("commit");
        }
        std::fs::write(dir.path().join("FORMAT"), "auditlog-event-store 1\n").expect("downgrade the format file");

        let store = FjallEventStore::open(dir.path()).expect("a version 1 directory opens");
        let format = std::fs::read_to_string(dir.path().join("FORMAT")).expect("format file");
        assert_eq!(format.trim(), format!("{FORMAT_KIND} {FORMAT_VERSION}"), "the format file is upgraded");
        store.upsert(&[stored("evt-new", 2, "alice")]).await.expect("upsert");

        let tenant = EventFilter { tenant_id: "t".into(), ..EventFilter::default() };
        assert_eq!(ids(&store, tenant.clone()).await, ["evt-new", "evt-old"], "by time");
        let by_actor = EventFilter { actor_id: Some("alice".into()), ..tenant.clone() };
        assert_eq!(ids(&store, by_actor).await, ["evt-new", "evt-old"], "by actor");
        let by_target = EventFilter { target_type: Some("document".into()), target_id: Some("doc-1".into()), ..tenant.clone() };
        assert_eq!(ids(&store, by_target.clone()).await, ["evt-new", "evt-old"], "by target");
        let got = store.get("t", "evt-old").await.expect("get").expect("old event");
        assert_eq!(got, old, "the old row reads back whole");

        let cutoff = OffsetDateTime::parse("2026-11-20T13:00:00Z", &time::format_description::well_known::Rfc3339).expect("time");
        assert_eq!(store.purge_before("t", cutoff).await.expect("purge"), 2);
        assert!(ids(&store, tenant).await.is_empty(), "both purged from the time index");
        assert!(ids(&store, by_target).await.is_empty(), "and from the target index");
        assert!(store.get("t", "evt-old").await.expect("get").is_none());
    }

    /// An id stored by format version 2 (its `events` entry the time alone) reads back, and
    /// a later copy with other content is not claimed to conflict (its first copy's content
    /// is unknown); the first copy still wins.
    #[tokio::test]
    async fn a_version_2_entry_has_no_digest_and_no_conflict_is_claimed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FjallEventStore::open(dir.path()).expect("store opens");
        let old = stored("evt-v2", 1, "carol");
        {
            let t = &store.tables;
            let (time, actor, _) = index_keys(&old.event);
            let mut batch = t.db.batch().durability(Some(PersistMode::SyncAll));
            batch.insert(&t.events, keys::by_id("t", "evt-v2"), &keys::time_bytes(to_micros(old.event.occurred_at))[..]);
            batch.insert(&t.by_time, time, encode_row(&old).expect("row"));
            batch.insert(&t.by_actor, actor, REFERENCE);
            batch.commit().expect("commit");
        }
        assert_eq!(store.get("t", "evt-v2").await.expect("get"), Some(old.clone()));
        let mut other = old.clone();
        other.event.action = "document.delete".into();
        assert!(store.upsert_checked(&[other]).await.expect("upsert").is_empty(), "unknown content: no conflict claimed");
        assert_eq!(store.get("t", "evt-v2").await.expect("get"), Some(old), "the first copy stays");
    }

    /// The row is written once, into `by_time`; the other entries are references to it.
    #[tokio::test]
    async fn the_row_is_written_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FjallEventStore::open(dir.path()).expect("store opens");
        let event = stored("evt-1", 1, "bob");
        store.upsert(std::slice::from_ref(&event)).await.expect("upsert");
        let t = &store.tables;
        let value = |index: &Keyspace| index.first_key_value().expect("one entry").value().expect("value").to_vec();
        assert_eq!(decode_row(&value(&t.by_time)).expect("the row").event, event.event, "by_time holds the row");
        assert!(value(&t.by_actor).is_empty() && value(&t.by_target).is_empty(), "actor and target entries hold nothing");
        let entry = value(&t.events);
        assert_eq!(entry.len(), ENTRY_LEN, "events holds the time and the digest");
        assert_eq!(entry_digest(&entry), Some(content_digest(&event.event)));
        assert_eq!(store.get("t", "evt-1").await.expect("get"), Some(event), "read by id through the time");
    }
}
