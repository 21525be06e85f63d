//! Shared harness of the gateway tests: a gateway over a real `KafkaEventLog` (wrapped only to
//! count appends), tokens signed with the fixture keys, requests and answers.

#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auditlog_ingest_gateway::config::{JwtKeyConfig, KeyMaterial, Secret};
use auditlog_ingest_gateway::tenants::{InMemoryTenantRegistry, TenantSettings};
use auditlog_ingest_gateway::{GatewayConfig, GatewayState, router};
use auditlog_schemas::WireCodec;
use auditlog_seams::{EventLog, LogConsumer, LogError, LogPosition, LogTail, OutgoingRecord, TopicSelector, resolve};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const HS_SECRET: &str = "test-only-hs256-secret-of-at-least-32-bytes";
pub const RSA_PRIVATE: &str = include_str!("../fixtures/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../fixtures/rsa_public.pem");
pub const EC_PRIVATE: &str = include_str!("../fixtures/ec_private.pem");
pub const EC_PUBLIC: &str = include_str!("../fixtures/ec_public.pem");
pub const ED_PRIVATE: &str = include_str!("../fixtures/ed_private.pem");
pub const ED_PUBLIC: &str = include_str!("../fixtures/ed_public.pem");

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn kafka_bootstrap() -> String {
    env_or("AUDITLOG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

pub fn registry_url() -> String {
    env_or("AUDITLOG_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
}

/// A unique, lowercase name for this test's topic prefix.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The real event log, counting appends that reached it. Records whose `action` header is
/// `unavailable_action` never reach it: they fail as the log fails when the broker does not
/// acknowledge, so a test can make part of a batch fail while the rest lands for real.
pub struct CountingLog {
    pub inner: Arc<dyn EventLog>,
    pub appends: AtomicUsize,
    pub unavailable_action: std::sync::Mutex<Option<String>>,
}

impl CountingLog {
    pub fn appends(&self) -> usize {
        self.appends.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventLog for CountingLog {
    async fn append(&self, record: OutgoingRecord) -> Result<LogPosition, LogError> {
        let refused = self.unavailable_action.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if refused.is_some_and(|action| record.headers.iter().any(|(k, v)| k == "action" && v == action.as_bytes())) {
            return Err(LogError::Unavailable("not acknowledged (injected by the test)".into()));
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(record).await
    }
    async fn consume(&self, group: &str, topics: TopicSelector) -> Result<Box<dyn LogConsumer>, LogError> {
        self.inner.consume(group, topics).await
    }
    async fn tail(&self, topics: &[String]) -> Result<Box<dyn LogTail>, LogError> {
        self.inner.tail(topics).await
    }
    async fn tail_from(&self, from: &LogPosition) -> Result<Box<dyn LogTail>, LogError> {
        self.inner.tail_from(from).await
    }
    async fn check_ready(&self) -> Result<(), LogError> {
        self.inner.check_ready().await
    }
    async fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        self.inner.flush(timeout).await
    }
    async fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(), LogError> {
        self.inner.ensure_topic(name, partitions).await
    }
    async fn watermarks(&self, topics: &TopicSelector) -> Result<Vec<auditlog_seams::Watermarks>, LogError> {
        self.inner.watermarks(topics).await
    }
    fn pending(&self) -> usize {
        self.inner.pending()
    }
}

pub struct TestGateway {
    pub state: GatewayState,
    pub tenants: Arc<InMemoryTenantRegistry>,
    pub log: Arc<CountingLog>,
    /// The shared topic, `<unique prefix>.v1`.
    pub topic: String,
}

fn key(id: &str, material: KeyMaterial, alg: &str) -> JwtKeyConfig {
    JwtKeyConfig { id: id.into(), material, algorithms: vec![alg.into()] }
}

/// Test config: a unique topic prefix and one key per supported algorithm family.
pub fn test_config() -> GatewayConfig {
    let mut config = GatewayConfig { topic_prefix: unique("gw"), registry_url: registry_url(), ..GatewayConfig::default() };
    config.auth.keys = vec![
        key("dev", KeyMaterial::Secret(Secret::new(HS_SECRET)), "HS256"),
        key("rsa", KeyMaterial::PublicKeyPem(RSA_PUBLIC.into()), "RS256"),
        key("ec", KeyMaterial::PublicKeyPem(EC_PUBLIC.into()), "ES256"),
        key("ed", KeyMaterial::PublicKeyPem(ED_PUBLIC.into()), "EdDSA"),
    ];
    config.limits.append_timeout_ms = 4_000;
    config
}

/// The tenants the tests write as, registered in every test gateway as an operator registers a
/// tenant before handing out its credentials (a token for any other tenant is refused).
pub const FIXTURE_TENANTS: [&str; 2] = ["acme", "globex"];

/// A gateway on the event log at `log_uri` (lazily connected) with `config`, the
/// [`FIXTURE_TENANTS`] registered.
pub fn gateway_on(log_uri: &str, config: GatewayConfig) -> TestGateway {
    let inner = resolve::event_log(log_uri).expect("event log uri is valid");
    let log = Arc::new(CountingLog { inner, appends: AtomicUsize::new(0), unavailable_action: std::sync::Mutex::new(None) });
    let codec = Arc::new(WireCodec::new(&config.registry_url, Duration::from_secs(5)).expect("registry url is valid"));
    let tenants = Arc::new(InMemoryTenantRegistry::new());
    for tenant in FIXTURE_TENANTS {
        tenants.upsert_tenant(TenantSettings::new(tenant));
    }
    let topic = config.topic();
    let state = GatewayState::new(config, log.clone(), codec, tenants.clone()).expect("test config is valid");
    TestGateway { state, tenants, log, topic }
}

/// A gateway on the local Kafka.
pub fn gateway() -> TestGateway {
    gateway_on(&format!("kafka://{}", kafka_bootstrap()), test_config())
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Claims of a writer of `tenant`, valid for ten minutes.
pub fn writer_claims(tenant: &str) -> Value {
    json!({"sub": "producer-1", "tenant_id": tenant, "roles": ["writer"], "exp": now() + 600, "iss": "auditlog", "aud": "auditlog"})
}

pub fn encoding_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa fixture"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec fixture"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("ed fixture"),
        other => panic!("no fixture key for {other:?}"),
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json serializes"))
}

/// Signs `claims` under an arbitrary `header` with `key` (for attacks on the header).
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signing works");
    format!("{message}.{signature}")
}

/// A well-formed token signed with the fixture key of `alg`.
pub fn token(alg: Algorithm, claims: &Value) -> String {
    let name = serde_json::to_value(alg).expect("algorithm serializes");
    sign_raw(&json!({"alg": name, "typ": "JWT"}), claims, &encoding_key(alg), alg)
}

/// A writer token of `tenant` (HS256).
pub fn writer_token(tenant: &str) -> String {
    token(Algorithm::HS256, &writer_claims(tenant))
}

/// A valid event.
pub fn event(action: &str) -> Value {
    json!({"action": action, "actor": {"id": "user-1", "type": "user"}, "outcome": "success"})
}

pub fn request(path: &str, auth: Option<&str>, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path);
    if let Some(token) = auth {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).expect("request builds")
}

pub fn post_json(path: &str, token: &str, body: &Value) -> Request<Body> {
    request(path, Some(token), Some("application/json"), body.to_string())
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The problem `type` without its base URI.
    pub fn problem(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default().trim_start_matches("https://auditlog.dev/problems/")
    }

    /// Field names of a validation problem.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

/// Sends one request through the router, as `oneshot`.
pub async fn send(gw: &TestGateway, request: Request<Body>) -> Answer {
    let response = router(gw.state.clone()).oneshot(request).await.expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body reads").to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())) };
    Answer { status, headers, body }
}
