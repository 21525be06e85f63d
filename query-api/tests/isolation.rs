//! The cross-tenant matrix: tenant B, with every credential kind (JWT reader, API key,
//! tenant admin by JWT and by key), never sees or reaches tenant A's events — by id, in any
//! list filter, in `q` search, stats, every export format, the live tail (SSE and
//! WebSocket, `Last-Event-ID` included), through a cursor A minted, or through the admin
//! routes naming A. The same assertions run over the embedded backends of standalone mode in
//! the plain `cargo test`, and over the real stack with `--features real-services`.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use auditlog_api_common::auth::Role;
use auditlog_schemas::AuditEvent;
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn tenant_b_cannot_reach_tenant_a_over_the_embedded_backends() {
    assert_isolated(&embedded_api_with(test_config()).await).await;
}

#[cfg(feature = "real-services")]
#[tokio::test]
async fn tenant_b_cannot_reach_tenant_a_over_the_real_stack() {
    assert_isolated(&api().await).await;
}

/// B's credentials: name, and the credential sent as `Authorization: Bearer`.
fn credentials_of_b(api: &TestApi, b: &str) -> Vec<(&'static str, String)> {
    let key = |roles: Vec<Role>| api.tenants.create_api_key(b, "isolation", roles).expect("b is registered").key;
    vec![
        ("jwt reader", reader(b)),
        ("api key reader", key(vec![Role::Reader])),
        ("jwt tenant admin", token(Some(b), &[Role::TenantAdmin, Role::Reader])),
        ("api key tenant admin", key(vec![Role::TenantAdmin, Role::Reader])),
    ]
}

/// Every list filter that selects A's events for A, one query string each.
fn filters_of(events: &[AuditEvent]) -> Vec<String> {
    let e = &events[0];
    let target = &e.targets[0];
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let from = enc(&(e.occurred_at - time::Duration::days(1)).format(&time::format_description::well_known::Rfc3339).expect("formats"));
    let to = enc(&(e.occurred_at + time::Duration::days(1)).format(&time::format_description::well_known::Rfc3339).expect("formats"));
    vec![
        String::new(),
        format!("from={from}&to={to}"),
        format!("actor_id={}", enc(&e.actor.id)),
        format!("action={}", enc(&e.action)),
        "action=user.*".into(),
        format!("target_type={}&target_id={}", enc(&target.kind), enc(&target.id)),
        format!("target_type={}", enc(&target.kind)),
        format!("target_id={}", enc(&target.id)),
        "outcome=success".into(),
        "outcome=failure".into(),
        "severity=critical".into(),
        "severity=info".into(),
        "q=zebra".into(),
        "q=seeded".into(),
        format!("q=zebra&actor_id={}", enc(&e.actor.id)),
    ]
}

async fn assert_isolated(api: &TestApi) {
    let (a, b) = (api.tenant("isoa"), api.tenant("isob"));
    let a_events: Vec<AuditEvent> = (0..8).map(|n| event(&a, n)).collect();
    let b_event = event(&b, 0);
    let mut seeded = a_events.clone();
    seeded.push(b_event.clone());
    seed(api, &seeded).await;
    let a_ids: HashSet<String> = a_events.iter().map(|e| e.id.clone()).collect();
    let a_key = api.tenants.create_api_key(&a, "a-reader", vec![Role::Reader]).expect("a is registered");
    let filters = filters_of(&a_events);

    // Positive control: A reaches its own events through every filter, so an empty answer
    // for B below means isolation, not a query that matches nothing.
    for filter in &filters {
        let page = get(api, &format!("/v1/events?limit=100&{filter}"), &reader(&a)).await;
        assert_eq!(page.status.as_u16(), 200, "a lists {filter:?}: {}", String::from_utf8_lossy(&page.body));
        assert!(ids(&page.json()).iter().any(|id| a_ids.contains(id)), "a finds its events with {filter:?}");
    }
    // Cursors A minted, from the store and from the index.
    let mut a_cursors = Vec::new();
    for query in ["limit=1", "limit=1&q=seeded"] {
        let page = get(api, &format!("/v1/events?{query}"), &reader(&a)).await.json();
        a_cursors.push((query, page["next_cursor"].as_str().unwrap_or_else(|| panic!("a gets a cursor for {query}: {page}")).to_owned()));
    }

    for (kind, credential) in credentials_of_b(api, &b) {
        // By id: A's ids look exactly like unknown ones.
        let unknown = get(api, &format!("/v1/events/{}", uuid::Uuid::now_v7()), &credential).await;
        unknown.assert_problem(404, None);
        for id in &a_ids {
            let answer = get(api, &format!("/v1/events/{id}"), &credential).await;
            answer.assert_problem(404, None);
            assert_eq!(answer.json()["detail"], unknown.json()["detail"], "{kind}: another tenant's id looks like a missing one");
        }
        // Lists and search, every filter: never an event of A; B's own is there when it matches.
        for filter in &filters {
            let page = get(api, &format!("/v1/events?limit=100&{filter}"), &credential).await;
            assert_eq!(page.status.as_u16(), 200, "{kind} lists {filter:?}: {}", String::from_utf8_lossy(&page.body));
            let seen = ids(&page.json());
            assert!(seen.iter().all(|id| *id == b_event.id), "{kind} sees another tenant's events with {filter:?}: {seen:?}");
        }
        let own = ids(&get(api, "/v1/events?limit=100", &credential).await.json());
        assert_eq!(own, std::slice::from_ref(&b_event.id), "{kind} lists exactly its own event");
        // Stats: only B's event is counted, whatever the grouping.
        for group in ["action", "outcome", "severity", "actor_id"] {
            let stats = get(api, &format!("/v1/stats?group_by={group}&interval=1h"), &credential).await.json();
            assert_eq!(stats["total"], 1, "{kind} stats by {group}: {stats}");
        }
        assert_eq!(get(api, "/v1/stats?q=zebra", &credential).await.json()["total"], u64::from(b_event.description.as_deref().is_some_and(|d| d.contains("zebra"))));
        // Exports, every format: B's event and nothing of A's.
        for format in ["csv", "ndjson", "json"] {
            let export = get(api, &format!("/v1/events/export?format={format}"), &credential).await;
            assert_eq!(export.status.as_u16(), 200, "{kind} exports {format}");
            let body = String::from_utf8_lossy(&export.body);
            assert!(body.contains(&b_event.id), "{kind}'s {format} export holds its own event: {body}");
            assert!(!a_ids.iter().any(|id| body.contains(id.as_str())) && !body.contains(&a), "{kind}'s {format} export leaks a: {body}");
        }
        // A's cursors are refused, never a page of A's.
        for (query, cursor) in &a_cursors {
            let page = get(api, &format!("/v1/events?{query}&cursor={cursor}"), &credential).await;
            page.assert_problem(400, Some("cursor"));
        }
        // Admin routes naming A: refused, and nothing changed.
        let a_route = format!("/v1/tenants/{a}");
        let refused = [
            call(api, "GET", &a_route, Some(&credential), None).await,
            call(api, "PATCH", &a_route, Some(&credential), Some(json!({"name": "taken over"}))).await,
            call(api, "DELETE", &a_route, Some(&credential), None).await,
            call(api, "GET", &format!("{a_route}/api-keys"), Some(&credential), None).await,
            call(api, "POST", &format!("{a_route}/api-keys"), Some(&credential), Some(json!({"name": "mine", "roles": ["reader"]}))).await,
            call(api, "DELETE", &format!("{a_route}/api-keys/{}", a_key.key_id), Some(&credential), None).await,
            call(api, "GET", &format!("{a_route}/admin-events"), Some(&credential), None).await,
        ];
        for answer in refused {
            assert!(matches!(answer.status.as_u16(), 403 | 404), "{kind} reached an admin route of a: {} {}", answer.status, String::from_utf8_lossy(&answer.body));
            assert_eq!(answer.headers["content-type"], "application/problem+json");
        }
    }
    let a_settings = auditlog_tenant_registry::TenantRegistry::tenant(api.tenants.as_ref(), &a).expect("a is still registered");
    assert_eq!((a_settings.name.as_str(), a_settings.status), (a.as_str(), auditlog_tenant_registry::TenantStatus::Active), "a is untouched");
    assert_eq!(auditlog_tenant_registry::TenantAdmin::list_api_keys(api.tenants.as_ref(), &a).map(|keys| keys.iter().filter(|k| !k.revoked).count()), Ok(1), "a's keys are untouched");
    assert_eq!(get(api, "/v1/events?limit=100", &a_key.key).await.json()["events"].as_array().map(Vec::len), Some(a_events.len()), "a's key still reads");

    live_tails_of_b_never_carry_a(api, &a, &b, &a_events).await;
}

/// B's live tails, over SSE and WebSocket and with every reader credential, get B's events
/// and never A's, also when resuming after one of A's event ids. B's own marker, appended
/// after A's events, is the signal that the tail has gone past them.
async fn live_tails_of_b_never_carry_a(api: &TestApi, a: &str, b: &str, a_events: &[AuditEvent]) {
    let base = serve(api).await;
    let client = reqwest::Client::new();
    let b_key = api.tenants.create_api_key(b, "tail", vec![Role::Reader]).expect("b is registered").key;
    let a_ids: HashSet<String> = a_events.iter().map(|e| e.id.clone()).collect();
    for (n, credential) in [reader(b), b_key].into_iter().enumerate() {
        // SSE, resuming after one of A's ids: it names nothing of B's, so nothing is replayed.
        let sse = within(10, "sse connect", async {
            client
                .get(format!("{base}/v1/events/stream"))
                .bearer_auth(&credential)
                .header("accept", "text/event-stream")
                .header("last-event-id", a_events[0].id.clone())
                .send()
                .await
        })
        .await
        .expect("connects");
        assert_eq!(sse.status().as_u16(), 200);
        let mut sse = sse.bytes_stream();
        let mut request = format!("{}/v1/events/stream", base.replace("http", "ws")).into_client_request().expect("request");
        request.headers_mut().insert("authorization", format!("Bearer {credential}").parse().expect("header"));
        let (mut ws, _) = within(10, "websocket connect", tokio_tungstenite::connect_async(request)).await.expect("upgrade");

        // Both tails are subscribed once a heartbeat arrives (heartbeat_secs = 1).
        let mut sse_text = String::new();
        within(10, "an sse heartbeat", async {
            while !sse_text.contains("event: heartbeat") && !sse_text.contains("event:heartbeat") {
                let chunk = sse.next().await.expect("open").expect("chunk");
                sse_text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        let mut ws_frames = Vec::new();
        within(10, "a websocket heartbeat", async {
            loop {
                if let Message::Text(text) = ws.next().await.expect("open").expect("frame") {
                    let frame: Value = serde_json::from_str(&text).expect("json frame");
                    let heartbeat = frame["type"] == "heartbeat";
                    ws_frames.push(frame);
                    if heartbeat {
                        break;
                    }
                }
            }
        })
        .await;

        for e in a_events.iter().take(4) {
            let mut fresh = e.clone();
            fresh.id = uuid::Uuid::now_v7().to_string();
            append(api, &fresh).await;
        }
        let marker = event(b, 10 + n);
        append(api, &marker).await;

        within(10, "b's marker over sse", async {
            while !sse_text.contains(&marker.id) {
                let chunk = sse.next().await.expect("open").expect("chunk");
                sse_text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        assert!(!sse_text.contains(a), "b's sse tail carried a's events: {sse_text}");
        within(10, "b's marker over websocket", async {
            loop {
                if let Message::Text(text) = ws.next().await.expect("open").expect("frame") {
                    let frame: Value = serde_json::from_str(&text).expect("json frame");
                    let done = frame["event"]["id"] == marker.id.as_str();
                    ws_frames.push(frame);
                    if done {
                        break;
                    }
                }
            }
        })
        .await;
        let events: Vec<&Value> = ws_frames.iter().filter(|f| f["type"] == "event").collect();
        assert_eq!(events.len(), 1, "b's websocket got its marker only: {ws_frames:?}");
        assert!(events.iter().all(|f| f["event"]["tenant_id"] == b && !a_ids.contains(f["event"]["id"].as_str().unwrap_or_default())));
        drop(sse);
        let _ = ws.close(None).await;
        tokio::time::timeout(Duration::from_secs(5), async { while ws.next().await.is_some() {} }).await.ok();
    }
}
