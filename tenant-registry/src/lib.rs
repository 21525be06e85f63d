//! The tenant registry every auditlog service shares: tenants with their settings, and API
//! keys stored only as SHA-256 hashes (issue #3 item 4; the query API's admin endpoints use
//! it too, issue #5).
//!
//! - [`TenantRegistry`] (reads on every request, from memory) and [`TenantAdmin`] (changes,
//!   durable before they return), in [`registry`];
//! - [`KafkaTenantRegistry`] ([`kafka`]): a compacted Kafka topic replayed into memory by
//!   every process, changes visible everywhere within a second;
//! - [`FileTenantRegistry`] ([`file`]): one JSON file rewritten atomically on each change
//!   (standalone mode, in its data directory);
//! - [`InMemoryTenantRegistry`] ([`memory`]): this process only (tests);
//! - [`open_registry`]: picks one from a URI (`kafka://host:port[?topic=...]`,
//!   `file:///path/tenants.json`, `memory://`);
//! - [`TenantSettings`], [`TenantPatch`], [`ApiKeyRecord`], [`IssuedKey`] ([`model`]), their
//!   checks ([`validate`]) and the topic's record format (`record`), whose every record
//!   read back is checked like admin API input (a rejected one is skipped and counted in
//!   [`RECORDS_REJECTED_METRIC`]);
//! - [`api_key`]: key generation, hashing, and [`api_key::authenticate`]; [`Role`];
//! - [`signing_key`]: producers' public keys for signed events ([`SigningKeyRecord`],
//!   [`NewSigningKey`], issue #15) and the tenant's [`SignaturePolicy`].

pub mod api_key;
pub mod error;
pub mod file;
pub mod kafka;
pub mod memory;
pub mod model;
mod record;
pub mod registry;
pub mod role;
pub mod signing_key;
pub mod validate;
mod view;

use std::sync::Arc;

pub use api_key::KeyHash;
pub use error::{FieldProblem, RegistryError};
pub use file::FileTenantRegistry;
pub use kafka::{KafkaRegistryConfig, KafkaTenantRegistry};
pub use memory::InMemoryTenantRegistry;
pub use model::{ApiKeyRecord, DEFAULT_RETENTION_DAYS, IssuedKey, SignaturePolicy, TenantPatch, TenantSettings, TenantStatus};
pub use registry::{TenantAdmin, TenantRegistry};
pub use role::Role;
pub use signing_key::{NewSigningKey, SigningKeyRecord};

/// Counter of records read from the registry topic or file and not applied, by `reason`
/// (`malformed`, `invalid_tenant`, `invalid_api_key`, `invalid_signing_key`, `conflict`). Every record read back is
/// checked like admin API input; a rejected one is logged at WARN and skipped, and the reader
/// goes on with the next.
pub const RECORDS_REJECTED_METRIC: &str = "auditlog_registry_records_rejected_total";

/// A registry location parsed from a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryUri {
    /// `memory://`.
    Memory,
    /// `file:///path/tenants.json` (or `file://relative/path`).
    File(std::path::PathBuf),
    /// `kafka://host:port[,host:port...][?topic=name]`.
    Kafka {
        /// `bootstrap.servers`.
        servers: String,
        /// Registry topic ([`kafka::DEFAULT_TOPIC`] unless given).
        topic: String,
    },
}

impl RegistryUri {
    /// Parses `uri`.
    pub fn parse(uri: &str) -> Result<Self, RegistryError> {
        let config = |m: String| RegistryError::Config(m);
        match uri.split_once("://") {
            Some(("memory", "" | "/")) => Ok(Self::Memory),
            Some(("file", "")) => Err(config(format!("registry uri {uri:?} names no file"))),
            Some(("file", path)) => Ok(Self::File(path.into())),
            Some(("kafka", rest)) => {
                let (servers, query) = rest.split_once('?').unwrap_or((rest, ""));
                let servers = servers.trim_end_matches('/');
                if servers.is_empty() {
                    return Err(config(format!("registry uri {uri:?} names no broker")));
                }
                let mut topic = kafka::DEFAULT_TOPIC.to_owned();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("topic", t)) if !t.is_empty() => topic = t.to_owned(),
                        _ => return Err(config(format!("registry uri {uri:?}: unknown parameter {pair:?} (known: topic)"))),
                    }
                }
                Ok(Self::Kafka { servers: servers.to_owned(), topic })
            }
            Some((scheme, _)) => Err(config(format!("unsupported registry scheme {scheme:?} in {uri:?} (kafka://, file://, memory://)"))),
            None => Err(config(format!("registry uri {uri:?} has no scheme, e.g. kafka://127.0.0.1:9092"))),
        }
    }
}

/// Opens the registry named by `uri`; a Kafka registry has replayed its topic when this
/// returns. Dropping the last handle stops its background reader.
pub async fn open_registry(uri: &str) -> Result<Arc<dyn TenantAdmin>, RegistryError> {
    Ok(match RegistryUri::parse(uri)? {
        RegistryUri::Memory => Arc::new(InMemoryTenantRegistry::new()),
        RegistryUri::File(path) => {
            let opened = tokio::task::spawn_blocking(move || FileTenantRegistry::open(path)).await;
            Arc::new(opened.map_err(|e| RegistryError::Unavailable(format!("opening the registry file: {e}")))??)
        }
        RegistryUri::Kafka { servers, topic } => {
            let config = KafkaRegistryConfig { topic, ..KafkaRegistryConfig::new(servers) };
            Arc::new(KafkaTenantRegistry::open(config).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_memory_file_or_kafka_with_an_optional_topic() {
        assert_eq!(RegistryUri::parse("memory://"), Ok(RegistryUri::Memory));
        let default = RegistryUri::Kafka { servers: "a:9092,b:9092".into(), topic: kafka::DEFAULT_TOPIC.into() };
        assert_eq!(RegistryUri::parse("kafka://a:9092,b:9092/"), Ok(default));
        let custom = RegistryUri::Kafka { servers: "a:9092".into(), topic: "t.v1".into() };
        assert_eq!(RegistryUri::parse("kafka://a:9092?topic=t.v1"), Ok(custom));
        assert_eq!(RegistryUri::parse("file:///data/tenants.json"), Ok(RegistryUri::File("/data/tenants.json".into())));
        for bad in ["kafka://", "kafka://a:1?group=x", "memory://x", "file://", "a:9092"] {
            assert!(matches!(RegistryUri::parse(bad), Err(RegistryError::Config(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn memory_uris_open_a_working_registry() {
        let registry = open_registry("memory://").await.expect("memory opens");
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        let reads: Arc<dyn TenantRegistry> = registry;
        assert!(reads.tenant("acme").is_some());
    }

    #[tokio::test]
    async fn file_uris_open_a_registry_that_outlives_the_handle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let uri = format!("file://{}/tenants.json", dir.path().display());
        let registry = open_registry(&uri).await.expect("file opens");
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        drop(registry);
        let reopened = open_registry(&uri).await.expect("file reopens");
        assert!(reopened.tenant("acme").is_some());
    }
}
