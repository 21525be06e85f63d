//! Every series the gateway exports, with unit and help text, and the middleware recording
//! requests. Labels are bounded: route template, status code, rejection reason.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;

/// Requests answered, by `route` and `status`.
pub const REQUESTS_TOTAL: &str = "auditlog_gateway_requests_total";
/// Request latency in seconds, by `route`.
pub const REQUEST_DURATION_SECONDS: &str = "auditlog_gateway_request_duration_seconds";
/// Requests being processed.
pub const IN_FLIGHT_REQUESTS: &str = "auditlog_gateway_in_flight_requests";
/// Events acknowledged by the event log.
pub const EVENTS_ACCEPTED_TOTAL: &str = "auditlog_gateway_events_accepted_total";
/// Events refused, by `reason` (`validation`, `tenant_mismatch`, `rate_limited`, `unavailable`).
pub const EVENTS_REJECTED_TOTAL: &str = "auditlog_gateway_events_rejected_total";
/// Events answered from the idempotency cache without a second append.
pub const EVENTS_DEDUPLICATED_TOTAL: &str = "auditlog_gateway_events_deduplicated_total";
/// Events per batch request.
pub const BATCH_SIZE_EVENTS: &str = "auditlog_gateway_batch_size_events";
/// Records appended to the event log and not yet acknowledged (the producer's queue), sampled
/// when `/metrics` is scraped.
pub const PRODUCER_QUEUE_DEPTH: &str = "auditlog_gateway_producer_queue_depth";
/// Failed appends to the event log, by `kind` (`unavailable`, `rejected`, `timeout`, `encode`).
pub const APPEND_FAILURES_TOTAL: &str = "auditlog_gateway_append_failures_total";

/// The process-wide Prometheus recorder (shared with the other services of the process, see
/// [`auditlog_api_common::ops::prometheus`]), with the gateway's series described.
pub fn handle() -> PrometheusHandle {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    auditlog_api_common::ops::prometheus_described(&DESCRIBED, || {
        describe();
        register_at_zero();
    })
}

/// Rejection reasons, as [`EVENTS_REJECTED_TOTAL`] labels them.
const REJECTION_REASONS: [&str; 4] = ["validation", "tenant_mismatch", "rate_limited", "unavailable"];
/// Append failure kinds, as [`APPEND_FAILURES_TOTAL`] labels them.
const APPEND_FAILURE_KINDS: [&str; 4] = ["unavailable", "rejected", "timeout", "encode"];

/// Registers the counters alerts and dashboards take `rate()`/`increase()` of, for every
/// label set known at start, and the in-flight gauge, at 0 (adding 0 changes nothing when
/// they exist already): a series born at its first event has no increase, so the first
/// refusal would go unseen.
fn register_at_zero() {
    counter!(EVENTS_ACCEPTED_TOTAL).increment(0);
    counter!(EVENTS_DEDUPLICATED_TOTAL).increment(0);
    for reason in REJECTION_REASONS {
        counter!(EVENTS_REJECTED_TOTAL, "reason" => reason).increment(0);
    }
    for kind in APPEND_FAILURE_KINDS {
        counter!(APPEND_FAILURES_TOTAL, "kind" => kind).increment(0);
    }
    gauge!(IN_FLIGHT_REQUESTS).increment(0.0);
}

fn describe() {
    describe_counter!(REQUESTS_TOTAL, Unit::Count, "requests answered, by route and status");
    describe_histogram!(REQUEST_DURATION_SECONDS, Unit::Seconds, "request latency, by route");
    describe_gauge!(IN_FLIGHT_REQUESTS, Unit::Count, "requests being processed");
    describe_gauge!(PRODUCER_QUEUE_DEPTH, Unit::Count, "records appended to the event log and not yet acknowledged");
    describe_counter!(EVENTS_ACCEPTED_TOTAL, Unit::Count, "events acknowledged by the event log");
    describe_counter!(EVENTS_REJECTED_TOTAL, Unit::Count, "events refused, by reason");
    describe_counter!(EVENTS_DEDUPLICATED_TOTAL, Unit::Count, "events answered from the idempotency cache");
    describe_histogram!(BATCH_SIZE_EVENTS, Unit::Count, "events per batch request");
    describe_counter!(APPEND_FAILURES_TOTAL, Unit::Count, "failed appends to the event log, by kind");
}

/// Counts events refused for `reason`, once per request.
pub fn events_rejected(reason: &'static str, count: usize) {
    if count > 0 {
        counter!(EVENTS_REJECTED_TOTAL, "reason" => reason).increment(count as u64);
    }
}

/// Counts acknowledged and deduplicated events, once per request.
pub fn events_accepted(appended: usize, deduplicated: usize) {
    counter!(EVENTS_ACCEPTED_TOTAL).increment(appended as u64);
    if deduplicated > 0 {
        counter!(EVENTS_DEDUPLICATED_TOTAL).increment(deduplicated as u64);
    }
}

/// Records a batch's size.
pub fn batch_size(events: usize) {
    histogram!(BATCH_SIZE_EVENTS).record(events as f64);
}

/// Counts one failed request to the event log.
pub fn append_failure(kind: &'static str) {
    counter!(APPEND_FAILURES_TOTAL, "kind" => kind).increment(1);
}

/// Middleware: request count, latency and in-flight gauge by route template.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    gauge!(IN_FLIGHT_REQUESTS).increment(1.0);
    let response = next.run(request).await;
    gauge!(IN_FLIGHT_REQUESTS).decrement(1.0);
    let status = response.status().as_u16().to_string();
    counter!(REQUESTS_TOTAL, "route" => route.clone(), "status" => status).increment(1);
    histogram!(REQUEST_DURATION_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// Samples the producer's queue depth (called when `/metrics` is scraped).
pub fn producer_queue_depth(records: usize) {
    gauge!(PRODUCER_QUEUE_DEPTH).set(records as f64);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_series_alerts_rate_exist_from_the_start() {
        let rendered = super::handle().render();
        for series in [
            "auditlog_gateway_events_accepted_total ",
            "auditlog_gateway_events_deduplicated_total ",
            "auditlog_gateway_events_rejected_total{reason=\"unavailable\"} ",
            "auditlog_gateway_events_rejected_total{reason=\"validation\"} ",
            "auditlog_gateway_append_failures_total{kind=\"timeout\"} ",
            "auditlog_gateway_in_flight_requests ",
        ] {
            assert!(rendered.contains(series), "{series} is missing from\n{rendered}");
        }
    }
}
