//! Shared harness of the query API tests: the API over the real local stack (Cassandra,
//! OpenSearch, Kafka + schema registry) or over the embedded backends of standalone mode
//! (file log, fjall store, tantivy index: [`embedded_api_with`], no stack needed), fresh
//! tenants and topics per test, tokens, seeding through the backends' own
//! `EventStore::upsert` and `SearchIndex::index`, and HTTP helpers. A missing service fails
//! the test with its name; nothing skips.

#![allow(dead_code, missing_docs, clippy::too_many_arguments)]

use std::sync::Arc;
use std::time::Duration;

use auditlog_api_common::auth::Role;
use auditlog_api_common::auth::dev_token::{DevToken, mint_hs256};
use auditlog_api_common::config::{AuthConfig, JwtKeyConfig, KeyMaterial, Secret};
use auditlog_query_api::{Backends, LedgerBackend, QueryConfig, QueryState, router};
use auditlog_schemas::{Actor, ActorType, AuditEvent, Outcome, Severity, Target, WireCodec};
use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::ledger_store::LedgerStore;
use auditlog_seams::{EventLog, EventStore, LogPosition, OutgoingRecord, SearchIndex, StoredEvent, resolve};
use auditlog_tenant_registry::{InMemoryTenantRegistry, TenantAdmin};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use time::OffsetDateTime;
use tower::ServiceExt;

pub const HS_SECRET: &str = "query-api-test-hs256-secret-of-32-bytes-at-least";
pub const KEYSPACE: &str = "auditlog_query_tests";
pub const ALIAS: &str = "auditlog-query-tests";

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut).await.unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}

pub struct TestApi {
    pub state: QueryState,
    pub store: Arc<dyn EventStore>,
    pub index: Arc<dyn SearchIndex>,
    /// The OpenSearch index when the API runs over the real stack (seeding refreshes it).
    pub opensearch: Option<Arc<OpenSearchIndex>>,
    pub log: Arc<dyn EventLog>,
    pub codec: Arc<WireCodec>,
    pub tenants: Arc<InMemoryTenantRegistry>,
    pub config: QueryConfig,
    /// The ledger the API reads, when it has one ([`embedded_api_with_ledger`]).
    pub ledger: Option<Arc<dyn LedgerStore>>,
    /// The embedded backends' data directory, removed with the API.
    pub data_dir: Option<Arc<tempfile::TempDir>>,
}

pub fn test_config() -> QueryConfig {
    let mut config = QueryConfig {
        topic_prefix: unique("qa"),
        registry_url: env_or("AUDITLOG_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
        cursor_secret: Some(Secret::new("cursor-secret-for-tests-0123456789abcdef")),
        ..QueryConfig::default()
    };
    config.auth = AuthConfig::default();
    config.auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    config.limits.heartbeat_secs = 1;
    config
}

/// The API over the real stack with `config`; its topic exists.
pub async fn api_with(config: QueryConfig) -> TestApi {
    let cassandra = env_or("AUDITLOG_CASSANDRA", "127.0.0.1:9042");
    let store = within(60, &format!("cassandra at {cassandra}"), ScyllaEventStore::connect(&ScyllaConfig::new(vec![cassandra.clone()], KEYSPACE)))
        .await
        .unwrap_or_else(|e| panic!("cassandra at {cassandra}: {e}"));
    let url = env_or("AUDITLOG_OPENSEARCH_URL", "http://127.0.0.1:9200");
    let index = within(30, &format!("opensearch at {url}"), OpenSearchIndex::connect(OpenSearchConfig::new(url.clone(), ALIAS)))
        .await
        .unwrap_or_else(|e| panic!("opensearch at {url}: {e}"));
    let kafka = env_or("AUDITLOG_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
    let log = resolve::event_log(&format!("kafka://{kafka}")).expect("kafka uri");
    within(20, &format!("kafka at {kafka}"), log.ensure_topic(&config.topic(), 1))
        .await
        .unwrap_or_else(|e| panic!("kafka at {kafka}: {e}"));
    let codec = Arc::new(WireCodec::new(&config.registry_url, Duration::from_secs(5)).expect("registry url"));
    let index = Arc::new(index);
    assemble(config, Arc::new(store), index.clone(), Some(index), log, codec, None, None)
}

/// The API over the embedded backends of standalone mode in a fresh directory (no stack).
pub async fn embedded_api_with(config: QueryConfig) -> TestApi {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let embedded = tokio::task::spawn_blocking(move || resolve::embedded(&path, None)).await.expect("join").expect("embedded backends");
    within(20, "the embedded log", embedded.log.ensure_topic(&config.topic(), 1)).await.expect("topic");
    let codec = Arc::new(WireCodec::embedded());
    assemble(config, embedded.store, embedded.index, None, embedded.log, codec, Some(Arc::new(dir)), None)
}

/// [`embedded_api_with`], plus a ledger: the file ledger store in `<dir>/ledger`, read under
/// deployment name `deployment`.
pub async fn embedded_api_with_ledger(config: QueryConfig, deployment: &str) -> TestApi {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let embedded = tokio::task::spawn_blocking(move || resolve::embedded(&path, None)).await.expect("join").expect("embedded backends");
    within(20, "the embedded log", embedded.log.ensure_topic(&config.topic(), 1)).await.expect("topic");
    let ledger = resolve::ledger_store(&format!("file://{}", dir.path().join("ledger").display())).await.expect("file ledger store");
    let codec = Arc::new(WireCodec::embedded());
    let backend = LedgerBackend { store: ledger, deployment: deployment.to_owned() };
    assemble(config, embedded.store, embedded.index, None, embedded.log, codec, Some(Arc::new(dir)), Some(backend))
}

fn assemble(
    config: QueryConfig,
    store: Arc<dyn EventStore>,
    index: Arc<dyn SearchIndex>,
    opensearch: Option<Arc<OpenSearchIndex>>,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    data_dir: Option<Arc<tempfile::TempDir>>,
    ledger: Option<LedgerBackend>,
) -> TestApi {
    let tenants = Arc::new(InMemoryTenantRegistry::new());
    let ledger_store = ledger.as_ref().map(|l| l.store.clone());
    let backends = Backends {
        store: store.clone(),
        index: index.clone(),
        log: log.clone(),
        codec: codec.clone(),
        tenants: tenants.clone() as Arc<dyn TenantAdmin>,
        ledger,
    };
    let state = QueryState::new(config.clone(), backends).expect("valid config");
    TestApi { state, store, index, opensearch, log, codec, tenants, config, ledger: ledger_store, data_dir }
}

impl TestApi {
    /// A fresh tenant id starting with `prefix`, registered as an operator registers a tenant
    /// before handing out its credentials (a credential of an unregistered tenant is 403).
    pub fn tenant(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.tenants.upsert_tenant(auditlog_tenant_registry::TenantSettings::new(id.clone()));
        id
    }
}

pub async fn api() -> TestApi {
    api_with(test_config()).await
}

pub fn token(tenant: Option<&str>, roles: &[Role]) -> String {
    let auth = test_config().auth;
    let dev = DevToken { subject: "tester".into(), tenant_id: tenant.map(str::to_owned), roles: roles.to_vec(), ttl: Duration::from_secs(600) };
    mint_hs256(&Secret::new(HS_SECRET), &auth, &dev).expect("signs")
}

pub fn reader(tenant: &str) -> String {
    token(Some(tenant), &[Role::Reader])
}

pub fn admin() -> String {
    token(None, &[Role::PlatformAdmin])
}

/// `n`-th seeded event of `tenant`: spread over the last hours, with varied fields.
pub fn event(tenant: &str, n: usize) -> AuditEvent {
    let now = OffsetDateTime::now_utc();
    let at = now - time::Duration::minutes(5 + n as i64 * 7);
    let at = at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).expect("micros");
    let actions = ["user.login", "user.logout", "document.delete", "document.read"];
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: at,
        received_at: at,
        action: actions[n % 4].to_owned(),
        actor: Actor { id: format!("user-{}", n % 3), kind: ActorType::User, name: Some(format!("User, \"{}\"", n % 3)), email: None },
        targets: vec![Target { kind: "document".into(), id: format!("doc-{}", n % 5), name: Some("line\nbreak, comma".into()) }],
        outcome: if n.is_multiple_of(2) { Outcome::Success } else { Outcome::Failure },
        severity: if n.is_multiple_of(5) { Severity::Critical } else { Severity::Info },
        source: None,
        context: None,
        description: Some(format!("seeded event number{n} {}", if n.is_multiple_of(4) { "zebra" } else { "plain" })),
        metadata: Some(serde_json::json!({"n": n, "nested": {"k": "v"}}).as_object().cloned().expect("object")),
        signature: None,
    }
}

/// Writes `events` through the store and the index and makes them searchable.
pub async fn seed(api: &TestApi, events: &[AuditEvent]) {
    let stored: Vec<StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent { event: e.clone(), position: LogPosition { topic: "seed".into(), partition: 0, offset: i as i64 } })
        .collect();
    api.store.upsert(&stored).await.expect("store upsert");
    api.index.index(&stored).await.expect("index");
    if let Some(opensearch) = &api.opensearch {
        opensearch.refresh().await.expect("refresh");
    }
}

/// The record a producer appends for `event` to the API's topic.
pub async fn record_of(api: &TestApi, event: &AuditEvent) -> OutgoingRecord {
    let topic = api.config.topic();
    let payload = api.codec.encode(&topic, event).await.expect("encode");
    OutgoingRecord::for_event(&topic, event, payload)
}

/// Appends `event` to the API's topic as a producer would.
pub async fn append(api: &TestApi, event: &AuditEvent) {
    api.log.append(record_of(api, event).await).await.expect("append");
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem+json `status` naming `field`.
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.headers["content-type"], "application/problem+json");
        if let Some(field) = field {
            let body = self.json();
            let named = body["errors"].as_array().is_some_and(|e| e.iter().any(|p| p["field"] == field));
            assert!(named, "problem should name {field}: {body}");
        }
    }
}

pub async fn call(api: &TestApi, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = router(api.state.clone()).oneshot(request.body(body).expect("request")).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    Answer { status, headers, body }
}

pub async fn get(api: &TestApi, uri: &str, token: &str) -> Answer {
    call(api, "GET", uri, Some(token), None).await
}

/// Serves the API on a free port; answers its base URL.
pub async fn serve(api: &TestApi) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = api.state.clone();
    tokio::spawn(async move { auditlog_query_api::run(listener, state, std::future::pending()).await });
    format!("http://{addr}")
}

pub fn ids(body: &Value) -> Vec<String> {
    body["events"].as_array().expect("events array").iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect()
}
