//! The registry topic's records: key `tenant/<id>` or `key/<key_id>`, value the entity's full
//! current state as JSON (a key's value holds the SHA-256 of its secret, never the secret).
//! A record without value (a compaction tombstone) removes the entity.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api_key::{from_hex, to_hex};
use crate::view::Change;
use crate::{ApiKeyRecord, Role, TenantSettings};

const TENANT_PREFIX: &str = "tenant/";
const KEY_PREFIX: &str = "key/";

/// A key's state as stored: the record plus the hash it is found by.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    key_id: String,
    tenant_id: String,
    name: String,
    /// Role names; names this version does not know are dropped when read.
    roles: Vec<String>,
    revoked: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Lowercase hex SHA-256 of the whole key.
    key_sha256: String,
}

/// The record key and JSON value of an upsert; `None` for removals, which this crate never
/// writes (a revoked key stays as state).
pub(crate) fn encode(change: &Change) -> Option<(String, Vec<u8>)> {
    let (key, value) = match change {
        Change::Tenant(settings) => (format!("{TENANT_PREFIX}{}", settings.id), serde_json::to_vec(settings)),
        Change::Key { hash, record } => {
            let stored = StoredKey {
                key_id: record.key_id.clone(),
                tenant_id: record.tenant_id.clone(),
                name: record.name.clone(),
                roles: record.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                revoked: record.revoked,
                created_at: record.created_at,
                key_sha256: to_hex(hash),
            };
            (format!("{KEY_PREFIX}{}", record.key_id), serde_json::to_vec(&stored))
        }
        Change::RemoveTenant(_) | Change::RemoveKey(_) => return None,
    };
    // Serializing plain structs of strings, numbers and bools cannot fail.
    value.ok().map(|v| (key, v))
}

/// The change a record carries.
pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Change, String> {
    let key = std::str::from_utf8(key).map_err(|_| "record key is not utf-8".to_owned())?;
    if let Some(id) = key.strip_prefix(TENANT_PREFIX) {
        let Some(value) = value else { return Ok(Change::RemoveTenant(id.to_owned())) };
        let settings: TenantSettings = serde_json::from_slice(value).map_err(|e| format!("tenant value: {e}"))?;
        if settings.id != id {
            return Err(format!("tenant value names {:?} under key {key:?}", settings.id));
        }
        return Ok(Change::Tenant(settings));
    }
    if let Some(key_id) = key.strip_prefix(KEY_PREFIX) {
        let Some(value) = value else { return Ok(Change::RemoveKey(key_id.to_owned())) };
        let stored: StoredKey = serde_json::from_slice(value).map_err(|e| format!("api key value: {e}"))?;
        if stored.key_id != key_id {
            return Err(format!("api key value names {:?} under key {key:?}", stored.key_id));
        }
        let hash = from_hex(&stored.key_sha256).ok_or("api key value has a malformed key_sha256")?;
        let record = ApiKeyRecord {
            key_id: stored.key_id,
            tenant_id: stored.tenant_id,
            name: stored.name,
            roles: stored.roles.iter().filter_map(|r| Role::parse(r)).collect(),
            revoked: stored.revoked,
            created_at: stored.created_at,
        };
        return Ok(Change::Key { hash, record });
    }
    Err(format!("unknown record key {key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key;

    #[test]
    fn tenants_and_keys_round_trip_and_the_secret_is_not_in_the_value() {
        let tenant = Change::Tenant(TenantSettings { rate_limit_per_sec: Some(5), ..TenantSettings::new("acme") });
        let (key, value) = encode(&tenant).expect("upsert");
        assert_eq!(key, "tenant/acme");
        assert_eq!(decode(key.as_bytes(), Some(&value)), Ok(tenant));

        let generated = api_key::generate();
        let record = ApiKeyRecord {
            key_id: "key_1".into(),
            tenant_id: "acme".into(),
            name: "ci".into(),
            roles: vec![Role::Writer, Role::Reader],
            revoked: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let change = Change::Key { hash: generated.hash, record };
        let (key, value) = encode(&change).expect("upsert");
        assert_eq!(key, "key/key_1");
        let text = String::from_utf8(value.clone()).expect("json");
        assert!(!text.contains(&generated.secret) && !text.contains(&generated.secret[4..]));
        assert!(text.contains(&api_key::to_hex(&generated.hash)));
        assert_eq!(decode(key.as_bytes(), Some(&value)), Ok(change));
    }

    #[test]
    fn tombstones_remove_and_malformed_records_are_refused() {
        assert_eq!(decode(b"tenant/acme", None), Ok(Change::RemoveTenant("acme".into())));
        assert_eq!(decode(b"key/key_1", None), Ok(Change::RemoveKey("key_1".into())));
        assert!(decode(b"tenant/acme", Some(br#"{"id":"globex"}"#)).is_err(), "value must match its key");
        assert!(decode(b"tenant/acme", Some(b"not json")).is_err());
        assert!(decode(b"user/x", Some(b"{}")).is_err());
        let bad_hash = br#"{"key_id":"k","tenant_id":"a","name":"n","roles":[],"revoked":false,"created_at":"2026-01-01T00:00:00Z","key_sha256":"xx"}"#;
        assert!(decode(b"key/k", Some(bad_hash)).is_err());
    }
}
