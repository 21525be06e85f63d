//! Operational routes: `/healthz` (the process serves), `/readyz` (the event log and the schema
//! registry answer), `/metrics` (Prometheus), `/openapi.json` and `/docs`, and the 404 fallback.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use auditlog_api_common::ops::Security;
use utoipa::OpenApi;

use crate::problem::GatewayError;
use crate::routes;
use crate::state::GatewayState;

/// Time budget of each readiness check.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The OpenAPI document of the gateway.
#[derive(OpenApi)]
#[openapi(
    info(title = "auditlog ingest gateway", description = "Authenticated, validating, idempotent ingest of audit events"),
    paths(routes::post_event, routes::post_batch, healthz, readyz),
    components(schemas(routes::AcceptedEvent, routes::BatchAnswer, routes::BatchItem)),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// `GET /healthz`: 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    auditlog_api_common::ops::healthz().await
}

/// `GET /readyz`: 200 when the event log can take writes and the schema registry answers.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, description = "a backend is unreachable")))]
pub async fn readyz(State(state): State<GatewayState>) -> Response {
    let log = async {
        match tokio::time::timeout(READY_CHECK_TIMEOUT, state.event_log().check_ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let registry = async {
        // Embedded mode (standalone) has no registry to depend on.
        if !state.codec().uses_registry() {
            return Ok(());
        }
        let url = format!("{}/subjects", state.config().registry_url.trim_end_matches('/'));
        match tokio::time::timeout(READY_CHECK_TIMEOUT, state.http().get(&url).send()).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("status {}", response.status())),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let (log, registry) = tokio::join!(log, registry);
    let describe = |r: &Result<(), String>, name: &str| match r {
        Ok(()) => "ok",
        Err(err) => {
            tracing::warn!(check = name, error = %err, "not ready");
            "unavailable"
        }
    };
    let checks = json!({"event_log": describe(&log, "event_log"), "schema_registry": describe(&registry, "schema_registry")});
    if log.is_ok() && registry.is_ok() {
        (StatusCode::OK, Json(json!({"status": "ready", "checks": checks}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "checks": checks}))).into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<GatewayState>) -> Response {
    crate::metrics::producer_queue_depth(state.event_log().pending());
    auditlog_api_common::ops::render_metrics(state.metrics())
}

/// Any other path: 404 as problem+json.
pub async fn not_found() -> GatewayError {
    GatewayError::NotFound
}

/// A known path with another method: 405 as problem+json.
pub async fn method_not_allowed() -> GatewayError {
    GatewayError::MethodNotAllowed
}
