//! Validation of tenant ids, names and settings: every problem is reported at once.
//!
//! The one tenant-id validator of the platform: the registry checks ids with it, API keys are
//! honoured only for ids it accepts ([`crate::api_key::authenticate`]), and the services check
//! every token's `tenant_id` with it (a malformed claim is a 401, a reserved or unregistered
//! tenant a 403).
//!
//! Tenant ids become Kafka message keys and topic suffixes (`audit.events.v1.<tenant>`), so
//! they are `[a-z0-9][a-z0-9_-]{0,62}`: no dots (a tenant named `dlq` or `x.y` would collide
//! with other topics), no upper case (topic names are case sensitive, people are not).

use crate::error::FieldProblem;
use crate::{RegistryError, Role};

/// Tenant ids that name platform topics or the platform's own tenant and cannot be registered.
pub const RESERVED_TENANT_IDS: &[&str] = &["dlq", "system"];

/// Longest tenant id.
pub const MAX_TENANT_ID_LEN: usize = 63;

/// Longest tenant or key name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Longest retention: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Highest per-tenant rate limit, events per second.
pub const MAX_RATE_LIMIT_PER_SEC: u32 = 1_000_000;

/// Why `id` is not a registrable tenant id (malformed or reserved), if it is not.
pub fn tenant_id_problem(id: &str) -> Option<String> {
    if let Some(problem) = tenant_id_shape_problem(id) {
        return Some(problem);
    }
    if RESERVED_TENANT_IDS.contains(&id) {
        return Some(format!("{id:?} is reserved"));
    }
    None
}

/// Whether `id` has the shape of a tenant id (it may still be reserved): what a token's
/// `tenant_id` claim must look like to be read at all.
pub fn is_well_formed_tenant_id(id: &str) -> bool {
    tenant_id_shape_problem(id).is_none()
}

fn tenant_id_shape_problem(id: &str) -> Option<String> {
    let mut chars = id.chars();
    let Some(first) = chars.next() else {
        return Some("must not be empty".into());
    };
    if id.len() > MAX_TENANT_ID_LEN {
        return Some(format!("must be at most {MAX_TENANT_ID_LEN} characters"));
    }
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !lower_alnum(first) || !chars.all(|c| lower_alnum(c) || matches!(c, '_' | '-')) {
        return Some("must match [a-z0-9][a-z0-9_-]{0,62}".into());
    }
    None
}

/// Whether `id` is a registrable tenant id.
pub fn is_valid_tenant_id(id: &str) -> bool {
    tenant_id_problem(id).is_none()
}

/// Why `name` is not a usable display name, if it is not.
pub fn name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("must not be blank".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    None
}

pub(crate) fn check(problems: Vec<FieldProblem>) -> Result<(), RegistryError> {
    if problems.is_empty() { Ok(()) } else { Err(RegistryError::Invalid(problems)) }
}

/// Checks a new key's name and roles: at least one role, and never `platform_admin` (a key
/// is scoped to one tenant; a tenant admin must not mint platform-wide power).
pub fn api_key_request(name: &str, roles: &[Role]) -> Result<(), RegistryError> {
    check(api_key_problems(name, roles))
}

/// The problems [`api_key_request`] reports, for checks that add their own.
pub(crate) fn api_key_problems(name: &str, roles: &[Role]) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Some(m) = name_problem(name) {
        problems.push(FieldProblem::new("name", m));
    }
    if roles.is_empty() {
        problems.push(FieldProblem::new("roles", "at least one role is required"));
    }
    if roles.contains(&Role::PlatformAdmin) {
        problems.push(FieldProblem::new("roles", "platform_admin cannot be granted to a tenant's api key"));
    }
    problems
}

/// Prefix of every API key id; the rest is 32 lowercase hex digits (a UUIDv7, simple form).
pub const KEY_ID_PREFIX: &str = "key_";

/// Why `key_id` is not an API key id as the registry issues them, if it is not.
pub fn key_id_problem(key_id: &str) -> Option<String> {
    let hex = key_id.strip_prefix(KEY_ID_PREFIX).unwrap_or_default();
    let well_formed = hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (!well_formed).then(|| format!("must be {KEY_ID_PREFIX} followed by 32 lowercase hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_topic_safe_and_not_reserved() {
        for ok in ["acme", "a", "0", "acme-eu_1", &"a".repeat(63)] {
            assert!(is_valid_tenant_id(ok), "{ok}");
        }
        for bad in ["", "Acme", "-acme", "_acme", "ac.me", "ac me", "acmé", "dlq", "system", &"a".repeat(64), "a/b"] {
            assert!(!is_valid_tenant_id(bad), "{bad}");
        }
        assert!(is_well_formed_tenant_id("system") && !is_valid_tenant_id("system"), "reserved ids are well formed, never valid");
        assert!(!is_well_formed_tenant_id("Acme"));
    }

    #[test]
    fn names_are_non_blank_bounded_and_printable() {
        assert_eq!(name_problem("Acme Corp"), None);
        assert!(name_problem("  ").is_some());
        assert!(name_problem("a\nb").is_some());
        assert!(name_problem(&"é".repeat(129)).is_some());
        assert_eq!(name_problem(&"é".repeat(128)), None);
    }

    #[test]
    fn key_ids_are_the_issued_shape() {
        assert_eq!(key_id_problem(&format!("key_{}", uuid::Uuid::now_v7().simple())), None);
        for bad in ["", "key_", "key_1", "0123456789abcdef0123456789abcdef", &format!("key_{}", "A".repeat(32)), &format!("key_{}", "a".repeat(33))] {
            assert!(key_id_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn key_requests_need_roles_and_never_platform_admin() {
        assert!(api_key_request("ci", &[Role::Writer]).is_ok());
        let Err(RegistryError::Invalid(problems)) = api_key_request("", &[Role::PlatformAdmin]) else {
            panic!("expected invalid");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "roles"]);
        assert!(api_key_request("ci", &[]).is_err());
    }
}
