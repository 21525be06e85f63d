//! Tenants must exist, and no tenant can erase its own trail (issue #13), over the embedded
//! backends (file log, fjall store, tantivy index; no stack needed): credentials of
//! unregistered, reserved or deleted tenants are 403 on reads; a disabled tenant is still
//! readable; `DELETE /v1/tenants/{id}` schedules an audited deletion that the sweep carries out;
//! lowering retention is platform_admin-only, floored and delayed; a legal hold stops the purge;
//! admin changes are recorded (in the platform trail) before they apply.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auditlog_api_common::auth::Role;
use auditlog_api_common::auth::dev_token::{DevToken, mint_hs256};
use auditlog_api_common::config::{AuthConfig, JwtKeyConfig, KeyMaterial, Secret};
use auditlog_query_api::{Backends, QueryConfig, QueryState, retention, router};
use auditlog_schemas::{Actor, ActorType, AuditEvent, Outcome, Severity, WireCodec};
use auditlog_seams::{EventLog, EventStore, LogConsumer, LogError, LogPosition, LogTail, OutgoingRecord, SearchIndex, StoredEvent, TopicSelector, resolve};
use auditlog_tenant_registry::{InMemoryTenantRegistry, TenantAdmin, TenantPatch, TenantRegistry, TenantSettings, TenantStatus};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

const HS_SECRET: &str = "query-api-lifecycle-test-hs256-secret-32-bytes";

/// The embedded log, refusing appends while `down` is set.
struct SwitchableLog {
    inner: Arc<dyn EventLog>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl EventLog for SwitchableLog {
    async fn append(&self, record: OutgoingRecord) -> Result<LogPosition, LogError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LogError::Unavailable("switched off by the test".into()));
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
    store: Arc<dyn EventStore>,
    index: Arc<dyn SearchIndex>,
    tenants: Arc<InMemoryTenantRegistry>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let embedded = tokio::task::spawn_blocking(move || resolve::embedded(&path, None)).await.expect("join").expect("embedded backends");
    let mut config = QueryConfig { cursor_secret: Some(Secret::new("cursor-secret-for-lifecycle-tests-0123456")), ..QueryConfig::default() };
    config.auth = AuthConfig::default();
    config.auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    let log = Arc::new(SwitchableLog { inner: embedded.log, down: false.into() });
    log.ensure_topic(&config.topic(), 1).await.expect("topic");
    let tenants = Arc::new(InMemoryTenantRegistry::new());
    tenants.upsert_tenant(TenantSettings::new("acme"));
    let codec = Arc::new(WireCodec::embedded());
    let (store, index): (Arc<dyn EventStore>, Arc<dyn SearchIndex>) = (embedded.store, embedded.index);
    let backends = Backends { store: store.clone(), index: index.clone(), log: log.clone(), codec, tenants: tenants.clone() as Arc<dyn TenantAdmin>, ledger: None };
    let state = QueryState::new(config.clone(), backends).expect("valid config");
    Api { state, config, log, store, index, tenants, _dir: dir }
}

fn token(tenant: Option<&str>, roles: &[Role]) -> String {
    let mut auth = AuthConfig::default();
    auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(Secret::new(HS_SECRET)), algorithms: vec!["HS256".into()] });
    let dev = DevToken { subject: "tester".into(), tenant_id: tenant.map(str::to_owned), roles: roles.to_vec(), ttl: Duration::from_secs(600) };
    mint_hs256(&Secret::new(HS_SECRET), &auth, &dev).expect("signs")
}

fn admin() -> String {
    token(None, &[Role::PlatformAdmin])
}

async fn call(api: &Api, method: &str, uri: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
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
    (status, value)
}

fn registered(api: &Api, id: &str) -> TenantSettings {
    TenantRegistry::tenant(api.tenants.as_ref(), id).expect("registered")
}

/// Every record of the API's topic, up to its high watermark now: read to the end the log
/// reports, not until a quiet spell, so a record that is late cannot be missed.
async fn log_records(api: &Api) -> Vec<auditlog_seams::LogRecord> {
    let topic = api.config.topic();
    let marks = api.log.watermarks(&TopicSelector::Topics(vec![topic.clone()])).await.expect("watermarks");
    let end = marks.iter().map(|w| w.high).max().unwrap_or(0);
    let mut records = Vec::new();
    if end == 0 {
        return records;
    }
    let mut tail = api.log.tail_from(&LogPosition { topic, partition: 0, offset: 0 }).await.expect("tail");
    while records.len() < usize::try_from(end).expect("an offset") {
        let record = tokio::time::timeout(Duration::from_secs(10), tail.next()).await.expect("the log serves up to its watermark").expect("reads");
        let last = record.position.offset + 1 >= end;
        records.push(record);
        if last {
            break;
        }
    }
    records
}

/// The platform's admin events (tenant `system`) in the log that concern `tenant` (all of
/// them for `system`), as `action:outcome`.
async fn trail(api: &Api, tenant: &str) -> Vec<String> {
    let codec = WireCodec::embedded();
    let mut actions = Vec::new();
    for record in log_records(api).await {
        let event = codec.decode(&record.payload).await.expect("decodes");
        let concerns = tenant == "system" || event.targets.iter().any(|t| t.kind == "tenant" && t.id == tenant);
        if event.tenant_id == "system" && concerns {
            actions.push(format!("{}:{}", event.action, serde_json::to_value(event.outcome).expect("outcome").as_str().unwrap_or_default()));
        }
    }
    actions
}

fn old_event(tenant: &str, days_ago: i64) -> AuditEvent {
    let at = OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    let at = at.replace_nanosecond(0).expect("whole seconds");
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.into(),
        occurred_at: at,
        received_at: at,
        action: "user.login".into(),
        actor: Actor { id: "u".into(), kind: ActorType::User, name: None, email: None },
        targets: Vec::new(),
        outcome: Outcome::Success,
        severity: Severity::Info,
        source: None,
        context: None,
        description: None,
        metadata: None,
        signature: None,
    }
}

#[tokio::test]
async fn reads_need_a_registered_tenant_that_is_not_reserved_or_deleted() {
    let api = api().await;
    let reader = |t: &str| token(Some(t), &[Role::Reader]);
    assert_eq!(call(&api, "GET", "/v1/events", &reader("acme"), None).await.0, 200);
    assert_eq!(call(&api, "GET", "/v1/events", &reader("nobody-created-me"), None).await.0, 403);
    for reserved in ["system", "dlq"] {
        assert_eq!(call(&api, "GET", "/v1/events", &reader(reserved), None).await.0, 403, "{reserved}");
    }
    assert_eq!(call(&api, "GET", "/v1/tenants/nobody-created-me", &token(Some("nobody-created-me"), &[Role::TenantAdmin]), None).await.0, 403);
    let key = api.tenants.create_api_key("acme", "ci", vec![Role::Reader]).expect("tenant exists");
    let disabled = call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"status": "disabled"}))).await;
    assert_eq!((disabled.0, disabled.1["status"].as_str()), (200, Some("disabled")));
    assert_eq!(call(&api, "GET", "/v1/events", &reader("acme"), None).await.0, 200, "an auditor still reads a disabled tenant");
    assert_eq!(call(&api, "GET", "/v1/events", &key.key, None).await.0, 200);
    let deleted = TenantPatch { status: Some(TenantStatus::Deleted), ..TenantPatch::default() };
    api.tenants.update_tenant("acme", deleted).await.expect("known tenant");
    assert_eq!(call(&api, "GET", "/v1/events", &reader("acme"), None).await.0, 403, "a tombstoned tenant's tokens are refused");
    assert_eq!(call(&api, "GET", "/v1/events", &key.key, None).await.0, 401, "a tombstoned tenant's keys stop working");
}

#[tokio::test]
async fn deletion_is_platform_admin_only_audited_delayed_cancellable_and_then_tombstones() {
    let api = api().await;
    let tenant_admin = token(Some("acme"), &[Role::TenantAdmin]);
    assert_eq!(call(&api, "DELETE", "/v1/tenants/acme", &tenant_admin, None).await.0, 403);
    let (status, scheduled) = call(&api, "DELETE", "/v1/tenants/acme", &admin(), None).await;
    assert_eq!((status, scheduled["status"].as_str()), (202, Some("deleting")), "{scheduled}");
    let after = OffsetDateTime::parse(scheduled["delete_after"].as_str().expect("delete_after"), &time::format_description::well_known::Rfc3339).expect("rfc3339");
    let delay = after - OffsetDateTime::now_utc();
    assert!(delay > time::Duration::days(29) && delay <= time::Duration::days(30), "the configured 30 days: {delay}");
    assert_eq!(call(&api, "GET", "/v1/events", &token(Some("acme"), &[Role::Reader]), None).await.0, 200, "readable until the deadline");
    let (status, cancelled) = call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"status": "active"}))).await;
    assert_eq!((status, cancelled["status"].as_str(), cancelled.get("delete_after")), (200, Some("active"), None));
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"status": "deleted"}))).await.0, 422, "only DELETE deletes");

    assert_eq!(call(&api, "DELETE", "/v1/tenants/acme", &admin(), None).await.0, 202);
    retention::sweep(&api.state).await;
    assert_eq!(registered(&api, "acme").status, TenantStatus::Deleting, "not before the deadline");
    let due = TenantPatch { deletion: Some(Some(OffsetDateTime::now_utc() - time::Duration::seconds(1))), ..TenantPatch::default() };
    api.tenants.update_tenant("acme", due).await.expect("known tenant");
    retention::sweep(&api.state).await;
    assert_eq!(registered(&api, "acme").status, TenantStatus::Deleted, "tombstoned at the deadline");
    assert_eq!(call(&api, "POST", "/v1/tenants", &admin(), Some(json!({"id": "acme"}))).await.0, 409, "the id stays taken");
    let actions = trail(&api, "system").await;
    let wanted = ["tenant.delete.schedule:success", "tenant.update:success", "tenant.delete.schedule:success", "tenant.delete:success"];
    assert_eq!(actions, wanted, "each step recorded in the platform trail");
}

#[tokio::test]
async fn lowering_retention_is_platform_only_floored_and_waits_for_its_grace_period() {
    let api = api().await;
    let tenant_admin = token(Some("acme"), &[Role::TenantAdmin]);
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &tenant_admin, Some(json!({"retention_days": 30}))).await.0, 403);
    assert_eq!(registered(&api, "acme").retention_days, 365, "a refused lowering changes nothing");
    let (status, raised) = call(&api, "PATCH", "/v1/tenants/acme", &tenant_admin, Some(json!({"retention_days": 400}))).await;
    assert_eq!((status, raised["retention_days"].as_u64()), (200, Some(400)), "raising applies at once");
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"retention_days": 29}))).await.0, 422, "below the 30-day floor");
    // The floor bounds lowering: a platform admin may still create a tenant with a short
    // retention (nothing is erased by it).
    assert_eq!(call(&api, "POST", "/v1/tenants", &admin(), Some(json!({"id": "short", "retention_days": 1}))).await.0, 201);
    let (status, lowered) = call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"retention_days": 30}))).await;
    assert_eq!((status, lowered["retention_days"].as_u64(), lowered["pending_retention_days"].as_u64()), (200, Some(400), Some(30)), "{lowered}");
    retention::sweep(&api.state).await;
    assert_eq!(registered(&api, "acme").retention_days, 400, "not before the grace period ends");
    let (_, cancelled) = call(&api, "PATCH", "/v1/tenants/acme", &tenant_admin, Some(json!({"retention_days": 400}))).await;
    assert_eq!(cancelled.get("pending_retention_days"), None, "the same retention cancels the lowering");
    call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"retention_days": 30}))).await;
    let due = TenantPatch { pending_retention: Some(Some((30, OffsetDateTime::now_utc() - time::Duration::seconds(1)))), ..TenantPatch::default() };
    api.tenants.update_tenant("acme", due).await.expect("known tenant");
    retention::sweep(&api.state).await;
    let applied = registered(&api, "acme");
    assert_eq!((applied.retention_days, applied.pending_retention_days), (30, None), "applied once due");
    assert!(trail(&api, "acme").await.contains(&"tenant.retention.apply:success".to_owned()), "the trail says why");
}

#[tokio::test]
async fn a_legal_hold_stops_the_purge() {
    let api = api().await;
    let expired = old_event("acme", 400);
    let stored = StoredEvent { event: expired.clone(), position: LogPosition { topic: "seed".into(), partition: 0, offset: 0 } };
    api.store.upsert(std::slice::from_ref(&stored)).await.expect("store");
    api.index.index(std::slice::from_ref(&stored)).await.expect("index");
    let tenant_admin = token(Some("acme"), &[Role::TenantAdmin]);
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &tenant_admin, Some(json!({"legal_hold": false}))).await.0, 403);
    let (status, held) = call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"legal_hold": true}))).await;
    assert_eq!((status, held["legal_hold"].as_bool()), (200, Some(true)));
    assert_eq!(retention::sweep(&api.state).await, (0, 0), "nothing purged under a legal hold");
    assert!(api.store.get("acme", &expired.id).await.expect("store").is_some());
    call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"legal_hold": false}))).await;
    let (rows, _) = retention::sweep(&api.state).await;
    assert!(rows >= 1, "purged once the hold is lifted");
}

#[tokio::test]
async fn admin_changes_are_recorded_first_and_nothing_applies_when_recording_fails() {
    let api = api().await;
    api.log.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"name": "Renamed"}))).await.0, 503);
    assert_eq!(call(&api, "POST", "/v1/tenants", &admin(), Some(json!({"id": "globex"}))).await.0, 503);
    assert_eq!(registered(&api, "acme").name, "acme", "an unrecorded change is not applied");
    assert!(TenantRegistry::tenant(api.tenants.as_ref(), "globex").is_none());
    api.log.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"name": "Renamed"}))).await.0, 200);
    assert_eq!(trail(&api, "acme").await, ["tenant.update:success"], "only the applied change is in the trail, once");
}

/// Every record of the topic into the store and the index, as the processors would.
async fn materialize(api: &Api) {
    let codec = WireCodec::embedded();
    let mut stored = Vec::new();
    for record in log_records(api).await {
        let event = codec.decode(&record.payload).await.expect("decodes");
        stored.push(StoredEvent { event, position: record.position.clone() });
    }
    api.store.upsert(&stored).await.expect("store");
    api.index.index(&stored).await.expect("index");
}

#[tokio::test]
async fn a_tenant_admin_reads_its_own_admin_trail_and_no_other() {
    let api = api().await;
    api.tenants.upsert_tenant(TenantSettings::new("globex"));
    assert_eq!(call(&api, "PATCH", "/v1/tenants/acme", &admin(), Some(json!({"name": "Acme Corp"}))).await.0, 200);
    assert_eq!(call(&api, "POST", "/v1/tenants/acme/api-keys", &admin(), Some(json!({"name": "ci", "roles": ["writer"]}))).await.0, 201);
    assert_eq!(call(&api, "PATCH", "/v1/tenants/globex", &admin(), Some(json!({"name": "Globex"}))).await.0, 200);
    materialize(&api).await;

    let acme_admin = token(Some("acme"), &[Role::TenantAdmin]);
    let (status, page) = call(&api, "GET", "/v1/tenants/acme/admin-events", &acme_admin, None).await;
    assert_eq!(status, 200, "{page}");
    let actions: Vec<&str> = page["events"].as_array().expect("events").iter().map(|e| e["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["api_key.create", "tenant.update"], "acme's trail, newest first, nothing of globex");
    let (_, first) = call(&api, "GET", "/v1/tenants/acme/admin-events?limit=1", &acme_admin, None).await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (_, second) = call(&api, "GET", &format!("/v1/tenants/acme/admin-events?limit=1&cursor={cursor}"), &acme_admin, None).await;
    assert_eq!(second["events"][0]["action"], "tenant.update");
    assert_eq!(call(&api, "GET", &format!("/v1/tenants/globex/admin-events?limit=1&cursor={cursor}"), &admin(), None).await.0, 400, "a cursor opens its own trail only");

    assert_eq!(call(&api, "GET", "/v1/tenants/globex/admin-events", &acme_admin, None).await.0, 403);
    assert_eq!(call(&api, "GET", "/v1/tenants/acme/admin-events", &token(Some("acme"), &[Role::Reader]), None).await.0, 403);
    let (_, own) = call(&api, "GET", "/v1/events", &token(Some("acme"), &[Role::Reader]), None).await;
    assert_eq!(own["events"].as_array().map(Vec::len), Some(0), "the trail stays out of the tenant's own events: {own}");
}
