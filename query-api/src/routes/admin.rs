//! Administration on the shared tenant registry (the gateway's), each change recorded as an
//! audit event of the platform trail **before** it is applied ([`crate::audit`]): tenants (`platform_admin`; a tenant's own `tenant_admin`
//! reads its settings, raises its retention and sets its `signatures` policy), a tenant's API
//! keys and its producers' signing keys (issue #15: register, list, revoke from a time on; its
//! `tenant_admin`, or a platform admin).
//!
//! No self-erasure (issue #13):
//! - lowering `retention_days` is `platform_admin`-only (403 for a `tenant_admin`), never
//!   below `retention_floor_days` (422), and is not applied at once: it becomes
//!   `pending_retention_days` effective `retention_lowering_grace_secs` later (applied by the
//!   retention sweep); PATCHing the current or a higher `retention_days` cancels it, raising
//!   applies at once;
//! - `legal_hold` (platform_admin) stops every purge of the tenant;
//! - `status` (platform_admin): `active` or `disabled`; `DELETE /v1/tenants/{id}` schedules
//!   the deletion (`deleting`, `delete_after` = now + `tenant_deletion_delay_secs`), which
//!   `{"status":"active"}` cancels until then; the sweep tombstones it (`deleted`) when due.

use auditlog_tenant_registry::{ApiKeyRecord, IssuedKey, NewSigningKey, Role, SignaturePolicy, SigningKeyRecord, TenantPatch, TenantSettings, TenantStatus};
use time::OffsetDateTime;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, AdminAction};
use crate::auth::Caller;
use crate::error::{FieldProblem, QueryError};
use crate::state::QueryState;

/// Partitions of a dedicated topic created when a tenant is pinned to one.
const DEDICATED_PARTITIONS: i32 = 6;

/// `POST /v1/tenants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// `[a-z0-9][a-z0-9_-]{0,62}`, not `system` or `dlq`.
    pub id: String,
    /// Display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Days events are served and kept (default 365).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Events per second the tenant may ingest (gateway default when absent).
    #[serde(default)]
    pub rate_limit_per_sec: Option<u32>,
    /// Whether the tenant's events go to `<prefix>.v1.<tenant>`.
    #[serde(default)]
    pub dedicated_topic: bool,
    /// Whether events must carry a producer's signature: `off` (default), `optional`, `required`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "optional")]
    pub signatures: Option<SignaturePolicy>,
}

/// `POST /v1/tenants/{id}/api-keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Human label.
    pub name: String,
    /// Roles of the key: `tenant_admin`, `writer`, `reader`.
    pub roles: Vec<String>,
}

/// `POST /v1/tenants/{id}/signing-keys` body: a producer's public key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSigningKeyBody {
    /// `[A-Za-z0-9._:-]{1,128}`, unique in the tenant; default: the first 16 hex digits of the
    /// SHA-256 of the raw public key.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The producing service the key belongs to.
    pub producer: String,
    /// `ed25519` or `ecdsa-p256-sha256`.
    #[schema(example = "ed25519")]
    pub alg: String,
    /// The raw public key in standard base64: 32 bytes for `ed25519`, a SEC1 point (33 or 65
    /// bytes) for `ecdsa-p256-sha256`.
    pub public_key: String,
    /// RFC 3339; earliest `occurred_at` the key verifies (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_before: Option<OffsetDateTime>,
    /// RFC 3339, after `not_before`; `occurred_at` from which the key no longer verifies.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_after: Option<OffsetDateTime>,
}

/// `POST /v1/tenants/{id}/signing-keys/{key_id}/revoke` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeSigningKey {
    /// RFC 3339; events that occurred from then on no longer verify (default: now). A key
    /// revoked already keeps the earlier time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A registered signing key, as the signing-key routes answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    /// Unique in the tenant; what an event's `signature.key_id` names.
    pub key_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The producing service.
    pub producer: String,
    /// `ed25519` or `ecdsa-p256-sha256`.
    pub alg: String,
    /// The raw public key, standard base64.
    pub public_key: String,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub not_before: String,
    /// RFC 3339, or null.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_after: Option<String>,
    /// RFC 3339, or null while the key is not revoked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<String>,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
}

/// A tenant's signing keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyList {
    /// Keys, revoked and expired ones included, oldest first.
    #[schema(value_type = Vec<SigningKey>)]
    pub keys: Vec<SigningKeyRecord>,
}

/// Tenants list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// Every tenant, by id.
    #[schema(value_type = Vec<Object>)]
    pub tenants: Vec<TenantSettings>,
}

/// A tenant's keys (never their secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, revoked ones included, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub api_keys: Vec<ApiKeyRecord>,
}

/// The JSON body of an admin request: 415 unless declared `application/json`, 400 when not
/// JSON, 422 naming the field (its path, e.g. `retention_days`) when it does not fit `T`.
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, QueryError> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("none");
    let essence = declared.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(QueryError::UnsupportedMediaType(declared.to_owned()));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| QueryError::MalformedJson(e.to_string()))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // The path names the offending field, an unknown one included; a missing field is an
        // error of the object that lacks it, so its name is added.
        let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "body".to_owned(),
            (path, Some(name)) => format!("{path}.{name}"),
            (path, None) => path.to_owned(),
        };
        QueryError::Validation(vec![FieldProblem { field, message }])
    })
}

async fn dedicate(state: &QueryState, tenant: &str) -> Result<(), QueryError> {
    state.backends().log.ensure_topic_as(&state.config().dedicated_topic_spec(tenant, DEDICATED_PARTITIONS)).await?;
    Ok(())
}

/// Records `action`, then runs `apply`: an admin change is in the audit trail before it takes
/// effect. A failure to record applies nothing (503: retry); a failure to apply after the
/// record is recorded too (outcome `failure`).
pub(crate) async fn audited<T, F>(state: &QueryState, action: AdminAction<'_>, apply: F) -> Result<T, QueryError>
where
    F: std::future::Future<Output = Result<T, QueryError>>,
{
    let name = action.action;
    if let Err(err) = audit::record(state, &action).await {
        crate::metrics::admin_action(name, false);
        tracing::error!(action = name, error = %err, "admin action not recorded, so not applied");
        return Err(err);
    }
    let applied = apply.await;
    crate::metrics::admin_action(name, applied.is_ok());
    if let Err(err) = &applied {
        audit::record_failure(state, &action, err).await;
    }
    applied
}

fn invalid(field: &str, message: impl Into<String>) -> QueryError {
    QueryError::Validation(vec![FieldProblem { field: field.into(), message: message.into() }])
}

fn floor_check(state: &QueryState, days: u32) -> Result<(), QueryError> {
    let floor = state.config().retention_floor_days;
    if days < floor { Err(invalid("retention_days", format!("must be at least {floor} (retention_floor_days)"))) } else { Ok(()) }
}

/// `POST /v1/tenants`.
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", request_body = NewTenant,
    responses((status = 201, body = Object), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_tenant(State(state): State<QueryState>, caller: Caller, headers: HeaderMap, body: Bytes) -> Result<Response, QueryError> {
    caller.require_platform_admin()?;
    let new: NewTenant = parse_body(&headers, &body)?;
    let mut settings = TenantSettings::new(new.id);
    if let Some(name) = new.name {
        settings.name = name;
    }
    if let Some(days) = new.retention_days {
        settings.retention_days = days;
    }
    settings.rate_limit_per_sec = new.rate_limit_per_sec;
    settings.dedicated_topic = new.dedicated_topic;
    settings.signatures = new.signatures.unwrap_or_default();
    // The floor bounds lowering only: a platform admin may create a tenant with any retention.
    settings.validate()?;
    if state.backends().tenants.tenant(&settings.id).is_some() {
        return Err(QueryError::Conflict(format!("tenant {} already exists", settings.id)));
    }
    if settings.dedicated_topic {
        dedicate(&state, &settings.id).await?;
    }
    let metadata = serde_json::to_value(&settings).unwrap_or_default();
    let action = AdminAction { action: "tenant.create", actor: &caller.0, targets: vec![("tenant", settings.id.clone())], metadata };
    let created = audited(&state, action, async { Ok(state.backends().tenants.create_tenant(settings).await?) }).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /v1/tenants`.
#[utoipa::path(get, path = "/v1/tenants", tag = "admin", responses((status = 200, body = TenantList), (status = 403)), security(("bearer" = [])))]
pub async fn list_tenants(State(state): State<QueryState>, caller: Caller) -> Result<Json<TenantList>, QueryError> {
    caller.require_platform_admin()?;
    Ok(Json(TenantList { tenants: state.backends().tenants.list_tenants() }))
}

/// `GET /v1/tenants/{id}`.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get_tenant(State(state): State<QueryState>, caller: Caller, Path(id): Path<String>) -> Result<Json<TenantSettings>, QueryError> {
    caller.require_tenant_admin(&id)?;
    state.backends().tenants.tenant(&id).map(Json).ok_or(QueryError::NotFound)
}

/// `PATCH /v1/tenants/{id}`.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "admin", params(("id" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update_tenant(
    State(state): State<QueryState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TenantSettings>, QueryError> {
    caller.require_tenant_admin(&id)?;
    let mut patch: TenantPatch = parse_body(&headers, &body)?;
    let platform = caller.0.has(Role::PlatformAdmin);
    if !platform {
        // A tenant admin may raise its tenant's retention; everything else is the platform's.
        let platform_only = [
            ("name", patch.name.is_some()),
            ("rate_limit_per_sec", patch.rate_limit_per_sec.is_some()),
            ("dedicated_topic", patch.dedicated_topic.is_some()),
            ("status", patch.status.is_some()),
            ("legal_hold", patch.legal_hold.is_some()),
        ];
        let named: Vec<&str> = platform_only.iter().filter(|(_, set)| *set).map(|(field, _)| *field).collect();
        if !named.is_empty() {
            return Err(QueryError::Forbidden(format!("changing {} needs the platform_admin role", named.join(", "))));
        }
    }
    let current = state.backends().tenants.tenant(&id).ok_or(QueryError::NotFound)?;
    if current.status == TenantStatus::Deleted {
        return Err(QueryError::Conflict(format!("tenant {id} is deleted")));
    }
    if matches!(patch.status, Some(TenantStatus::Deleting | TenantStatus::Deleted)) {
        return Err(invalid("status", "must be active or disabled; DELETE /v1/tenants/{id} schedules a deletion"));
    }
    plan_retention(&state, &current, &mut patch, platform)?;
    let planned = patch.clone().apply(current);
    planned.validate()?;
    if patch.dedicated_topic == Some(true) {
        dedicate(&state, &id).await?;
    }
    let metadata = json!({"patch": patch, "settings": planned});
    let action = AdminAction { action: "tenant.update", actor: &caller.0, targets: vec![("tenant", id.clone())], metadata };
    let updated = audited(&state, action, async { Ok(state.backends().tenants.update_tenant(&id, patch).await?) }).await?;
    Ok(Json(updated))
}

/// Turns a lowering of `retention_days` into a pending one (platform_admin only, at least the
/// floor, effective after the grace period); a raise or the same value applies at once and
/// cancels a pending lowering.
fn plan_retention(state: &QueryState, current: &TenantSettings, patch: &mut TenantPatch, platform: bool) -> Result<(), QueryError> {
    let Some(days) = patch.retention_days else { return Ok(()) };
    if days >= current.retention_days {
        if current.pending_retention_days.is_some() {
            patch.pending_retention = Some(None);
        }
        return Ok(());
    }
    if !platform {
        return Err(QueryError::Forbidden("lowering retention_days needs the platform_admin role".into()));
    }
    floor_check(state, days)?;
    let grace = time::Duration::seconds(i64::try_from(state.config().retention_lowering_grace_secs).unwrap_or(i64::MAX));
    patch.retention_days = None;
    patch.pending_retention = Some(Some((days, OffsetDateTime::now_utc() + grace)));
    Ok(())
}

/// `DELETE /v1/tenants/{id}`: 202 with the settings; the tenant is `deleting` until
/// `delete_after` (`tenant_deletion_delay_secs` from now), then tombstoned by the sweep.
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 202, body = Object), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
pub async fn delete_tenant(State(state): State<QueryState>, caller: Caller, Path(id): Path<String>) -> Result<Response, QueryError> {
    caller.require_platform_admin()?;
    let current = state.backends().tenants.tenant(&id).ok_or(QueryError::NotFound)?;
    match current.status {
        TenantStatus::Deleted => return Err(QueryError::Conflict(format!("tenant {id} is deleted"))),
        TenantStatus::Deleting => return Ok((StatusCode::ACCEPTED, Json(current)).into_response()),
        TenantStatus::Active | TenantStatus::Disabled => {}
    }
    let delay = time::Duration::seconds(i64::try_from(state.config().tenant_deletion_delay_secs).unwrap_or(i64::MAX));
    let delete_after = OffsetDateTime::now_utc() + delay;
    let patch = TenantPatch { deletion: Some(Some(delete_after)), ..TenantPatch::default() };
    let metadata = json!({"delete_after": delete_after.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()});
    let action = AdminAction { action: "tenant.delete.schedule", actor: &caller.0, targets: vec![("tenant", id.clone())], metadata };
    let updated = audited(&state, action, async { Ok(state.backends().tenants.update_tenant(&id, patch).await?) }).await?;
    Ok((StatusCode::ACCEPTED, Json(updated)).into_response())
}

/// `POST /v1/tenants/{id}/api-keys`: 201 `{key_id, key}`, the secret shown this once.
#[utoipa::path(post, path = "/v1/tenants/{id}/api-keys", tag = "admin", params(("id" = String, Path)), request_body = NewApiKey,
    responses((status = 201, description = "`{key_id, key}`"), (status = 403), (status = 404), (status = 422)), security(("bearer" = []), ("api_key" = [])))]
pub async fn create_api_key(
    State(state): State<QueryState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    caller.require_tenant_admin(&id)?;
    let new: NewApiKey = parse_body(&headers, &body)?;
    let roles = new
        .roles
        .iter()
        .map(|r| Role::parse(r).ok_or_else(|| QueryError::Validation(vec![FieldProblem { field: "roles".into(), message: format!("unknown role {r:?}") }])))
        .collect::<Result<Vec<_>, _>>()?;
    auditlog_tenant_registry::validate::api_key_request(&new.name, &roles)?;
    match state.backends().tenants.tenant(&id) {
        None => return Err(QueryError::NotFound),
        Some(t) if !t.status.accepts_credentials() => return Err(QueryError::Conflict(format!("tenant {id} is deleted"))),
        Some(_) => {}
    }
    // The key id is drawn by the registry, so the record names the request; the key's id is
    // in the trail through the `api_key.create` answer and the key list.
    let metadata = json!({"name": new.name, "roles": roles});
    let action = AdminAction { action: "api_key.create", actor: &caller.0, targets: vec![("tenant", id.clone())], metadata };
    let issued: IssuedKey = audited(&state, action, async { Ok(state.backends().tenants.create_api_key(&id, &new.name, roles.clone()).await?) }).await?;
    Ok((StatusCode::CREATED, Json(json!({"key_id": issued.key_id, "key": issued.key}))).into_response())
}

/// `GET /v1/tenants/{id}/api-keys`.
#[utoipa::path(get, path = "/v1/tenants/{id}/api-keys", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyList), (status = 403), (status = 404)), security(("bearer" = []), ("api_key" = [])))]
pub async fn list_api_keys(State(state): State<QueryState>, caller: Caller, Path(id): Path<String>) -> Result<Json<ApiKeyList>, QueryError> {
    caller.require_tenant_admin(&id)?;
    Ok(Json(ApiKeyList { api_keys: state.backends().tenants.list_api_keys(&id)? }))
}

/// `DELETE /v1/tenants/{id}/api-keys/{key_id}`: 204; the key stops authenticating.
#[utoipa::path(delete, path = "/v1/tenants/{id}/api-keys/{key_id}", tag = "admin", params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_api_key(State(state): State<QueryState>, caller: Caller, Path((id, key_id)): Path<(String, String)>) -> Result<StatusCode, QueryError> {
    caller.require_tenant_admin(&id)?;
    let tenants = &state.backends().tenants;
    if tenants.list_api_keys(&id)?.iter().any(|k| k.key_id == key_id && k.revoked) {
        return Ok(StatusCode::NO_CONTENT); // revoked before: nothing changes, nothing to record
    }
    let Some(record) = tenants.list_api_keys(&id)?.into_iter().find(|k| k.key_id == key_id) else {
        return Err(QueryError::NotFound);
    };
    let metadata = json!({"key_id": record.key_id, "name": record.name});
    let targets = vec![("tenant", id.clone()), ("api_key", key_id.clone())];
    let action = AdminAction { action: "api_key.revoke", actor: &caller.0, targets, metadata };
    audited(&state, action, async { Ok(tenants.revoke_api_key(&id, &key_id).await?) }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/tenants/{id}/signing-keys`: 201 with the registered key. Every field is checked
/// before anything is recorded (422 naming it; 409 naming `key_id` when the tenant has the id).
#[utoipa::path(post, path = "/v1/tenants/{id}/signing-keys", tag = "admin", params(("id" = String, Path)), request_body = NewSigningKeyBody,
    responses((status = 201, body = SigningKey), (status = 403), (status = 404), (status = 409), (status = 422)), security(("bearer" = []), ("api_key" = [])))]
pub async fn create_signing_key(
    State(state): State<QueryState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    caller.require_tenant_admin(&id)?;
    let new: NewSigningKeyBody = parse_body(&headers, &body)?;
    let tenants = &state.backends().tenants;
    match tenants.tenant(&id) {
        None => return Err(QueryError::NotFound),
        Some(t) if !t.status.accepts_credentials() => return Err(QueryError::Conflict(format!("tenant {id} is deleted"))),
        Some(_) => {}
    }
    let request = NewSigningKey {
        key_id: new.key_id,
        producer: new.producer,
        alg: new.alg,
        public_key: new.public_key,
        not_before: new.not_before,
        not_after: new.not_after,
    };
    let planned = request.clone().into_record(&id, OffsetDateTime::now_utc())?;
    if tenants.list_signing_keys(&id)?.iter().any(|k| k.key_id == planned.key_id) {
        return Err(auditlog_tenant_registry::RegistryError::SigningKeyExists(planned.key_id).into());
    }
    // The registry registers exactly what the trail records: the id and window planned here.
    let request = NewSigningKey { key_id: Some(planned.key_id.clone()), not_before: Some(planned.not_before), ..request };
    let metadata = json!({
        "key_id": planned.key_id, "producer": planned.producer, "alg": planned.alg, "public_key": planned.public_key,
        "not_before": rfc3339(planned.not_before), "not_after": planned.not_after.map(rfc3339),
    });
    let targets = vec![("tenant", id.clone()), ("signing_key", planned.key_id.clone())];
    let action = AdminAction { action: "signing_key.create", actor: &caller.0, targets, metadata };
    let created = audited(&state, action, async { Ok(tenants.add_signing_key(&id, request).await?) }).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `GET /v1/tenants/{id}/signing-keys`: `{keys: [...]}`, revoked and expired ones included.
#[utoipa::path(get, path = "/v1/tenants/{id}/signing-keys", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = SigningKeyList), (status = 403), (status = 404)), security(("bearer" = []), ("api_key" = [])))]
pub async fn list_signing_keys(State(state): State<QueryState>, caller: Caller, Path(id): Path<String>) -> Result<Json<SigningKeyList>, QueryError> {
    caller.require_tenant_admin(&id)?;
    Ok(Json(SigningKeyList { keys: state.backends().tenants.list_signing_keys(&id)? }))
}

/// `POST /v1/tenants/{id}/signing-keys/{key_id}/revoke`: 200 with the key; events that
/// occurred from `revoked_at` (default now) on no longer verify, those before stay valid. A
/// key revoked already keeps the earlier time (nothing changes, nothing is recorded).
#[utoipa::path(post, path = "/v1/tenants/{id}/signing-keys/{key_id}/revoke", tag = "admin", params(("id" = String, Path), ("key_id" = String, Path)),
    request_body(content = Option<RevokeSigningKey>, description = "optional; an empty body revokes from now"),
    responses((status = 200, body = SigningKey), (status = 403), (status = 404), (status = 422)), security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_signing_key(
    State(state): State<QueryState>,
    caller: Caller,
    Path((id, key_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SigningKeyRecord>, QueryError> {
    caller.require_tenant_admin(&id)?;
    let revoke: RevokeSigningKey = if body.iter().all(u8::is_ascii_whitespace) { RevokeSigningKey::default() } else { parse_body(&headers, &body)? };
    let at = revoke.revoked_at.unwrap_or_else(OffsetDateTime::now_utc).to_offset(time::UtcOffset::UTC);
    let tenants = &state.backends().tenants;
    let Some(known) = tenants.list_signing_keys(&id)?.into_iter().find(|k| k.key_id == key_id) else {
        return Err(auditlog_tenant_registry::RegistryError::UnknownSigningKey(key_id).into());
    };
    if known.revoked_at.is_some_and(|was| was <= at) {
        return Ok(Json(known)); // revoked at or before `at`: nothing changes, nothing to record
    }
    let metadata = json!({"key_id": key_id, "producer": known.producer, "revoked_at": rfc3339(at), "previously_revoked_at": known.revoked_at.map(rfc3339)});
    let targets = vec![("tenant", id.clone()), ("signing_key", key_id.clone())];
    let action = AdminAction { action: "signing_key.revoke", actor: &caller.0, targets, metadata };
    let revoked = audited(&state, action, async { Ok(tenants.revoke_signing_key(&id, &key_id, at).await?) }).await?;
    Ok(Json(revoked))
}

/// `GET /v1/tenants/{id}/admin-events`: the tenant's admin trail, newest first: every admin
/// action on the tenant (tenant settings, deletion, retention, API keys), as the platform
/// recorded it (tenant `system`, target `tenant` = id), paged like `GET /v1/events`. For the
/// tenant's own `tenant_admin`, or a platform admin. The trail is kept out of the tenant's own
/// events, so its lists, counts and exports hold only what its producers sent.
#[utoipa::path(get, path = "/v1/tenants/{id}/admin-events", tag = "admin",
    params(("id" = String, Path), ("limit" = Option<usize>, Query, description = "1..=1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = crate::routes::events::EventPage), (status = 400), (status = 403), (status = 404), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_admin_events(
    State(state): State<QueryState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<crate::routes::events::EventPage>, QueryError> {
    caller.require_tenant_admin(&id)?;
    if state.backends().tenants.tenant(&id).is_none() {
        return Err(QueryError::NotFound);
    }
    let params = crate::params::Params::parse(raw.as_deref(), &[&["limit", "cursor"]])?;
    let limits = &state.config().limits;
    let limit = params.limit(limits.default_page_size, limits.max_page_size)?;
    // The cursor is bound to this tenant's trail: it opens no other.
    let query = format!("admin-events:{id}");
    let after = match params.get("cursor") {
        None => None,
        Some(cursor) => Some(state.cursors().open(cursor, audit::SYSTEM_TENANT, &query)?.1),
    };
    let filter = auditlog_seams::EventFilter {
        tenant_id: audit::SYSTEM_TENANT.to_owned(),
        target_type: Some("tenant".to_owned()),
        target_id: Some(id.clone()),
        ..auditlog_seams::EventFilter::default()
    };
    let backend = crate::cursor::Backend::Store;
    let page = crate::reads::page(&state, backend, &filter, &auditlog_seams::PageRequest { limit, after }).await?;
    let next_cursor = page.next.map(|inner| state.cursors().seal(backend, audit::SYSTEM_TENANT, &query, &inner));
    Ok(Json(crate::routes::events::EventPage { events: page.events.into_iter().map(|s| crate::ledger::EventView::plain(&state, s.event, None, None)).collect(), next_cursor }))
}
