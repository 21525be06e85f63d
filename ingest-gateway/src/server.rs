//! The router (routes, per-request guards, tracing with request ids) and [`run`], which serves
//! it until the injected shutdown future resolves, then drains and flushes the producer.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::ops::{self, ApiDoc};
use crate::problem::GatewayError;
use crate::routes;
use crate::state::GatewayState;

/// How long shutdown waits for the producer to deliver what it holds; below the default
/// Kubernetes `terminationGracePeriodSeconds` (30 s) together with the request drain.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway's HTTP API over `state`, `/metrics` included, ready for `axum::serve` or
/// `oneshot`.
pub fn router(state: GatewayState) -> Router {
    app(state, true)
}

/// The gateway's HTTP API without `/metrics` (404 there): the main listener when metrics are
/// served on their own listener ([`metrics_router`]).
pub fn router_without_metrics(state: GatewayState) -> Router {
    app(state, false)
}

/// `/metrics` alone (every other path 404), for a listener only the scraper reaches.
pub fn metrics_router(state: GatewayState) -> Router {
    Router::new().route("/metrics", get(ops::metrics)).fallback(ops::not_found).with_state(state)
}

fn app(state: GatewayState, with_metrics: bool) -> Router {
    let ingest = Router::new()
        .route("/v1/events", post(routes::post_event))
        .route("/v1/events/batch", post(routes::post_batch))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    let mut ops = Router::new().route("/healthz", get(ops::healthz)).route("/readyz", get(ops::readyz));
    if with_metrics {
        ops = ops.route("/metrics", get(ops::metrics));
    }
    let router = Router::new()
        .merge(ingest)
        .merge(ops)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(crate::metrics::track));
    auditlog_api_common::ops::with_request_ids(router).with_state(state)
}

/// Per-request guard of the ingest routes: sheds the request when too many are in flight
/// (503, no queueing) and bounds its total time (503 past the request timeout).
async fn guard(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    let Some(_permit) = state.in_flight().try_enter() else {
        return GatewayError::Overloaded.into_response();
    };
    // Reserve what the body may hold: its declared length, capped by the route's limit (a
    // longer body is refused with 413 anyway), or the limit itself when the length is unknown.
    let limits = &state.config().limits;
    let route_limit = if request.uri().path().ends_with("/batch") { limits.batch_body_max_bytes } else { limits.event_body_max_bytes };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let Some(_bytes) = state.in_flight_bytes().try_reserve(declared.map_or(route_limit, |d| d.min(route_limit))) else {
        return GatewayError::Overloaded.into_response();
    };
    match tokio::time::timeout(state.config().limits.request_timeout(), next.run(request)).await {
        Ok(response) => response,
        Err(_) => GatewayError::Timeout.into_response(),
    }
}

/// Serves the gateway on `listener` until `shutdown` resolves; then stops accepting, lets
/// requests in flight finish, and flushes the event log within [`FLUSH_TIMEOUT`].
pub async fn run(
    listener: tokio::net::TcpListener,
    state: GatewayState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    run_with_metrics_listener(listener, None, state, shutdown).await
}

/// [`run`], with `/metrics` on `metrics` instead of `listener` when given (so the API's
/// listener, the one exposed to clients, does not publish the metrics); the metrics listener
/// closes with the API's.
pub async fn run_with_metrics_listener(
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    state: GatewayState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, topic = %state.config().topic(), "ingest gateway listening");
    let metrics = match metrics {
        Some(metrics) => {
            tracing::info!(addr = %metrics.local_addr()?, "ingest gateway metrics listening");
            Some((metrics, metrics_router(state.clone())))
        }
        None => None,
    };
    let app = if metrics.is_some() { router_without_metrics(state.clone()) } else { router(state.clone()) };
    let served = auditlog_api_common::ops::serve(listener, app, metrics, shutdown).await;
    served?;
    tracing::info!("ingest gateway draining: flushing the event log");
    state
        .event_log()
        .flush(FLUSH_TIMEOUT)
        .await
        .map_err(|e| GatewayError::Unavailable(format!("flush on shutdown: {e}")))
}
