//! Producers' signing keys (issue #15): the public keys a tenant registers so that the
//! gateway can check the signature an event carries, and anyone can check it later.
//!
//! - A key belongs to one tenant and one named producer; its id is unique in the tenant
//!   (`[A-Za-z0-9._:-]{1,128}`, by default the first 16 hex digits of the SHA-256 of the key).
//! - `alg` is `ed25519` (a 32-byte public key, a valid curve point) or `ecdsa-p256-sha256`
//!   (a SEC1 point, 33 bytes compressed or 65 uncompressed, on the curve); `public_key` is
//!   the raw key in standard base64 with padding.
//! - A key verifies events whose `occurred_at` is in `[not_before, not_after)` and before
//!   `revoked_at`. Rotation: register the new key, let both overlap, then set the old one's
//!   `not_after` by revoking it (events it signed before stay valid). A revocation time only
//!   ever moves earlier: revoking again with a later time keeps the first.
//! - The registry keeps the record as state (`signing-key/<tenant>/<key_id>` in the topic or
//!   file), checked on every read back like admin API input; a tenant that is tombstoned
//!   (`deleted`) has its keys no longer served ([`crate::TenantRegistry::signing_key`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};

use crate::error::FieldProblem;
use crate::{RegistryError, validate};

/// `alg` of an Ed25519 key (RFC 8032; signatures checked strictly).
pub const ALG_ED25519: &str = "ed25519";
/// `alg` of an ECDSA key on P-256 with SHA-256 (signatures are `r || s`, 64 bytes).
pub const ALG_ECDSA_P256_SHA256: &str = "ecdsa-p256-sha256";
/// Every `alg` the registry accepts.
pub const ALGS: [&str; 2] = [ALG_ED25519, ALG_ECDSA_P256_SHA256];

/// Longest signing key id.
pub const MAX_SIGNING_KEY_ID_LEN: usize = 128;

/// A registered signing key, as the admin API shows it and the registry stores it
/// (`not_after` and `revoked_at` are `null` when unset; times RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Unique in the tenant; what an event's `signature.key_id` names.
    pub key_id: String,
    /// Tenant the key is registered for.
    pub tenant_id: String,
    /// The producing service the key belongs to (a label).
    pub producer: String,
    /// `ed25519` or `ecdsa-p256-sha256`.
    pub alg: String,
    /// The raw public key, standard base64 with padding.
    pub public_key: String,
    /// Earliest `occurred_at` the key verifies.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// `occurred_at` from which the key no longer verifies; `None`: no end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// `occurred_at` from which the key no longer verifies because it was revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When the key was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl SigningKeyRecord {
    /// Every problem of this record, or `Ok`: what the admin API requires of a key it
    /// registers, checked again on every record read back from the topic or the file.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let mut problems = Vec::new();
        if let Some(m) = signing_key_id_problem(&self.key_id) {
            problems.push(FieldProblem::new("key_id", m));
        }
        if let Some(m) = validate::tenant_id_problem(&self.tenant_id) {
            problems.push(FieldProblem::new("tenant_id", m));
        }
        problems.extend(key_problems(&self.producer, &self.alg, &self.public_key, self.not_before, self.not_after));
        validate::check(problems)
    }

    /// The raw public key bytes (`None` if `public_key` is not standard base64).
    pub fn public_key_bytes(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.public_key).ok()
    }

    /// Whether the key verifies an event that occurred at `at`: inside `[not_before,
    /// not_after)` and before `revoked_at`.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && self.not_after.is_none_or(|end| at < end) && self.revoked_at.is_none_or(|end| at < end)
    }
}

/// A key to register (`POST /v1/tenants/{id}/signing-keys`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewSigningKey {
    /// Default: the first 16 hex digits of the SHA-256 of the raw public key.
    pub key_id: Option<String>,
    /// The producing service.
    pub producer: String,
    /// `ed25519` or `ecdsa-p256-sha256`.
    pub alg: String,
    /// The raw public key, standard base64.
    pub public_key: String,
    /// Default: now.
    pub not_before: Option<OffsetDateTime>,
    /// Must be after `not_before`; `None`: no end.
    pub not_after: Option<OffsetDateTime>,
}

impl NewSigningKey {
    /// The record this request registers for `tenant_id` at `now`, with its defaults
    /// filled in and every problem reported at once (fields named as in the request).
    pub fn into_record(self, tenant_id: &str, now: OffsetDateTime) -> Result<SigningKeyRecord, RegistryError> {
        let not_before = utc(self.not_before.unwrap_or(now));
        let not_after = self.not_after.map(utc);
        let mut problems = key_problems(&self.producer, &self.alg, &self.public_key, not_before, not_after);
        let key_id = match self.key_id {
            Some(id) => {
                if let Some(m) = signing_key_id_problem(&id) {
                    problems.push(FieldProblem::new("key_id", m));
                }
                id
            }
            None => STANDARD.decode(&self.public_key).map(|bytes| default_key_id(&bytes)).unwrap_or_default(),
        };
        validate::check(problems)?;
        Ok(SigningKeyRecord {
            key_id,
            tenant_id: tenant_id.to_owned(),
            producer: self.producer.trim().to_owned(),
            alg: self.alg,
            public_key: self.public_key,
            not_before,
            not_after,
            revoked_at: None,
            created_at: utc(now),
        })
    }
}

/// `at` in UTC (requests may give any offset; the registry stores UTC).
pub(crate) fn utc(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(UtcOffset::UTC)
}

/// The default key id of a raw public key: the first 16 hex digits of its SHA-256.
pub fn default_key_id(public_key: &[u8]) -> String {
    Sha256::digest(public_key).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Why `key_id` is not a signing key id (`[A-Za-z0-9._:-]{1,128}`), if it is not.
pub fn signing_key_id_problem(key_id: &str) -> Option<String> {
    let ok = (1..=MAX_SIGNING_KEY_ID_LEN).contains(&key_id.len())
        && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    (!ok).then(|| format!("must match [A-Za-z0-9._:-]{{1,{MAX_SIGNING_KEY_ID_LEN}}}"))
}

/// Why `public_key` (standard base64) is not a usable public key for `alg`, if it is not;
/// `None` also when `alg` is unknown (that is `alg`'s problem).
pub fn public_key_problem(alg: &str, public_key: &str) -> Option<String> {
    let Ok(bytes) = STANDARD.decode(public_key) else {
        return Some("must be the raw public key in standard base64 (with padding)".into());
    };
    match alg {
        ALG_ED25519 => {
            let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                return Some(format!("an ed25519 public key is 32 bytes, not {}", bytes.len()));
            };
            match ed25519_dalek::VerifyingKey::from_bytes(&raw) {
                Err(_) => Some("is not an ed25519 curve point".into()),
                Ok(key) if key.is_weak() => Some("is a weak ed25519 key (of small order)".into()),
                Ok(_) => None,
            }
        }
        ALG_ECDSA_P256_SHA256 => {
            let shape = matches!((bytes.len(), bytes.first()), (33, Some(2 | 3)) | (65, Some(4)));
            if !shape {
                return Some(format!("a P-256 public key is a SEC1 point: 33 bytes (02/03 prefix) or 65 bytes (04 prefix), not {} bytes", bytes.len()));
            }
            p256::PublicKey::from_sec1_bytes(&bytes).is_err().then(|| "is not a point on the P-256 curve".into())
        }
        _ => None,
    }
}

/// The problems of a key's fields other than its id and tenant.
fn key_problems(
    producer: &str,
    alg: &str,
    public_key: &str,
    not_before: OffsetDateTime,
    not_after: Option<OffsetDateTime>,
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Some(m) = validate::name_problem(producer) {
        problems.push(FieldProblem::new("producer", m));
    }
    if !ALGS.contains(&alg) {
        problems.push(FieldProblem::new("alg", format!("unknown algorithm {alg:?} (known: {})", ALGS.join(", "))));
    }
    if let Some(m) = public_key_problem(alg, public_key) {
        problems.push(FieldProblem::new("public_key", m));
    }
    if not_after.is_some_and(|end| end <= not_before) {
        problems.push(FieldProblem::new("not_after", "must be after not_before"));
    }
    problems
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid ed25519 public key (RFC 8032 test 1), base64.
    pub(crate) const ED25519_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    /// A valid P-256 public key (the generator point), uncompressed, base64.
    pub(crate) fn p256_key() -> String {
        let mut point = vec![4u8];
        point.extend(hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"));
        point.extend(hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"));
        STANDARD.encode(point)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
    }

    fn new_key(alg: &str, public_key: &str) -> NewSigningKey {
        NewSigningKey { producer: "billing".into(), alg: alg.into(), public_key: public_key.into(), ..NewSigningKey::default() }
    }

    fn fields(err: RegistryError) -> Vec<String> {
        let RegistryError::Invalid(problems) = err else { panic!("expected invalid, got {err:?}") };
        problems.into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_new_key_gets_its_defaults_and_round_trips_as_json() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let record = new_key(ALG_ED25519, ED25519_KEY).into_record("acme", now).expect("valid key");
        let raw = STANDARD.decode(ED25519_KEY).expect("base64");
        assert_eq!(record.key_id, default_key_id(&raw));
        assert_eq!(record.key_id.len(), 16);
        assert_eq!((record.not_before, record.created_at, record.not_after, record.revoked_at), (now, now, None, None));
        let json = serde_json::to_value(&record).expect("serializes");
        assert_eq!((json["not_after"].is_null(), json["revoked_at"].is_null()), (true, true));
        assert_eq!(serde_json::from_value::<SigningKeyRecord>(json).expect("parses"), record);
        assert!(record.validate().is_ok());
        assert!(record.valid_at(now) && !record.valid_at(now - time::Duration::SECOND));
        let p256 = new_key(ALG_ECDSA_P256_SHA256, &p256_key()).into_record("acme", now).expect("valid P-256 key");
        assert!(p256.validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(fields(new_key(ALG_ED25519, "not base64!").into_record("acme", now).expect_err("bad")), ["public_key"]);
        assert_eq!(fields(new_key("rsa", ED25519_KEY).into_record("acme", now).expect_err("bad")), ["alg"]);
        let short = STANDARD.encode([7u8; 31]);
        assert_eq!(fields(new_key(ALG_ED25519, &short).into_record("acme", now).expect_err("bad")), ["public_key"]);
        assert_eq!(fields(new_key(ALG_ECDSA_P256_SHA256, ED25519_KEY).into_record("acme", now).expect_err("bad")), ["public_key"]);
        let mut off_curve = STANDARD.decode(p256_key()).expect("base64");
        off_curve[64] ^= 1;
        let off_curve = STANDARD.encode(off_curve);
        assert_eq!(fields(new_key(ALG_ECDSA_P256_SHA256, &off_curve).into_record("acme", now).expect_err("bad")), ["public_key"]);
        let unpadded = ED25519_KEY.trim_end_matches('=');
        assert_eq!(fields(new_key(ALG_ED25519, unpadded).into_record("acme", now).expect_err("bad")), ["public_key"]);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = STANDARD.encode(identity);
        assert_eq!(fields(new_key(ALG_ED25519, &weak).into_record("acme", now).expect_err("identity is weak")), ["public_key"]);
        let backwards = NewSigningKey { not_before: Some(now), not_after: Some(now), key_id: Some("a/b".into()), producer: " ".into(), ..new_key(ALG_ED25519, ED25519_KEY) };
        assert_eq!(fields(backwards.into_record("acme", now).expect_err("bad")), ["producer", "not_after", "key_id"]);
        let record = new_key(ALG_ED25519, ED25519_KEY).into_record("acme", now).expect("valid");
        assert_eq!(fields(SigningKeyRecord { tenant_id: "system".into(), ..record }.validate().expect_err("reserved")), ["tenant_id"]);
    }

    /// What every backend must do with signing keys: register (defaults, duplicates refused,
    /// unknown or deleted tenants refused), serve, revoke keeping the earlier time, list per
    /// tenant, and stop serving a tombstoned tenant's keys.
    pub(crate) async fn backend_contract(registry: &dyn crate::TenantAdmin) {
        use crate::{TenantPatch, TenantSettings};
        let key = || new_key(ALG_ED25519, ED25519_KEY);
        assert_eq!(registry.add_signing_key("acme", key()).await, Err(RegistryError::UnknownTenant("acme".into())));
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        registry.create_tenant(TenantSettings::new("globex")).await.expect("valid tenant");
        let added = registry.add_signing_key("acme", key()).await.expect("valid key");
        assert_eq!(added.key_id, default_key_id(&STANDARD.decode(ED25519_KEY).expect("base64")));
        assert_eq!(registry.add_signing_key("acme", key()).await, Err(RegistryError::SigningKeyExists(added.key_id.clone())), "duplicate key id");
        assert!(matches!(registry.add_signing_key("acme", new_key("rsa", ED25519_KEY)).await, Err(RegistryError::Invalid(_))));
        let other = registry.add_signing_key("globex", key()).await.expect("the same id in another tenant is another key");
        let p256 = NewSigningKey { key_id: Some("p256-v1".into()), ..new_key(ALG_ECDSA_P256_SHA256, &p256_key()) };
        let p256 = registry.add_signing_key("acme", p256).await.expect("valid P-256 key");
        assert_eq!(registry.signing_key("acme", &added.key_id), Some(added.clone()));
        assert_eq!(registry.signing_key("acme", "nope"), None);
        assert_eq!(registry.list_signing_keys("acme").expect("known tenant"), [added.clone(), p256.clone()]);
        assert_eq!(registry.list_signing_keys("globex").expect("known tenant"), std::slice::from_ref(&other));
        assert_eq!(registry.list_signing_keys("nobody"), Err(RegistryError::UnknownTenant("nobody".into())));

        let at = added.not_before + time::Duration::hours(1);
        assert_eq!(registry.revoke_signing_key("globex", "p256-v1", at).await, Err(RegistryError::UnknownSigningKey("p256-v1".into())), "another tenant's key");
        let revoked = registry.revoke_signing_key("acme", &added.key_id, at).await.expect("own key");
        assert_eq!(revoked.revoked_at, Some(at));
        let again = registry.revoke_signing_key("acme", &added.key_id, at + time::Duration::hours(1)).await.expect("idempotent");
        assert_eq!(again.revoked_at, Some(at), "a later revocation keeps the earlier time");
        let earlier = at - time::Duration::minutes(30);
        assert_eq!(registry.revoke_signing_key("acme", &added.key_id, earlier).await.expect("earlier").revoked_at, Some(earlier));
        assert_eq!(registry.signing_key("acme", &added.key_id).and_then(|k| k.revoked_at), Some(earlier), "revoked keys stay served");
        assert_eq!(registry.signing_key("globex", &other.key_id).and_then(|k| k.revoked_at), None, "the other tenant's key is untouched");

        let deleted = TenantPatch { status: Some(crate::TenantStatus::Deleted), ..TenantPatch::default() };
        registry.update_tenant("globex", deleted).await.expect("tombstoned");
        assert_eq!(registry.signing_key("globex", &other.key_id), None, "a deleted tenant's keys are no longer served");
        assert_eq!(registry.add_signing_key("globex", key()).await.map(|_| ()), Err(RegistryError::UnknownTenant("globex".into())));
    }

    #[test]
    fn key_ids_have_the_signature_field_shape() {
        for ok in ["a", "billing-2026.01:v1_x", &"k".repeat(128)] {
            assert_eq!(signing_key_id_problem(ok), None, "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"k".repeat(129)] {
            assert!(signing_key_id_problem(bad).is_some(), "{bad}");
        }
    }
}
