//! The processors: turn the at-least-once event log into exactly-once read models.
//!
//! - [`pipeline`]: the consume → decode → batch → write → commit loop, one per sink, with
//!   dead letters and backpressure; [`run`] is its entry point.
//! - [`sink`]: the two sinks, over the [`EventStore`](auditlog_seams::EventStore) and
//!   [`SearchIndex`](auditlog_seams::SearchIndex) seams.
//! - [`batch`]: the batch being written, cut by count, bytes and age.
//! - [`dlq`]: dead letters, with headers saying why and where each came from.
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

pub mod batch;
pub mod config;
pub mod dlq;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod reconcile;
pub mod replay;
pub mod sink;
pub mod write;

pub use config::{BatchLimits, ProcessorConfig, SinkKind};
pub use pipeline::{Stopped, run};
pub use sink::{Sink, SinkError};
