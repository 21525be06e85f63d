//! The AuditEvent domain type (schema v2: v1 plus an optional producer `signature`): what the gateway accepts, the processors store and the
//! query API returns as JSON.
//!
//! Nested records (`Actor`, `Target`, `Source`, `Context`) and the enums have the same shape
//! in JSON and in Avro, so they derive both serde and [`AvroSchema`]. The top-level record
//! differs between the two (RFC 3339 strings vs `timestamp-micros`, a JSON object vs its JSON
//! text), so the Avro side has its own [`crate::avro::AuditEventRecord`].

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One audit event: who did what, when, to which resource, with what outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Event id; the producer's idempotency key, or a UUIDv7 assigned at ingest.
    pub id: String,
    /// Tenant the event belongs to, always taken from the producer's credentials.
    pub tenant_id: String,
    /// When the audited action happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When the gateway received the event.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// What was done, e.g. `user.login`.
    pub action: String,
    /// Who did it.
    pub actor: Actor,
    /// What it was done to.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// How it ended.
    #[serde(default)]
    pub outcome: Outcome,
    /// How much it matters.
    #[serde(default)]
    pub severity: Severity,
    /// Which system reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Request context: ip, user agent, ids for correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// Free text, searchable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Producer-defined JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The producer's signature over the event's canonical bytes
    /// ([`crate::signing::signed_bytes`]); absent on unsigned events (schema v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// A producer's signature of an event: which key, which algorithm, the signature bytes.
/// JSON: `{"key_id": "...", "alg": "ed25519", "value": "<standard base64 with padding>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Id of the producer's key in the tenant's signing-key registry.
    pub key_id: String,
    /// Signature algorithm; must be the registered key's.
    pub alg: SignatureAlg,
    /// The signature: 64 bytes for both algorithms (Ed25519; ECDSA P-256 as `r || s`).
    #[serde(with = "base64_value")]
    pub value: Vec<u8>,
}

/// Signature algorithms: `ed25519` (RFC 8032) or `ecdsa-p256-sha256` (ECDSA over P-256 with
/// SHA-256, signature as the fixed 64-byte `r || s`, not DER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignatureAlg {
    /// Ed25519.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA P-256 with SHA-256.
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
}

impl SignatureAlg {
    /// Every algorithm, in the order documented.
    pub const ALL: [Self; 2] = [Self::Ed25519, Self::EcdsaP256Sha256];

    /// The wire name of this algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }

    /// The algorithm named `name` (its wire name), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl std::fmt::Display for SignatureAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Signature bytes as standard base64 with padding in JSON.
mod base64_value {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Who performed the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(deny_unknown_fields)]
#[avro(namespace = "dev.auditlog", doc = "Who performed the action")]
pub struct Actor {
    /// Stable identifier of the actor in the producer's system.
    pub id: String,
    /// Kind of actor.
    #[serde(rename = "type", default)]
    pub kind: ActorType,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Kind of actor: `user`, `service`, `system` (the platform itself) or `api_key`.
#[allow(missing_docs)] // Avro derive takes variant doc comments as schema docs and refuses them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "snake_case")]
#[avro(namespace = "dev.auditlog", doc = "Kind of actor", default = r#""user""#)]
pub enum ActorType {
    #[default]
    User,
    Service,
    System,
    ApiKey,
}

/// A resource the action was performed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(deny_unknown_fields)]
#[avro(namespace = "dev.auditlog", doc = "A resource the action was performed on")]
pub struct Target {
    /// Kind of resource, e.g. `document`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier of the resource.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// How the action ended: `success`, `failure` (including denied) or `unknown`.
#[allow(missing_docs)] // Avro derive takes variant doc comments as schema docs and refuses them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "snake_case")]
#[avro(namespace = "dev.auditlog", doc = "How the action ended", default = r#""unknown""#)]
pub enum Outcome {
    Success,
    Failure,
    #[default]
    Unknown,
}

/// How much the event matters: `debug`, `info`, `warning`, `error`, `critical`.
#[allow(missing_docs)] // Avro derive takes variant doc comments as schema docs and refuses them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "snake_case")]
#[avro(namespace = "dev.auditlog", doc = "How much the event matters", default = r#""info""#)]
pub enum Severity {
    Debug,
    #[default]
    Info,
    Warning,
    Error,
    Critical,
}

/// The system that reported the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(deny_unknown_fields)]
#[avro(namespace = "dev.auditlog", doc = "The system that reported the event")]
pub struct Source {
    /// Service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Service version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Request context of the action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(deny_unknown_fields)]
#[avro(namespace = "dev.auditlog", doc = "Request context of the action")]
pub struct Context {
    /// Client IP address (v4 or v6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Client user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Request id for correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Distributed trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Free-form location, e.g. a country or city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Outcome {
    /// The wire name of this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Unknown => "unknown",
        }
    }
}

impl Severity {
    /// The wire name of this severity.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

impl ActorType {
    /// The wire name of this actor type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::System => "system",
            Self::ApiKey => "api_key",
        }
    }
}
