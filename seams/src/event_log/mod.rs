//! The event log seam: the source of truth every other component reads.
//!
//! # Semantics
//! - **Ordering.** Records are ordered per partition. A record's key is its tenant id and
//!   every record with the same key lands in the same partition of a topic, so each tenant's
//!   events are totally ordered. Concurrent appends issued in order by one caller keep that
//!   order (Kafka: idempotent producer, at most 5 requests in flight).
//! - **Durability.** [`EventLog::append`] resolves only once the record is durable (Kafka:
//!   acknowledged by all in-sync replicas, `acks=all`). An `Err` means the record may or may
//!   not have been written: callers retry with the same event id, and the read models'
//!   upserts by `(tenant_id, id)` absorb the repeat.
//! - **Delivery.** Consumers get every record at least once. Records are redelivered after a
//!   crash or rebalance from the last committed position.
//! - **Commits.** Only the consumer's owner commits, explicitly, with
//!   [`LogConsumer::commit`], and only after the sink acknowledged everything up to that
//!   position. Nothing commits automatically.
//! - **Errors.** [`LogError::Unavailable`] is transient (broker unreachable, timeout): retry
//!   later, never treat it as a poison message. [`LogError::Rejected`] is permanent for that
//!   record (too large, unknown topic).
//! - **Tail.** [`EventLog::tail`] starts at the end of the log at the moment it returns, reads
//!   without a consumer group and never commits.

pub mod embedded;
pub mod kafka;

use std::time::Duration;

use async_trait::async_trait;

/// Where a record sits in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogPosition {
    /// Topic name.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// The offsets bounding one partition: records `low..high` are readable, `high` is the offset
/// the next appended record gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermarks {
    /// Topic name.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset of the oldest readable record.
    pub low: i64,
    /// Offset one past the newest record.
    pub high: i64,
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// Destination topic.
    pub topic: String,
    /// Partitioning key: the tenant id.
    pub key: String,
    /// Encoded event (Confluent wire format).
    pub payload: Vec<u8>,
    /// Headers for downstream consumers (event id, tenant, ...).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutgoingRecord {
    /// The record of one audit event, as every producer of auditlog writes it: key = tenant
    /// id; headers `event_id`, `tenant_id` and `action`, so downstream consumers can route or
    /// filter without decoding the Avro value.
    pub fn for_event(topic: &str, event: &auditlog_schemas::AuditEvent, payload: Vec<u8>) -> Self {
        Self {
            topic: topic.to_owned(),
            key: event.tenant_id.clone(),
            payload,
            headers: vec![
                ("event_id".into(), event.id.clone().into_bytes()),
                ("tenant_id".into(), event.tenant_id.clone().into_bytes()),
                ("action".into(), event.action.clone().into_bytes()),
            ],
        }
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Where it was read from.
    pub position: LogPosition,
    /// Partitioning key, if the record had one.
    pub key: Option<Vec<u8>>,
    /// The payload bytes, exactly as appended.
    pub payload: Vec<u8>,
    /// Headers, in append order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Append time in milliseconds since the Unix epoch, when the log keeps one.
    pub timestamp_ms: Option<i64>,
}

impl LogRecord {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

/// Which topics a consumer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSelector {
    /// These topics exactly.
    Topics(Vec<String>),
    /// Every topic whose name matches this regular expression (Kafka: a `^` pattern
    /// subscription that also picks up topics created later).
    Pattern(String),
}

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Transient: the log cannot be reached or did not answer in time. Retry later.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// Permanent for this request: the log refused it.
    #[error("event log rejected the request: {0}")]
    Rejected(String),
    /// Invalid configuration.
    #[error("event log misconfigured: {0}")]
    Config(String),
}

/// A topic as a deployment creates it (`auditlog init`, dedicated tenant topics): partitions,
/// replication and topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replicas of each partition; -1 takes the broker's `default.replication.factor`.
    pub replication_factor: i32,
    /// Topic configs set at creation, e.g. `retention.ms`, `cleanup.policy`,
    /// `min.insync.replicas`.
    pub configs: Vec<(String, String)>,
}

/// An append-only, partitioned, durable log of records.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one record and resolves once it is durable, with its position. Many appends
    /// may be in flight at once; never await them one by one on a hot path.
    async fn append(&self, record: OutgoingRecord) -> Result<LogPosition, LogError>;

    /// Opens a consumer in consumer group `group`, starting from the group's committed
    /// positions, or from the earliest record for partitions it never committed.
    async fn consume(&self, group: &str, topics: TopicSelector) -> Result<Box<dyn LogConsumer>, LogError>;

    /// Opens a reader positioned at the current end of every partition of `topics`.
    async fn tail(&self, topics: &[String]) -> Result<Box<dyn LogTail>, LogError>;

    /// Opens a reader of the one partition of `from`, delivering its records in order from
    /// offset `from.offset` on (from the oldest one kept, when that offset is gone): resuming
    /// a live tail where a client left it.
    async fn tail_from(&self, from: &LogPosition) -> Result<Box<dyn LogTail>, LogError>;

    /// Succeeds when the log can take writes now (readiness probes).
    async fn check_ready(&self) -> Result<(), LogError>;

    /// Waits until every record appended so far is acknowledged, or `timeout` passes
    /// (graceful shutdown).
    async fn flush(&self, timeout: Duration) -> Result<(), LogError>;

    /// Creates topic `name` with `partitions` partitions unless it exists (a tenant pinned
    /// to a dedicated topic needs it before its first event). Replication is the log's
    /// default.
    async fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(), LogError>;

    /// Creates the topic of `spec` unless it exists, with its replication and topic configs
    /// where the log has such settings (Kafka: a dedicated tenant topic then keeps its events
    /// as the shared one does, never by the broker's default retention); other logs take the
    /// partitions only.
    async fn ensure_topic_as(&self, spec: &TopicSpec) -> Result<(), LogError> {
        self.ensure_topic(&spec.name, spec.partitions).await
    }

    /// The watermarks of every partition of every topic `topics` selects now (replay
    /// progress, reconciliation, consumer lag).
    async fn watermarks(&self, topics: &TopicSelector) -> Result<Vec<Watermarks>, LogError>;

    /// Records appended but not yet acknowledged (a gauge of the producer's queue); 0 for
    /// logs that acknowledge synchronously.
    fn pending(&self) -> usize {
        0
    }
}

/// A consumer-group member: reads records at least once and commits explicitly.
#[async_trait]
pub trait LogConsumer: Send {
    /// The next record; waits for one.
    async fn next(&mut self) -> Result<LogRecord, LogError>;

    /// Marks every record up to and including each given position (in its partition) as
    /// processed for this consumer's group. Call it only after the sink acknowledged them.
    ///
    /// Positions in partitions this member no longer owns (taken away by a rebalance while
    /// the batch was being written) are left out: their new owner resumes from the group's
    /// last commit and the idempotent sinks absorb the overlap, whereas committing them here
    /// could move the group's position backwards over the new owner's commits.
    async fn commit(&mut self, positions: &[LogPosition]) -> Result<(), LogError>;

    /// The group's read position and the partition's end, for each partition this member
    /// owns: the consumer lag is `high - position`. Returns promptly, since the caller is the
    /// consuming loop: a log that must ask a remote broker answers with its previous sample
    /// (empty at first) and refreshes in the background.
    async fn lag(&mut self) -> Result<Vec<PartitionLag>, LogError>;
}

/// How far one owned partition's reader is behind its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic name.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset of the next record this member will read.
    pub position: i64,
    /// Offset one past the partition's newest record.
    pub high: i64,
}

/// A reader that follows the end of the log and never commits.
#[async_trait]
pub trait LogTail: Send {
    /// The next record appended after the tail was opened; waits for one.
    async fn next(&mut self) -> Result<LogRecord, LogError>;
}
