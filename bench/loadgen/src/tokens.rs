//! One development JWT per tenant, signed HS256 with the gateway's shared secret, carrying the
//! claims the gateway checks (`sub`, `tenant_id`, `roles: ["writer"]`, `iss`, `aud`, `exp`).

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

/// A tenant (`bench-tenant-NN`), as the `Authorization` header value of its writer token.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// `Bearer <jwt>`.
    pub bearer: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    tenant_id: &'a str,
    roles: [&'a str; 1],
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Mints writer tokens for `count` tenants valid for `ttl_secs`.
pub fn mint(secret: &str, count: usize, issuer: &str, audience: &str, ttl_secs: u64) -> anyhow::Result<Vec<Tenant>> {
    let key = EncodingKey::from_secret(secret.as_bytes());
    let now = jsonwebtoken::get_current_timestamp();
    (0..count)
        .map(|n| {
            let id = format!("bench-tenant-{n:02}");
            let claims = Claims {
                sub: "auditlog-loadgen",
                tenant_id: &id,
                roles: ["writer"],
                iss: issuer,
                aud: audience,
                iat: now,
                nbf: now,
                exp: now + ttl_secs,
            };
            let jwt = encode(&Header::new(Algorithm::HS256), &claims, &key).context("signing a bench token")?;
            Ok(Tenant { bearer: format!("Bearer {jwt}") })
        })
        .collect()
}
