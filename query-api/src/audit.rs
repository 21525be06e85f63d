//! The platform audits itself: every administrative action becomes an [`AuditEvent`] of the
//! reserved tenant `system`, appended to the shared topic like any other event (so the read
//! models, the live tail and downstream consumers see it; read it with a `reader` credential
//! for tenant `system`).

use auditlog_api_common::auth::Principal;
use auditlog_schemas::{Actor, ActorType, AuditEvent, Outcome, Severity, Target};
use auditlog_seams::OutgoingRecord;
use time::OffsetDateTime;

use crate::error::QueryError;
use crate::state::QueryState;

/// Tenant of the platform's own audit events.
pub const SYSTEM_TENANT: &str = "system";

/// One administrative action to record.
#[derive(Debug)]
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

/// Appends `action` to the event log and waits for it to be durable.
pub async fn record(state: &QueryState, action: AdminAction<'_>) -> Result<(), QueryError> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now);
    let kind = if action.actor.subject.starts_with("api_key:") { ActorType::ApiKey } else { ActorType::User };
    let event = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: SYSTEM_TENANT.to_owned(),
        occurred_at: now,
        received_at: now,
        action: action.action.to_owned(),
        actor: Actor { id: action.actor.subject.clone(), kind, name: None, email: None },
        targets: action.targets.into_iter().map(|(kind, id)| Target { kind: kind.to_owned(), id, name: None }).collect(),
        outcome: Outcome::Success,
        severity: Severity::Info,
        source: Some(auditlog_schemas::Source { service: Some("auditlog-query-api".into()), version: Some(env!("CARGO_PKG_VERSION").into()), host: None }),
        context: None,
        description: None,
        metadata: action.metadata.as_object().cloned(),
    };
    let topic = state.config().topic();
    let backends = state.backends();
    let payload = backends.codec.encode(&topic, &event).await.map_err(|e| QueryError::Unavailable(format!("encoding an admin event: {e}")))?;
    backends.log.append(OutgoingRecord::for_event(&topic, &event, payload)).await?;
    Ok(())
}
