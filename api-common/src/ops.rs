//! Pieces of the operational routes every service serves the same way: `/healthz`, the
//! OpenAPI security schemes, and the process-wide Prometheus recorder behind `/metrics`.

use std::sync::OnceLock;

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Adds the `bearer` (JWT or API key) and `api_key` (`X-API-Key`) security schemes.
#[derive(Debug)]
pub struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or alk_ API key").build()),
        );
        components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// `GET /healthz` body: 200 while the process serves requests.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Latency buckets (seconds) of every `*_duration_seconds` histogram.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of every `*_size_events` histogram.
const SIZE_BUCKETS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use and shared by every service
/// of the process (standalone mode runs several). When another recorder was installed first
/// (e.g. by an embedding binary), a detached one is returned.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), DURATION_BUCKETS)
                    .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size_events".into()), SIZE_BUCKETS))
                    .unwrap_or_else(|_| PrometheusBuilder::new())
            };
            builder().install_recorder().unwrap_or_else(|_| builder().build_recorder().handle())
        })
        .clone()
}

/// [`prometheus`], with one service's series described the first time it asks: `describe`
/// runs once per `described` (each service keeps its own `static`).
pub fn prometheus_described(described: &'static OnceLock<()>, describe: impl FnOnce()) -> PrometheusHandle {
    let handle = prometheus();
    described.get_or_init(describe);
    handle
}

/// Serves `app` on `listener` until `shutdown` resolves, and, when given, `metrics` (a
/// listener and its router) beside it until the main server has stopped: requests in flight
/// on the API finish first, and the metrics stay scrapeable while they do.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    metrics: Option<(tokio::net::TcpListener, axum::Router)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_server = metrics.map(|(listener, app)| {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    });
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    let _ = stop.send(true);
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    served
}

/// `GET /metrics` answer: the Prometheus text format of `handle`.
pub fn render_metrics(handle: &PrometheusHandle) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// Header carrying each request's id, taken from the client or drawn (UUID).
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Wraps `router` in the layers every HTTP service shares: a request id (the client's
/// `x-request-id` or a new UUID), a tracing span per request naming method, path and id
/// (the path only: query strings may carry search text or cursors), and the id echoed in the
/// response.
pub fn with_request_ids<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    router.layer(
        tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
                let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
            }))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn request_ids_are_kept_or_drawn_and_echoed() {
        let app = with_request_ids(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })));
        let given = Request::builder().uri("/").header(REQUEST_ID, "abc-123").body(Body::empty()).expect("request");
        let answer = app.clone().oneshot(given).await.expect("answer");
        assert_eq!(answer.headers()[REQUEST_ID], "abc-123", "the client's id is echoed");
        let answer = app.oneshot(Request::builder().uri("/").body(Body::empty()).expect("request")).await.expect("answer");
        let drawn = answer.headers()[REQUEST_ID].to_str().expect("ascii");
        assert_eq!(drawn.len(), 36, "a UUID is drawn: {drawn}");
    }
}
