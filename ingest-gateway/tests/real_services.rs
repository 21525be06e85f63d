//! Black-box tests against the real local stack (Kafka + schema registry): what the gateway
//! acknowledges is on the topic, keyed by tenant, and decodes with the registered schema; and
//! the gateway answers 503, never 2xx, when the broker is unreachable.
#![cfg(feature = "real-services")]

mod common;
mod kafka;

use std::time::{Duration, Instant};

use auditlog_ingest_gateway::auth::Role;
use auditlog_ingest_gateway::tenants::TenantSettings;
use auditlog_schemas::{IngestContext, WireCodec, validate_event};
use axum::http::StatusCode;
use common::*;
use kafka::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn received_at(answer: &Answer) -> OffsetDateTime {
    OffsetDateTime::parse(answer.body["received_at"].as_str().expect("received_at is a string"), &Rfc3339).expect("rfc 3339")
}

#[tokio::test]
async fn accepted_events_are_on_the_topic_keyed_by_tenant_and_decode_to_the_validated_event() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    let with_id = json!({
        "id": "evt-0001", "occurred_at": "2026-01-31T12:00:00.123456Z", "action": "document.delete",
        "actor": {"id": "u-7", "type": "user", "email": "a@example.com"}, "targets": [{"type": "document", "id": "d-1"}],
        "severity": "warning", "context": {"ip": "10.0.0.1"}, "metadata": {"reason": {"code": 7}}, "tenant_id": "acme",
    });
    let without_id = event("user.login");
    let mut expected = Vec::new();
    for input in [with_id, without_id] {
        let answer = send(&gw, post_json("/v1/events", &writer_token("acme"), &input)).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
        let ctx = IngestContext { tenant_id: "acme", received_at: received_at(&answer) };
        let mut event = validate_event(input, &ctx).expect("input is valid");
        event.id = answer.body["id"].as_str().expect("id").to_owned();
        expected.push(event);
    }
    assert_eq!(expected[0].id, "evt-0001");
    assert!(uuid::Uuid::parse_str(&expected[1].id).is_ok_and(|u| u.get_version_num() == 7), "generated ids are UUIDv7");

    let records = read_records(&gw.topic, 2).await;
    let codec = WireCodec::new(&registry_url(), Duration::from_secs(5)).expect("registry url is valid");
    for (record, expected) in records.iter().zip(&expected) {
        assert_eq!(record.key.as_deref(), Some(b"acme".as_slice()), "keyed by tenant");
        assert_eq!(record.header("event_id"), Some(expected.id.as_bytes()));
        assert_eq!(record.header("tenant_id"), Some(b"acme".as_slice()));
        assert_eq!(record.header("action"), Some(expected.action.as_bytes()));
        let decoded = codec.decode(&record.payload).await.expect("decodes with the registered schema");
        assert_eq!(&decoded, expected);
    }
    assert_eq!(records[0].position.partition, records[1].position.partition, "one tenant, one partition");
    assert_eq!(count_records(&gw.topic).await, 2);
}

#[tokio::test]
async fn a_batch_mixing_good_and_bad_events_accepts_the_good_ones_and_names_the_bad_ones() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    let batch = json!([
        {"id": "b-1", "action": "user.login", "actor": {"id": "u"}},
        {"action": "Bad Action", "actor": {}},
        event("user.logout"),
    ]);
    let answer = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &batch)).await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS, "{:?}", answer.body);
    assert_eq!((answer.body["accepted"].as_u64(), answer.body["rejected"].as_u64()), (Some(2), Some(1)));
    let results = answer.body["results"].as_array().expect("results");
    assert_eq!(results[0], json!({"index": 0, "status": "accepted", "id": "b-1"}));
    assert_eq!(results[1]["status"], "rejected");
    let fields: Vec<&str> = results[1]["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert!(fields.contains(&"action") && fields.contains(&"actor.id"), "{fields:?}");
    assert_eq!(results[2]["status"], "accepted");

    let ndjson = format!("{}\n{}\n", json!({"id": "n-1", "action": "a.b", "actor": {"id": "u"}}), json!({"id": "n-2", "action": "a.c", "actor": {"id": "u"}}));
    let answer = send(&gw, request("/v1/events/batch", Some(&writer_token("acme")), Some("application/x-ndjson"), ndjson)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);

    let ids: Vec<String> = read_records(&gw.topic, 4).await.iter().map(|r| String::from_utf8_lossy(r.header("event_id").unwrap_or_default()).into_owned()).collect();
    let accepted_id = results[2]["id"].as_str().expect("id").to_owned();
    assert_eq!(ids, vec!["b-1".to_owned(), accepted_id, "n-1".into(), "n-2".into()]);
    assert_eq!(count_records(&gw.topic).await, 4, "the bad event was not written");
}

#[tokio::test]
async fn two_tenants_cannot_write_as_each_other() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    gw.tenants.upsert_tenant(TenantSettings::new("globex"));
    let globex_key = gw.tenants.create_api_key("globex", "ci", vec![Role::Writer]).expect("tenant exists");
    let as_globex = json!({"action": "a.b", "actor": {"id": "u"}, "tenant_id": "globex"});
    let as_acme = json!({"action": "a.b", "actor": {"id": "u"}, "tenant_id": "acme"});
    assert_eq!(send(&gw, post_json("/v1/events", &writer_token("acme"), &as_globex)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&gw, post_json("/v1/events", &globex_key.key, &as_acme)).await.status, StatusCode::FORBIDDEN);
    let batch = json!([event("a.b"), as_acme]);
    assert_eq!(send(&gw, post_json("/v1/events/batch", &globex_key.key, &batch)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&gw, post_json("/v1/events", &writer_token("acme"), &as_acme)).await.status, StatusCode::ACCEPTED);
    assert_eq!(send(&gw, post_json("/v1/events", &globex_key.key, &event("a.b"))).await.status, StatusCode::ACCEPTED);

    let records = read_records(&gw.topic, 2).await;
    let codec = WireCodec::new(&registry_url(), Duration::from_secs(5)).expect("registry url is valid");
    let mut tenants = Vec::new();
    for record in &records {
        let decoded = codec.decode(&record.payload).await.expect("decodes");
        assert_eq!(record.key.as_deref(), Some(decoded.tenant_id.as_bytes()), "key is the event's own tenant");
        tenants.push(decoded.tenant_id);
    }
    tenants.sort();
    assert_eq!(tenants, vec!["acme".to_owned(), "globex".to_owned()]);
    assert_eq!(count_records(&gw.topic).await, 2, "refused requests wrote nothing");
}

#[tokio::test]
async fn a_repeated_id_yields_one_record_and_the_same_answer() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    let input = json!({"id": "dup-1", "action": "user.login", "actor": {"id": "u"}});
    let first = send(&gw, post_json("/v1/events", &writer_token("acme"), &input)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    for _ in 0..2 {
        let retry = send(&gw, post_json("/v1/events", &writer_token("acme"), &input)).await;
        assert_eq!(retry.status, StatusCode::ACCEPTED);
        assert_eq!(retry.body, first.body, "same answer, received_at included");
    }
    let batch = json!([input, {"id": "dup-2", "action": "a.b", "actor": {"id": "u"}}, {"id": "dup-2", "action": "a.b", "actor": {"id": "u"}}]);
    let answer = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &batch)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    assert_eq!(answer.body["accepted"], 3);
    let other_tenant = send(&gw, post_json("/v1/events", &writer_token("globex"), &input)).await;
    assert_eq!(other_tenant.status, StatusCode::ACCEPTED, "ids are per tenant");
    assert_eq!(gw.log.appends(), 3, "dup-1 for acme, dup-2 for acme, dup-1 for globex");
    read_records(&gw.topic, 3).await;
    assert_eq!(count_records(&gw.topic).await, 3);
    assert_eq!(gw.state.idempotency().len(), 3, "the cache holds the producer ids");
    let anonymous = json!([{"action": "a.b", "actor": {"id": "u"}}, {"action": "a.b", "actor": {"id": "u"}}]);
    let answer = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &anonymous)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    assert_eq!(gw.log.appends(), 5, "events without an id are always new");
    assert_eq!(gw.state.idempotency().len(), 3, "and generated ids are not remembered");
}

#[tokio::test]
async fn a_known_id_with_other_content_is_a_409_naming_the_id_and_writes_nothing() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    gw.tenants.upsert_tenant(TenantSettings::new("acme"));
    let original = json!({"id": "conflict-1", "action": "user.login", "actor": {"id": "u"}, "metadata": {"a": 1, "b": [1, 2]}});
    let first = send(&gw, post_json("/v1/events", &writer_token("acme"), &original)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:?}", first.body);

    // The same content with its keys in another order is a retry, not a conflict.
    let reordered = json!({"metadata": {"b": [1, 2], "a": 1}, "actor": {"id": "u"}, "action": "user.login", "id": "conflict-1"});
    let retry = send(&gw, post_json("/v1/events", &writer_token("acme"), &reordered)).await;
    assert_eq!((retry.status, &retry.body), (StatusCode::ACCEPTED, &first.body));

    let changed = json!({"id": "conflict-1", "action": "user.logout", "actor": {"id": "u"}, "metadata": {"a": 1, "b": [1, 2]}});
    let conflict = send(&gw, post_json("/v1/events", &writer_token("acme"), &changed)).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{:?}", conflict.body);
    assert_eq!(conflict.problem(), "conflict");
    assert!(conflict.body["type"].as_str().is_some_and(|t| t.ends_with("/conflict")), "{:?}", conflict.body);
    assert_eq!(conflict.fields(), ["id"]);
    assert!(conflict.body["detail"].as_str().is_some_and(|d| d.contains("conflict-1")), "{:?}", conflict.body);

    // In a batch: the conflicting item is refused by name, the rest goes through; two items
    // of one batch with one id and different content conflict too.
    let batch = json!([changed, {"id": "conflict-2", "action": "a.b", "actor": {"id": "u"}}, {"id": "conflict-2", "action": "a.c", "actor": {"id": "u"}}]);
    let answer = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &batch)).await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS, "{:?}", answer.body);
    assert_eq!((answer.body["accepted"].as_u64(), answer.body["rejected"].as_u64()), (Some(1), Some(2)));
    for index in [0, 2] {
        assert_eq!(answer.body["results"][index]["status"], "rejected");
        assert_eq!(answer.body["results"][index]["errors"][0]["field"], "id");
    }
    assert_eq!(gw.log.appends(), 2, "conflict-1 once and conflict-2 once; no conflicting copy was written");
    assert_eq!(count_records(&gw.topic).await, 2);
}

#[tokio::test]
async fn a_batch_the_log_takes_in_part_is_a_503_that_names_the_durable_items() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    gw.tenants.upsert_tenant(TenantSettings::new("acme"));
    *gw.log.unavailable_action.lock().expect("lock") = Some("lost.in.transit".into());
    let batch = json!([
        {"action": "a.first", "actor": {"id": "u"}},
        {"id": "partial-2", "action": "lost.in.transit", "actor": {"id": "u"}},
        {"action": "a.third", "actor": {"id": "u"}},
        {"action": "bad action", "actor": {"id": "u"}},
    ]);
    let answer = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &batch)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json");
    assert_eq!(answer.problem(), "unavailable");
    assert!(answer.headers.contains_key("retry-after"));
    let body = &answer.body;
    assert_eq!((body["accepted"].as_u64(), body["unavailable"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(1), Some(1)), "{body}");
    let statuses: Vec<&str> = body["results"].as_array().expect("results").iter().map(|r| r["status"].as_str().unwrap_or_default()).collect();
    assert_eq!(statuses, ["accepted", "unavailable", "accepted", "rejected"]);
    let durable: Vec<String> = [0, 2].iter().map(|&i| body["results"][i]["id"].as_str().expect("an id").to_owned()).collect();

    // What the answer calls accepted is in Kafka; resending only the unavailable item, once
    // the log takes it, doubles nothing.
    let records = read_records(&gw.topic, 2).await;
    let mut ids: Vec<String> = records.iter().map(|r| String::from_utf8_lossy(r.header("event_id").unwrap_or_default()).into_owned()).collect();
    ids.sort();
    let mut expected = durable.clone();
    expected.sort();
    assert_eq!(ids, expected);
    *gw.log.unavailable_action.lock().expect("lock") = None;
    let again = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &json!([batch[1]]))).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{:?}", again.body);
    assert_eq!(again.body["results"][0]["id"], "partial-2");
    read_records(&gw.topic, 3).await;
    assert_eq!(count_records(&gw.topic).await, 3, "every event once");
}

#[tokio::test]
async fn past_the_tenant_rate_limit_the_answer_is_429_with_retry_after() {
    let gw = gateway();
    create_topic(&gw.topic, 3).await;
    gw.tenants.upsert_tenant(TenantSettings { rate_limit_per_sec: Some(3), ..TenantSettings::new("acme") });
    for _ in 0..3 {
        let answer = send(&gw, post_json("/v1/events", &writer_token("acme"), &event("a.b"))).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    }
    let limited = send(&gw, post_json("/v1/events", &writer_token("acme"), &event("a.b"))).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.problem(), "rate-limited");
    let retry_after: u64 = limited.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry_after >= 1);
    let other = send(&gw, post_json("/v1/events", &writer_token("globex"), &event("a.b"))).await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "other tenants are not limited by acme's bucket");
    assert_eq!(gw.log.appends(), 4);
}

#[tokio::test]
async fn tenants_pinned_to_a_dedicated_topic_are_written_there() {
    let gw = gateway();
    let dedicated = format!("{}.acme", gw.topic);
    create_topic(&dedicated, 1).await;
    gw.tenants.upsert_tenant(TenantSettings { dedicated_topic: true, ..TenantSettings::new("acme") });
    let answer = send(&gw, post_json("/v1/events", &writer_token("acme"), &event("a.b"))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    let records = read_records(&dedicated, 1).await;
    assert_eq!(records[0].key.as_deref(), Some(b"acme".as_slice()));
}

#[tokio::test]
async fn an_unreachable_broker_gives_503_within_a_bounded_time_never_2xx() {
    let mut config = test_config();
    config.limits.append_timeout_ms = 3_000;
    let gw = gateway_on("kafka://127.0.0.1:1", config);
    let started = Instant::now();
    let answer = send(&gw, post_json("/v1/events", &writer_token("acme"), &event("a.b"))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_eq!(answer.problem(), "unavailable");
    assert!(answer.headers.contains_key("retry-after"));
    let batch = json!([event("a.b"), event("a.c")]);
    let answer = send(&gw, post_json("/v1/events/batch", &writer_token("acme"), &batch)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", answer.body);
    let ready = send(&gw, axum::http::Request::get("/readyz").body(axum::body::Body::empty()).expect("request builds")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["event_log"], "unavailable");
    assert_eq!(ready.body["checks"]["schema_registry"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_with_the_stack_up() {
    let gw = gateway();
    let ready = send(&gw, axum::http::Request::get("/readyz").body(axum::body::Body::empty()).expect("request builds")).await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "ready");
}

#[tokio::test]
async fn run_serves_over_tcp_and_shuts_down_gracefully() {
    let gw = gateway();
    create_topic(&gw.topic, 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("has an address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(auditlog_ingest_gateway::run(listener, gw.state.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{addr}/v1/events"))
        .bearer_auth(writer_token("acme"))
        .json(&event("user.login"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.expect("json answer");
    assert!(body["id"].is_string() && body["received_at"].is_string(), "{body}");
    stop.send(()).expect("server is running");
    let result = tokio::time::timeout(Duration::from_secs(15), server).await.expect("shuts down in time").expect("task joins");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(count_records(&gw.topic).await, 1);
}
