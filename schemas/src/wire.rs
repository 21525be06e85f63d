//! The Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro datum) through
//! `schema_registry_converter`, with the AuditEvent schema registered under `<topic>-value`.
//!
//! Decoding fetches the writer schema by id (cached) and resolves it into the current reader
//! schema, so messages written by any published version decode into today's [`AuditEvent`].
//!
//! [`WireCodec::embedded`] is the registry-less mode of standalone deployments: the same
//! bytes, with schema ids assigned locally: a schema's id is its version number in
//! [`SCHEMA_VERSIONS`], the same for every topic.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Duration;

use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

use crate::avro::{RECORD_NAME, SCHEMA_VERSIONS, current_schema, current_schema_text};
use crate::{AuditEvent, SchemaError};

/// Magic byte that opens every Confluent-framed message.
pub const MAGIC_BYTE: u8 = 0;
/// Length of the magic byte plus the schema id.
pub const HEADER_LEN: usize = 5;

/// Encodes and decodes AuditEvents in the Confluent wire format against one registry, or
/// with locally assigned schema ids ([`WireCodec::embedded`]).
pub struct WireCodec {
    /// `None` in embedded mode.
    registry: Option<Registry>,
    /// Schema id of the current schema per topic, once registered: the per-event path then
    /// touches neither the registry client nor the schema text.
    ids: RwLock<HashMap<String, u32>>,
    /// Per writer schema id seen, whether it writes as the current schema does: such datums
    /// decode without schema resolution ([`crate::avro::writes_as_current`]).
    current_writers: RwLock<HashMap<u32, bool>>,
}

struct Registry {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
}

impl std::fmt::Debug for WireCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireCodec").finish_non_exhaustive()
    }
}

impl WireCodec {
    /// A codec for the registry at `url` (for Apicurio, the `/apis/ccompat/v7` base), each
    /// registry call bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SchemaError> {
        let settings = || {
            SrSettings::new_builder(url.to_owned())
                .set_timeout(timeout)
                .build()
                .map_err(|e| SchemaError::Registry(e.to_string()))
        };
        let registry = Registry { encoder: AvroEncoder::new(settings()?), decoder: AvroDecoder::new(settings()?) };
        Ok(Self { registry: Some(registry), ids: RwLock::default(), current_writers: RwLock::default() })
    }

    /// A codec without a registry (standalone mode): the current schema's id is its version
    /// in [`SCHEMA_VERSIONS`], and decoding accepts the id of any published version.
    pub fn embedded() -> Self {
        Self { registry: None, ids: RwLock::default(), current_writers: RwLock::default() }
    }

    /// Whether this codec talks to a schema registry (false in embedded mode), so readiness
    /// probes know whether a registry is among their dependencies.
    pub fn uses_registry(&self) -> bool {
        self.registry.is_some()
    }

    /// The writer schema of a locally assigned id, every published version parsed once.
    fn embedded_schema(id: u32) -> Result<&'static apache_avro::Schema, SchemaError> {
        static VERSIONS: LazyLock<Vec<(u32, Result<apache_avro::Schema, String>)>> = LazyLock::new(|| {
            let last = SCHEMA_VERSIONS.len() - 1;
            SCHEMA_VERSIONS
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != last)
                .map(|(_, (v, text))| (*v, apache_avro::Schema::parse_str(text).map_err(|e| e.to_string())))
                .collect()
        });
        if SCHEMA_VERSIONS.last().map(|(v, _)| *v) == Some(id) {
            return Ok(current_schema());
        }
        match VERSIONS.iter().find(|(v, _)| *v == id) {
            Some((_, Ok(schema))) => Ok(schema),
            Some((_, Err(error))) => Err(SchemaError::Registry(format!("bundled schema version {id} does not parse: {error}"))),
            None => Err(SchemaError::UnknownSchemaId(id)),
        }
    }

    /// Encodes `event` for `topic`, registering the current schema under `<topic>-value` the
    /// first time (registration is idempotent in the registry; the id is cached here).
    pub async fn encode(&self, topic: &str, event: &AuditEvent) -> Result<Vec<u8>, SchemaError> {
        let id = self.schema_id(topic).await?;
        // Our schema-aware serializer writes the datum, several times faster than the
        // converter's generic path (an Avro value tree per event); same bytes, pinned by the
        // golden tests.
        let datum = event.to_avro_datum()?;
        let mut framed = Vec::with_capacity(HEADER_LEN + datum.len());
        framed.push(MAGIC_BYTE);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&datum);
        Ok(framed)
    }

    /// The id of the current schema under `<topic>-value`, registering it the first time
    /// (`auditlog init` registers it ahead of the first event; built-in ids in standalone).
    pub async fn schema_id(&self, topic: &str) -> Result<u32, SchemaError> {
        let Some(registry) = &self.registry else {
            return Ok(SCHEMA_VERSIONS.last().map_or(1, |(v, _)| *v));
        };
        if let Some(id) = self.ids.read().unwrap_or_else(PoisonError::into_inner).get(topic) {
            return Ok(*id);
        }
        let schema = SuppliedSchema::new(
            Some(RECORD_NAME.to_owned()),
            SchemaType::Avro,
            current_schema_text().to_owned(),
        );
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_owned(), false, schema);
        let subject = strategy.get_subject().map_err(|e| SchemaError::Registry(e.to_string()))?;
        let registered = registry
            .encoder
            .get_schema_and_id(&subject, strategy)
            .await
            .map_err(|e| SchemaError::Registry(e.to_string()))?;
        self.ids.write().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned(), registered.id);
        Ok(registered.id)
    }

    /// Decodes a Confluent-framed AuditEvent written with any published schema version.
    pub async fn decode(&self, bytes: &[u8]) -> Result<AuditEvent, SchemaError> {
        let id = schema_id(bytes)?;
        let Some(registry) = &self.registry else {
            return AuditEvent::from_avro_datum(Self::embedded_schema(id)?, &bytes[HEADER_LEN..]);
        };
        let writer = match registry.decoder.get_schema(id).await {
            Ok(writer) => writer,
            // The registry answered and has no such id: the message is at fault.
            Err(e) if e.error.contains("status 404") => return Err(SchemaError::UnknownSchemaId(id)),
            Err(e) => {
                // The decoder caches errors it deems permanent (any non-502/503 status); an
                // unreachable or failing registry is transient for us, so the next attempt
                // must ask again.
                registry.decoder.remove_errors_from_cache();
                return Err(SchemaError::Registry(e.to_string()));
            }
        };
        let known = self.current_writers.read().unwrap_or_else(PoisonError::into_inner).get(&id).copied();
        let as_current = known.unwrap_or_else(|| {
            let same = crate::avro::writes_as_current(&writer.parsed);
            self.current_writers.write().unwrap_or_else(PoisonError::into_inner).insert(id, same);
            same
        });
        let schema = if as_current { current_schema() } else { &writer.parsed };
        AuditEvent::from_avro_datum(schema, &bytes[HEADER_LEN..])
    }
}

/// The schema id of a Confluent-framed message.
pub fn schema_id(bytes: &[u8]) -> Result<u32, SchemaError> {
    match bytes {
        [MAGIC_BYTE, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [] => Err(SchemaError::NotWireFormat("empty message")),
        [MAGIC_BYTE, ..] => Err(SchemaError::NotWireFormat("shorter than the 5-byte header")),
        _ => Err(SchemaError::NotWireFormat("first byte is not the magic byte 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_id_reads_the_header() {
        assert_eq!(schema_id(&[0, 0, 0, 1, 2, 42]).ok(), Some(258));
        assert!(schema_id(&[]).is_err());
        assert!(schema_id(&[0, 0, 1]).is_err());
        assert!(schema_id(&[1, 0, 0, 0, 1, 0]).is_err());
    }

    fn sample() -> AuditEvent {
        let json = include_str!("../golden/v1/event.json");
        serde_json::from_str(json).expect("golden event parses")
    }

    #[tokio::test]
    async fn embedded_mode_round_trips_in_the_confluent_format() {
        let codec = WireCodec::embedded();
        let event = sample();
        let bytes = codec.encode("audit.events.v1", &event).await.expect("encodes");
        assert_eq!(bytes[0], MAGIC_BYTE);
        assert_eq!(schema_id(&bytes).ok(), SCHEMA_VERSIONS.last().map(|(v, _)| *v), "id is the schema version");
        assert_eq!(&bytes[HEADER_LEN..], event.to_avro_datum().expect("datum").as_slice(), "same Avro body as registry mode");
        assert_eq!(codec.decode(&bytes).await.expect("decodes"), event);
        let mut unknown = bytes.clone();
        unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
        assert!(matches!(codec.decode(&unknown).await, Err(SchemaError::UnknownSchemaId(999))));
        assert!(codec.decode(&bytes[..3]).await.is_err());
    }

    /// A standalone log written before schema v2 holds messages with the built-in id 1: they
    /// still decode, beside the v2 messages written after the upgrade.
    #[tokio::test]
    async fn embedded_mode_reads_messages_of_every_version() {
        let codec = WireCodec::embedded();
        let mut v1 = vec![MAGIC_BYTE, 0, 0, 0, 1];
        v1.extend_from_slice(include_bytes!("../golden/v1/event.avro"));
        let decoded = codec.decode(&v1).await.expect("a v1 message decodes");
        assert_eq!(decoded, sample());
        assert_eq!(decoded.signature, None);
        let signed: AuditEvent = serde_json::from_str(include_str!("../golden/v2/event.json")).expect("golden v2");
        let v2 = codec.encode("audit.events.v1", &signed).await.expect("encodes");
        assert_eq!(schema_id(&v2).ok(), Some(2), "written as v2");
        assert_eq!(codec.decode(&v2).await.expect("decodes"), signed);
    }
}
