//! AuditEvent schemas: the contract between producers, Kafka and every consumer.
//!
//! - [`event`]: the AuditEvent domain type (schema v2) and its nested records, as JSON;
//! - [`signing`]: the canonical bytes a producer signs, and signature verification against a
//!   key valid at the event's `occurred_at`;
//! - [`avro`]: the `.avsc` files (source of truth for downstream consumers), the Rust record
//!   that derives the same schema, and Avro datum encoding with schema resolution;
//! - [`digest`]: the content digest of an event, which tells a retry from a conflicting
//!   re-use of an id;
//! - [`validate`]: the design contract's rules with per-field errors;
//! - [`wire`]: the Confluent wire format through a schema registry.

pub mod avro;
pub mod digest;
pub mod event;
pub mod signing;
pub mod validate;
pub mod wire;

pub use digest::{ContentDigest, content_digest};
pub use event::{Actor, ActorType, AuditEvent, Context, Outcome, Severity, Signature, SignatureAlg, Source, Target};
pub use validate::{FieldError, IngestContext, Rejection, validate_event};
pub use wire::WireCodec;

/// Errors of encoding, decoding and registry access.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Avro encoding, decoding or schema resolution failed.
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),
    /// `metadata` was not valid JSON.
    #[error("metadata is not valid json: {0}")]
    MetadataJson(#[from] serde_json::Error),
    /// `metadata` was JSON but not an object.
    #[error("metadata is not a json object")]
    MetadataNotObject,
    /// A signature names an algorithm this version does not know.
    #[error("unknown signature algorithm {0:?}")]
    UnknownSignatureAlg(String),
    /// A timestamp outside the range `time` can represent.
    #[error("timestamp {0} µs is out of range")]
    TimestampOutOfRange(i64),
    /// The datum ended before the record did.
    #[error("avro datum is truncated")]
    Truncated,
    /// Bytes were left after the datum.
    #[error("{0} trailing bytes after the avro datum")]
    TrailingBytes(usize),
    /// The message is not in the Confluent wire format.
    #[error("not confluent wire format: {0}")]
    NotWireFormat(&'static str),
    /// The schema registry could not be reached or refused the request.
    #[error("schema registry: {0}")]
    Registry(String),
    /// The registry answered that it has no schema with this id: permanent for the message.
    #[error("schema id {0} is unknown to the registry")]
    UnknownSchemaId(u32),
}

impl SchemaError {
    /// True when retrying later may succeed (the registry was unreachable); false when the
    /// bytes themselves are the problem.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry(_))
    }
}
