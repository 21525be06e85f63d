//! The router (routes, tracing with request ids, metrics) and [`run`], which serves it with
//! the live tail and the retention sweeper until the injected shutdown future resolves.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::QueryError;
use crate::ops::{self, ApiDoc};
use crate::routes::{admin, events, export, ledger, stats, stream};
use crate::state::QueryState;

/// The query API over `state`, `/metrics` included, ready for `axum::serve` or `oneshot`.
pub fn router(state: QueryState) -> Router {
    app(state, true)
}

/// The query API without `/metrics` (404 there): the main listener when metrics are served on
/// their own listener ([`metrics_router`]).
pub fn router_without_metrics(state: QueryState) -> Router {
    app(state, false)
}

/// `/metrics` alone (every other path 404), for a listener only the scraper reaches.
pub fn metrics_router(state: QueryState) -> Router {
    Router::new().route("/metrics", get(ops::metrics)).fallback(ops::not_found).with_state(state)
}

fn app(state: QueryState, with_metrics: bool) -> Router {
    let api = Router::new()
        .route("/v1/events", get(events::list))
        .route("/v1/events/export", get(export::export))
        .route("/v1/events/stream", get(stream::stream))
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/events/{id}/proof", get(ledger::proof))
        .route("/v1/ledger/checkpoint", get(ledger::checkpoint))
        .route("/v1/ledger/keys", get(ledger::keys))
        .route("/v1/ledger/consistency", get(ledger::consistency))
        .route("/v1/ledger/tile/{*path}", get(ledger::tile))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/v1/tenants/{id}", get(admin::get_tenant).patch(admin::update_tenant).delete(admin::delete_tenant))
        .route("/v1/tenants/{id}/api-keys", get(admin::list_api_keys).post(admin::create_api_key))
        .route("/v1/tenants/{id}/admin-events", get(admin::list_admin_events))
        .route("/v1/tenants/{id}/api-keys/{key_id}", axum::routing::delete(admin::revoke_api_key))
        .route("/v1/tenants/{id}/signing-keys", get(admin::list_signing_keys).post(admin::create_signing_key))
        .route("/v1/tenants/{id}/signing-keys/{key_id}/revoke", axum::routing::post(admin::revoke_signing_key));
    let mut ops = Router::new().route("/healthz", get(ops::healthz)).route("/readyz", get(ops::readyz));
    if with_metrics {
        ops = ops.route("/metrics", get(ops::metrics));
    }
    let router = Router::new()
        .merge(api)
        .merge(ops)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(crate::metrics::track));
    auditlog_api_common::ops::with_request_ids(router).with_state(state)
}

/// Serves the query API on `listener` until `shutdown` resolves: opens the live tail and runs
/// the retention sweeper every `retention_sweep_secs`; on shutdown stops accepting, ends the
/// live tails (their clients see the stream close) and lets other requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: QueryState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueryError> {
    run_with_metrics_listener(listener, None, state, shutdown).await
}

/// [`run`], with `/metrics` on `metrics` instead of `listener` when given (so the API's
/// listener, the one exposed to clients, does not publish the metrics); the metrics listener
/// closes with the API's.
pub async fn run_with_metrics_listener(
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    state: QueryState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueryError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, topic = %state.config().topic(), "query API listening");
    if let Err(err) = state.live().ensure_started().await {
        tracing::warn!(error = %err, "live tail not open yet; the first subscriber retries");
    }
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let every = Duration::from_secs(state.config().retention_sweep_secs);
    let sweeper = tokio::spawn(crate::retention::sweeper(state.clone(), every, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let metrics = match metrics {
        Some(metrics) => {
            tracing::info!(addr = %metrics.local_addr()?, "query API metrics listening");
            Some((metrics, metrics_router(state.clone())))
        }
        None => None,
    };
    let app = if metrics.is_some() { router_without_metrics(state.clone()) } else { router(state.clone()) };
    let live = state.live().clone();
    let served = auditlog_api_common::ops::serve(listener, app, metrics, async move {
        shutdown.await;
        tracing::info!("query API draining: closing live tails");
        live.stop().await;
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    served.map_err(QueryError::from)
}
