//! The read models a processor writes to, behind one small trait so the pipeline treats the
//! event store and the search index alike.

use std::sync::Arc;

use async_trait::async_trait;
use auditlog_seams::{Conflict, EventStore, IndexError, SearchIndex, StoreError, StoredEvent};

use crate::config::SinkKind;

/// Why a write failed, as the pipeline must react to it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Transient: wait and retry the whole batch; commit nothing meanwhile.
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// The sink refused these events (by id) permanently; the rest of the batch may be
    /// retried. After bounded attempts they go to the dead-letter topic.
    #[error("sink rejected {} events: {reason}", ids.len())]
    Rejected {
        /// Ids of the refused events.
        ids: Vec<String>,
        /// Why.
        reason: String,
    },
    /// The sink refused the batch as a whole without saying which event; the pipeline
    /// retries the events one by one to find the culprits.
    #[error("sink refused the batch: {0}")]
    Refused(String),
}

/// A read model: idempotent writes by `(tenant_id, id)`, acknowledged once durable.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// The name in logs and metric labels (`scylla`, `opensearch`).
    fn name(&self) -> &'static str;

    /// Writes the events; `Ok` once every one is durable, except the copies it reports as
    /// conflicts: events whose id the view holds already with other content (the first copy
    /// stays). Only the event store's sink reports conflicts, so one conflict makes one dead
    /// letter; the search index keeps its first copy silently.
    async fn write(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, SinkError>;

    /// Succeeds when the sink can take writes now.
    async fn check_ready(&self) -> Result<(), SinkError>;
}

/// The event store (ScyllaDB) as a sink; reports conflicts ([`EventStore::upsert_checked`]),
/// except when rebuilding (a replay does not dead-letter again what the live processor did).
pub struct StoreSink {
    store: Arc<dyn EventStore>,
    /// Writes go through [`EventStore::repair`] (the sink of a rebuild, `replay`), so events
    /// the store holds already get every row back too.
    repair: bool,
}

impl StoreSink {
    /// The sink of a processor: upserts, first write wins.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store, repair: false }
    }

    /// The sink of a rebuild: repairs, first write still wins.
    pub fn repairing(store: Arc<dyn EventStore>) -> Self {
        Self { store, repair: true }
    }
}

/// The search index (OpenSearch) as a sink.
pub struct IndexSink(pub Arc<dyn SearchIndex>);

/// A store's `Invalid` from a write is an event it can never take (a row too large, a key
/// longer than the store allows): refused, so the pipeline writes the batch one event at a
/// time and dead-letters that one. `Unavailable` (down, slow) is waited for.
fn from_store(err: StoreError) -> SinkError {
    match err {
        StoreError::Unavailable(e) => SinkError::Unavailable(e),
        StoreError::Invalid(e) | StoreError::Corrupt(e) => SinkError::Refused(e),
    }
}

fn from_index(err: IndexError) -> SinkError {
    match err {
        IndexError::Unavailable(e) => SinkError::Unavailable(e),
        IndexError::Rejected { ids, reason } => SinkError::Rejected { ids, reason },
        IndexError::Invalid(e) => SinkError::Refused(e),
    }
}

#[async_trait]
impl Sink for StoreSink {
    fn name(&self) -> &'static str {
        SinkKind::Scylla.as_str()
    }

    async fn write(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, SinkError> {
        let written = if self.repair { self.store.repair(events).await.map(|()| Vec::new()) } else { self.store.upsert_checked(events).await };
        written.map_err(from_store)
    }

    async fn check_ready(&self) -> Result<(), SinkError> {
        self.store.check_ready().await.map_err(from_store)
    }
}

#[async_trait]
impl Sink for IndexSink {
    fn name(&self) -> &'static str {
        SinkKind::OpenSearch.as_str()
    }

    async fn write(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, SinkError> {
        self.0.index(events).await.map(|()| Vec::new()).map_err(from_index)
    }

    async fn check_ready(&self) -> Result<(), SinkError> {
        self.0.check_ready().await.map_err(from_index)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use auditlog_seams::{EventFilter, EventStore, Page, PageRequest, StoreError, StoredEvent};
    use time::OffsetDateTime;

    use super::{Sink, SinkError, StoreSink};

    /// A store whose writes fail with the error its function makes.
    struct Failing(fn() -> StoreError);

    #[async_trait]
    impl EventStore for Failing {
        async fn upsert(&self, _: &[StoredEvent]) -> Result<(), StoreError> {
            Err((self.0)())
        }
        async fn get(&self, _: &str, _: &str) -> Result<Option<StoredEvent>, StoreError> {
            Ok(None)
        }
        async fn list(&self, _: &EventFilter, _: &PageRequest) -> Result<Page, StoreError> {
            Err((self.0)())
        }
        async fn purge_before(&self, _: &str, _: OffsetDateTime) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn check_ready(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// An event the store can never take (the ScyllaDB store's row too large or key too
    /// long) is refused, which isolates and dead-letters it; an outage is waited for.
    #[tokio::test]
    async fn invalid_writes_are_refused_and_outages_waited_for() {
        let invalid = StoreSink::new(Arc::new(Failing(|| StoreError::Invalid("a row of event e1 is too large for the store".into()))));
        assert!(matches!(invalid.write(&[]).await, Err(SinkError::Refused(reason)) if reason.contains("e1")));
        let down = StoreSink::new(Arc::new(Failing(|| StoreError::Unavailable("connection refused".into()))));
        assert!(matches!(down.write(&[]).await, Err(SinkError::Unavailable(_))));
    }
}
