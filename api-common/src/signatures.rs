//! Producer signatures (`docs/signing.md`) checked against the keys a tenant registered: the
//! gateway's ingest rule ([`check_ingest`]) and the `verified` status reads show
//! ([`verified`]). Both look the key up by the signature's `key_id` in the tenant's registry
//! and verify with the window the key had at the event's `occurred_at`.

use auditlog_schemas::AuditEvent;
use auditlog_schemas::signing::{KeyWindow, verify};
use auditlog_schemas::SignatureAlg;
use auditlog_tenant_registry::{SignaturePolicy, SigningKeyRecord, TenantRegistry};
use base64::Engine as _;

/// A registered key as the verifier takes it; `None` when the record does not parse (the
/// registry validates records, so only a newer writer's algorithm gets here).
pub fn key_window(record: &SigningKeyRecord) -> Option<KeyWindow> {
    Some(KeyWindow {
        alg: SignatureAlg::parse(&record.alg)?,
        public_key: base64::engine::general_purpose::STANDARD.decode(&record.public_key).ok()?,
        not_before: record.not_before,
        not_after: record.not_after,
        revoked_at: record.revoked_at,
    })
}

/// Whether `event` of `tenant` may be appended, by the tenant's `signatures` policy: `off`
/// takes any event (a signature is kept as sent, and reads show whether it verifies);
/// `optional` verifies a present signature; `required` also refuses an unsigned event. `Err`
/// is the reason, for a 422 naming `signature`.
pub fn check_ingest(registry: &dyn TenantRegistry, tenant: &str, event: &AuditEvent) -> Result<(), String> {
    let policy = registry.tenant(tenant).map(|t| t.signatures).unwrap_or_default();
    match (&event.signature, policy) {
        (_, SignaturePolicy::Off) | (None, SignaturePolicy::Optional) => Ok(()),
        (None, SignaturePolicy::Required) => Err("this tenant accepts signed events only".to_owned()),
        (Some(signature), _) => {
            let record = registry.signing_key(tenant, &signature.key_id).ok_or_else(|| format!("unknown key id {:?}", signature.key_id))?;
            let window = key_window(&record).ok_or_else(|| format!("key {:?} has an algorithm this version does not know", signature.key_id))?;
            verify(event, &window).map_err(|problem| format!("key {:?}: {problem}", signature.key_id))
        }
    }
}

/// The `verified` status of an event read back: `None` when it carries no signature, else
/// whether its signature verifies now with the key its `key_id` names (unknown keys do not).
pub fn verified(registry: &dyn TenantRegistry, tenant: &str, event: &AuditEvent) -> Option<bool> {
    let signature = event.signature.as_ref()?;
    let window = registry.signing_key(tenant, &signature.key_id).as_ref().and_then(key_window);
    Some(window.is_some_and(|window| verify(event, &window).is_ok()))
}
