//! The registry's entities as the admin API and the registry topic carry them (JSON).
//!
//! # Tenant lifecycle (issue #13)
//! - **`active`**: ingest and reads allowed.
//! - **`disabled`** (`PATCH {"status":"disabled"}`, platform_admin): ingest is refused (403);
//!   reads stay allowed, so an auditor can still read and export a disabled tenant's trail
//!   (disabling stops a tenant from writing, it must not hide what it wrote).
//! - **`deleting`** (`DELETE /v1/tenants/{id}`, platform_admin): an audited, delayed deletion;
//!   `delete_after` says when. Like `disabled` until then; `PATCH {"status":"active"}` (or
//!   `"disabled"`) before the deadline cancels it.
//! - **`deleted`**: set by the query API's sweeper once `delete_after` has passed (audited).
//!   The record stays in the registry as a tombstone state (never a compaction tombstone, which
//!   a lagging reader could miss): every credential of the tenant, its API keys included, is
//!   refused, and the id cannot be registered again. Purging its data from the log and the
//!   read models is a separate, later step (not done yet); a legal hold keeps it.
//!
//! Retention changes: raising `retention_days` applies at once; lowering it is recorded as
//! `pending_retention_days` with `pending_effective_at` and applied by the sweeper at that
//! time (the query API's admin route decides who may lower, the floor and the grace period).

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::error::FieldProblem;
use crate::validate::{self, MAX_RATE_LIMIT_PER_SEC, MAX_RETENTION_DAYS};
use crate::{RegistryError, Role};

/// Retention when none is given: one year, a common floor of audit regulations (SOC 2
/// evidence windows, PCI DSS 10.5.1) while keeping storage bounded.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// Where a tenant is in its lifecycle (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Ingest and reads allowed.
    #[default]
    Active,
    /// Ingest refused, reads allowed.
    Disabled,
    /// Deletion scheduled at `delete_after`; ingest refused, reads allowed until then.
    Deleting,
    /// Tombstoned: every credential of the tenant is refused.
    Deleted,
}

impl TenantStatus {
    /// Whether the tenant may ingest.
    pub fn accepts_writes(self) -> bool {
        self == Self::Active
    }

    /// Whether the tenant's credentials (API keys included) are honoured at all; reads of a
    /// disabled or deleting tenant stay allowed.
    pub fn accepts_credentials(self) -> bool {
        self != Self::Deleted
    }
}

/// Whether a tenant's events must, may or need not carry a producer's signature (issue #15):
/// `off` (the default, also of records written before it existed): a signature is kept as
/// sent, not checked; `optional`: a present signature must verify; `required`: every event
/// must carry one that verifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignaturePolicy {
    /// Signatures are not checked.
    #[default]
    Off,
    /// A present signature must verify; unsigned events are accepted.
    Optional,
    /// Every event must carry a signature that verifies.
    Required,
}

impl SignaturePolicy {
    /// The policy's name in JSON: `off`, `optional`, `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

impl std::fmt::Display for SignaturePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SignaturePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Off, Self::Optional, Self::Required]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown signature policy {s:?} (known: off, optional, required)"))
    }
}

/// Settings of one tenant: `{id, name, retention_days, rate_limit_per_sec, dedicated_topic}`.
/// Unknown JSON fields are ignored when reading, so older services read newer records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Tenant id, `[a-z0-9][a-z0-9_-]{0,62}`, not `dlq` or `system`.
    pub id: String,
    /// Display name; [`crate::TenantAdmin::create_tenant`] uses the id when it is empty.
    #[serde(default)]
    pub name: String,
    /// Days events are served and kept; default [`DEFAULT_RETENTION_DAYS`].
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Events per second the tenant may ingest; `None` uses the gateway default.
    #[serde(default)]
    pub rate_limit_per_sec: Option<u32>,
    /// Whether the tenant's events go to its own topic `<prefix>.v1.<tenant>`.
    #[serde(default)]
    pub dedicated_topic: bool,
    /// Lifecycle state; records written before it existed are `active`.
    #[serde(default)]
    pub status: TenantStatus,
    /// When a `deleting` tenant becomes `deleted`.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<OffsetDateTime>,
    /// While true, nothing of the tenant is purged (retention sweeps skip it).
    #[serde(default)]
    pub legal_hold: bool,
    /// A lowered retention waiting for its grace period to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_retention_days: Option<u32>,
    /// When `pending_retention_days` takes effect.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub pending_effective_at: Option<OffsetDateTime>,
    /// Whether events must carry a producer's signature; records written before it existed
    /// are `off`.
    #[serde(default)]
    pub signatures: SignaturePolicy,
}

impl TenantSettings {
    /// Settings with every default (the name is the id).
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            name: id.clone(),
            id,
            retention_days: DEFAULT_RETENTION_DAYS,
            rate_limit_per_sec: None,
            dedicated_topic: false,
            status: TenantStatus::Active,
            delete_after: None,
            legal_hold: false,
            pending_retention_days: None,
            pending_effective_at: None,
            signatures: SignaturePolicy::Off,
        }
    }

    /// Every problem of these settings, or `Ok`.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let mut problems = Vec::new();
        if let Some(m) = validate::tenant_id_problem(&self.id) {
            problems.push(FieldProblem::new("id", m));
        }
        if let Some(m) = validate::name_problem(&self.name) {
            problems.push(FieldProblem::new("name", m));
        }
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            problems.push(FieldProblem::new("retention_days", format!("must be within 1..={MAX_RETENTION_DAYS}")));
        }
        if self.rate_limit_per_sec.is_some_and(|r| !(1..=MAX_RATE_LIMIT_PER_SEC).contains(&r)) {
            problems.push(FieldProblem::new("rate_limit_per_sec", format!("must be within 1..={MAX_RATE_LIMIT_PER_SEC}")));
        }
        if (self.status == TenantStatus::Deleting) != self.delete_after.is_some() {
            problems.push(FieldProblem::new("status", "a deletion is scheduled by DELETE /v1/tenants/{id}, with a delete_after"));
        }
        if self.pending_retention_days.is_some() != self.pending_effective_at.is_some() {
            problems.push(FieldProblem::new("retention_days", "a pending retention needs its effective time"));
        }
        if self.pending_retention_days.is_some_and(|days| !(1..=MAX_RETENTION_DAYS).contains(&days)) {
            problems.push(FieldProblem::new("pending_retention_days", format!("must be within 1..={MAX_RETENTION_DAYS}")));
        }
        validate::check(problems)
    }
}

/// A partial update of a tenant (`PATCH /v1/tenants/{id}`); absent fields stay as they are,
/// `"rate_limit_per_sec": null` returns to the gateway default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// `Some(None)` clears the tenant's own limit.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<Option<u32>>,
    /// Pin to or unpin from a dedicated topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_topic: Option<bool>,
    /// `active` (also cancels a scheduled deletion) or `disabled`; `deleting` is set by
    /// `DELETE /v1/tenants/{id}` only ([`Self::deletion`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TenantStatus>,
    /// Sets or lifts the legal hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
    /// New signature policy (`off`, `optional`, `required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignaturePolicy>,
    /// Internal (never from a request body): schedules (`Some(Some(at))`) a deletion.
    #[serde(skip)]
    pub deletion: Option<Option<OffsetDateTime>>,
    /// Internal (never from a request body): sets (`Some(Some((days, at)))`) or cancels
    /// (`Some(None)`) a pending retention lowering.
    #[serde(skip)]
    pub pending_retention: Option<Option<(u32, OffsetDateTime)>>,
}

/// A field that is present (even as `null`) deserializes to `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl TenantPatch {
    /// `settings` with this patch applied (not yet validated).
    pub fn apply(&self, mut settings: TenantSettings) -> TenantSettings {
        if let Some(name) = &self.name {
            settings.name.clone_from(name);
        }
        if let Some(days) = self.retention_days {
            settings.retention_days = days;
        }
        if let Some(limit) = self.rate_limit_per_sec {
            settings.rate_limit_per_sec = limit;
        }
        if let Some(dedicated) = self.dedicated_topic {
            settings.dedicated_topic = dedicated;
        }
        if let Some(status) = self.status {
            settings.status = status;
            if status != TenantStatus::Deleting {
                settings.delete_after = None;
            }
        }
        if let Some(deletion) = self.deletion {
            settings.delete_after = deletion;
            if deletion.is_some() {
                settings.status = TenantStatus::Deleting;
            }
        }
        if let Some(hold) = self.legal_hold {
            settings.legal_hold = hold;
        }
        if let Some(policy) = self.signatures {
            settings.signatures = policy;
        }
        if let Some(pending) = self.pending_retention {
            settings.pending_retention_days = pending.map(|(days, _)| days);
            settings.pending_effective_at = pending.map(|(_, at)| at);
        }
        settings
    }
}

/// A stored API key: never the secret (the registry keeps its hash beside this record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public identifier, for listing and revocation.
    pub key_id: String,
    /// Tenant the key is scoped to.
    pub tenant_id: String,
    /// Human label.
    pub name: String,
    /// Roles the key grants.
    pub roles: Vec<Role>,
    /// Revoked keys stay listed but never authenticate.
    pub revoked: bool,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl ApiKeyRecord {
    /// Every problem of this record, or `Ok`: what the admin API requires of a key it issues
    /// (a key id as issued, a registrable tenant, a usable name, at least one role and never
    /// `platform_admin`), checked again on every record read back from the topic or the file.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let mut problems = Vec::new();
        if let Some(m) = validate::key_id_problem(&self.key_id) {
            problems.push(FieldProblem::new("key_id", m));
        }
        if let Some(m) = validate::tenant_id_problem(&self.tenant_id) {
            problems.push(FieldProblem::new("tenant_id", m));
        }
        problems.extend(validate::api_key_problems(&self.name, &self.roles));
        validate::check(problems)
    }
}

/// A key as created: its id and the secret, shown this once (`201 {key_id, key}`).
#[derive(Clone, Serialize)]
pub struct IssuedKey {
    /// Public identifier.
    pub key_id: String,
    /// The secret to hand to the client.
    pub key: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey").field("key_id", &self.key_id).field("key", &"***").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_what_json_leaves_out_and_validate_every_field() {
        let s: TenantSettings = serde_json::from_str(r#"{"id":"acme","future_field":1}"#).expect("minimal settings parse");
        assert_eq!((s.retention_days, s.rate_limit_per_sec, s.dedicated_topic), (365, None, false));
        let bad = TenantSettings { id: "Bad.Id".into(), name: " ".into(), retention_days: 0, rate_limit_per_sec: Some(0), ..TenantSettings::new("x") };
        let Err(RegistryError::Invalid(problems)) = bad.validate() else { panic!("expected invalid") };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["id", "name", "retention_days", "rate_limit_per_sec"]);
        assert!(TenantSettings::new("acme").validate().is_ok());
    }

    #[test]
    fn patches_change_only_present_fields_and_null_clears_the_rate_limit() {
        let base = TenantSettings { rate_limit_per_sec: Some(10), ..TenantSettings::new("acme") };
        let patch: TenantPatch = serde_json::from_str(r#"{"retention_days":30}"#).expect("parses");
        assert_eq!(patch.apply(base.clone()), TenantSettings { retention_days: 30, ..base.clone() });
        let clear: TenantPatch = serde_json::from_str(r#"{"rate_limit_per_sec":null}"#).expect("parses");
        assert_eq!(clear.apply(base.clone()).rate_limit_per_sec, None);
        assert!(serde_json::from_str::<TenantPatch>(r#"{"id":"other"}"#).is_err(), "unknown fields are refused");
    }

    #[test]
    fn old_records_read_as_active_and_the_lifecycle_fields_round_trip() {
        let s: TenantSettings = serde_json::from_str(r#"{"id":"acme","name":"Acme"}"#).expect("old record parses");
        assert_eq!((s.status, s.legal_hold, s.delete_after), (TenantStatus::Active, false, None));
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let scheduled = TenantPatch { deletion: Some(Some(at)), legal_hold: Some(true), ..TenantPatch::default() }.apply(s.clone());
        assert_eq!((scheduled.status, scheduled.delete_after, scheduled.legal_hold), (TenantStatus::Deleting, Some(at), true));
        assert!(scheduled.validate().is_ok());
        let json = serde_json::to_value(&scheduled).expect("serializes");
        assert_eq!((json["status"].as_str(), json["legal_hold"].as_bool()), (Some("deleting"), Some(true)));
        assert_eq!(serde_json::from_value::<TenantSettings>(json).expect("parses"), scheduled);
        let cancelled: TenantPatch = serde_json::from_str(r#"{"status":"active"}"#).expect("parses");
        assert_eq!(cancelled.apply(scheduled).delete_after, None, "active cancels the deletion");
        let smuggled = serde_json::from_str::<TenantPatch>(r#"{"deletion":"2030-01-01T00:00:00Z"}"#);
        assert!(smuggled.is_err(), "internal fields are not settable from a body");
        let bad = TenantSettings { status: TenantStatus::Deleting, ..s };
        assert!(bad.validate().is_err(), "deleting needs a delete_after");
    }

    #[test]
    fn the_signature_policy_defaults_to_off_and_is_patched_by_name() {
        let old: TenantSettings = serde_json::from_str(r#"{"id":"acme","name":"Acme"}"#).expect("old record parses");
        assert_eq!(old.signatures, SignaturePolicy::Off);
        let patch: TenantPatch = serde_json::from_str(r#"{"signatures":"required"}"#).expect("parses");
        let required = patch.apply(old);
        assert_eq!(required.signatures, SignaturePolicy::Required);
        let json = serde_json::to_value(&required).expect("serializes");
        assert_eq!(json["signatures"], "required");
        assert_eq!(serde_json::from_value::<TenantSettings>(json).expect("parses"), required);
        assert!(serde_json::from_str::<TenantPatch>(r#"{"signatures":"always"}"#).is_err(), "unknown policies are refused");
        assert_eq!("optional".parse::<SignaturePolicy>(), Ok(SignaturePolicy::Optional));
        assert!("Required".parse::<SignaturePolicy>().is_err());
    }

    #[test]
    fn issued_keys_hide_the_secret_from_debug() {
        let issued = IssuedKey { key_id: "key_1".into(), key: "alk_secret".into() };
        assert!(!format!("{issued:?}").contains("alk_secret"));
    }
}
