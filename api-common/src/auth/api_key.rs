//! API keys: `Authorization: Bearer alk_...` or `X-API-Key`, checked by hash
//! against the [`TenantRegistry`]. Generation and hashing live in the registry crate and are
//! re-exported here.
//!
//! Lookup is by hash, so the time a lookup takes depends only on the hash of what was sent,
//! which tells an attacker nothing about stored keys.

pub use auditlog_tenant_registry::api_key::{API_KEY_PREFIX, GeneratedKey, KeyHash, generate, hash, looks_like_api_key};

use super::Principal;
use super::AuthError;
use auditlog_tenant_registry::TenantRegistry;

/// The caller an API key speaks for, or 401 when it is unknown or revoked.
pub fn verify(registry: &dyn TenantRegistry, key: &str) -> Result<Principal, AuthError> {
    let record = auditlog_tenant_registry::api_key::authenticate(registry, key)
        .ok_or_else(|| AuthError::Unauthenticated("unknown or revoked api key".into()))?;
    Ok(Principal {
        subject: format!("api_key:{}", record.key_id),
        tenant_id: Some(record.tenant_id),
        roles: record.roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use auditlog_tenant_registry::{InMemoryTenantRegistry, TenantSettings};

    #[test]
    fn keys_verify_until_revoked_and_only_for_their_tenant() {
        let registry = InMemoryTenantRegistry::new();
        assert!(registry.create_api_key("nobody", "k", vec![Role::Writer]).is_err());
        registry.upsert_tenant(TenantSettings::new("acme"));
        let issued = registry.create_api_key("acme", "ci", vec![Role::Writer]).expect("tenant exists");
        let principal = verify(&registry, &issued.key).expect("fresh key verifies");
        assert_eq!(principal.tenant_id.as_deref(), Some("acme"));
        assert_eq!(principal.subject, format!("api_key:{}", issued.key_id));
        assert!(verify(&registry, "alk_not-a-real-key").is_err());
        assert!(verify(&registry, &format!("{}{}", issued.key, "x".repeat(200))).is_err(), "overlong keys are refused");
        assert!(!registry.revoke_api_key("other", &issued.key_id), "another tenant cannot revoke it");
        assert!(registry.revoke_api_key("acme", &issued.key_id));
        assert!(verify(&registry, &issued.key).is_err(), "revoked key is refused");
    }

    #[test]
    fn generated_keys_are_prefixed_and_hashed() {
        let key = generate();
        assert!(looks_like_api_key(&key.secret) && key.secret.starts_with(API_KEY_PREFIX));
        assert_eq!(key.hash, hash(&key.secret));
    }
}
