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

use crate::{ApiKeyRecord, TenantRegistry};

/// Prefix of every API key, so leaked keys are recognisable (secret scanners, logs).
pub const API_KEY_PREFIX: &str = "alk_";

/// Longest credential worth hashing; real keys are 47 characters.
pub const MAX_API_KEY_LEN: usize = 128;

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

/// The active key record for `key`, or `None`: known, not revoked, scoped to a registrable
/// (never reserved) tenant that is registered and not deleted. The one check every service
/// applies to an API key before trusting it; a tombstoned tenant's keys stop here.
pub fn authenticate(registry: &dyn TenantRegistry, key: &str) -> Option<ApiKeyRecord> {
    if !looks_like_api_key(key) || key.len() > MAX_API_KEY_LEN {
        return None;
    }
    let record = registry.api_key_by_hash(&hash(key)).filter(|record| !record.revoked)?;
    let tenant = registry.tenant(&record.tenant_id).filter(|t| t.status.accepts_credentials())?;
    crate::validate::is_valid_tenant_id(&tenant.id).then_some(record)
}

/// Lowercase hex of a hash, its form in the registry topic.
pub fn to_hex(hash: &KeyHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash written by [`to_hex`]; `None` unless exactly 64 hex digits.
pub fn from_hex(hex: &str) -> Option<KeyHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
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

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = generate().hash;
        let hex = to_hex(&h);
        assert_eq!(hex.len(), 64);
        assert_eq!(from_hex(&hex), Some(h));
        assert_eq!(from_hex(&hex[..62]), None);
        assert_eq!(from_hex(&"zz".repeat(32)), None);
    }
}
