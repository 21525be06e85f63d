//! Producers' signing keys and the `signatures` policy through the admin API (issue #15), over
//! the embedded backends (no stack): a tenant admin registers, lists and revokes its own keys
//! and no other tenant's; every bad field is a problem naming it; each change is in the
//! platform trail before it applies, and nothing applies when it cannot be recorded; the
//! routes are in the OpenAPI document.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auditlog_api_common::auth::Role;
use auditlog_api_common::auth::dev_token::{DevToken, mint_hs256};
use auditlog_api_common::config::{AuthConfig, JwtKeyConfig, KeyMaterial, Secret};
use auditlog_query_api::{Backends, QueryConfig, QueryState, router};
use auditlog_schemas::WireCodec;
use auditlog_seams::{EventLog, LogConsumer, LogError, LogPosition, LogTail, OutgoingRecord, TopicSelector, resolve};
use auditlog_tenant_registry::{InMemoryTenantRegistry, SignaturePolicy, TenantAdmin, TenantRegistry, TenantSettings};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const HS_SECRET: &str = "query-api-signing-keys-test-hs256-secret-32b";
/// A valid ed25519 public key (RFC 8032 test 1), standard base64.
const ED25519_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
/// The P-256 generator point, uncompressed SEC1, standard base64.
const P256_KEY: &str = "BGsX0fLhLEJH+Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT+NC4v4af5uO5+tKfA+eFivOM1drMV7Oy7ZAaDe/UfU=";

/// The embedded log, refusing appends while `down` is set.
struct SwitchableLog {
    inner: Arc<dyn EventLog>,
    down: AtomicBool,
}

#[async_trait]
impl EventLog for SwitchableLog {
    async fn append(&self, record: OutgoingRecord) -> Result<LogPosition, LogError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("log switched off by the test".into()));
        }
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

struct Api {
    state: QueryState,
    config: QueryConfig,
    log: Arc<SwitchableLog>,
    tenants: Arc<InMemoryTenantRegistry>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let embedded = tokio::task::spawn_blocking(move || resolve::embedded(&path, None)).await.expect("join").expect("embedded backends");
    let mut config = QueryConfig { cursor_secret: Some(Secret::new("cursor-secret-for-signing-key-tests-012")), ..QueryConfig::default() };
    config.auth = AuthConfig::default();
    config.auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    let log = Arc::new(SwitchableLog { inner: embedded.log, down: false.into() });
    log.ensure_topic(&config.topic(), 1).await.expect("topic");
    let tenants = Arc::new(InMemoryTenantRegistry::new());
    tenants.upsert_tenant(TenantSettings::new("acme"));
    tenants.upsert_tenant(TenantSettings::new("globex"));
    let codec = Arc::new(WireCodec::embedded());
    let backends = Backends { store: embedded.store, index: embedded.index, log: log.clone(), codec, tenants: tenants.clone() as Arc<dyn TenantAdmin>, ledger: None };
    let state = QueryState::new(config.clone(), backends).expect("valid config");
    Api { state, config, log, tenants, _dir: dir }
}

fn token(tenant: Option<&str>, roles: &[Role]) -> String {
    let mut auth = AuthConfig::default();
    auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    let dev = DevToken { subject: "tester".into(), tenant_id: tenant.map(str::to_owned), roles: roles.to_vec(), ttl: Duration::from_secs(600) };
    mint_hs256(&Secret::new(HS_SECRET), &auth, &dev).expect("signs")
}

fn tenant_admin(tenant: &str) -> String {
    token(Some(tenant), &[Role::TenantAdmin])
}

async fn call(api: &Api, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
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
    let status = response.status().as_u16();
    let problem = response.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status >= 400 {
        assert!(problem, "{status} is problem+json: {value}");
    }
    assert!(status < 500 || (status == 503 && api.log.down.load(Ordering::SeqCst)), "no 5xx but a switched-off log's 503: {status} {value}");
    (status, value)
}

/// Asserts a `status` problem naming `field`.
fn named(answer: &(u16, Value), status: u16, field: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let names = answer.1["errors"].as_array().is_some_and(|e| e.iter().any(|p| p["field"] == field));
    assert!(names, "the problem names {field}: {}", answer.1);
}

/// The platform trail's events about `tenant` in the log, as `action:outcome` with their
/// metadata, oldest first.
async fn trail(api: &Api, tenant: &str) -> Vec<(String, Value)> {
    let topic = api.config.topic();
    let marks = api.log.watermarks(&TopicSelector::Topics(vec![topic.clone()])).await.expect("watermarks");
    let end = marks.iter().map(|w| w.high).max().unwrap_or(0);
    let mut actions = Vec::new();
    if end == 0 {
        return actions;
    }
    let codec = WireCodec::embedded();
    let mut tail = api.log.tail_from(&LogPosition { topic, partition: 0, offset: 0 }).await.expect("tail");
    loop {
        let record = tokio::time::timeout(Duration::from_secs(10), tail.next()).await.expect("the log serves up to its watermark").expect("reads");
        let event = codec.decode(&record.payload).await.expect("decodes");
        if event.tenant_id == "system" && event.targets.iter().any(|t| t.kind == "tenant" && t.id == tenant) {
            let outcome = serde_json::to_value(event.outcome).expect("outcome");
            let metadata = event.metadata.map(|m| serde_json::to_value(m).expect("metadata")).unwrap_or(Value::Null);
            actions.push((format!("{}:{}", event.action, outcome.as_str().unwrap_or_default()), metadata));
        }
        if record.position.offset + 1 >= end {
            return actions;
        }
    }
}

fn actions(trail: &[(String, Value)]) -> Vec<&str> {
    trail.iter().map(|(a, _)| a.as_str()).collect()
}

#[tokio::test]
async fn a_tenant_admin_registers_lists_and_revokes_its_signing_keys_and_each_change_is_audited() {
    let api = api().await;
    let acme = tenant_admin("acme");
    let body = json!({"key_id": "billing-2026", "producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY,
        "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00+01:00"});
    let (status, created) = call(&api, "POST", "/v1/tenants/acme/signing-keys", Some(&acme), Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    let expected = json!({"key_id": "billing-2026", "tenant_id": "acme", "producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY,
        "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-12-31T23:00:00Z", "revoked_at": null, "created_at": created["created_at"]});
    assert_eq!(created, expected, "times are stored in UTC");
    named(&call(&api, "POST", "/v1/tenants/acme/signing-keys", Some(&acme), Some(body)).await, 409, "key_id");

    // Defaults: the key id from the key's hash, not_before now; a P-256 key.
    let (status, p256) =
        call(&api, "POST", "/v1/tenants/acme/signing-keys", Some(&acme), Some(json!({"producer": "web", "alg": "ecdsa-p256-sha256", "public_key": P256_KEY}))).await;
    assert_eq!(status, 201, "{p256}");
    let default_id = p256["key_id"].as_str().expect("key id");
    assert!(default_id.len() == 16 && default_id.bytes().all(|b| b.is_ascii_hexdigit()), "{default_id}");
    assert!(p256["not_before"].is_string() && p256["not_after"].is_null());

    let (status, list) = call(&api, "GET", "/v1/tenants/acme/signing-keys", Some(&acme), None).await;
    assert_eq!(status, 200);
    let ids: Vec<_> = list["keys"].as_array().expect("keys").iter().map(|k| k["key_id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(ids, ["billing-2026", default_id]);

    // Revocation from a time on; a later one keeps the earlier time and records nothing.
    let revoke = "/v1/tenants/acme/signing-keys/billing-2026/revoke";
    let (status, revoked) = call(&api, "POST", revoke, Some(&acme), Some(json!({"revoked_at": "2026-06-01T00:00:00Z"}))).await;
    assert_eq!((status, &revoked["revoked_at"]), (200, &json!("2026-06-01T00:00:00Z")), "{revoked}");
    let (status, again) = call(&api, "POST", revoke, Some(&acme), Some(json!({"revoked_at": "2026-09-01T00:00:00Z"}))).await;
    assert_eq!((status, &again["revoked_at"]), (200, &json!("2026-06-01T00:00:00Z")), "the earlier time stays");
    let (status, now) = call(&api, "POST", &format!("/v1/tenants/acme/signing-keys/{default_id}/revoke"), Some(&acme), None).await;
    assert_eq!(status, 200, "an empty body revokes from now: {now}");
    assert!(now["revoked_at"].is_string());
    let served = api.tenants.signing_key("acme", "billing-2026").expect("served to the gateway");
    assert_eq!(served.revoked_at.map(|t| t.unix_timestamp()), Some(1_780_272_000));

    let trail = trail(&api, "acme").await;
    assert_eq!(actions(&trail), ["signing_key.create:success", "signing_key.create:success", "signing_key.revoke:success", "signing_key.revoke:success"]);
    assert_eq!(trail[0].1["public_key"], ED25519_KEY, "the trail records the key registered: {}", trail[0].1);
    assert_eq!(trail[2].1["revoked_at"], "2026-06-01T00:00:00Z");
}

#[tokio::test]
async fn bad_fields_are_named_and_nothing_is_registered() {
    let api = api().await;
    let acme = tenant_admin("acme");
    let uri = "/v1/tenants/acme/signing-keys";
    let base = json!({"producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("public_key", json!("not base64!")), "public_key"),
        (with("public_key", json!("AAAA")), "public_key"),
        (with("public_key", json!(P256_KEY)), "public_key"),
        (with("alg", json!("rsa-sha256")), "alg"),
        (with("alg", json!(7)), "alg"),
        (json!({"producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY, "not_before": "2026-02-01T00:00:00Z", "not_after": "2026-02-01T00:00:00Z"}), "not_after"),
        (json!({"producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY, "not_before": "2026-02-01T00:00:00Z", "not_after": "2026-01-01T00:00:00Z"}), "not_after"),
        (with("not_before", json!("yesterday")), "not_before"),
        (with("key_id", json!("has space")), "key_id"),
        (with("producer", json!(" ")), "producer"),
        (with("owner", json!("x")), "owner"),
        (json!({"alg": "ed25519", "public_key": ED25519_KEY}), "producer"),
    ];
    for (body, field) in cases {
        named(&call(&api, "POST", uri, Some(&acme), Some(body.clone())).await, 422, field);
    }
    let (_, list) = call(&api, "GET", uri, Some(&acme), None).await;
    assert_eq!(list, json!({"keys": []}), "nothing was registered");
    assert!(trail(&api, "acme").await.is_empty(), "nothing was recorded");

    named(&call(&api, "POST", "/v1/tenants/acme/signing-keys/nope/revoke", Some(&acme), None).await, 404, "key_id");
    call(&api, "POST", uri, Some(&acme), Some(with("key_id", json!("k1")))).await;
    named(&call(&api, "POST", "/v1/tenants/acme/signing-keys/k1/revoke", Some(&acme), Some(json!({"revoked_at": "soon"}))).await, 422, "revoked_at");
    assert_eq!(call(&api, "POST", "/v1/tenants/nobody/signing-keys", Some(&token(None, &[Role::PlatformAdmin])), Some(base.clone())).await.0, 404);
    assert_eq!(call(&api, "GET", "/v1/tenants/nobody/signing-keys", Some(&token(None, &[Role::PlatformAdmin])), None).await.0, 404);
}

#[tokio::test]
async fn one_tenants_admin_cannot_see_or_touch_anothers_keys_and_a_platform_admin_can() {
    let api = api().await;
    let body = json!({"key_id": "g1", "producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY});
    let platform = token(None, &[Role::PlatformAdmin]);
    assert_eq!(call(&api, "POST", "/v1/tenants/globex/signing-keys", Some(&platform), Some(body.clone())).await.0, 201, "a platform admin registers for any tenant");
    let acme = tenant_admin("acme");
    let routes = [
        ("POST", "/v1/tenants/globex/signing-keys", Some(body.clone())),
        ("GET", "/v1/tenants/globex/signing-keys", None),
        ("POST", "/v1/tenants/globex/signing-keys/g1/revoke", None),
    ];
    for (method, uri, body) in &routes {
        assert_eq!(call(&api, method, uri, Some(&acme), body.clone()).await.0, 403, "{method} {uri} as acme's admin");
        assert_eq!(call(&api, method, uri, Some(&token(Some("globex"), &[Role::Writer, Role::Reader])), body.clone()).await.0, 403, "{method} {uri} as a writer");
        assert_eq!(call(&api, method, uri, None, body.clone()).await.0, 401);
    }
    // Acme's own routes never reach globex's key.
    named(&call(&api, "POST", "/v1/tenants/acme/signing-keys/g1/revoke", Some(&acme), None).await, 404, "key_id");
    assert_eq!(call(&api, "GET", "/v1/tenants/acme/signing-keys", Some(&acme), None).await.1, json!({"keys": []}));
    assert_eq!(api.tenants.signing_key("globex", "g1").and_then(|k| k.revoked_at), None, "globex's key is untouched");
    // The same id in another tenant is another key.
    assert_eq!(call(&api, "POST", "/v1/tenants/acme/signing-keys", Some(&acme), Some(body)).await.0, 201);
}

#[tokio::test]
async fn the_signatures_policy_is_set_by_a_tenant_admin_and_shown() {
    let api = api().await;
    let acme = tenant_admin("acme");
    assert_eq!(call(&api, "GET", "/v1/tenants/acme", Some(&acme), None).await.1["signatures"], "off", "the default");
    let (status, patched) = call(&api, "PATCH", "/v1/tenants/acme", Some(&acme), Some(json!({"signatures": "required"}))).await;
    assert_eq!((status, &patched["signatures"]), (200, &json!("required")), "{patched}");
    assert_eq!(api.tenants.tenant("acme").map(|t| t.signatures), Some(SignaturePolicy::Required));
    named(&call(&api, "PATCH", "/v1/tenants/acme", Some(&acme), Some(json!({"signatures": "always"}))).await, 422, "signatures");
    assert_eq!(call(&api, "PATCH", "/v1/tenants/globex", Some(&acme), Some(json!({"signatures": "off"}))).await.0, 403);
    let (status, created) =
        call(&api, "POST", "/v1/tenants", Some(&token(None, &[Role::PlatformAdmin])), Some(json!({"id": "initech", "signatures": "optional"}))).await;
    assert_eq!((status, &created["signatures"]), (201, &json!("optional")), "{created}");
    assert_eq!(actions(&trail(&api, "acme").await), ["tenant.update:success"]);
}

#[tokio::test]
async fn nothing_applies_when_the_change_cannot_be_recorded_and_deleted_tenants_register_nothing() {
    let api = api().await;
    let acme = tenant_admin("acme");
    let body = json!({"key_id": "k1", "producer": "billing", "alg": "ed25519", "public_key": ED25519_KEY});
    api.log.down.store(true, Ordering::SeqCst);
    assert_eq!(call(&api, "POST", "/v1/tenants/acme/signing-keys", Some(&acme), Some(body.clone())).await.0, 503);
    assert_eq!(api.tenants.signing_key("acme", "k1"), None, "an unrecorded key is not registered");
    api.log.down.store(false, Ordering::SeqCst);
    assert_eq!(call(&api, "POST", "/v1/tenants/acme/signing-keys", Some(&acme), Some(body.clone())).await.0, 201);
    api.log.down.store(true, Ordering::SeqCst);
    assert_eq!(call(&api, "POST", "/v1/tenants/acme/signing-keys/k1/revoke", Some(&acme), None).await.0, 503);
    assert_eq!(api.tenants.signing_key("acme", "k1").and_then(|k| k.revoked_at), None, "an unrecorded revocation is not applied");
    api.log.down.store(false, Ordering::SeqCst);
    assert_eq!(actions(&trail(&api, "acme").await), ["signing_key.create:success"], "only the applied change is in the trail");

    let mut deleted = TenantSettings::new("gone");
    deleted.status = auditlog_tenant_registry::TenantStatus::Deleted;
    api.tenants.upsert_tenant(deleted);
    assert_eq!(call(&api, "POST", "/v1/tenants/gone/signing-keys", Some(&token(None, &[Role::PlatformAdmin])), Some(body)).await.0, 409);
}

#[tokio::test]
async fn the_signing_key_routes_are_documented() {
    let api = api().await;
    let (status, doc) = call(&api, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/tenants/{id}/signing-keys"]["post"].is_object(), "POST documented");
    assert!(doc["paths"]["/v1/tenants/{id}/signing-keys"]["get"].is_object(), "GET documented");
    assert!(doc["paths"]["/v1/tenants/{id}/signing-keys/{key_id}/revoke"]["post"].is_object(), "revoke documented");
    let fields = doc["components"]["schemas"]["NewSigningKeyBody"]["properties"].as_object().expect("the body's schema");
    for field in ["key_id", "producer", "alg", "public_key", "not_before", "not_after"] {
        assert!(fields.contains_key(field), "{field} documented");
    }
    assert!(doc["components"]["schemas"]["SigningKey"]["properties"]["revoked_at"].is_object());
}
