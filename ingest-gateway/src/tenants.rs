//! The tenant registry seen by the gateway: tenant settings (rate limit, dedicated topic) and
//! API keys, looked up on every request and therefore held in memory.
//!
//! [`TenantRegistry`] is what the gateway reads; [`InMemoryTenantRegistry`] is the first
//! implementation (standalone mode and tests). The durable, shared registry of issue 3 (a
//! compacted Kafka topic replayed into this same in-memory form by every service) plugs in
//! behind the same trait.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::auth::Role;
use crate::auth::api_key::{self, KeyHash};

/// Settings of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    /// Tenant id.
    pub id: String,
    /// Events per second the tenant may ingest; `None` uses the gateway default.
    pub rate_limit_per_sec: Option<u32>,
    /// Whether the tenant's events go to its own topic `<prefix>.v1.<tenant>`.
    pub dedicated_topic: bool,
}

impl TenantSettings {
    /// Settings with every default.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), rate_limit_per_sec: None, dedicated_topic: false }
    }
}

/// A stored API key: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A key as created: its id and the secret, shown this once.
#[derive(Clone)]
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

/// What the gateway reads about tenants and keys. Implementations answer from memory: these
/// calls sit on every request's path.
pub trait TenantRegistry: Send + Sync + 'static {
    /// The key whose SHA-256 hash is `hash`, revoked or not.
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord>;

    /// A tenant's settings, if the tenant is registered.
    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings>;
}

/// Errors of registry changes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// No such tenant.
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
}

#[derive(Default)]
struct Inner {
    tenants: HashMap<String, TenantSettings>,
    keys: HashMap<KeyHash, ApiKeyRecord>,
    key_ids: HashMap<String, KeyHash>,
}

/// A registry held in this process only.
#[derive(Default)]
pub struct InMemoryTenantRegistry {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for InMemoryTenantRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryTenantRegistry").finish_non_exhaustive()
    }
}

impl InMemoryTenantRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces a tenant's settings.
    pub fn upsert_tenant(&self, settings: TenantSettings) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.tenants.insert(settings.id.clone(), settings);
    }

    /// Creates an API key for a registered tenant; the returned secret is not kept.
    pub fn create_api_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<IssuedKey, RegistryError> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if !inner.tenants.contains_key(tenant_id) {
            return Err(RegistryError::UnknownTenant(tenant_id.to_owned()));
        }
        let generated = api_key::generate();
        let key_id = format!("key_{}", uuid::Uuid::now_v7().simple());
        let record = ApiKeyRecord {
            key_id: key_id.clone(),
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            roles,
            revoked: false,
        };
        inner.key_ids.insert(key_id.clone(), generated.hash);
        inner.keys.insert(generated.hash, record);
        Ok(IssuedKey { key_id, key: generated.secret })
    }

    /// Revokes a tenant's key; false when the tenant has no such key.
    pub fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Some(hash) = inner.key_ids.get(key_id).copied() else {
            return false;
        };
        match inner.keys.get_mut(&hash) {
            Some(record) if record.tenant_id == tenant_id => {
                record.revoked = true;
                true
            }
            _ => false,
        }
    }
}

impl TenantRegistry for InMemoryTenantRegistry {
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).keys.get(hash).cloned()
    }

    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).tenants.get(tenant_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_until_revoked_and_only_for_their_tenant() {
        let registry = InMemoryTenantRegistry::new();
        assert!(registry.create_api_key("nobody", "k", vec![Role::Writer]).is_err());
        registry.upsert_tenant(TenantSettings::new("acme"));
        let issued = registry.create_api_key("acme", "ci", vec![Role::Writer]).expect("tenant exists");
        let principal = api_key::verify(&registry, &issued.key).expect("fresh key verifies");
        assert_eq!(principal.tenant_id.as_deref(), Some("acme"));
        assert!(api_key::verify(&registry, "alk_not-a-real-key").is_err());
        assert!(!registry.revoke_api_key("other", &issued.key_id), "another tenant cannot revoke it");
        assert!(registry.revoke_api_key("acme", &issued.key_id));
        assert!(api_key::verify(&registry, &issued.key).is_err(), "revoked key is refused");
    }
}
