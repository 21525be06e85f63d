//! Authentication shared by every HTTP service: who is calling, for which tenant, with which
//! roles.
//!
//! - [`jwt`]: `Authorization: Bearer <JWT>` verified against configured keys (RFC 8725);
//! - [`api_key`]: `Authorization: Bearer alk_...` or `X-API-Key`, checked by hash against the
//!   [`TenantRegistry`];
//! - [`dev_token`]: minting HS256 development tokens.
//!
//! The tenant of a request comes only from its credential; a body never chooses it. Each
//! service maps [`AuthError`] into its own problem+json error.

pub mod api_key;
pub mod dev_token;
pub mod jwt;

use std::sync::Arc;

use auditlog_tenant_registry::{TenantRegistry, TenantSettings};
use axum::http::HeaderMap;

use crate::config::AuthConfig;

pub use jwt::JwtVerifier;

/// The header carrying an API key when `Authorization` is not used.
pub const API_KEY_HEADER: &str = "x-api-key";

/// A role from the design contract (defined by the tenant registry, which stores key roles).
pub use auditlog_tenant_registry::Role;

/// Why a credential was refused, or the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Credentials are missing or do not verify (401).
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// The auth configuration is invalid; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// A bug (signing failed).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// JWT `sub`, or `api_key:<key id>`.
    pub subject: String,
    /// Tenant of the credential; `None` only for platform admins.
    pub tenant_id: Option<String>,
    /// Roles granted by the credential.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Whether the credential grants `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Whether `tenant` is a registrable tenant id (the registry's one validator: well formed and
/// not reserved).
pub use auditlog_tenant_registry::validate::is_valid_tenant_id;

/// Whether a token's `tenant_id` claim has the shape of a tenant id (reserved ones included:
/// those pass here and are refused with 403 by [`Authenticator::tenant_standing`]).
pub use auditlog_tenant_registry::validate::is_well_formed_tenant_id;

/// Verifies credentials from request headers.
pub struct Authenticator {
    jwt: JwtVerifier,
    tenants: Arc<dyn TenantRegistry>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("jwt", &self.jwt).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for the configured JWT keys and the registry's API keys.
    pub fn new(config: &AuthConfig, tenants: Arc<dyn TenantRegistry>) -> Result<Self, AuthError> {
        Ok(Self { jwt: JwtVerifier::new(config)?, tenants })
    }

    /// The settings of a credential's tenant when the tenant is registered, not reserved and
    /// not deleted (a disabled or deleting tenant is returned: the caller decides, e.g. ingest
    /// refuses it and reads allow it); otherwise why not, for a 403. Every request naming a
    /// tenant passes here, on ingest and on every read.
    pub fn tenant_standing(&self, tenant_id: &str) -> Result<TenantSettings, String> {
        let refused = || format!("tenant {tenant_id} is not registered and active");
        if !is_valid_tenant_id(tenant_id) {
            return Err(refused());
        }
        self.tenants.tenant(tenant_id).filter(|t| t.status.accepts_credentials()).ok_or_else(refused)
    }

    /// The verified caller of a request, or [`AuthError::Unauthenticated`].
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let unauthenticated = |m: &str| AuthError::Unauthenticated(m.to_owned());
        if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| unauthenticated("authorization header is not ascii"))?;
            let (scheme, credential) = value.split_once(' ').ok_or_else(|| unauthenticated("expected `Bearer <token>`"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(unauthenticated("only the Bearer scheme is supported"));
            }
            let credential = credential.trim();
            if api_key::looks_like_api_key(credential) {
                return api_key::verify(self.tenants.as_ref(), credential);
            }
            return self.jwt.verify(credential);
        }
        if let Some(value) = headers.get(API_KEY_HEADER) {
            let key = value.to_str().map_err(|_| unauthenticated("x-api-key header is not ascii"))?;
            return api_key::verify(self.tenants.as_ref(), key.trim());
        }
        Err(unauthenticated("missing credentials: send `Authorization: Bearer <token>` or `X-API-Key`"))
    }
}
