//! `/metrics` on a listener of its own (`--metrics-listen`): served there, 404 on the API's
//! listener; without one, on the API's listener as before.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use tower::ServiceExt as _;

async fn status(router: axum::Router, path: &str) -> StatusCode {
    router.oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("infallible").status()
}

#[tokio::test]
async fn metrics_are_on_the_main_router_unless_split_off() {
    let gw = gateway();
    assert_eq!(status(auditlog_ingest_gateway::router(gw.state.clone()), "/metrics").await, StatusCode::OK, "default: as before");
    assert_eq!(status(auditlog_ingest_gateway::router_without_metrics(gw.state.clone()), "/metrics").await, StatusCode::NOT_FOUND);
    assert_eq!(status(auditlog_ingest_gateway::router_without_metrics(gw.state.clone()), "/healthz").await, StatusCode::OK);
    assert_eq!(status(auditlog_ingest_gateway::metrics_router(gw.state.clone()), "/metrics").await, StatusCode::OK);
    assert_eq!(status(auditlog_ingest_gateway::metrics_router(gw.state.clone()), "/v1/events").await, StatusCode::NOT_FOUND, "only /metrics there");
}

#[tokio::test]
async fn with_a_metrics_listener_metrics_answer_there_and_404_on_the_main_one() {
    let gw = gateway();
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let main_url = format!("http://{}", main.local_addr().expect("addr"));
    let metrics_url = format!("http://{}", metrics.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(auditlog_ingest_gateway::run_with_metrics_listener(main, Some(metrics), gw.state.clone(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let scraped = http.get(format!("{metrics_url}/metrics")).send().await.expect("metrics listener answers");
    assert_eq!(scraped.status(), reqwest::StatusCode::OK);
    assert!(scraped.text().await.expect("body").contains("auditlog_gateway_"), "the gateway's series");
    assert_eq!(http.get(format!("{main_url}/metrics")).send().await.expect("main answers").status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(http.get(format!("{main_url}/healthz")).send().await.expect("main answers").status(), reqwest::StatusCode::OK);
    let _ = stop.send(());
    served.await.expect("joins").expect("serves and stops");
    assert!(http.get(format!("{metrics_url}/metrics")).send().await.is_err(), "the metrics listener closes with the API");
}
