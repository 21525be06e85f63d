//! Every series the query API exports, with unit and help text, and the middleware recording
//! requests. Labels are bounded: route template, status code, backend, format.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::cursor::Backend;

/// Requests answered, by `route` and `status`.
pub const REQUESTS_TOTAL: &str = "auditlog_query_requests_total";
/// Request latency until the response head, in seconds, by `route`.
pub const REQUEST_DURATION_SECONDS: &str = "auditlog_query_request_duration_seconds";
/// One page read from a read model, in seconds, by `backend` (`store`, `search`).
pub const BACKEND_READ_DURATION_SECONDS: &str = "auditlog_query_backend_read_duration_seconds";
/// Rows written by exports, by `format`.
pub const EXPORT_ROWS_TOTAL: &str = "auditlog_query_export_rows_total";
/// Live-tail clients connected.
pub const LIVE_SUBSCRIBERS: &str = "auditlog_query_live_subscribers";
/// Events a live-tail client missed because its buffer was full.
pub const LIVE_SKIPPED_TOTAL: &str = "auditlog_query_live_skipped_total";
/// Rows and documents removed by retention sweeps, by `view` (`store`, `search`).
pub const RETENTION_PURGED_TOTAL: &str = "auditlog_query_retention_purged_total";
/// Admin actions, by `action` and `outcome` (`recorded`, `unrecorded`).
pub const ADMIN_ACTIONS_TOTAL: &str = "auditlog_query_admin_actions_total";

/// The process-wide Prometheus recorder, with the query API's series described.
pub fn handle() -> PrometheusHandle {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    auditlog_api_common::ops::prometheus_described(&DESCRIBED, || {
        describe();
        register_at_zero();
    })
}

/// Registers the counters dashboards take `rate()` of, for every label set known at start,
/// and the live-subscriber gauge, at 0 (adding 0 changes nothing when they exist already).
fn register_at_zero() {
    for format in ["csv", "ndjson", "json"] {
        counter!(EXPORT_ROWS_TOTAL, "format" => format).increment(0);
    }
    counter!(LIVE_SKIPPED_TOTAL).increment(0);
    for view in ["store", "search"] {
        counter!(RETENTION_PURGED_TOTAL, "view" => view).increment(0);
    }
    gauge!(LIVE_SUBSCRIBERS).increment(0.0);
}

fn describe() {
    describe_counter!(REQUESTS_TOTAL, Unit::Count, "requests answered, by route and status");
    describe_histogram!(REQUEST_DURATION_SECONDS, Unit::Seconds, "latency until the response head, by route");
    describe_histogram!(BACKEND_READ_DURATION_SECONDS, Unit::Seconds, "one page read from a read model, by backend");
    describe_counter!(EXPORT_ROWS_TOTAL, Unit::Count, "rows written by exports, by format");
    describe_gauge!(LIVE_SUBSCRIBERS, Unit::Count, "live-tail clients connected");
    describe_counter!(LIVE_SKIPPED_TOTAL, Unit::Count, "events live-tail clients missed because their buffer was full");
    describe_counter!(RETENTION_PURGED_TOTAL, Unit::Count, "rows and documents removed by retention sweeps, by view");
    describe_counter!(ADMIN_ACTIONS_TOTAL, Unit::Count, "admin actions, by action and whether they were recorded");
}

/// Records one backend page read.
pub fn backend_read(backend: Backend, took: Duration) {
    let label = match backend {
        Backend::Store => "store",
        Backend::Search => "search",
    };
    histogram!(BACKEND_READ_DURATION_SECONDS, "backend" => label).record(took.as_secs_f64());
}

/// Counts rows of one exported page.
pub fn export_rows(format: &'static str, rows: usize) {
    counter!(EXPORT_ROWS_TOTAL, "format" => format).increment(rows as u64);
}

/// Moves the live subscriber gauge by `delta`.
pub fn live_subscribers(delta: f64) {
    gauge!(LIVE_SUBSCRIBERS).increment(delta);
}

/// Counts events a live client missed.
pub fn live_skipped(events: u64) {
    counter!(LIVE_SKIPPED_TOTAL).increment(events);
}

/// Counts what one retention sweep removed.
pub fn retention_purged(rows: u64, docs: u64) {
    counter!(RETENTION_PURGED_TOTAL, "view" => "store").increment(rows);
    counter!(RETENTION_PURGED_TOTAL, "view" => "search").increment(docs);
}

/// Counts one admin action.
pub fn admin_action(action: &'static str, recorded: bool) {
    let outcome = if recorded { "recorded" } else { "unrecorded" };
    counter!(ADMIN_ACTIONS_TOTAL, "action" => action, "outcome" => outcome).increment(1);
}

/// Middleware: request count and latency by route template.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!(REQUESTS_TOTAL, "route" => route.clone(), "status" => status).increment(1);
    histogram!(REQUEST_DURATION_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_series_dashboards_rate_exist_from_the_start() {
        let rendered = super::handle().render();
        for series in [
            "auditlog_query_export_rows_total{format=\"csv\"} ",
            "auditlog_query_live_skipped_total ",
            "auditlog_query_retention_purged_total{view=\"store\"} ",
            "auditlog_query_live_subscribers ",
        ] {
            assert!(rendered.contains(series), "{series} is missing from\n{rendered}");
        }
    }
}
