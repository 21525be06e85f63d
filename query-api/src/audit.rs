//! The platform audits itself: every administrative action becomes an [`AuditEvent`] appended
//! to the shared topic like any other event (so the read models, the live tail and downstream
//! consumers see it), **before** the change is applied.
//!
//! - **Recorded before its effect.** [`record`] appends and waits for the log's
//!   acknowledgement; the admin routes and the retention sweep call it first and apply the
//!   change only once it succeeded. If the append fails nothing is applied (503, retry). If
//!   the append succeeded and the apply then fails, a second event with `outcome: failure`
//!   is recorded ([`record_failure`], best effort), so the trail never shows a change that
//!   silently did not happen without saying so.
//! - **Where the trail lives.** Every action is written under the reserved tenant `system`
//!   (no credential may name it), with the tenant it concerns as a target of type `tenant`:
//!   platform operators read it on the topic (`auditlog tail`) or in the read models. It is
//!   deliberately not copied into the tenant's own events, which hold only what the tenant's
//!   producers sent (its lists, counts and exports stay exactly theirs); the tenant's
//!   `tenant_admin` reads its own trail at `GET /v1/tenants/{id}/admin-events`.

use auditlog_api_common::auth::Principal;
use auditlog_schemas::{Actor, ActorType, AuditEvent, Outcome, Severity, Target};
use auditlog_seams::OutgoingRecord;
use time::OffsetDateTime;

use crate::error::QueryError;
use crate::state::QueryState;

/// Tenant of the platform's own audit events.
pub const SYSTEM_TENANT: &str = "system";

/// One administrative action to record.
#[derive(Debug, Clone)]
pub struct AdminAction<'a> {
    /// Action name, e.g. `tenant.create`, `api_key.revoke`.
    pub action: &'static str,
    /// Who did it.
    pub actor: &'a Principal,
    /// What it was done to: `(type, id)` pairs.
    pub targets: Vec<(&'static str, String)>,
    /// Details (never secrets).
    pub metadata: serde_json::Value,
}

/// Appends `action` to the event log under `system` and waits for it to be durable.
pub async fn record(state: &QueryState, action: &AdminAction<'_>) -> Result<(), QueryError> {
    append(state, action, Outcome::Success).await
}

/// Records that an already recorded `action` could not be applied (best effort: logged when
/// even this fails).
pub async fn record_failure(state: &QueryState, action: &AdminAction<'_>, error: &QueryError) {
    let mut metadata = action.metadata.clone();
    if let Some(object) = metadata.as_object_mut() {
        object.insert("error".into(), serde_json::Value::String(error.to_string()));
    }
    let failed = AdminAction { action: action.action, actor: action.actor, targets: action.targets.clone(), metadata };
    if let Err(err) = append(state, &failed, Outcome::Failure).await {
        tracing::error!(action = action.action, error = %err, "recording that an admin action failed");
    }
}

async fn append(state: &QueryState, action: &AdminAction<'_>, outcome: Outcome) -> Result<(), QueryError> {
    append_as(state, action, outcome, SYSTEM_TENANT, action.action.to_owned()).await
}

async fn append_as(state: &QueryState, action: &AdminAction<'_>, outcome: Outcome, tenant: &str, name: String) -> Result<(), QueryError> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now);
    let kind = if action.actor.subject.starts_with("api_key:") { ActorType::ApiKey } else { ActorType::User };
    let event = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: now,
        received_at: now,
        action: name,
        actor: Actor { id: action.actor.subject.clone(), kind, name: None, email: None },
        targets: action.targets.iter().map(|(kind, id)| Target { kind: (*kind).to_owned(), id: id.clone(), name: None }).collect(),
        outcome,
        severity: Severity::Info,
        source: Some(auditlog_schemas::Source { service: Some("auditlog-query-api".into()), version: Some(env!("CARGO_PKG_VERSION").into()), host: None }),
        context: None,
        description: None,
        metadata: action.metadata.as_object().cloned(),
        signature: None,
    };
    let topic = state.config().topic();
    let backends = state.backends();
    let payload = backends.codec.encode(&topic, &event).await.map_err(|e| QueryError::Unavailable(format!("encoding an admin event: {e}")))?;
    backends.log.append(OutgoingRecord::for_event(&topic, &event, payload)).await?;
    Ok(())
}
