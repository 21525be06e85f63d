//! The tenant registry seen by the gateway, re-exported from `auditlog-tenant-registry`:
//! tenant settings (rate limit, dedicated topic) and API keys, looked up on every request
//! and therefore held in memory.
//!
//! The gateway reads through [`TenantRegistry`] and never names an implementation:
//! [`InMemoryTenantRegistry`] (standalone, tests) or the shared, durable
//! `auditlog_tenant_registry::KafkaTenantRegistry` (a compacted topic replayed into memory by
//! every service).

pub use auditlog_tenant_registry::{
    ApiKeyRecord, InMemoryTenantRegistry, IssuedKey, RegistryError, TenantAdmin, TenantPatch, TenantRegistry, TenantSettings, TenantStatus,
};
