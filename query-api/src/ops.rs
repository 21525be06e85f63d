//! Operational routes: `/healthz` (the process serves), `/readyz` (the event store, search
//! index, event log and tenant registry answer), `/metrics` (Prometheus), `/openapi.json` and
//! `/docs`, and the 404/405 fallbacks.

use std::future::Future;
use std::time::Duration;

use auditlog_api_common::ops::Security;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::OpenApi;

use crate::error::QueryError;
use crate::routes::{admin, events, export, ledger, stats, stream};
use crate::state::QueryState;

/// Time budget of each readiness check.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The OpenAPI document of the query API.
#[derive(OpenApi)]
#[openapi(
    info(title = "auditlog query API", description = "Tenant-scoped reads, search, stats, exports, live tail and administration of audit events"),
    paths(events::list, events::get, stats::stats, export::export, stream::stream,
        ledger::checkpoint, ledger::keys, ledger::proof, ledger::consistency, ledger::tile,
        admin::create_tenant, admin::list_tenants, admin::get_tenant, admin::update_tenant, admin::delete_tenant,
        admin::create_api_key, admin::list_api_keys, admin::revoke_api_key,
        admin::create_signing_key, admin::list_signing_keys, admin::revoke_signing_key, admin::list_admin_events, healthz, readyz),
    components(schemas(events::EventPage, stats::StatsAnswer, stats::GroupCount, stats::Bucket, admin::NewTenant, admin::NewApiKey, admin::TenantList, admin::ApiKeyList,
        admin::NewSigningKeyBody, admin::RevokeSigningKey, admin::SigningKey, admin::SigningKeyList,
        ledger::InclusionProof, ledger::ConsistencyProof, ledger::LedgerKey, ledger::LedgerKeys)),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// `GET /healthz`: 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    auditlog_api_common::ops::healthz().await
}

async fn check<E: std::fmt::Display>(name: &'static str, probe: impl Future<Output = Result<(), E>>) -> (&'static str, bool) {
    let ok = match tokio::time::timeout(READY_CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(check = name, error = %err, "not ready");
            false
        }
        Err(_) => {
            tracing::warn!(check = name, "not ready: timed out");
            false
        }
    };
    (name, ok)
}

/// `GET /readyz`: 200 when every backend answers.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, description = "a backend is unreachable")))]
pub async fn readyz(State(state): State<QueryState>) -> Response {
    let b = state.backends();
    let results = [
        check("event_store", b.store.check_ready()).await,
        check("search_index", b.index.check_ready()).await,
        check("event_log", b.log.check_ready()).await,
        check("tenant_registry", b.tenants.check_ready()).await,
    ];
    let checks: serde_json::Map<String, serde_json::Value> =
        results.iter().map(|(name, ok)| ((*name).to_owned(), json!(if *ok { "ok" } else { "unavailable" }))).collect();
    if results.iter().all(|(_, ok)| *ok) {
        (StatusCode::OK, Json(json!({"status": "ready", "checks": checks}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "checks": checks}))).into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<QueryState>) -> Response {
    auditlog_api_common::ops::render_metrics(state.metrics())
}

/// Any other path: 404 as problem+json.
pub async fn not_found() -> QueryError {
    QueryError::NotFound
}

/// A known path with another method: 405 as problem+json.
pub async fn method_not_allowed() -> QueryError {
    QueryError::MethodNotAllowed
}
