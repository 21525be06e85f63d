//! The processors: turn the at-least-once event log into exactly-once read models.
//!
//! - [`pipeline`]: the consume → decode → batch → write → commit loop, one per sink, with
//!   dead letters and backpressure; [`run`] is its entry point.
//! - [`sink`]: the two sinks, over the [`EventStore`](auditlog_seams::EventStore) and
//!   [`SearchIndex`](auditlog_seams::SearchIndex) seams.
//! - [`batch`]: the batch being written, cut by count, bytes and age.
//! - [`dlq`]: dead letters, with headers saying why and where each came from; [`redrive`]
//!   sends them back to their origin topic once the cause is fixed.
//! - [`replay`] and [`reconcile`]: rebuild a view from the log; compare the log with the views.
//! - [`ops`] and [`metrics`]: health, readiness and Prometheus metrics.
//!
//! # Exactly-once effect
//! Offsets are committed only from the acknowledgement path: after the sink confirmed every
//! event of a batch (or the event went to the dead-letter topic, itself acknowledged), the
//! batch's positions are committed. A crash anywhere before the commit redelivers the batch,
//! and the sinks' writes are idempotent by `(tenant_id, id)` (first write wins), so each view
//! holds every event once. A sink that is down is waited for, never skipped: nothing is
//! committed past what it acknowledged.
//!
//! # Waiting versus dead-lettering
//! Only what an event itself causes sends it to the dead-letter topic: a record that cannot
//! be decoded, or a document the sink refuses for its content (an OpenSearch item 400, a
//! mapping or parsing error) after bounded attempts. Whatever is the sink's state is waited
//! out, however long: unreachable nodes, 5xx, 429, 401/403 (credentials, permissions) and
//! OpenSearch cluster blocks (a write block, the disk flood-stage read-only block). A bulk
//! the cluster refuses as too large (413) is split in halves until it fits; an event too
//! large on its own is dead-lettered with a reason saying so. Once the cause of dead letters
//! is fixed, [`redrive`] (`auditlog dlq redrive`) sends them back to their origin topic,
//! where every sink reads them again without duplicating anything.

pub mod audit;
pub mod batch;
pub mod config;
pub mod dlq;
pub mod ledger;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod reconcile;
pub mod redrive;
pub mod replay;
pub mod sink;
pub mod write;

pub use config::{BatchLimits, ProcessorConfig, SinkKind};
pub use pipeline::{Stopped, run};
pub use sink::{Sink, SinkError};
