//! The two traits services hold: [`TenantRegistry`] (reads on every request, from memory) and
//! [`TenantAdmin`] (the control plane's changes, durable before they return).

use async_trait::async_trait;

use crate::api_key::KeyHash;
use crate::{ApiKeyRecord, IssuedKey, RegistryError, Role, TenantPatch, TenantSettings};

/// What request paths read about tenants and keys. Implementations answer from memory: these
/// calls sit on every request's path.
pub trait TenantRegistry: Send + Sync + 'static {
    /// The key whose SHA-256 hash is `hash`, revoked or not.
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord>;

    /// A tenant's settings, if the tenant is registered.
    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings>;
}

/// Changes to the registry (admin API, `auditlog admin`). Every change is validated, then
/// durable, then visible in this process before it returns; other processes see it within a
/// second. `Arc<dyn TenantAdmin>` coerces to `Arc<dyn TenantRegistry>`.
#[async_trait]
pub trait TenantAdmin: TenantRegistry {
    /// Registers a tenant (an empty name becomes the id); `TenantExists` if it is known.
    async fn create_tenant(&self, settings: TenantSettings) -> Result<TenantSettings, RegistryError>;

    /// Applies `patch` to a registered tenant and answers the new settings.
    async fn update_tenant(&self, tenant_id: &str, patch: TenantPatch) -> Result<TenantSettings, RegistryError>;

    /// Creates an API key for a registered tenant; the secret is in the answer only, the
    /// registry keeps its SHA-256 hash.
    async fn create_api_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<IssuedKey, RegistryError>;

    /// Revokes a tenant's key (idempotent) and answers its record; `UnknownApiKey` when the
    /// tenant has no such key, also when another tenant has.
    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<ApiKeyRecord, RegistryError>;

    /// Every tenant, by id.
    fn list_tenants(&self) -> Vec<TenantSettings>;

    /// A registered tenant's keys, revoked ones included, oldest first.
    fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, RegistryError>;

    /// Succeeds when changes can be made and the view is being kept current (readiness).
    async fn check_ready(&self) -> Result<(), RegistryError> {
        Ok(())
    }
}
