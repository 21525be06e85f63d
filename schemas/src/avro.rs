//! The Avro side of AuditEvent: the `.avsc` files (the source of truth for downstream
//! consumers), the Rust record that derives the same schema, and datum encoding.
//!
//! Timestamps travel as `timestamp-micros` (UTC) and `metadata` as the JSON text of the
//! producer's object, so consumers in any language decode the event with a stock Confluent
//! deserializer and parse `metadata` with their JSON library.

use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};

use apache_avro::schema::{Name, NamespaceRef};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroSchema, Schema};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::{Actor, AuditEvent, Context, Outcome, Severity, Signature, SignatureAlg, Source, Target};
use crate::SchemaError;

/// Full name of the AuditEvent record in every schema version.
pub const RECORD_NAME: &str = "dev.auditlog.AuditEvent";

/// Every published AuditEvent schema, oldest first; the last one is the current writer and
/// reader schema. A new version is appended here, never edited in place.
pub const SCHEMA_VERSIONS: &[(u32, &str)] = &[
    (1, include_str!("../avro/audit_event.v1.avsc")),
    // v2: v1 plus an optional producer `signature` (default null), compatible both ways.
    (2, include_str!("../avro/audit_event.v2.avsc")),
];

/// The current AuditEvent schema text, as registered under `<topic>-value`.
pub fn current_schema_text() -> &'static str {
    SCHEMA_VERSIONS[SCHEMA_VERSIONS.len() - 1].1
}

/// The current AuditEvent schema, parsed once.
pub fn current_schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
        Schema::parse_str(current_schema_text()).expect("the bundled current .avsc parses")
    });
    &SCHEMA
}

/// A datum writer for the current schema, built once (building resolves the schema).
fn writer() -> Result<&'static GenericDatumWriter<'static>, SchemaError> {
    static WRITER: OnceLock<GenericDatumWriter<'static>> = OnceLock::new();
    if let Some(writer) = WRITER.get() {
        return Ok(writer);
    }
    let writer = GenericDatumWriter::builder(current_schema()).build()?;
    Ok(WRITER.get_or_init(|| writer))
}

/// A datum reader of the current schema, built once: a datum the current schema wrote is
/// deserialized straight into [`AuditEventRecord`], with neither a value tree nor schema
/// resolution (the decoding twin of [`writer`]).
fn current_reader() -> Result<&'static GenericDatumReader<'static>, SchemaError> {
    static READER: OnceLock<GenericDatumReader<'static>> = OnceLock::new();
    if let Some(reader) = READER.get() {
        return Ok(reader);
    }
    let reader = GenericDatumReader::builder(current_schema()).build()?;
    Ok(READER.get_or_init(|| reader))
}

/// Whether datums written with `schema` are laid out exactly as the current schema writes
/// them (the same Parsing Canonical Form), so they decode without schema resolution. Costs a
/// canonical form of `schema`: callers ask once per schema id.
pub fn writes_as_current(schema: &Schema) -> bool {
    static CURRENT: LazyLock<String> = LazyLock::new(|| current_schema().canonical_form());
    std::ptr::eq(schema, current_schema()) || schema.canonical_form() == *CURRENT
}

/// The AuditEvent record exactly as it is written to Kafka.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(rename = "AuditEvent")]
#[avro(namespace = "dev.auditlog", doc = "One audit event: who did what, when, to which resource, with what outcome")]
pub struct AuditEventRecord {
    /// Event id: the producer's idempotency key, or a UUIDv7 assigned at ingest.
    pub id: String,
    /// Tenant the event belongs to, taken from the producer's credentials.
    pub tenant_id: String,
    /// When the action happened, microseconds since the Unix epoch, UTC.
    #[avro(with = timestamp_micros)]
    pub occurred_at: i64,
    /// When the gateway received the event, microseconds since the Unix epoch, UTC.
    #[avro(with = timestamp_micros)]
    pub received_at: i64,
    /// What was done, e.g. user.login; 1..128 chars of [a-z0-9_.:-].
    pub action: String,
    /// Who did it.
    pub actor: Actor,
    /// What it was done to, at most 16.
    #[avro(default = "[]")]
    pub targets: Vec<Target>,
    /// How it ended.
    #[avro(default = r#""unknown""#)]
    pub outcome: Outcome,
    /// How much it matters.
    #[avro(default = r#""info""#)]
    pub severity: Severity,
    /// Which system reported it.
    pub source: Option<Source>,
    /// Request context.
    pub context: Option<Context>,
    /// Free text, searchable.
    pub description: Option<String>,
    /// Producer-defined JSON object, as JSON text, at most 16 KiB.
    pub metadata: Option<String>,
    /// The producer's signature (schema v2); null when unsigned.
    pub signature: Option<SignatureRecord>,
}

/// A producer's signature as written to Kafka: the algorithm as a string, so a reader that
/// predates an algorithm still decodes the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(rename = "Signature")]
#[avro(namespace = "dev.auditlog", doc = "A producer's signature over the event's canonical bytes (docs/signing.md)")]
pub struct SignatureRecord {
    /// Id of the producer's key in the tenant's signing-key registry.
    pub key_id: String,
    /// Signature algorithm: ed25519 or ecdsa-p256-sha256.
    pub alg: String,
    /// The signature, 64 bytes (Ed25519; ECDSA P-256 as r || s).
    #[avro(with)]
    #[serde(with = "apache_avro::serde::bytes")]
    pub value: Vec<u8>,
}

/// A byte reader that remembers whether anyone tried to read past its end.
struct EofGuard<'a> {
    rest: &'a [u8],
    hit_eof: bool,
}

impl std::io::Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.hit_eof = true;
        }
        self.rest.read(buf)
    }
}

fn timestamp_micros(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::TimestampMicros
}

impl AuditEventRecord {
    /// Decodes a datum written with `writer` into the current schema: straight into the
    /// record when `writer` is the current schema itself ([`current_schema`]), through Avro
    /// schema resolution otherwise.
    pub fn from_datum(writer: &Schema, datum: &[u8]) -> Result<Self, SchemaError> {
        let mut input = EofGuard { rest: datum, hit_eof: false };
        let record = if std::ptr::eq(writer, current_schema()) {
            current_reader()?.read_deser(&mut input)?
        } else {
            let value = GenericDatumReader::builder(writer).reader_schema(current_schema()).build()?.read_value(&mut input)?;
            apache_avro::from_value(&value)?
        };
        // apache-avro reads a union index at end of input as "null" instead of failing, so a
        // truncated datum would decode with its trailing optional fields silently dropped.
        if input.hit_eof {
            return Err(SchemaError::Truncated);
        }
        if !input.rest.is_empty() {
            return Err(SchemaError::TrailingBytes(input.rest.len()));
        }
        Ok(record)
    }
}

impl TryFrom<AuditEventRecord> for AuditEvent {
    type Error = SchemaError;

    fn try_from(record: AuditEventRecord) -> Result<Self, SchemaError> {
        let metadata = match record.metadata {
            None => None,
            Some(text) => match serde_json::from_str(&text)? {
                serde_json::Value::Object(map) => Some(map),
                _ => return Err(SchemaError::MetadataNotObject),
            },
        };
        Ok(Self {
            id: record.id,
            tenant_id: record.tenant_id,
            occurred_at: from_micros(record.occurred_at)?,
            received_at: from_micros(record.received_at)?,
            action: record.action,
            actor: record.actor,
            targets: record.targets,
            outcome: record.outcome,
            severity: record.severity,
            source: record.source,
            context: record.context,
            description: record.description,
            metadata,
            signature: match record.signature {
                None => None,
                Some(s) => Some(Signature {
                    alg: SignatureAlg::parse(&s.alg).ok_or(SchemaError::UnknownSignatureAlg(s.alg))?,
                    key_id: s.key_id,
                    value: s.value,
                }),
            },
        })
    }
}

/// Microseconds since the Unix epoch; Avro's `timestamp-micros`.
pub fn to_micros(at: OffsetDateTime) -> i64 {
    // In range for any year 1..=9999, which is all `time` parses from RFC 3339.
    (at.unix_timestamp_nanos() / 1_000) as i64
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, SchemaError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| SchemaError::TimestampOutOfRange(micros))
}

/// The same record as [`AuditEventRecord`], borrowing from an [`AuditEvent`]: what the
/// encoder serializes, so encoding copies no strings. Field order and names must match the
/// schema (the golden-bytes test pins the result).
#[derive(Serialize)]
struct RecordRef<'a> {
    id: &'a str,
    tenant_id: &'a str,
    occurred_at: i64,
    received_at: i64,
    action: &'a str,
    actor: &'a Actor,
    targets: &'a [Target],
    outcome: Outcome,
    severity: Severity,
    source: Option<&'a Source>,
    context: Option<&'a Context>,
    description: Option<&'a str>,
    metadata: Option<String>,
    signature: Option<SignatureRef<'a>>,
}

/// [`SignatureRecord`] borrowing from a [`Signature`].
#[derive(Serialize)]
struct SignatureRef<'a> {
    key_id: &'a str,
    alg: &'static str,
    #[serde(with = "apache_avro::serde::bytes")]
    value: &'a [u8],
}

impl AuditEvent {
    /// Encodes this event as an Avro datum with the current schema.
    pub fn to_avro_datum(&self) -> Result<Vec<u8>, SchemaError> {
        let record = RecordRef {
            id: &self.id,
            tenant_id: &self.tenant_id,
            occurred_at: to_micros(self.occurred_at),
            received_at: to_micros(self.received_at),
            action: &self.action,
            actor: &self.actor,
            targets: &self.targets,
            outcome: self.outcome,
            severity: self.severity,
            source: self.source.as_ref(),
            context: self.context.as_ref(),
            description: self.description.as_deref(),
            metadata: self.metadata.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()),
            signature: self.signature.as_ref().map(|s| SignatureRef { key_id: &s.key_id, alg: s.alg.as_str(), value: &s.value }),
        };
        Ok(writer()?.write_ser_to_vec(&record)?)
    }

    /// Decodes an Avro datum written with `writer` (any published version).
    pub fn from_avro_datum(writer: &Schema, datum: &[u8]) -> Result<Self, SchemaError> {
        AuditEventRecord::from_datum(writer, datum)?.try_into()
    }
}
