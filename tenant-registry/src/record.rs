//! The registry topic's records: key `tenant/<id>`, `key/<key_id>` or
//! `signing-key/<tenant_id>/<key_id>`, value the entity's full current state as JSON (an API
//! key's value holds the SHA-256 of its secret, never the secret; a signing key's value is its
//! [`SigningKeyRecord`], public key included).
//! A record without value (a compaction tombstone) removes the entity.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api_key::{from_hex, to_hex};
use crate::view::{Change, View};
use crate::signing_key::signing_key_id_problem;
use crate::{ApiKeyRecord, RegistryError, Role, SigningKeyRecord, TenantSettings, validate};

const TENANT_PREFIX: &str = "tenant/";
const KEY_PREFIX: &str = "key/";
const SIGNING_KEY_PREFIX: &str = "signing-key/";

/// A key's state as stored: the record plus the hash it is found by.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    key_id: String,
    tenant_id: String,
    name: String,
    /// Role names; a record naming a role this version does not know is refused when read.
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
        Change::SigningKey(record) => (format!("{SIGNING_KEY_PREFIX}{}/{}", record.tenant_id, record.key_id), serde_json::to_vec(record)),
        Change::RemoveTenant(_) | Change::RemoveKey(_) | Change::RemoveSigningKey { .. } => return None,
    };
    // Serializing plain structs of strings, numbers and bools cannot fail.
    value.ok().map(|v| (key, v))
}

/// Why a record read from the registry topic or file was not applied. `reason` is the metric
/// label ([`crate::RECORDS_REJECTED_METRIC`]); `detail` says what is wrong (never a secret:
/// records hold none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// `malformed` (not a record this version can read), `invalid_tenant`, `invalid_api_key`,
    /// `invalid_signing_key` (fails the checks the admin API applies to its input) or `conflict` (contradicts the
    /// state already applied, e.g. a key moved to another tenant).
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

impl Rejection {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }

    fn malformed(detail: impl Into<String>) -> Self {
        Self::new("malformed", detail)
    }

    /// Counts this rejection in [`crate::RECORDS_REJECTED_METRIC`].
    pub(crate) fn count(&self) {
        metrics::counter!(crate::RECORDS_REJECTED_METRIC, "reason" => self.reason).increment(1);
    }
}

fn invalid(reason: &'static str, err: RegistryError) -> Rejection {
    Rejection::new(reason, err.to_string())
}

/// The change a record carries, checked like the admin API's input: a record that any
/// producer on the topic could have written is trusted no more than a request.
pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Change, Rejection> {
    let key = std::str::from_utf8(key).map_err(|_| Rejection::malformed("record key is not utf-8"))?;
    if let Some(id) = key.strip_prefix(TENANT_PREFIX) {
        let Some(value) = value else {
            return match validate::tenant_id_problem(id) {
                None => Ok(Change::RemoveTenant(id.to_owned())),
                Some(m) => Err(Rejection::new("invalid_tenant", format!("tombstone of tenant {id:?}: {m}"))),
            };
        };
        let settings: TenantSettings = serde_json::from_slice(value).map_err(|e| Rejection::malformed(format!("tenant value: {e}")))?;
        if settings.id != id {
            return Err(Rejection::malformed(format!("tenant value names {:?} under key {key:?}", settings.id)));
        }
        settings.validate().map_err(|e| invalid("invalid_tenant", e))?;
        return Ok(Change::Tenant(settings));
    }
    if let Some(key_id) = key.strip_prefix(KEY_PREFIX) {
        let Some(value) = value else {
            return match validate::key_id_problem(key_id) {
                None => Ok(Change::RemoveKey(key_id.to_owned())),
                Some(m) => Err(Rejection::new("invalid_api_key", format!("tombstone of key {key_id:?}: {m}"))),
            };
        };
        let stored: StoredKey = serde_json::from_slice(value).map_err(|e| Rejection::malformed(format!("api key value: {e}")))?;
        if stored.key_id != key_id {
            return Err(Rejection::malformed(format!("api key value names {:?} under key {key:?}", stored.key_id)));
        }
        // Only the form `to_hex` writes: 64 lowercase hex digits.
        let hash = from_hex(&stored.key_sha256)
            .filter(|hash| to_hex(hash) == stored.key_sha256)
            .ok_or_else(|| Rejection::new("invalid_api_key", "key_sha256 must be 64 lowercase hex digits"))?;
        let mut roles = Vec::with_capacity(stored.roles.len());
        for name in &stored.roles {
            let role = Role::parse(name).ok_or_else(|| Rejection::new("invalid_api_key", format!("roles: unknown role {name:?}")))?;
            roles.push(role);
        }
        roles.sort();
        roles.dedup();
        let record = ApiKeyRecord {
            key_id: stored.key_id,
            tenant_id: stored.tenant_id,
            name: stored.name,
            roles,
            revoked: stored.revoked,
            created_at: stored.created_at,
        };
        record.validate().map_err(|e| invalid("invalid_api_key", e))?;
        return Ok(Change::Key { hash, record });
    }
    if let Some(rest) = key.strip_prefix(SIGNING_KEY_PREFIX) {
        return decode_signing_key(key, rest, value);
    }
    Err(Rejection::malformed(format!("unknown record key {key:?}")))
}

/// A `signing-key/<tenant_id>/<key_id>` record (`rest` is what follows the prefix).
fn decode_signing_key(key: &str, rest: &str, value: Option<&[u8]>) -> Result<Change, Rejection> {
    let invalid_key = |m: String| Rejection::new("invalid_signing_key", m);
    let Some((tenant_id, key_id)) = rest.split_once('/') else {
        return Err(Rejection::malformed(format!("record key {key:?} names no key id")));
    };
    let Some(value) = value else {
        if let Some(m) = validate::tenant_id_problem(tenant_id).or_else(|| signing_key_id_problem(key_id)) {
            return Err(invalid_key(format!("tombstone of {key:?}: {m}")));
        }
        return Ok(Change::RemoveSigningKey { tenant_id: tenant_id.to_owned(), key_id: key_id.to_owned() });
    };
    let record: SigningKeyRecord = serde_json::from_slice(value).map_err(|e| Rejection::malformed(format!("signing key value: {e}")))?;
    if record.tenant_id != tenant_id || record.key_id != key_id {
        return Err(Rejection::malformed(format!("signing key value names {:?}/{:?} under key {key:?}", record.tenant_id, record.key_id)));
    }
    record.validate().map_err(|e| invalid("invalid_signing_key", e))?;
    Ok(Change::SigningKey(record))
}

/// Decodes one record read back (from the topic or the file) and applies it to `view` at
/// `version`, unless it is malformed, invalid, or contradicts what `view` holds; the caller
/// logs and counts a rejection, then goes on with the next record.
pub(crate) fn apply_read(view: &View, key: &[u8], value: Option<&[u8]>, version: i64) -> Result<(), Rejection> {
    let change = decode(key, value)?;
    if let Some(detail) = view.conflict(&change) {
        return Err(Rejection::new("conflict", detail));
    }
    view.apply(change, version);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key;

    const KEY_ID: &str = "key_0190f0e8a1b27c3d8e4f5a6b7c8d9e0f";

    #[test]
    fn tenants_and_keys_round_trip_and_the_secret_is_not_in_the_value() {
        let tenant = Change::Tenant(TenantSettings { rate_limit_per_sec: Some(5), ..TenantSettings::new("acme") });
        let (key, value) = encode(&tenant).expect("upsert");
        assert_eq!(key, "tenant/acme");
        assert_eq!(decode(key.as_bytes(), Some(&value)), Ok(tenant));

        let generated = api_key::generate();
        let record = ApiKeyRecord {
            key_id: KEY_ID.into(),
            tenant_id: "acme".into(),
            name: "ci".into(),
            roles: vec![Role::Writer, Role::Reader],
            revoked: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let change = Change::Key { hash: generated.hash, record };
        let (key, value) = encode(&change).expect("upsert");
        assert_eq!(key, format!("key/{KEY_ID}"));
        let text = String::from_utf8(value.clone()).expect("json");
        assert!(!text.contains(&generated.secret) && !text.contains(&generated.secret[4..]));
        assert!(text.contains(&api_key::to_hex(&generated.hash)));
        assert_eq!(decode(key.as_bytes(), Some(&value)), Ok(change));
    }

    #[test]
    fn tombstones_remove_and_malformed_records_are_refused() {
        assert_eq!(decode(b"tenant/acme", None), Ok(Change::RemoveTenant("acme".into())));
        let tombstone = format!("key/{KEY_ID}");
        assert_eq!(decode(tombstone.as_bytes(), None), Ok(Change::RemoveKey(KEY_ID.into())));
        assert!(decode(b"tenant/acme", Some(br#"{"id":"globex"}"#)).is_err(), "value must match its key");
        assert!(decode(b"tenant/acme", Some(b"not json")).is_err());
        assert!(decode(b"user/x", Some(b"{}")).is_err());
        let bad_hash = key_value(KEY_ID, "acme", r#"["writer"]"#, "xx");
        assert_eq!(decode(tombstone.as_bytes(), Some(&bad_hash)).map_err(|r| r.reason), Err("invalid_api_key"));
        assert_eq!(decode(b"tenant/acme", Some(b"not json")).map_err(|r| r.reason), Err("malformed"));
    }

    fn key_value(key_id: &str, tenant: &str, roles: &str, hash: &str) -> Vec<u8> {
        format!(
            r#"{{"key_id":"{key_id}","tenant_id":"{tenant}","name":"ci","roles":{roles},"revoked":false,"created_at":"2026-01-01T00:00:00Z","key_sha256":"{hash}"}}"#
        )
        .into_bytes()
    }

    fn reason(key: &str, value: &[u8]) -> Result<(), &'static str> {
        decode(key.as_bytes(), Some(value)).map(|_| ()).map_err(|r| r.reason)
    }

    #[test]
    fn records_are_checked_like_admin_api_input() {
        let hex = api_key::to_hex(&api_key::generate().hash);
        let key = format!("key/{KEY_ID}");
        assert_eq!(reason(&key, &key_value(KEY_ID, "acme", r#"["writer","reader","writer"]"#, &hex)), Ok(()));
        let invalid_keys = [
            key_value(KEY_ID, "system", r#"["reader"]"#, &hex),
            key_value(KEY_ID, "Acme", r#"["reader"]"#, &hex),
            key_value(KEY_ID, "acme", r#"["platform_admin"]"#, &hex),
            key_value(KEY_ID, "acme", r#"["root"]"#, &hex),
            key_value(KEY_ID, "acme", r#"[]"#, &hex),
            key_value(KEY_ID, "acme", r#"["reader"]"#, &hex.to_uppercase()),
            key_value(KEY_ID, "acme", r#"["reader"]"#, &hex[..62]),
        ];
        for value in &invalid_keys {
            assert_eq!(reason(&key, value), Err("invalid_api_key"), "{}", String::from_utf8_lossy(value));
        }
        assert_eq!(reason("key/key_1", &key_value("key_1", "acme", r#"["reader"]"#, &hex)), Err("invalid_api_key"), "key id shape");
        let blank_name = String::from_utf8(key_value(KEY_ID, "acme", r#"["reader"]"#, &hex)).expect("utf-8").replace(r#""ci""#, r#"" ""#);
        assert_eq!(reason(&key, blank_name.as_bytes()), Err("invalid_api_key"));

        assert_eq!(reason("tenant/acme", br#"{"id":"acme","name":"Acme"}"#), Ok(()));
        for value in [
            &br#"{"id":"acme","name":""}"#[..],
            br#"{"id":"acme","name":"Acme","retention_days":0}"#,
            br#"{"id":"acme","name":"Acme","retention_days":36501}"#,
            br#"{"id":"acme","name":"Acme","rate_limit_per_sec":0}"#,
            br#"{"id":"acme","name":"Acme","status":"deleting"}"#,
            br#"{"id":"acme","name":"Acme","pending_retention_days":0,"pending_effective_at":"2026-01-01T00:00:00Z"}"#,
        ] {
            assert_eq!(reason("tenant/acme", value), Err("invalid_tenant"), "{}", String::from_utf8_lossy(value));
        }
        assert_eq!(reason("tenant/system", br#"{"id":"system","name":"System"}"#), Err("invalid_tenant"), "reserved");
        assert_eq!(reason("tenant/a.b", br#"{"id":"a.b","name":"x"}"#), Err("invalid_tenant"));
        assert_eq!(reason("tenant/acme", br#"{"id":"acme","name":"Acme","status":"superuser"}"#), Err("malformed"), "unknown status");
        assert_eq!(decode(b"tenant/Bad", None).map_err(|r| r.reason), Err("invalid_tenant"));
        assert_eq!(decode(b"key/nope", None).map_err(|r| r.reason), Err("invalid_api_key"));
        assert_eq!(decode(&[0xff, 0xfe], Some(b"{}")).map_err(|r| r.reason), Err("malformed"));
    }

    #[test]
    fn a_key_never_moves_to_another_tenant_or_takes_another_keys_hash() {
        let view = View::default();
        let hex = api_key::to_hex(&api_key::generate().hash);
        let key = format!("key/{KEY_ID}");
        apply_read(&view, key.as_bytes(), Some(&key_value(KEY_ID, "acme", r#"["reader"]"#, &hex)), 0).expect("valid key");
        let moved = apply_read(&view, key.as_bytes(), Some(&key_value(KEY_ID, "globex", r#"["reader"]"#, &hex)), 1);
        assert_eq!(moved.map_err(|r| r.reason), Err("conflict"));
        let other = "key_0190f0e8a1b27c3d8e4f5a6b7c8d9e1f";
        let stolen = apply_read(&view, format!("key/{other}").as_bytes(), Some(&key_value(other, "acme", r#"["reader"]"#, &hex)), 2);
        assert_eq!(stolen.map_err(|r| r.reason), Err("conflict"));
        assert_eq!(view.key_by_hash(&api_key::from_hex(&hex).expect("hex")).map(|r| (r.key_id, r.tenant_id)), Some((KEY_ID.into(), "acme".into())));
        let revoked = String::from_utf8(key_value(KEY_ID, "acme", r#"["reader"]"#, &hex)).expect("utf-8").replace(r#""revoked":false"#, r#""revoked":true"#);
        apply_read(&view, key.as_bytes(), Some(revoked.as_bytes()), 3).expect("the same key's next state applies");
    }

    #[test]
    fn signing_keys_round_trip_and_a_registered_key_never_changes_nor_gets_unrevoked() {
        use crate::signing_key::tests::{ED25519_KEY, p256_key};
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let new = crate::NewSigningKey { producer: "billing".into(), alg: "ed25519".into(), public_key: ED25519_KEY.into(), ..Default::default() };
        let record = new.into_record("acme", now).expect("valid");
        let change = Change::SigningKey(record.clone());
        let (key, value) = encode(&change).expect("upsert");
        assert_eq!(key, format!("signing-key/acme/{}", record.key_id));
        assert_eq!(decode(key.as_bytes(), Some(&value)), Ok(change.clone()));
        assert_eq!(decode(b"signing-key/acme/k1", None), Ok(Change::RemoveSigningKey { tenant_id: "acme".into(), key_id: "k1".into() }));
        assert_eq!(decode(b"signing-key/acme", None).map_err(|r| r.reason), Err("malformed"));
        assert_eq!(decode(b"signing-key/Acme/k1", None).map_err(|r| r.reason), Err("invalid_signing_key"));

        let view = View::default();
        apply_read(&view, key.as_bytes(), Some(&value), 0).expect("valid key");
        let revoked = SigningKeyRecord { revoked_at: Some(now + time::Duration::hours(1)), ..record.clone() };
        let write = |r: &SigningKeyRecord, version| apply_read(&view, key.as_bytes(), Some(&serde_json::to_vec(r).expect("json")), version).map_err(|r| r.reason);
        assert_eq!(write(&revoked, 1), Ok(()));
        assert_eq!(write(&revoked, 1), Ok(()), "the writer's own record read back applies again");
        assert_eq!(write(&record, 2), Err("conflict"), "a revocation is never lifted");
        assert_eq!(write(&SigningKeyRecord { revoked_at: Some(now + time::Duration::hours(2)), ..record.clone() }, 3), Err("conflict"), "nor moved later");
        let swapped = SigningKeyRecord { alg: "ecdsa-p256-sha256".into(), public_key: p256_key(), ..revoked.clone() };
        assert_eq!(write(&swapped, 4), Err("conflict"), "nor is another public key put under its id");
        let earlier = SigningKeyRecord { revoked_at: Some(now), ..record.clone() };
        assert_eq!(write(&earlier, 5), Ok(()), "an earlier revocation applies");
    }
}
