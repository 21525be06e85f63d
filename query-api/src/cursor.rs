//! Opaque pagination cursors bound to the caller's tenant and query.
//!
//! A cursor wraps the backend's own cursor with the backend that made it, the tenant and a
//! digest of the query's parameters (all but `cursor` and `limit`), and signs the whole with
//! HMAC-SHA256 under the service's cursor key. A cursor that was altered, made by another
//! deployment, or presented by another tenant or with other filters fails verification and
//! the request is a 400 naming `cursor`; the backend never sees it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::QueryError;

/// Which read model made the inner cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The event store (ScyllaDB).
    Store,
    /// The search index (OpenSearch).
    Search,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Backend.
    b: Backend,
    /// Tenant.
    t: String,
    /// Digest of the canonical query, hex.
    q: String,
    /// The backend's cursor.
    c: String,
}

/// Signs and verifies cursors with one key.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(***)")
    }
}

const BLOCK: usize = 64;

impl CursorCodec {
    /// A codec signing with `key`.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// The opaque cursor for the backend cursor `inner`.
    pub fn seal(&self, backend: Backend, tenant: &str, query: &str, inner: &str) -> String {
        let payload = Payload { b: backend, t: tenant.to_owned(), q: digest_hex(query), c: inner.to_owned() };
        // Serializing a struct of strings cannot fail.
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let mac = self.mac(&json);
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&json), URL_SAFE_NO_PAD.encode(mac))
    }

    /// The backend and its cursor, when `cursor` was sealed by this key for this tenant and
    /// query; otherwise a 400 naming `cursor`.
    pub fn open(&self, cursor: &str, tenant: &str, query: &str) -> Result<(Backend, String), QueryError> {
        let invalid = || QueryError::param("cursor", "is not a cursor this API issued for this query");
        let (body, mac) = cursor.split_once('.').ok_or_else(invalid)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| invalid())?;
        if !constant_time_eq(&self.mac(&json), &mac) {
            return Err(invalid());
        }
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if payload.t != tenant || !constant_time_eq(payload.q.as_bytes(), digest_hex(query).as_bytes()) {
            return Err(invalid());
        }
        Ok((payload.b, payload.c))
    }

    /// HMAC-SHA256 (RFC 2104).
    fn mac(&self, message: &[u8]) -> Vec<u8> {
        let mut key = [0u8; BLOCK];
        if self.key.len() > BLOCK {
            key[..32].copy_from_slice(&Sha256::digest(&self.key));
        } else {
            key[..self.key.len()].copy_from_slice(&self.key);
        }
        let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
        Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
    }
}

fn digest_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_open_only_for_their_tenant_query_and_key() {
        let codec = CursorCodec::new(b"k".repeat(40).as_slice());
        let sealed = codec.seal(Backend::Store, "acme", "actor_id=a", "123:abc");
        assert_eq!(codec.open(&sealed, "acme", "actor_id=a").expect("opens"), (Backend::Store, "123:abc".to_owned()));
        assert!(codec.open(&sealed, "globex", "actor_id=a").is_err(), "another tenant");
        assert!(codec.open(&sealed, "acme", "actor_id=b").is_err(), "another query");
        assert!(CursorCodec::new(b"other-key").open(&sealed, "acme", "actor_id=a").is_err(), "another key");
        let mut forged = sealed.clone();
        forged.insert(3, 'x');
        assert!(codec.open(&forged, "acme", "actor_id=a").is_err(), "altered");
        assert!(codec.open("123:abc", "acme", "actor_id=a").is_err(), "a raw backend cursor");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let codec = CursorCodec::new(b"Jefe");
        let mac = codec.mac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
