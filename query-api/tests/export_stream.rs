//! Exports parsed back with ordinary CSV and JSON parsers, and live tails over WebSocket and
//! SSE receiving events appended to Kafka, confined to their tenant, with SSE resume.

#![cfg(feature = "real-services")]

mod common;

use std::time::{Duration, Instant};

use auditlog_schemas::AuditEvent;
use auditlog_seams::StoredEvent;
use common::*;
use futures::StreamExt;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn newest_first(events: &[AuditEvent]) -> Vec<AuditEvent> {
    let mut sorted = events.to_vec();
    sorted.sort_by(|a, b| (b.occurred_at, &b.id).cmp(&(a.occurred_at, &a.id)));
    sorted
}

#[tokio::test]
async fn exports_round_trip_through_csv_ndjson_and_json() {
    let mut config = test_config();
    config.limits.export_page_size = 4;
    let api = api_with(config).await;
    let tenant = api.tenant("ex");
    let events: Vec<AuditEvent> = (0..11).map(|i| event(&tenant, i)).collect();
    seed(&api, &events).await;
    let want = newest_first(&events);
    let t = reader(&tenant);

    let csv_answer = get(&api, "/v1/events/export?format=csv", &t).await;
    assert_eq!(csv_answer.status.as_u16(), 200);
    assert!(csv_answer.headers["content-type"].to_str().expect("ascii").starts_with("text/csv"));
    let disposition = csv_answer.headers["content-disposition"].to_str().expect("ascii");
    assert!(disposition.starts_with("attachment; filename=\"") && disposition.ends_with(".csv\""), "{disposition}");
    let mut reader_csv = csv::Reader::from_reader(csv_answer.body.as_slice());
    let headers = reader_csv.headers().expect("header row").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), auditlog_query_api::routes::export::CSV_COLUMNS.to_vec());
    let rows: Vec<csv::StringRecord> = reader_csv.records().collect::<Result<_, _>>().expect("valid csv");
    assert_eq!(rows.len(), want.len());
    for (row, event) in rows.iter().zip(&want) {
        assert_eq!(&row[0], event.id.as_str());
        assert_eq!(&row[2], event.occurred_at.format(&Rfc3339).expect("formats").as_str());
        assert_eq!(&row[4], event.action.as_str());
        assert_eq!(&row[7], event.actor.name.as_deref().unwrap_or_default(), "quotes and commas survive");
        let targets: Value = serde_json::from_str(&row[9]).expect("targets are json");
        assert_eq!(targets, serde_json::to_value(&event.targets).expect("serializes"), "newlines survive");
        let metadata: Value = serde_json::from_str(&row[21]).expect("metadata is json");
        assert_eq!(metadata, serde_json::to_value(&event.metadata).expect("serializes"));
    }

    let ndjson = get(&api, "/v1/events/export?format=ndjson", &t).await;
    let parsed: Vec<AuditEvent> = String::from_utf8(ndjson.body).expect("utf8").lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect();
    assert_eq!(parsed, want);

    let json = get(&api, "/v1/events/export?format=json&outcome=success", &t).await;
    assert!(json.headers["content-disposition"].to_str().expect("ascii").ends_with(".json\""));
    let parsed: Vec<AuditEvent> = serde_json::from_slice(&json.body).expect("a json array");
    let successes: Vec<AuditEvent> = want.iter().filter(|e| e.outcome == auditlog_schemas::Outcome::Success).cloned().collect();
    assert_eq!(parsed, successes);

    let empty = get(&api, "/v1/events/export?format=json&actor_id=nobody", &t).await;
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&empty.body).expect("an empty array"), Vec::<Value>::new());
}

async fn next_frame(ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin), kind: &str) -> Value {
    loop {
        let message = within(5, "a websocket frame", ws.next()).await.expect("open").expect("frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("json frame");
            if frame["type"] == kind {
                return frame;
            }
        }
    }
}

#[tokio::test]
async fn websocket_tail_gets_new_events_of_its_tenant_only() {
    let api = api().await;
    let base = serve(&api).await;
    let (tenant_a, tenant_b) = (api.tenant("wsa"), api.tenant("wsb"));
    let connect = |tenant: &str, query: &str| {
        let mut request = format!("{}/v1/events/stream{query}", base.replace("http", "ws")).into_client_request().expect("request");
        request.headers_mut().insert("authorization", format!("Bearer {}", reader(tenant)).parse().expect("header"));
        tokio_tungstenite::connect_async(request)
    };
    let (mut ws_a, _) = within(10, "websocket connect", connect(&tenant_a, "?action=user.*")).await.expect("upgrade");
    let (mut ws_b, _) = within(10, "websocket connect", connect(&tenant_b, "")).await.expect("upgrade");
    let skipped_by_filter = event(&tenant_a, 2);
    assert_eq!(skipped_by_filter.action, "document.delete");
    append(&api, &skipped_by_filter).await;
    let wanted = event(&tenant_a, 0);
    let started = Instant::now();
    append(&api, &wanted).await;
    let frame = next_frame(&mut ws_a, "event").await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(frame["event"]["id"], wanted.id.as_str(), "the filtered-out event never came first");
    let heartbeat = next_frame(&mut ws_b, "heartbeat").await;
    assert_eq!(heartbeat, serde_json::json!({"type": "heartbeat"}), "b only gets heartbeats");
    let own_b = event(&tenant_b, 1);
    append(&api, &own_b).await;
    assert_eq!(next_frame(&mut ws_b, "event").await["event"]["id"], own_b.id.as_str(), "b gets its own and never a's");
}

/// Reads SSE frames until one of `kind`; answers its `id` and `data`.
async fn next_sse(body: &mut (impl StreamExt<Item = reqwest::Result<bytes::Bytes>> + Unpin), buffer: &mut String, kind: &str) -> (Option<String>, String) {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim_start().to_owned()));
            if field("event").as_deref() == Some(kind) {
                return (field("id"), field("data").unwrap_or_default());
            }
        }
        let chunk = within(5, "an sse frame", body.next()).await.expect("open").expect("chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn sse_tail_gets_new_events_and_resumes_after_last_event_id() {
    let api = api().await;
    let base = serve(&api).await;
    let tenant = api.tenant("sse");
    let client = reqwest::Client::new();
    let open = |last: Option<String>| {
        let mut request = client.get(format!("{base}/v1/events/stream")).bearer_auth(reader(&tenant)).header("accept", "text/event-stream");
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        request.send()
    };
    let response = within(10, "sse connect", open(None)).await.expect("connects");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let live = event(&tenant, 0);
    let started = Instant::now();
    append(&api, &live).await;
    let (id, data) = next_sse(&mut body, &mut buffer, "audit").await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(id.as_deref(), Some(live.id.as_str()));
    assert_eq!(serde_json::from_str::<AuditEvent>(&data).expect("an event"), live);
    next_sse(&mut body, &mut buffer, "heartbeat").await;
    drop(body);

    // Resume: three events reached the log while the client was away, in an order their
    // occurred_at does not follow (an hour back, now, a minute ahead): they come in log order.
    let mut missed: Vec<AuditEvent> = (1..4).map(|i| event(&tenant, i)).collect();
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).expect("valid");
    for (e, at) in missed.iter_mut().zip([now - time::Duration::hours(1), now, now + time::Duration::minutes(1)]) {
        (e.occurred_at, e.received_at) = (at, now);
    }
    for e in &missed {
        append(&api, e).await;
    }
    let response = within(10, "sse reconnect", open(Some(live.id.clone()))).await.expect("connects");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut resumed = Vec::new();
    for _ in 0..3 {
        resumed.push(next_sse(&mut body, &mut buffer, "audit").await.0.expect("an id"));
    }
    let want: Vec<String> = missed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(resumed, want, "every missed event, in log order, after the last seen");
    let after = event(&tenant, 4);
    append(&api, &after).await;
    let (next, _) = next_sse(&mut body, &mut buffer, "audit").await;
    assert_eq!(next.as_deref(), Some(after.id.as_str()), "then live, nothing twice");
    drop(body);

    // A resume from an event the hub never delivered (its tenant was unwatched): its position
    // comes from the event store.
    let quiet = api.tenant("sse");
    let open_quiet = |last: String| {
        client.get(format!("{base}/v1/events/stream")).bearer_auth(reader(&quiet)).header("accept", "text/event-stream").header("last-event-id", last).send()
    };
    let seen = event(&quiet, 0);
    let position = api.log.append(record_of(&api, &seen).await).await.expect("append");
    api.store.upsert(&[StoredEvent { event: seen.clone(), position }]).await.expect("store upsert");
    let later = event(&quiet, 1);
    append(&api, &later).await;
    let response = within(10, "sse resume from the store", open_quiet(seen.id.clone())).await.expect("connects");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let (first, _) = next_sse(&mut body, &mut buffer, "audit").await;
    assert_eq!(first.as_deref(), Some(later.id.as_str()), "resumed after the stored event's log position");
}

#[tokio::test]
async fn live_tails_per_tenant_are_capped() {
    let mut config = test_config();
    config.limits.max_streams_per_tenant = 1;
    let api = api_with(config).await;
    let base = serve(&api).await;
    let tenant = api.tenant("cap");
    let client = reqwest::Client::new();
    let open = || client.get(format!("{base}/v1/events/stream")).bearer_auth(reader(&tenant)).header("accept", "text/event-stream").send();
    let first = within(10, "first tail", open()).await.expect("connects");
    assert_eq!(first.status().as_u16(), 200);
    let second = within(10, "second tail", open()).await.expect("answers");
    assert_eq!(second.status().as_u16(), 429);
    assert_eq!(second.headers()["content-type"], "application/problem+json");
    let other = client.get(format!("{base}/v1/events/stream")).bearer_auth(reader(&api.tenant("cap"))).header("accept", "text/event-stream").send();
    assert_eq!(within(10, "other tenant's tail", other).await.expect("answers").status().as_u16(), 200, "the cap is per tenant");
    drop(first);
    // The slot is freed once the server sees the connection closed: retry until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = within(10, "tail after release", open()).await.expect("answers").status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "only the cap refuses a tail");
        assert!(Instant::now() < deadline, "a closed tail did not free its slot within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_export_holds_its_tenants_slot_until_its_body_is_gone() {
    use tower::ServiceExt as _;
    let mut config = test_config();
    config.limits.max_exports_per_tenant = 1;
    let api = api_with(config).await;
    let tenant = api.tenant("excap");
    seed(&api, &(0..3).map(|i| event(&tenant, i)).collect::<Vec<_>>()).await;
    let app = auditlog_query_api::router(api.state.clone());
    let request = || {
        axum::http::Request::get("/v1/events/export?format=csv")
            .header("authorization", format!("Bearer {}", reader(&tenant)))
            .body(axum::body::Body::empty())
            .expect("request")
    };
    // Answered, every page read already, the body not taken yet: the slot is still held.
    let first = app.clone().oneshot(request()).await.expect("infallible");
    assert_eq!(first.status().as_u16(), 200);
    let second = app.clone().oneshot(request()).await.expect("infallible");
    assert_eq!(second.status().as_u16(), 429, "the cap counts an export until its body is gone");
    let body = axum::body::to_bytes(first.into_body(), 1 << 20).await.expect("body");
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 4, "header and three rows");
    let third = app.oneshot(request()).await.expect("infallible");
    assert_eq!(third.status().as_u16(), 200, "a finished export frees its slot");
}
