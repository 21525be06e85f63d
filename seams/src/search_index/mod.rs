//! The search index seam: full-text search, filter combinations and aggregations
//! (OpenSearch in production, tantivy in standalone mode).
//!
//! # Semantics
//! - **Idempotent writes.** [`SearchIndex::index`] uses the event id as the document id
//!   within the tenant, so re-indexing an event replaces it instead of adding one; counts and
//!   aggregations are unchanged by replays.
//! - **Acknowledgement.** `index` returns `Ok` only once every document of the call was
//!   accepted durably by the index (failed items are retried by the implementation, bounded);
//!   processors commit log offsets only after that. Visibility to search may lag by the
//!   index's refresh interval.
//! - **Tenancy.** Every query is confined to [`EventFilter::tenant_id`].
//! - **Errors.** [`IndexError::Unavailable`] is transient; [`IndexError::Rejected`] means
//!   the index refused a document permanently (it goes to the dead-letter topic);
//!   [`IndexError::Invalid`] is a bad query (e.g. malformed full-text syntax).

pub mod embedded;
pub mod opensearch;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::query::{EventFilter, GroupBy, Page, PageRequest, Stats, StoredEvent};

/// Errors of the search index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Transient: retry later.
    #[error("search index unavailable: {0}")]
    Unavailable(String),
    /// The index refused these documents permanently; `ids` are the event ids.
    #[error("search index rejected {} documents: {reason}", ids.len())]
    Rejected {
        /// Event ids refused.
        ids: Vec<String>,
        /// Why.
        reason: String,
    },
    /// The query is malformed.
    #[error("invalid search request: {0}")]
    Invalid(String),
}

/// The read model for search and aggregations.
#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// Indexes the events, idempotently by `(tenant_id, id)`; `Ok` means all are durable.
    async fn index(&self, events: &[StoredEvent]) -> Result<(), IndexError>;

    /// A page of the tenant's events matching `filter` (including `text`), newest first.
    async fn search(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, IndexError>;

    /// Exact counts over `filter`, grouped by `group_by`, with a histogram of `interval`.
    async fn stats(
        &self,
        filter: &EventFilter,
        group_by: Option<GroupBy>,
        interval: Option<Duration>,
    ) -> Result<Stats, IndexError>;

    /// Removes the tenant's events that occurred before `before`; returns how many.
    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, IndexError>;

    /// Succeeds when the index can serve searches and writes now.
    async fn check_ready(&self) -> Result<(), IndexError>;
}
