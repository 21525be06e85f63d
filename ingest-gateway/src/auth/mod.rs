//! Authentication at the gateway: the shared verification of `auditlog-api-common`
//! (re-exported here: JWT, API keys, development tokens, roles) and the [`Writer`] extractor.
//!
//! The tenant of a request comes only from its credential; a body never chooses it, and it
//! must be registered and `active` (not reserved, disabled, deleting or deleted): otherwise
//! 403 before anything is read from the body.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::problem::GatewayError;
use crate::state::GatewayState;

pub use auditlog_api_common::auth::{
    API_KEY_HEADER, AuthError, Authenticator, JwtVerifier, Principal, Role, api_key, dev_token, is_valid_tenant_id, is_well_formed_tenant_id, jwt,
};

/// Extractor: a caller allowed to ingest (role `writer`) for one tenant.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The verified caller.
    pub principal: Principal,
    /// Its tenant.
    pub tenant_id: String,
}

impl FromRequestParts<GatewayState> for Writer {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let principal = state.authenticator().authenticate(&parts.headers)?;
        if !principal.has(Role::Writer) {
            return Err(GatewayError::Forbidden("ingest needs the writer role".into()));
        }
        let Some(tenant_id) = principal.tenant_id.clone() else {
            return Err(GatewayError::Forbidden("ingest needs a credential scoped to a tenant".into()));
        };
        let tenant = state.authenticator().tenant_standing(&tenant_id).map_err(GatewayError::Forbidden)?;
        if !tenant.status.accepts_writes() {
            return Err(GatewayError::Forbidden(format!("tenant {tenant_id} is not registered and active")));
        }
        Ok(Self { principal, tenant_id })
    }
}
