//! The registry's entities as the admin API and the registry topic carry them (JSON).

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
}

impl TenantSettings {
    /// Settings with every default (the name is the id).
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Self { name: id.clone(), id, retention_days: DEFAULT_RETENTION_DAYS, rate_limit_per_sec: None, dedicated_topic: false }
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
        let bad = TenantSettings { id: "Bad.Id".into(), name: " ".into(), retention_days: 0, rate_limit_per_sec: Some(0), dedicated_topic: false };
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
    fn issued_keys_hide_the_secret_from_debug() {
        let issued = IssuedKey { key_id: "key_1".into(), key: "alk_secret".into() };
        assert!(!format!("{issued:?}").contains("alk_secret"));
    }
}
