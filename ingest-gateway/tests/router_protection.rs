//! Router tests of load protection: requests past the in-flight cap are shed with 503 at once,
//! and a request past its time budget gets 503, both as problem+json with `Retry-After`.

mod common;

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use common::*;

/// A request whose body never arrives: it holds its in-flight slot until its timeout.
fn stalled_request() -> axum::http::Request<Body> {
    let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    request("/v1/events", Some(&writer_token("acme")), Some("application/json"), Body::from_stream(never))
}

#[tokio::test]
async fn past_the_in_flight_cap_requests_are_shed_and_slow_ones_time_out() {
    let mut config = test_config();
    config.limits.max_in_flight_requests = 1;
    config.limits.request_timeout_ms = 1_500;
    config.limits.append_timeout_ms = 1_000;
    let gw = gateway_on(&format!("kafka://{}", kafka_bootstrap()), config);
    let app = auditlog_ingest_gateway::router(gw.state.clone());
    let stalled = tokio::spawn({
        let app = app.clone();
        async move { tower::ServiceExt::oneshot(app, stalled_request()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let shed = send(&gw, post_json("/v1/events", &writer_token("acme"), &event("a.b"))).await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", shed.body);
    assert_eq!(shed.problem(), "overloaded");
    assert!(shed.headers.contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_millis(500), "shed at once, not queued");

    let timed_out = stalled.await.expect("task joins").expect("router is infallible");
    assert_eq!(timed_out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(timed_out.headers()["content-type"], "application/problem+json");

    let health = send(&gw, axum::http::Request::get("/healthz").body(Body::empty()).expect("request builds")).await;
    assert_eq!(health.status, StatusCode::OK, "ops routes are not behind the ingest cap");
    assert_eq!(gw.log.appends(), 0);
}
