//! [`InMemoryTenantRegistry`]: the registry held in this process only (`memory://`,
//! standalone mode and tests). Changes are lost with the process.

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;

use crate::api_key::KeyHash;
use crate::view::{Change, View};
use crate::{ApiKeyRecord, IssuedKey, NewSigningKey, RegistryError, Role, SigningKeyRecord, TenantAdmin, TenantPatch, TenantRegistry, TenantSettings};

/// A registry held in this process only.
#[derive(Default)]
pub struct InMemoryTenantRegistry {
    view: View,
    /// Version of the next change (the Kafka registry uses log offsets instead).
    next_version: AtomicI64,
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

    fn apply(&self, change: Change) {
        self.view.apply(change, self.next_version.fetch_add(1, Ordering::Relaxed));
    }

    /// Creates or replaces a tenant's settings, unchecked (seeding and tests; the admin path
    /// is [`TenantAdmin::create_tenant`]).
    pub fn upsert_tenant(&self, settings: TenantSettings) {
        self.apply(Change::Tenant(settings));
    }

    /// Creates an API key for a registered tenant; the returned secret is not kept.
    pub fn create_api_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<IssuedKey, RegistryError> {
        let (change, issued) = self.view.plan_create_key(tenant_id, name, roles)?;
        self.apply(change);
        Ok(issued)
    }

    /// Revokes a tenant's key; false when the tenant has no such key.
    pub fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> bool {
        match self.view.plan_revoke(tenant_id, key_id) {
            Ok((hash, record)) => {
                self.apply(Change::Key { hash, record });
                true
            }
            Err(_) => false,
        }
    }
}

impl TenantRegistry for InMemoryTenantRegistry {
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord> {
        self.view.key_by_hash(hash)
    }

    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings> {
        self.view.tenant(tenant_id)
    }

    fn signing_key(&self, tenant_id: &str, key_id: &str) -> Option<SigningKeyRecord> {
        self.view.signing_key(tenant_id, key_id)
    }
}

#[async_trait]
impl TenantAdmin for InMemoryTenantRegistry {
    async fn create_tenant(&self, settings: TenantSettings) -> Result<TenantSettings, RegistryError> {
        let settings = self.view.plan_create_tenant(settings)?;
        self.apply(Change::Tenant(settings.clone()));
        Ok(settings)
    }

    async fn update_tenant(&self, tenant_id: &str, patch: TenantPatch) -> Result<TenantSettings, RegistryError> {
        let settings = self.view.plan_update_tenant(tenant_id, &patch)?;
        self.apply(Change::Tenant(settings.clone()));
        Ok(settings)
    }

    async fn create_api_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<IssuedKey, RegistryError> {
        InMemoryTenantRegistry::create_api_key(self, tenant_id, name, roles)
    }

    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<ApiKeyRecord, RegistryError> {
        let (hash, record) = self.view.plan_revoke(tenant_id, key_id)?;
        self.apply(Change::Key { hash, record: record.clone() });
        Ok(record)
    }

    async fn add_signing_key(&self, tenant_id: &str, key: NewSigningKey) -> Result<SigningKeyRecord, RegistryError> {
        let record = self.view.plan_add_signing_key(tenant_id, key)?;
        self.apply(Change::SigningKey(record.clone()));
        Ok(record)
    }

    async fn revoke_signing_key(&self, tenant_id: &str, key_id: &str, at: time::OffsetDateTime) -> Result<SigningKeyRecord, RegistryError> {
        let (record, changed) = self.view.plan_revoke_signing_key(tenant_id, key_id, at)?;
        if changed {
            self.apply(Change::SigningKey(record.clone()));
        }
        Ok(record)
    }

    fn list_signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>, RegistryError> {
        self.view.list_signing_keys(tenant_id)
    }

    fn list_tenants(&self) -> Vec<TenantSettings> {
        self.view.list_tenants()
    }

    fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, RegistryError> {
        self.view.list_keys(tenant_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key;

    #[tokio::test]
    async fn admin_changes_are_visible_to_reads_and_revocation_sticks() {
        let registry = InMemoryTenantRegistry::new();
        let admin: &dyn TenantAdmin = &registry;
        assert!(matches!(admin.create_tenant(TenantSettings::new("dlq")).await, Err(RegistryError::Invalid(_))));
        admin.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        let patch = TenantPatch { rate_limit_per_sec: Some(Some(50)), dedicated_topic: Some(true), ..TenantPatch::default() };
        let updated = admin.update_tenant("acme", patch).await.expect("known tenant");
        assert_eq!(registry.tenant("acme"), Some(updated));
        let issued = admin.create_api_key("acme", "ci", vec![Role::Writer]).await.expect("tenant exists");
        assert!(api_key::authenticate(&registry, &issued.key).is_some());
        assert!(matches!(admin.revoke_api_key("other", &issued.key_id).await, Err(RegistryError::UnknownApiKey(_))));
        assert!(admin.revoke_api_key("acme", &issued.key_id).await.expect("own key").revoked);
        assert!(api_key::authenticate(&registry, &issued.key).is_none(), "revoked key is refused");
        assert_eq!(admin.list_api_keys("acme").map(|k| k.len()), Ok(1));
        assert_eq!(admin.list_tenants().len(), 1);
    }

    #[tokio::test]
    async fn a_tombstoned_tenants_keys_stop_working_and_its_id_stays_taken() {
        let registry = InMemoryTenantRegistry::new();
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        let issued = registry.create_api_key("acme", "ci", vec![Role::Writer]).expect("tenant exists");
        let disabled = TenantPatch { status: Some(crate::TenantStatus::Disabled), ..TenantPatch::default() };
        registry.update_tenant("acme", disabled).await.expect("known tenant");
        assert!(api_key::authenticate(&registry, &issued.key).is_some(), "a disabled tenant's keys still authenticate (reads)");
        let deleted = TenantPatch { status: Some(crate::TenantStatus::Deleted), ..TenantPatch::default() };
        registry.update_tenant("acme", deleted).await.expect("known tenant");
        assert!(api_key::authenticate(&registry, &issued.key).is_none(), "a deleted tenant's keys are refused");
        assert!(matches!(registry.create_tenant(TenantSettings::new("acme")).await, Err(RegistryError::TenantExists(_))));
    }

    #[test]
    fn keys_of_unregistered_or_reserved_tenants_never_authenticate() {
        let registry = InMemoryTenantRegistry::new();
        registry.upsert_tenant(TenantSettings::new("system"));
        let issued = registry.create_api_key("system", "smuggled", vec![Role::Reader]).expect("upsert skips checks");
        assert!(api_key::authenticate(&registry, &issued.key).is_none(), "a reserved tenant's key is refused");
        registry.upsert_tenant(TenantSettings::new("acme"));
        let orphan = registry.create_api_key("acme", "ci", vec![Role::Reader]).expect("tenant exists");
        registry.view.apply(Change::RemoveTenant("acme".into()), 1_000);
        assert!(api_key::authenticate(&registry, &orphan.key).is_none(), "a key whose tenant is gone is refused");
    }

    #[tokio::test]
    async fn signing_keys_are_registered_served_revoked_and_listed() {
        crate::signing_key::tests::backend_contract(&InMemoryTenantRegistry::new()).await;
    }

    #[test]
    fn the_inherent_api_keeps_the_gateways_shape() {
        let registry = InMemoryTenantRegistry::new();
        assert!(registry.create_api_key("nobody", "k", vec![Role::Writer]).is_err());
        registry.upsert_tenant(TenantSettings::new("acme"));
        let issued = registry.create_api_key("acme", "ci", vec![Role::Writer]).expect("tenant exists");
        assert!(!registry.revoke_api_key("other", &issued.key_id), "another tenant cannot revoke it");
        assert!(registry.revoke_api_key("acme", &issued.key_id));
        assert!(api_key::authenticate(&registry, &issued.key).is_none());
    }
}
