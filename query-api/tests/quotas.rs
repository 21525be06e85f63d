//! Quotas and hardening of the read routes over the embedded backends (file log, fjall store,
//! tantivy index; no stack needed): the per-tenant request rate (429 + `Retry-After`), search
//! syntax that cannot become an expensive query (400 naming `q`), the cap on what one SSE
//! `Last-Event-ID` reconnect replays, and CSV exports whose formula-like cells are neutralised.

use std::sync::Arc;
use std::time::Duration;

use auditlog_api_common::auth::Role;
use auditlog_api_common::auth::dev_token::{DevToken, mint_hs256};
use auditlog_api_common::config::{AuthConfig, JwtKeyConfig, KeyMaterial, Secret};
use auditlog_query_api::{Backends, QueryConfig, QueryState, router};
use auditlog_schemas::{Actor, ActorType, AuditEvent, Outcome, Severity, WireCodec};
use auditlog_seams::{EventLog, EventStore, OutgoingRecord, SearchIndex, StoredEvent, resolve};
use auditlog_tenant_registry::{InMemoryTenantRegistry, TenantAdmin, TenantSettings};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;
use time::OffsetDateTime;
use tower::ServiceExt;

const HS_SECRET: &str = "query-api-quota-test-hs256-secret-of-32-bytes";
const TENANT: &str = "acme";

struct Api {
    state: QueryState,
    config: QueryConfig,
    log: Arc<dyn EventLog>,
    store: Arc<dyn EventStore>,
    index: Arc<dyn SearchIndex>,
    codec: Arc<WireCodec>,
    _dir: tempfile::TempDir,
}

async fn api(tune: impl FnOnce(&mut QueryConfig)) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let embedded = tokio::task::spawn_blocking(move || resolve::embedded(&path, None)).await.expect("join").expect("embedded backends");
    let mut config = QueryConfig { cursor_secret: Some(Secret::new("cursor-secret-for-quota-tests-0123456789")), ..QueryConfig::default() };
    config.auth = AuthConfig::default();
    config.auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    config.limits.heartbeat_secs = 1;
    tune(&mut config);
    let log: Arc<dyn EventLog> = embedded.log;
    log.ensure_topic(&config.topic(), 1).await.expect("topic");
    let tenants = Arc::new(InMemoryTenantRegistry::new());
    for tenant in [TENANT, "other"] {
        tenants.upsert_tenant(TenantSettings::new(tenant));
    }
    let codec = Arc::new(WireCodec::embedded());
    let (store, index): (Arc<dyn EventStore>, Arc<dyn SearchIndex>) = (embedded.store, embedded.index);
    let backends = Backends { store: store.clone(), index: index.clone(), log: log.clone(), codec: codec.clone(), tenants: tenants as Arc<dyn TenantAdmin>, ledger: None };
    let state = QueryState::new(config.clone(), backends).expect("valid config");
    Api { state, config, log, store, index, codec, _dir: dir }
}

fn reader(tenant: &str) -> String {
    let mut auth = AuthConfig::default();
    auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    let dev = DevToken { subject: "tester".into(), tenant_id: Some(tenant.to_owned()), roles: vec![Role::Reader], ttl: Duration::from_secs(600) };
    mint_hs256(&Secret::new(HS_SECRET), &auth, &dev).expect("signs")
}

fn event(n: usize, description: &str) -> AuditEvent {
    let at = OffsetDateTime::now_utc() - time::Duration::minutes(5 + n as i64);
    let at = at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).expect("micros");
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: TENANT.into(),
        occurred_at: at,
        received_at: at,
        action: "user.login".into(),
        actor: Actor { id: format!("user-{n}"), kind: ActorType::User, name: None, email: None },
        targets: Vec::new(),
        outcome: Outcome::Success,
        severity: Severity::Info,
        source: None,
        context: None,
        description: Some(description.into()),
        metadata: None,
        signature: None,
    }
}

/// Appends `events` to the log and writes them, with their log positions, to both views.
async fn seed(api: &Api, events: &[AuditEvent]) {
    let topic = api.config.topic();
    let mut stored = Vec::new();
    for event in events {
        let payload = api.codec.encode(&topic, event).await.expect("encode");
        let position = api.log.append(OutgoingRecord::for_event(&topic, event, payload)).await.expect("append");
        stored.push(StoredEvent { event: event.clone(), position });
    }
    api.store.upsert(&stored).await.expect("store");
    api.index.index(&stored).await.expect("index");
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn assert_problem(&self, status: u16, kind: &str, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.headers["content-type"], "application/problem+json");
        let body = self.json();
        assert_eq!(body["type"], format!("https://auditlog.dev/problems/{kind}"), "{body}");
        if let Some(field) = field {
            assert!(body["errors"].as_array().is_some_and(|e| e.iter().any(|p| p["field"] == field)), "problem should name {field}: {body}");
        }
    }
}

async fn get(api: &Api, uri: &str, tenant: &str) -> Answer {
    let request = Request::get(uri).header("authorization", format!("Bearer {}", reader(tenant))).body(Body::empty()).expect("request");
    let response = router(api.state.clone()).oneshot(request).await.expect("infallible");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    Answer { status, headers, body }
}

#[tokio::test]
async fn a_tenant_past_its_request_rate_gets_429_with_retry_after() {
    let api = api(|c| c.limits.tenant_requests_per_sec = 3).await;
    for uri in ["/v1/events", "/v1/stats", "/v1/events?q=zebra"] {
        assert_eq!(get(&api, uri, TENANT).await.status, StatusCode::OK, "{uri} within the rate");
    }
    for uri in ["/v1/events", "/v1/stats", "/v1/events/some-id", "/v1/events/export"] {
        let refused = get(&api, uri, TENANT).await;
        refused.assert_problem(429, "rate-limited", None);
        let retry: u64 = refused.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=1).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(get(&api, "/v1/events", "other").await.status, StatusCode::OK, "another tenant has its own bucket");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&api, "/v1/events", TENANT).await.status, StatusCode::OK, "the bucket refills at the rate");
}

#[tokio::test]
async fn search_syntax_that_expands_or_scans_is_400_naming_q() {
    let api = api(|_| {}).await;
    seed(&api, &[event(0, "zebra crossing"), event(1, "zebu herd"), event(2, "plain")]).await;
    // A bounded prefix passes the API (OpenSearch expands it; tantivy's parser has no
    // single-word prefix and matches the word itself).
    assert_eq!(get(&api, "/v1/events?q=zeb*", TENANT).await.status, StatusCode::OK, "a bounded prefix is not refused");
    let found = get(&api, "/v1/events?q=zebra%20OR%20%22zebu%20herd%22", TENANT).await;
    assert_eq!(found.json()["events"].as_array().map(Vec::len), Some(2), "words, OR and phrases are served");
    for q in ["z*", "*", "*ebra", "z*a", "/z.*/", "zebra~2", "\"zebra crossing\"*", "description:zebra", "[a TO z]", "abc* def* ghi*"] {
        let encoded: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        for route in ["/v1/events", "/v1/stats", "/v1/events/export"] {
            get(&api, &format!("{route}?q={encoded}"), TENANT).await.assert_problem(400, "invalid-parameter", Some("q"));
        }
    }
}

#[tokio::test]
async fn csv_export_cells_cannot_become_formulas() {
    let api = api(|_| {}).await;
    let risky = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"];
    let events: Vec<AuditEvent> = risky.iter().enumerate().map(|(n, d)| event(n, d)).collect();
    seed(&api, &events).await;
    let answer = get(&api, "/v1/events/export?format=csv", TENANT).await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(answer.body.as_slice());
    let column = reader.headers().expect("header").iter().position(|h| h == "description").expect("description column");
    let mut descriptions: Vec<String> = reader.records().map(|r| r.expect("row")[column].to_owned()).collect();
    descriptions.sort();
    let mut expected: Vec<String> = risky.iter().map(|d| format!("'{d}")).collect();
    expected.sort();
    assert_eq!(descriptions, expected);
    let ndjson = get(&api, "/v1/events/export?format=ndjson", TENANT).await;
    assert!(String::from_utf8_lossy(&ndjson.body).contains("\"description\":\"@SUM(A1)\""), "JSON exports keep values as they are");
}

/// The SSE frames of `body` until `count` `audit` events arrived: `(event, data)` pairs.
async fn sse_frames(body: Body, count: usize) -> Vec<(String, String)> {
    let mut stream = body.into_data_stream();
    let (mut buffer, mut frames) = (String::new(), Vec::new());
    let read = async {
        while frames.iter().filter(|(kind, _): &&(String, String)| kind == "audit").count() < count {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default();
                frames.push((field("event:"), field("data:")));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("frames in time");
    frames
}

#[tokio::test]
async fn a_last_event_id_reconnect_replays_at_most_the_configured_events() {
    let api = api(|c| c.limits.replay_max_events = 2).await;
    let events: Vec<AuditEvent> = (0..6).map(|n| event(n, "replayed")).collect();
    seed(&api, &events).await;
    let request = Request::get("/v1/events/stream")
        .header("authorization", format!("Bearer {}", reader(TENANT)))
        .header("accept", "text/event-stream")
        .header("last-event-id", events[0].id.as_str())
        .body(Body::empty())
        .expect("request");
    let response = router(api.state.clone()).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let frames = sse_frames(response.into_body(), 2).await;
    let frames: Vec<(String, String)> = frames.into_iter().filter(|(kind, _)| kind != "heartbeat").collect();
    assert_eq!(frames[0].0, "skipped", "{frames:?}");
    assert_eq!(serde_json::from_str::<Value>(&frames[0].1).expect("json")["count"], 3, "5 events after the id, 2 replayed");
    let replayed: Vec<String> = frames[1..].iter().map(|(_, data)| serde_json::from_str::<Value>(data).expect("json")["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(replayed, [events[4].id.clone(), events[5].id.clone()], "the newest, in log order");
}
