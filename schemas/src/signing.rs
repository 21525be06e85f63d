//! Signed events: the canonical bytes a producer signs, verification of a signature against
//! the producer key that was valid when the event occurred, and producer-side signing.
//!
//! The signed bytes ([`signed_bytes`]) are the RFC 8785 (JCS) canonical JSON of the event as
//! the gateway completes it, without the fields the producer cannot know or that are added
//! after signing ([`UNSIGNED_FIELDS`]), with `occurred_at` written as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`. `docs/signing.md` states the rules for producers in any
//! language; `examples/sign_event.py` follows them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use crate::event::{AuditEvent, Signature, SignatureAlg};

/// Top-level fields that are not signed: set by the gateway (`received_at`), the signature
/// itself, and fields added when an event is read (`leaf_index`, `verified`).
pub const UNSIGNED_FIELDS: &[&str] = &["received_at", "signature", "leaf_index", "verified"];

/// Length of a signature value for both algorithms: Ed25519, and ECDSA P-256 as `r || s`.
pub const SIGNATURE_LEN: usize = 64;

/// Why canonical bytes, a key or a signature could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A timestamp outside the years RFC 3339 can write.
    #[error("timestamp year {0} is outside 0000..9999")]
    TimestampOutOfRange(i32),
    /// The event could not be written as canonical JSON.
    #[error("canonical json: {0}")]
    Json(String),
    /// A private key could not be read or written.
    #[error("private key: {0}")]
    Key(String),
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC: always six fractional digits (the stored precision is
/// microseconds), nine only when a value carries nanoseconds. Independent of how the `time`
/// crate chooses to print RFC 3339, so a dependency upgrade can move neither a ledger leaf nor
/// a signature.
pub fn canonical_timestamp(at: OffsetDateTime) -> Result<String, SigningError> {
    let utc = at.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&utc.year()) {
        return Err(SigningError::TimestampOutOfRange(utc.year()));
    }
    let nanos = utc.nanosecond();
    let fraction = if nanos.is_multiple_of(1000) { format!("{:06}", nanos / 1000) } else { format!("{nanos:09}") };
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}

/// `at` with its sub-microsecond digits dropped, as the gateway stores it.
fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

/// The bytes a producer signs: the RFC 8785 (JCS) canonical JSON of `event` without
/// [`UNSIGNED_FIELDS`], `occurred_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, exactly six
/// fractional digits: sub-microsecond digits are dropped, as at ingest). The object holds
/// `id`, `tenant_id`, `occurred_at`, `action`, `actor` (with `type`), `targets` (always, maybe
/// `[]`), `outcome`, `severity`, and `source`, `context`, `description`, `metadata` when set.
pub fn signed_bytes(event: &AuditEvent) -> Result<Vec<u8>, SigningError> {
    let mut value = serde_json::to_value(event).map_err(|e| SigningError::Json(e.to_string()))?;
    let Value::Object(fields) = &mut value else {
        return Err(SigningError::Json("event is not a JSON object".to_owned()));
    };
    for name in UNSIGNED_FIELDS {
        fields.remove(*name);
    }
    fields.insert("occurred_at".to_owned(), Value::String(canonical_timestamp(to_micros(event.occurred_at))?));
    serde_json_canonicalizer::to_vec(&value).map_err(|e| SigningError::Json(e.to_string()))
}

/// A producer key as registered for a tenant, with the window in which it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWindow {
    /// The key's algorithm; a signature claiming another one is refused.
    pub alg: SignatureAlg,
    /// Ed25519: the 32 raw bytes; P-256: a SEC1 point, uncompressed (65) or compressed (33).
    pub public_key: Vec<u8>,
    /// First instant (inclusive) at which an event signed with the key may have occurred.
    pub not_before: OffsetDateTime,
    /// End (exclusive) of the window, if any.
    pub not_after: Option<OffsetDateTime>,
    /// When the key was revoked: events that occurred at or after it are refused, earlier
    /// ones stay valid.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Why a signature does not hold. Each case has a human message (`Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// The event carries no signature.
    Missing,
    /// The signature claims another algorithm than the key's (algorithm confusion).
    AlgorithmMismatch {
        /// What the signature claims.
        claimed: SignatureAlg,
        /// The registered key's algorithm.
        key: SignatureAlg,
    },
    /// The event occurred before the key's `not_before`.
    NotYetValid {
        /// The key's `not_before`.
        not_before: OffsetDateTime,
        /// The event's `occurred_at`.
        occurred_at: OffsetDateTime,
    },
    /// The event occurred at or after the key's `not_after`.
    Expired {
        /// The key's `not_after`.
        not_after: OffsetDateTime,
        /// The event's `occurred_at`.
        occurred_at: OffsetDateTime,
    },
    /// The event occurred at or after the key's revocation.
    Revoked {
        /// When the key was revoked.
        revoked_at: OffsetDateTime,
        /// The event's `occurred_at`.
        occurred_at: OffsetDateTime,
    },
    /// The signature does not verify over the event's canonical bytes with the key.
    Invalid,
    /// The signature value, the key or the event cannot be used at all.
    Malformed(String),
}

fn when(at: OffsetDateTime) -> String {
    canonical_timestamp(at).unwrap_or_else(|_| at.to_string())
}

impl std::fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "the event is not signed"),
            Self::AlgorithmMismatch { claimed, key } => {
                write!(f, "the signature claims {claimed} but the key is {key}")
            }
            Self::NotYetValid { not_before, occurred_at } => write!(
                f,
                "the key is not valid before {}; the event occurred at {}",
                when(*not_before),
                when(*occurred_at)
            ),
            Self::Expired { not_after, occurred_at } => write!(
                f,
                "the key expired at {}; the event occurred at {}",
                when(*not_after),
                when(*occurred_at)
            ),
            Self::Revoked { revoked_at, occurred_at } => write!(
                f,
                "the key was revoked at {}; the event occurred at {}",
                when(*revoked_at),
                when(*occurred_at)
            ),
            Self::Invalid => write!(f, "the signature does not verify over the event's canonical bytes with this key"),
            Self::Malformed(reason) => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for SignatureProblem {}

/// Checks `event.signature` against `key`: same algorithm, `occurred_at` inside the key's
/// window and before its revocation, and a signature that verifies over
/// [`signed_bytes`]`(event)` (Ed25519 with `verify_strict`; ECDSA P-256 with SHA-256).
pub fn verify(event: &AuditEvent, key: &KeyWindow) -> Result<(), SignatureProblem> {
    let signature = event.signature.as_ref().ok_or(SignatureProblem::Missing)?;
    if signature.alg != key.alg {
        return Err(SignatureProblem::AlgorithmMismatch { claimed: signature.alg, key: key.alg });
    }
    let occurred_at = event.occurred_at;
    if occurred_at < key.not_before {
        return Err(SignatureProblem::NotYetValid { not_before: key.not_before, occurred_at });
    }
    if let Some(not_after) = key.not_after
        && occurred_at >= not_after
    {
        return Err(SignatureProblem::Expired { not_after, occurred_at });
    }
    if let Some(revoked_at) = key.revoked_at
        && occurred_at >= revoked_at
    {
        return Err(SignatureProblem::Revoked { revoked_at, occurred_at });
    }
    let value: &[u8; SIGNATURE_LEN] = signature.value.as_slice().try_into().map_err(|_| {
        SignatureProblem::Malformed(format!("the signature is {} bytes, not {SIGNATURE_LEN}", signature.value.len()))
    })?;
    let message = signed_bytes(event).map_err(|e| SignatureProblem::Malformed(e.to_string()))?;
    match key.alg {
        SignatureAlg::Ed25519 => {
            let public: &[u8; 32] = key
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| SignatureProblem::Malformed("the ed25519 public key is not 32 bytes".to_owned()))?;
            let public = ed25519_dalek::VerifyingKey::from_bytes(public)
                .map_err(|_| SignatureProblem::Malformed("the ed25519 public key is not a curve point".to_owned()))?;
            public
                .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(value))
                .map_err(|_| SignatureProblem::Invalid)
        }
        SignatureAlg::EcdsaP256Sha256 => {
            use p256::ecdsa::signature::Verifier as _;
            let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key.public_key)
                .map_err(|_| SignatureProblem::Malformed("the P-256 public key is not a SEC1 point on the curve".to_owned()))?;
            let signature = p256::ecdsa::Signature::from_slice(value)
                .map_err(|_| SignatureProblem::Malformed("the ECDSA signature is not r || s with 0 < r, s < n".to_owned()))?;
            public.verify(&message, &signature).map_err(|_| SignatureProblem::Invalid)
        }
    }
}

/// What is wrong with `public_key` as a key of `alg`, if anything: Ed25519 takes the 32 raw
/// bytes of a curve point, P-256 a SEC1 point (33 bytes compressed, 65 uncompressed).
pub fn public_key_problem(alg: SignatureAlg, public_key: &[u8]) -> Option<String> {
    match alg {
        SignatureAlg::Ed25519 => {
            let Ok(bytes) = <&[u8; 32]>::try_from(public_key) else {
                return Some(format!("an ed25519 public key is 32 bytes, not {}", public_key.len()));
            };
            ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .err()
                .map(|_| "is not an ed25519 public key (not a curve point)".to_owned())
        }
        SignatureAlg::EcdsaP256Sha256 => {
            if !matches!(public_key.len(), 33 | 65) {
                return Some(format!(
                    "a P-256 public key is a SEC1 point of 33 (compressed) or 65 (uncompressed) bytes, not {}",
                    public_key.len()
                ));
            }
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .err()
                .map(|_| "is not a P-256 public key (not a SEC1 point on the curve)".to_owned())
        }
    }
}

/// A producer's private key: what `auditlog sign` and producers written in Rust sign with.
#[derive(Clone)]
pub enum ProducerKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::SigningKey),
    /// An ECDSA P-256 key (signing with SHA-256).
    EcdsaP256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for ProducerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerKey").field("alg", &self.alg()).finish_non_exhaustive()
    }
}

impl ProducerKey {
    /// A new random key of `alg`.
    pub fn generate(alg: SignatureAlg) -> Self {
        match alg {
            SignatureAlg::Ed25519 => Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&rand::random())),
            SignatureAlg::EcdsaP256Sha256 => loop {
                // A random 32-byte string is a valid scalar but for a chance of about 2^-32.
                if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                    break Self::EcdsaP256(key);
                }
            },
        }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), Ed25519 or P-256.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SigningError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let ed25519 = match <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
            Ok(key) => return Ok(Self::Ed25519(key)),
            Err(e) => e,
        };
        match p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Ok(key) => Ok(Self::EcdsaP256(key)),
            Err(p256) => Err(SigningError::Key(format!(
                "not a PKCS#8 PEM Ed25519 or P-256 private key (as ed25519: {ed25519}; as P-256: {p256})"
            ))),
        }
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), what `openssl genpkey` writes.
    pub fn to_pkcs8_pem(&self) -> Result<String, SigningError> {
        let pem = match self {
            // PKCS#8 v1 without the optional public key (RFC 8410), as `openssl genpkey` writes
            // it: some readers (Python's `cryptography`) refuse the v2 form.
            Self::Ed25519(key) => ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_pem(
                &ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None },
                ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
            ),
            Self::EcdsaP256(key) => {
                p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(key, p256::pkcs8::LineEnding::LF)
            }
        };
        pem.map(|pem| pem.to_string()).map_err(|e| SigningError::Key(e.to_string()))
    }

    /// The key's algorithm.
    pub fn alg(&self) -> SignatureAlg {
        match self {
            Self::Ed25519(_) => SignatureAlg::Ed25519,
            Self::EcdsaP256(_) => SignatureAlg::EcdsaP256Sha256,
        }
    }

    /// The public key as registered: Ed25519's 32 raw bytes, P-256's uncompressed SEC1 point.
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.verifying_key().to_bytes().to_vec(),
            Self::EcdsaP256(key) => key.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    /// The public key as standard base64, what `POST /v1/tenants/{id}/signing-keys` takes.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.public_key())
    }

    /// The signature of `event` under `key_id` (any signature it carries is not signed).
    pub fn sign(&self, event: &AuditEvent, key_id: &str) -> Result<Signature, SigningError> {
        let message = signed_bytes(event)?;
        let value = match self {
            Self::Ed25519(key) => ed25519_dalek::Signer::sign(key, &message).to_bytes().to_vec(),
            Self::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(key, &message);
                signature.to_bytes().to_vec()
            }
        };
        Ok(Signature { key_id: key_id.to_owned(), alg: self.alg(), value })
    }

    /// Signs `event` in place: sets its `signature`.
    pub fn sign_in_place(&self, event: &mut AuditEvent, key_id: &str) -> Result<(), SigningError> {
        event.signature = Some(self.sign(event, key_id)?);
        Ok(())
    }
}
