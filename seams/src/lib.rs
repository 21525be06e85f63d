//! The seams every auditlog service depends on, and their implementations.
//!
//! - [`EventLog`] ([`event_log`]): the source of truth; Kafka in production.
//! - [`EventStore`] ([`event_store`]): time-range, id, actor and target reads.
//! - [`SearchIndex`] ([`search_index`]): full text, filters and aggregations.
//! - [`resolve`]: picks an implementation from a URI (`kafka://`, `scylla://`, `opensearch://`,
//!   `file://`), and opens the three embedded backends of a standalone data directory.
//!
//! Each seam has a distributed implementation (Kafka, ScyllaDB, OpenSearch) and an embedded
//! one for standalone mode ([`FileEventLog`], [`FjallEventStore`], [`TantivySearchIndex`]).
//!
//! Services hold `Arc<dyn Trait>` and never name a concrete backend. Each module's docs state
//! its semantics: ordering, delivery guarantee, who commits, and what an error means.

pub mod event_log;
pub mod event_store;
pub mod ledger_store;
pub mod query;
pub mod resolve;
pub mod search_index;
pub mod topics;

pub use event_log::{EventLog, LogConsumer, LogError, LogPosition, LogRecord, LogTail, OutgoingRecord, PartitionLag, TopicSelector, TopicSpec, Watermarks};
pub use event_log::embedded::FileEventLog;
pub use event_store::embedded::FjallEventStore;
pub use event_store::{Conflict, EventStore, StoreError};
pub use search_index::embedded::TantivySearchIndex;
pub use query::{ActionFilter, EventFilter, GroupBy, Page, PageRequest, Stats, StoredEvent};
pub use search_index::{IndexError, SearchIndex};
