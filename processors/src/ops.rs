//! The processor's operations endpoints: `/healthz` (the process runs), `/readyz` (the event
//! log and the sink answer now) and `/metrics` (Prometheus).

use std::sync::Arc;

use auditlog_api_common::ops::{healthz, render_metrics};
use auditlog_api_common::problem::Problem;
use auditlog_seams::EventLog;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::sink::Sink;

#[derive(Clone)]
struct Ops {
    log: Arc<dyn EventLog>,
    sinks: Vec<Arc<dyn Sink>>,
    metrics: PrometheusHandle,
}

/// The operations router over the processor's log and sinks.
pub fn router(log: Arc<dyn EventLog>, sinks: Vec<Arc<dyn Sink>>) -> Router {
    let ops = Ops { log, sinks, metrics: crate::metrics::handle() };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let mut failures = Vec::new();
    if let Err(err) = ops.log.check_ready().await {
        failures.push(json!({"component": "event_log", "error": err.to_string()}));
    }
    for sink in &ops.sinks {
        if let Err(err) = sink.check_ready().await {
            failures.push(json!({"component": sink.name(), "error": err.to_string()}));
        }
    }
    if failures.is_empty() {
        return Json(json!({"status": "ready"})).into_response();
    }
    let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "a backend the processor needs is unavailable");
    problem.errors = Some(serde_json::Value::Array(failures));
    problem.into_response()
}

async fn metrics(State(ops): State<Ops>) -> Response {
    render_metrics(&ops.metrics)
}
