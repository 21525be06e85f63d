//! The two traits services hold: [`TenantRegistry`] (reads on every request, from memory) and
//! [`TenantAdmin`] (the control plane's changes, durable before they return).

use async_trait::async_trait;

use crate::api_key::KeyHash;
use time::OffsetDateTime;

use crate::{ApiKeyRecord, IssuedKey, NewSigningKey, RegistryError, Role, SigningKeyRecord, TenantPatch, TenantSettings};

/// What request paths read about tenants and keys. Implementations answer from memory: these
/// calls sit on every request's path.
pub trait TenantRegistry: Send + Sync + 'static {
    /// The key whose SHA-256 hash is `hash`, revoked or not.
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord>;

    /// A tenant's settings, if the tenant is registered.
    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings>;

    /// A tenant's signing key `key_id`, revoked or expired ones included (whether it verifies
    /// an event depends on the event's time: [`SigningKeyRecord::valid_at`]); `None` when the
    /// tenant has no such key, is not registered or is deleted (a tombstoned tenant's keys
    /// are no longer served, like its API keys).
    fn signing_key(&self, tenant_id: &str, key_id: &str) -> Option<SigningKeyRecord>;
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

    /// Registers a producer's public key for a registered, not deleted tenant (the key id
    /// defaults to the first 16 hex digits of the SHA-256 of the key, `not_before` to now);
    /// `SigningKeyExists` when the tenant has a key with this id, `Invalid` naming the field.
    async fn add_signing_key(&self, tenant_id: &str, key: NewSigningKey) -> Result<SigningKeyRecord, RegistryError>;

    /// Revokes a tenant's signing key from `at` on (events that occurred before stay
    /// verifiable) and answers its record. Idempotent: a key revoked already keeps the
    /// earlier of the two times. `UnknownSigningKey` when the tenant has no such key.
    async fn revoke_signing_key(&self, tenant_id: &str, key_id: &str, at: OffsetDateTime) -> Result<SigningKeyRecord, RegistryError>;

    /// A registered tenant's signing keys, revoked ones included, oldest first.
    fn list_signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>, RegistryError>;

    /// Every tenant, by id.
    fn list_tenants(&self) -> Vec<TenantSettings>;

    /// A registered tenant's keys, revoked ones included, oldest first.
    fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, RegistryError>;

    /// Succeeds when changes can be made and the view is being kept current (readiness).
    async fn check_ready(&self) -> Result<(), RegistryError> {
        Ok(())
    }
}
