//! The event store seam: the read model for time-range reads, reads by id, by actor and by
//! target (ScyllaDB in production, an embedded store in standalone mode).
//!
//! # Semantics
//! - **Idempotent writes.** [`EventStore::upsert`] is keyed by `(tenant_id, id)`: writing the
//!   same event twice, from a retry or a replay, leaves one row. The first write for an id
//!   wins the log position; later ones with the same id carry the same event.
//! - **Conflicts.** Each id is stored with the [content digest](auditlog_schemas::digest) of
//!   its first copy. [`EventStore::upsert_checked`] reports a later copy whose digest differs
//!   (a producer re-using an id for another event) as a [`Conflict`]: the first copy stays,
//!   and the caller dead-letters the later one instead of dropping it silently. A copy with
//!   the same digest is a retry, absorbed as before. Ids stored before digests were kept
//!   have none: their later copies are never claimed to conflict.
//! - **Acknowledgement.** `upsert` returns `Ok` only once every event of the call is durable
//!   in the store; processors commit log offsets only after that.
//! - **Ordering of reads.** Newest `occurred_at` first, ties broken by id, so paging is stable.
//! - **Tenancy.** Every read takes the tenant from [`EventFilter::tenant_id`] and can return
//!   nothing else; a cursor from another tenant or query is refused, not reinterpreted.
//! - **Retention.** Events older than their tenant's retention are neither returned nor kept.
//! - **Errors.** [`StoreError::Unavailable`] is transient (store down or slow): the caller
//!   retries and commits nothing meanwhile. [`StoreError::Invalid`] is the caller's mistake
//!   (a bad cursor, a filter the store cannot serve).

pub mod embedded;
pub mod scylla;

use async_trait::async_trait;
use time::OffsetDateTime;

use auditlog_schemas::ContentDigest;

use crate::query::{EventFilter, Page, PageRequest, StoredEvent};

/// A tenant's retention, as the store's writer looks it up per event: `None` keeps events
/// forever. A store given one does not write events already past it (a replay of an old log);
/// stored events are removed only by [`EventStore::purge_before`] (the query API's retention
/// sweep), never by a write-time expiry, so raising a retention keeps every copy and lowering
/// it removes from every copy at the next sweep.
pub type Retention = std::sync::Arc<dyn Fn(&str) -> Option<time::Duration> + Send + Sync>;

/// Errors of the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transient: retry later.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The request cannot be served as asked (bad cursor, unsupported filter).
    #[error("invalid event store request: {0}")]
    Invalid(String),
    /// A stored row cannot be read back (written by an incompatible version, or damaged).
    #[error("corrupt event store row: {0}")]
    Corrupt(String),
}

/// A copy of an event refused by [`EventStore::upsert_checked`]: its id is stored already
/// with other content. The stored first copy is left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Position of the refused copy in the events given to the call.
    pub index: usize,
    /// Digest of the first copy, as stored (or as written earlier in the same call).
    pub stored: ContentDigest,
    /// Digest of the refused copy.
    pub refused: ContentDigest,
}

/// The read model for reads by time range, id, actor and target.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Writes the events, idempotently by `(tenant_id, id)`; `Ok` means all are durable.
    async fn upsert(&self, events: &[StoredEvent]) -> Result<(), StoreError>;

    /// [`EventStore::upsert`], reporting the events whose id was stored already (or earlier
    /// in `events`) with another content digest; those are not written. Costs no read
    /// beyond the first-write check `upsert` makes anyway. The default, for stores that keep
    /// no digest, reports none.
    async fn upsert_checked(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, StoreError> {
        self.upsert(events).await.map(|()| Vec::new())
    }

    /// [`EventStore::upsert`] for rebuilding a view (replay): where an id is stored already,
    /// everything its stored winner is indexed under is written again, so rows lost to
    /// damage, or to a crash of an earlier version, come back. The first write still wins.
    /// A store whose every event is written atomically has nothing to repair: the default
    /// is `upsert`.
    async fn repair(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.upsert(events).await
    }

    /// One event of one tenant by id.
    async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<StoredEvent>, StoreError>;

    /// A page of the tenant's events matching `filter`, newest first. Serves time range,
    /// actor, target and their combination with the other filters; a `text` filter is
    /// [`StoreError::Invalid`] (that is the search index's job).
    async fn list(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, StoreError>;

    /// Removes the tenant's events that occurred before `before`; returns how many.
    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Succeeds when the store can serve reads and writes now.
    async fn check_ready(&self) -> Result<(), StoreError>;
}
