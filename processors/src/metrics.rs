//! Every series the processors export, with unit and help text. Labels are bounded: sink,
//! topic, partition, outcome, reason. Updated per batch, not per event.

use std::sync::OnceLock;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::SinkKind;
use crate::dlq::Reason;

/// Events handled, by `sink` and `outcome` (`written`, `dead_lettered`, `skipped`).
pub const EVENTS_TOTAL: &str = "auditlog_processor_events_total";
/// Events (and skipped records) per written batch, by `sink`.
pub const BATCH_SIZE_EVENTS: &str = "auditlog_processor_batch_size_events";
/// Time to write one batch to the sink, retries included, by `sink`.
pub const WRITE_DURATION_SECONDS: &str = "auditlog_processor_write_duration_seconds";
/// From the gateway's `received_at` to the sink's acknowledgement, by `sink` (freshness).
pub const FRESHNESS_DURATION_SECONDS: &str = "auditlog_processor_freshness_duration_seconds";
/// Retries, by `sink` and `reason` (`unavailable`, `rejected`, `refused`, `registry`, `dlq`).
pub const RETRIES_TOTAL: &str = "auditlog_processor_retries_total";
/// Records sent to the dead-letter topic, by `sink` and `reason` (`decode`, `rejected`,
/// `conflict`).
pub const DLQ_TOTAL: &str = "auditlog_processor_dead_letters_total";
/// Records whose producer id the event store held already with other content, by `sink`:
/// each is dead-lettered (reason `conflict`) by the live processor; a replay counts none.
pub const CONFLICTS_TOTAL: &str = "auditlog_processor_conflicts_total";
/// Commits that failed (the batch is redelivered; the sinks absorb it), by `sink`.
pub const COMMIT_FAILURES_TOTAL: &str = "auditlog_processor_commit_failures_total";
/// Records between the group's read position and the partition's end, by `sink`, `topic`
/// and `partition`.
pub const CONSUMER_LAG: &str = "auditlog_processor_consumer_lag_records";
/// 1 while the sink is unavailable and the processor waits for it, by `sink`.
pub const SINK_WAITING: &str = "auditlog_processor_sink_waiting";

/// The process-wide Prometheus recorder, with the processors' series described.
pub fn handle() -> PrometheusHandle {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    auditlog_api_common::ops::prometheus_described(&DESCRIBED, || {
        describe();
        register_at_zero();
    })
}

/// Outcomes, as [`EVENTS_TOTAL`] labels them.
const OUTCOMES: [&str; 3] = ["written", "dead_lettered", "skipped"];
/// Retry reasons, as [`RETRIES_TOTAL`] labels them.
const RETRY_REASONS: [&str; 5] = ["unavailable", "rejected", "refused", "registry", "dlq"];

/// Registers the counters alerts and dashboards take `rate()`/`increase()` of, and the
/// sink-waiting gauge, at 0 for every label set known at start (adding 0 changes nothing
/// when they exist already): a series born at its first dead letter has no increase, so
/// the first one would go unseen. The process does not know its own sink here, so it
/// exports these zeros for both sinks; aggregate by `sink`, never count series.
fn register_at_zero() {
    for sink in [SinkKind::Scylla, SinkKind::OpenSearch].map(SinkKind::as_str) {
        for outcome in OUTCOMES {
            counter!(EVENTS_TOTAL, "sink" => sink, "outcome" => outcome).increment(0);
        }
        for reason in [Reason::Decode, Reason::Rejected, Reason::Conflict] {
            counter!(DLQ_TOTAL, "sink" => sink, "reason" => reason.as_str()).increment(0);
        }
        counter!(CONFLICTS_TOTAL, "sink" => sink).increment(0);
        for reason in RETRY_REASONS {
            counter!(RETRIES_TOTAL, "sink" => sink, "reason" => reason).increment(0);
        }
        counter!(COMMIT_FAILURES_TOTAL, "sink" => sink).increment(0);
        gauge!(SINK_WAITING, "sink" => sink).increment(0.0);
    }
}

fn describe() {
    describe_counter!(EVENTS_TOTAL, Unit::Count, "events handled, by sink and outcome");
    describe_histogram!(BATCH_SIZE_EVENTS, Unit::Count, "records per written batch, by sink");
    describe_histogram!(WRITE_DURATION_SECONDS, Unit::Seconds, "time to write one batch, retries included, by sink");
    describe_histogram!(FRESHNESS_DURATION_SECONDS, Unit::Seconds, "from received_at to the sink's acknowledgement, by sink");
    describe_counter!(RETRIES_TOTAL, Unit::Count, "retries, by sink and reason");
    describe_counter!(DLQ_TOTAL, Unit::Count, "records sent to the dead-letter topic, by sink and reason");
    describe_counter!(CONFLICTS_TOTAL, Unit::Count, "records whose id was stored already with other content, by sink");
    describe_counter!(COMMIT_FAILURES_TOTAL, Unit::Count, "failed offset commits, by sink");
    describe_gauge!(CONSUMER_LAG, Unit::Count, "records between the read position and the partition end");
    describe_gauge!(SINK_WAITING, Unit::Count, "1 while the sink is unavailable and the processor waits");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_series_alerts_rate_exist_from_the_start() {
        let rendered = super::handle().render();
        for sink in ["scylla", "opensearch"] {
            for series in [
                format!("auditlog_processor_dead_letters_total{{sink=\"{sink}\",reason=\"decode\"}} "),
                format!("auditlog_processor_dead_letters_total{{sink=\"{sink}\",reason=\"rejected\"}} "),
                format!("auditlog_processor_dead_letters_total{{sink=\"{sink}\",reason=\"conflict\"}} "),
                format!("auditlog_processor_conflicts_total{{sink=\"{sink}\"}} "),
                format!("auditlog_processor_events_total{{sink=\"{sink}\",outcome=\"written\"}} "),
                format!("auditlog_processor_retries_total{{sink=\"{sink}\",reason=\"unavailable\"}} "),
                format!("auditlog_processor_commit_failures_total{{sink=\"{sink}\"}} "),
                format!("auditlog_processor_sink_waiting{{sink=\"{sink}\"}} "),
            ] {
                assert!(rendered.contains(&series), "{series} is missing from\n{rendered}");
            }
        }
    }
}
