//! The one-port router of standalone mode: ingest (`POST /v1/events`, `POST
//! /v1/events/batch`) to the gateway's router, everything else to the query API's, a
//! `/readyz` that asks every component, and one OpenAPI document (`/openapi.json`, `/docs`)
//! describing both APIs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use auditlog_api_common::problem::Problem;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any_service, get, post_service};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use utoipa::OpenApi as _;
use utoipa_swagger_ui::SwaggerUi;

/// Largest `/readyz` answer read from a component.
const READYZ_BODY_LIMIT: usize = 64 * 1024;

/// What `/readyz` asks.
#[derive(Clone)]
pub struct Readiness {
    /// Component name and its router (each serves its own `/readyz`).
    pub components: Vec<(&'static str, Router)>,
    /// Processor name and whether its task still runs.
    pub processors: Vec<(&'static str, Arc<AtomicBool>)>,
}

/// The whole API on one router. A request the gateway does not serve by path and method
/// goes to the query API, so `GET /v1/events` is the list, never a 405 from the gateway.
pub fn router(gateway: Router, query: Router, readiness: Readiness) -> Router {
    let ready = Router::new().route("/readyz", get(readyz)).with_state(readiness);
    Router::new()
        .route("/v1/events", post_service(gateway.clone()).fallback_service(query.clone()))
        .route("/v1/events/batch", any_service(gateway))
        .merge(ready)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .fallback_service(query)
}

/// The query API's document with the gateway's ingest operations merged in (`/v1/events`
/// carries the list and the ingest; shared paths such as `/healthz` keep the query API's).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = auditlog_query_api::ops::ApiDoc::openapi();
    doc.merge(auditlog_ingest_gateway::ops::ApiDoc::openapi());
    doc.info.title = "auditlog (standalone)".into();
    doc.info.description = Some("Ingest, reads, search, stats, exports, live tail and administration on one port".into());
    doc
}

async fn component_ready(router: Router) -> Result<(), Value> {
    let request = Request::get("/readyz").body(Body::empty()).map_err(|e| json!(e.to_string()))?;
    let response = router.oneshot(request).await.map_err(|e| json!(e.to_string()))?;
    if response.status().is_success() {
        return Ok(());
    }
    let bytes = axum::body::to_bytes(response.into_body(), READYZ_BODY_LIMIT).await.unwrap_or_default();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Err(answer.get("errors").cloned().or_else(|| answer.get("detail").cloned()).unwrap_or(answer))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let checks = readiness.components.iter().map(|(name, router)| async move { (*name, component_ready(router.clone()).await) });
    let mut failures: Vec<Value> = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|error| json!({"component": name, "error": error})))
        .collect();
    for (name, running) in &readiness.processors {
        if !running.load(Ordering::Acquire) {
            failures.push(json!({"component": name, "error": "the processor stopped"}));
        }
    }
    if failures.is_empty() {
        let names: Vec<&str> = readiness.components.iter().map(|(n, _)| *n).chain(readiness.processors.iter().map(|(n, _)| *n)).collect();
        return Json(json!({"status": "ready", "components": names})).into_response();
    }
    let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "a component of the standalone server is not ready");
    problem.errors = Some(Value::Array(failures));
    problem.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    fn named(name: &'static str) -> Router {
        Router::new()
            .route("/v1/events", post(move || async move { name }))
            .route("/v1/events/batch", post(move || async move { name }))
            .route("/readyz", get(|| async { "ok" }))
            .fallback(|| async { (StatusCode::NOT_FOUND, "none") })
    }

    async fn call(app: &Router, method: &str, path: &str) -> (StatusCode, String) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn ingest_goes_to_the_gateway_and_everything_else_to_the_query_api() {
        let query = Router::new()
            .route("/v1/events", get(|| async { "query-list" }))
            .route("/v1/stats", get(|| async { "query-stats" }))
            .route("/readyz", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "{\"detail\":\"store down\"}") }));
        let running = Arc::new(AtomicBool::new(true));
        let readiness = Readiness { components: vec![("gateway", named("gw")), ("query_api", query.clone())], processors: vec![("p", Arc::clone(&running))] };
        let app = router(named("gw"), query, readiness);
        assert_eq!(call(&app, "POST", "/v1/events").await, (StatusCode::OK, "gw".into()));
        assert_eq!(call(&app, "POST", "/v1/events/batch").await, (StatusCode::OK, "gw".into()));
        assert_eq!(call(&app, "GET", "/v1/events").await, (StatusCode::OK, "query-list".into()));
        assert_eq!(call(&app, "GET", "/v1/stats").await, (StatusCode::OK, "query-stats".into()));
        let (status, body) = call(&app, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("query_api") && body.contains("store down") && !body.contains("\"gateway\""), "{body}");
        running.store(false, Ordering::Release);
        let (_, body) = call(&app, "GET", "/readyz").await;
        assert!(body.contains("the processor stopped"), "{body}");
    }

    #[test]
    fn the_document_describes_ingest_and_queries() {
        let doc = serde_json::to_value(openapi()).expect("serializes");
        let events = &doc["paths"]["/v1/events"];
        assert!(events["post"].is_object() && events["get"].is_object(), "ingest and list on /v1/events: {events}");
        for path in ["/v1/events/batch", "/v1/stats", "/v1/events/export", "/v1/tenants", "/readyz"] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
    }
}
