//! API keys: `alk_` followed by 32 random bytes in unpadded base64url, shown once at creation
//! and stored only as their SHA-256 hash. A key is scoped to one tenant and a set of roles and
//! can be revoked.
//!
//! Lookup is by hash, so the time a lookup takes depends only on the hash of what was sent,
//! which tells an attacker nothing about stored keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Principal;
use crate::problem::GatewayError;
use crate::tenants::TenantRegistry;

/// Prefix of every API key, so leaked keys are recognisable (secret scanners, logs).
pub const API_KEY_PREFIX: &str = "alk_";

/// Random bytes in a key.
const SECRET_BYTES: usize = 32;

/// SHA-256 of a whole key, the only form in which keys are stored.
pub type KeyHash = [u8; 32];

/// A freshly generated key: the secret to show once, and its hash to store.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The key as the client will send it.
    pub secret: String,
    /// What the registry keeps.
    pub hash: KeyHash,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("secret", &"***").finish_non_exhaustive()
    }
}

/// Generates a key from the operating system's CSPRNG (through `rand`'s thread RNG).
pub fn generate() -> GeneratedKey {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    GeneratedKey { secret, hash }
}

/// The stored form of `key`.
pub fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether a bearer credential is an API key rather than a JWT.
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with(API_KEY_PREFIX)
}

/// The caller an API key speaks for, or 401 when it is unknown or revoked.
pub fn verify(registry: &dyn TenantRegistry, key: &str) -> Result<Principal, GatewayError> {
    let unknown = || GatewayError::Unauthenticated("unknown or revoked api key".into());
    if !looks_like_api_key(key) || key.len() > 128 {
        return Err(unknown());
    }
    let record = registry.api_key_by_hash(&hash(key)).ok_or_else(unknown)?;
    if record.revoked {
        return Err(unknown());
    }
    Ok(Principal {
        subject: format!("api_key:{}", record.key_id),
        tenant_id: Some(record.tenant_id),
        roles: record.roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let a = generate();
        let b = generate();
        assert!(a.secret.starts_with(API_KEY_PREFIX));
        assert_eq!(a.secret.len(), API_KEY_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
