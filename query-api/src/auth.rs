//! Who may call what: the [`Reader`] extractor (queries, confined to the credential's tenant)
//! and the admin checks (`platform_admin` for tenants; the tenant's own `tenant_admin`, or a
//! platform admin, for its API keys).
//!
//! A credential naming a tenant is honoured only while that tenant is registered, not reserved
//! and not deleted (403 otherwise), on every read and admin call. Reads of a `disabled` or
//! `deleting` tenant stay allowed: disabling stops ingest, it must not hide the trail from an
//! auditor.

use auditlog_api_common::auth::{Principal, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::QueryError;
use crate::state::QueryState;

/// A caller allowed to query (role `reader`), and the one tenant it reads.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The verified caller.
    pub principal: Principal,
    /// Its tenant: every read is confined to it.
    pub tenant_id: String,
}

impl FromRequestParts<QueryState> for Reader {
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, state: &QueryState) -> Result<Self, Self::Rejection> {
        let principal = state.authenticator().authenticate(&parts.headers)?;
        if !principal.has(Role::Reader) {
            return Err(QueryError::Forbidden("queries need the reader role".into()));
        }
        let Some(tenant_id) = principal.tenant_id.clone() else {
            return Err(QueryError::Forbidden("queries need a credential scoped to a tenant".into()));
        };
        state.authenticator().tenant_standing(&tenant_id).map_err(QueryError::Forbidden)?;
        Ok(Self { principal, tenant_id })
    }
}

/// Any authenticated caller; the admin routes check roles against the tenant they name.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<QueryState> for Caller {
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, state: &QueryState) -> Result<Self, Self::Rejection> {
        let principal = state.authenticator().authenticate(&parts.headers)?;
        if let Some(tenant_id) = &principal.tenant_id {
            state.authenticator().tenant_standing(tenant_id).map_err(QueryError::Forbidden)?;
        }
        Ok(Self(principal))
    }
}

impl Caller {
    /// 403 unless the caller is a platform admin.
    pub fn require_platform_admin(&self) -> Result<(), QueryError> {
        if self.0.has(Role::PlatformAdmin) {
            Ok(())
        } else {
            Err(QueryError::Forbidden("managing tenants needs the platform_admin role".into()))
        }
    }

    /// 403 unless the caller is a platform admin or `tenant`'s own tenant admin.
    pub fn require_tenant_admin(&self, tenant: &str) -> Result<(), QueryError> {
        let own = self.0.has(Role::TenantAdmin) && self.0.tenant_id.as_deref() == Some(tenant);
        if own || self.0.has(Role::PlatformAdmin) {
            Ok(())
        } else {
            Err(QueryError::Forbidden("this needs the tenant_admin role of that tenant, or platform_admin".into()))
        }
    }
}
