//! Router tests (`oneshot`): every bad input gets its documented 4xx as problem+json naming the
//! field, and nothing reaches the (real, lazily connected) Kafka event log.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

/// Sends `body` to `path` as `content_type` with a valid writer token of `acme`.
async fn bad(gw: &TestGateway, path: &str, content_type: Option<&str>, body: String) -> Answer {
    let answer = send(gw, request(path, Some(&writer_token("acme")), content_type, body)).await;
    assert_eq!(gw.log.appends(), 0, "a bad request reached the event log: {:?}", answer.body);
    answer
}

fn with(mut event: Value, field: &str, value: Value) -> Value {
    event[field] = value;
    event
}

async fn assert_invalid(gw: &TestGateway, body: Value, field: &str) {
    let answer = bad(gw, "/v1/events", Some("application/json"), body.to_string()).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {:?}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json");
    assert_eq!(answer.problem(), "validation");
    assert!(answer.fields().iter().any(|f| f == field), "expected field {field} in {:?}", answer.body);
    assert_eq!(answer.body["status"], 422);
    assert!(answer.body["title"].is_string() && answer.body["detail"].is_string());
}

#[tokio::test]
async fn invalid_events_name_the_field() {
    let gw = gateway();
    let ev = event("user.login");
    assert_invalid(&gw, with(ev.clone(), "action", json!(5)), "action").await;
    let mut missing_action = ev.clone();
    missing_action.as_object_mut().expect("object").remove("action");
    assert_invalid(&gw, missing_action, "action").await;
    assert_invalid(&gw, with(ev.clone(), "actor", json!({"type": "user"})), "actor.id").await;
    assert_invalid(&gw, with(ev.clone(), "action", json!("User Login!")), "action").await;
    assert_invalid(&gw, with(ev.clone(), "colour", json!("blue")), "colour").await;
    assert_invalid(&gw, with(ev.clone(), "received_at", json!("2026-01-01T00:00:00Z")), "received_at").await;
    let ahead = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let ahead = ahead.format(&time::format_description::well_known::Rfc3339).expect("formats");
    assert_invalid(&gw, with(ev.clone(), "occurred_at", json!(ahead)), "occurred_at").await;
    assert_invalid(&gw, with(ev.clone(), "metadata", json!({"blob": "x".repeat(20 * 1024)})), "metadata").await;
    assert_invalid(&gw, json!([ev]), "").await;
}

#[tokio::test]
async fn malformed_json_is_400_and_deep_nesting_does_not_panic() {
    let gw = gateway();
    for body in ["{\"action\": ", "not json", &"[".repeat(10_000)] {
        let answer = bad(&gw, "/v1/events", Some("application/json"), body.to_owned()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:.20}: {:?}", answer.body);
        assert_eq!(answer.problem(), "malformed-json");
        assert_eq!(answer.content_type(), "application/problem+json");
    }
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let gw = gateway();
    let body = event("user.login").to_string();
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let answer = bad(&gw, "/v1/events", ct, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(answer.problem(), "unsupported-media-type");
    }
    let answer = bad(&gw, "/v1/events", Some("application/x-ndjson"), body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "single events are JSON only");
    let answer = bad(&gw, "/v1/events/batch", Some("text/csv"), format!("[{body}]")).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let gw = gateway();
    let huge_event = with(event("user.login"), "description", json!("x".repeat(70 * 1024)));
    let answer = bad(&gw, "/v1/events", Some("application/json"), huge_event.to_string()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", answer.body);
    assert_eq!(answer.problem(), "body-too-large");
    let big = with(event("user.login"), "description", json!("y".repeat(8 * 1024)));
    let batch: Vec<Value> = std::iter::repeat_n(big, 600).collect();
    let answer = bad(&gw, "/v1/events/batch", Some("application/json"), json!(batch).to_string()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "a 4.9 MB batch: {:?}", answer.body);
}

#[tokio::test]
async fn event_over_32_kib_serialized_is_422() {
    let gw = gateway();
    let targets: Vec<Value> = (0..16).map(|i| json!({"type": "t".repeat(256), "id": format!("{i}{}", "i".repeat(250)), "name": "n".repeat(256)})).collect();
    let mut ev = with(event("user.login"), "targets", json!(targets));
    ev["description"] = json!("d".repeat(8 * 1024));
    ev["metadata"] = json!({"m": "m".repeat(12 * 1024)});
    let answer = bad(&gw, "/v1/events", Some("application/json"), ev.to_string()).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", answer.body);
    assert!(answer.body["detail"].as_str().unwrap_or_default().contains("bytes"), "{:?}", answer.body);
}

#[tokio::test]
async fn empty_too_large_or_non_array_batches_are_422_naming_batch() {
    let gw = gateway();
    let too_many: Vec<Value> = std::iter::repeat_n(event("a.b"), 1001).collect();
    for body in [json!([]), json!(too_many), json!({"events": []})] {
        let answer = bad(&gw, "/v1/events/batch", Some("application/json"), body.to_string()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", answer.body);
        assert_eq!(answer.fields(), vec!["batch".to_owned()]);
    }
    let answer = bad(&gw, "/v1/events/batch", Some("application/x-ndjson"), "\n\n".into()).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.fields(), vec!["batch".to_owned()]);
}

#[tokio::test]
async fn batch_of_only_bad_events_is_422_with_per_item_errors() {
    let gw = gateway();
    let body = format!("{}\nnot json\n{}\n", json!({"actor": {"id": "u"}}), json!({"action": "BAD", "actor": {"id": "u"}}));
    let answer = bad(&gw, "/v1/events/batch", Some("application/x-ndjson"), body).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", answer.body);
    assert_eq!(answer.body["accepted"], 0);
    assert_eq!(answer.body["rejected"], 3);
    let results = answer.body["results"].as_array().expect("results array");
    assert_eq!(results.len(), 3);
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["status"], "rejected");
        assert!(!item["errors"].as_array().expect("errors array").is_empty());
    }
    assert_eq!(results[0]["errors"][0]["field"], "action");
}

#[tokio::test]
async fn body_tenant_mismatch_is_403_for_events_and_whole_batches() {
    let gw = gateway();
    let mismatched = with(event("user.login"), "tenant_id", json!("globex"));
    let answer = bad(&gw, "/v1/events", Some("application/json"), mismatched.to_string()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.problem(), "tenant-mismatch");
    let batch = json!([event("user.login"), mismatched]);
    let answer = bad(&gw, "/v1/events/batch", Some("application/json"), batch.to_string()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "one foreign event refuses the batch: {:?}", answer.body);
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let gw = gateway();
    let answer = send(&gw, request("/v1/nope", None, None, "")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.problem(), "not-found");
    let get = axum::http::Request::get("/v1/events").body(axum::body::Body::empty()).expect("request builds");
    let answer = send(&gw, get).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.problem(), "method-not-allowed");
}

#[tokio::test]
async fn ops_routes_answer() {
    let gw = gateway();
    let get = |path: &str| axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request builds");
    let health = send(&gw, get("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let openapi = send(&gw, get("/openapi.json")).await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["paths"]["/v1/events/batch"]["post"].is_object(), "{:?}", openapi.body["paths"]);
    let docs = send(&gw, get("/docs/")).await;
    assert_eq!(docs.status, StatusCode::OK);
    let _ = send(&gw, request("/v1/events", None, None, "")).await;
    let metrics = send(&gw, get("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().expect("metrics are text");
    assert!(text.contains("auditlog_gateway_requests_total"), "{text}");
    assert!(text.contains("auditlog_gateway_producer_queue_depth"), "{text}");
}
