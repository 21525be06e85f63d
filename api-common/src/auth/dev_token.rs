//! Minting development JWTs (HS256 with the configured shared secret), for `auditlog admin`
//! and the standalone mode's "how to get a first token"; production tokens come from an
//! identity provider and are only verified here.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

use super::Role;
use crate::config::{AuthConfig, Secret};
use super::AuthError;

/// What a development token says.
#[derive(Debug, Clone)]
pub struct DevToken {
    /// `sub`.
    pub subject: String,
    /// `tenant_id`; `None` only for platform admins.
    pub tenant_id: Option<String>,
    /// `roles`.
    pub roles: Vec<Role>,
    /// Lifetime; `exp` is now plus this.
    pub ttl: Duration,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    roles: &'a [Role],
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Signs `token` with `secret` (HS256), with the `iss` and `aud` the services expect under
/// `auth`.
pub fn mint_hs256(secret: &Secret, auth: &AuthConfig, token: &DevToken) -> Result<String, AuthError> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: &token.subject,
        tenant_id: token.tenant_id.as_deref(),
        roles: &token.roles,
        iss: &auth.issuer,
        aud: &auth.audience,
        iat: now,
        nbf: now,
        exp: now + token.ttl.as_secs(),
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
        .map_err(|e| AuthError::Internal(format!("signing a development token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JwtKeyConfig, KeyMaterial};

    #[test]
    fn minted_tokens_verify_with_the_same_secret_only() {
        let secret = Secret::new("dev-secret-dev-secret-dev-secret-dev");
        let mut auth = AuthConfig::default();
        auth.keys.push(JwtKeyConfig { id: "dev".into(), material: KeyMaterial::Secret(secret.clone()), algorithms: vec!["HS256".into()] });
        let verifier = super::super::JwtVerifier::new(&auth).expect("valid key");
        let token = DevToken { subject: "me".into(), tenant_id: Some("acme".into()), roles: vec![Role::Writer], ttl: Duration::from_secs(60) };
        let minted = mint_hs256(&secret, &auth, &token).expect("signs");
        let principal = verifier.verify(&minted).expect("verifies");
        assert_eq!(principal.tenant_id.as_deref(), Some("acme"));
        assert_eq!(principal.roles, vec![Role::Writer]);
        let other = mint_hs256(&Secret::new("another-secret-another-secret-another"), &auth, &token).expect("signs");
        assert!(verifier.verify(&other).is_err());
    }
}
