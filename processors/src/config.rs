//! What a processor reads, how it batches and how patiently it retries.

use std::time::Duration;

use auditlog_seams::TopicSelector;

/// Which read model a processor fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    /// The event store (ScyllaDB; the embedded store in standalone mode).
    Scylla,
    /// The search index (OpenSearch; tantivy in standalone mode).
    OpenSearch,
    /// The verifiable ledger (per-tenant Merkle trees and signed checkpoints).
    Ledger,
}

impl SinkKind {
    /// The name used on the command line, in group names and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scylla => "scylla",
            Self::OpenSearch => "opensearch",
            Self::Ledger => "ledger",
        }
    }

    /// Parses a command-line name (`scylla` or `store`; `opensearch` or `index`; `ledger`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "scylla" | "store" => Some(Self::Scylla),
            "opensearch" | "index" => Some(Self::OpenSearch),
            "ledger" => Some(Self::Ledger),
            _ => None,
        }
    }
}

/// When a batch is cut and written. Larger batches mean fewer, more efficient writes; the
/// age bound caps how long an event waits before it becomes readable (freshness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events per batch: the ScyllaDB store writes them with bounded concurrency, OpenSearch
    /// takes them as one bulk request.
    pub max_events: usize,
    /// Encoded bytes per batch: bounds the processor's memory and OpenSearch's bulk size
    /// (bulk requests work best at a few MiB).
    pub max_bytes: usize,
    /// Age of the oldest event of a batch before it is written, whatever its size: the
    /// freshness a trickle of events sees.
    pub max_age: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_events: 1_000, max_bytes: 4 * 1024 * 1024, max_age: Duration::from_millis(100) }
    }
}

/// Settings of one processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The read model it fills.
    pub sink: SinkKind,
    /// Consumer group; one per sink, so each view keeps its own position.
    pub group: String,
    /// The shared topic; dedicated tenant topics are `<topic>.<tenant>` and the dead-letter
    /// topic is `<topic>.dlq`.
    pub topic: String,
    /// Batch cutting.
    pub batch: BatchLimits,
    /// First wait before retrying a sink or log that is unavailable; doubled up to
    /// `retry_max_backoff`. Retries of an unavailable sink never end: it is waited for.
    pub retry_min_backoff: Duration,
    /// Longest wait between retries.
    pub retry_max_backoff: Duration,
    /// Attempts at writing an event the sink refuses before it goes to the dead-letter topic.
    pub max_rejected_attempts: u32,
    /// Whether positions are committed (off for replays, which read with a throw-away group).
    pub commit: bool,
    /// How long a graceful shutdown may spend finishing the batch in flight (Kubernetes'
    /// `terminationGracePeriodSeconds` must exceed it); past it, the batch is abandoned
    /// uncommitted and redelivered to the next owner.
    pub shutdown_grace: Duration,
}

impl ProcessorConfig {
    /// Defaults for `sink` on the shared topic `audit.events.v1`.
    pub fn new(sink: SinkKind) -> Self {
        Self {
            sink,
            group: format!("auditlog-processor-{}", sink.as_str()),
            topic: "audit.events.v1".into(),
            batch: BatchLimits::default(),
            retry_min_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(5),
            max_rejected_attempts: 3,
            commit: true,
            shutdown_grace: Duration::from_secs(20),
        }
    }

    /// The dead-letter topic.
    pub fn dlq_topic(&self) -> String {
        auditlog_seams::topics::dead_letters(&self.topic)
    }

    /// The shared topic and every dedicated tenant topic, by pattern, so topics created
    /// later are picked up. The pattern also matches the dead-letter topic (tenant id `dlq`
    /// is reserved for it); the pipeline skips that one.
    pub fn topics(&self) -> TopicSelector {
        auditlog_seams::topics::subscription(&self.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_covers_shared_and_dedicated_topics_only() {
        let config = ProcessorConfig::new(SinkKind::Scylla);
        let TopicSelector::Pattern(p) = config.topics() else { panic!("a pattern") };
        let re = regex::Regex::new(&p).expect("valid regex");
        assert!(re.is_match("audit.events.v1"));
        assert!(re.is_match("audit.events.v1.acme"));
        assert!(re.is_match("audit.events.v1.dlq"), "the dlq matches and is skipped by the pipeline");
        assert!(!re.is_match("audit.events.v10"));
        assert!(!re.is_match("auditXevents.v1"));
        assert!(!re.is_match("audit.events.v1.acme.x"));
        assert_eq!(config.dlq_topic(), "audit.events.v1.dlq");
    }

    #[test]
    fn sink_names_round_trip() {
        for kind in [SinkKind::Scylla, SinkKind::OpenSearch] {
            assert_eq!(SinkKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SinkKind::parse("mysql"), None);
    }
}
