//! Picks a seam implementation from a URI, so services and tools are configured with one
//! string per backend:
//!
//! | seam | distributed | embedded |
//! |---|---|---|
//! | [`event_log`] | `kafka://host:port[,host:port...]` | `file:///path/to/log` |
//! | [`event_store`] | `scylla://host:port[,host:port...][/keyspace][?replication_factor=N]` | `file:///path/to/store` |
//! | [`search_index`] | `opensearch://host:port[/alias][?replicas=N]`, `http(s)://host:port` | `file:///path/to/index` |
//!
//! [`embedded`] opens all three embedded backends under one data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event_log::embedded::{FileEventLog, FileLogConfig, files};
use crate::event_log::kafka::{KafkaConfig, KafkaEventLog};
use crate::event_store::embedded::FjallEventStore;
use crate::event_store::Retention;
use crate::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use crate::search_index::embedded::TantivySearchIndex;
use crate::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use crate::{EventLog, EventStore, IndexError, LogError, SearchIndex, StoreError};

/// Keyspace of a `scylla://` URI without one.
pub const DEFAULT_KEYSPACE: &str = "auditlog";
/// Alias (and index prefix) of an OpenSearch URI without one.
pub const DEFAULT_INDEX_ALIAS: &str = "auditlog-events";

/// The path of a `file://` URI: `file:///abs/path` or `file://relative/path`.
fn file_path(rest: &str) -> Option<PathBuf> {
    (!rest.is_empty()).then(|| PathBuf::from(rest))
}

fn scheme_error(seam: &str, uri: &str, example: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, _)) => format!("unsupported {seam} scheme {scheme:?} in {uri:?}, e.g. {example}"),
        None => format!("{seam} uri {uri:?} has no scheme, e.g. {example}"),
    }
}

/// Opens the event log named by `uri`.
///
/// - `kafka://host:port[,host:port...]`: a Kafka cluster (connects lazily);
/// - `file:///path`: the file event log in that directory (opened and recovered now).
pub fn event_log(uri: &str) -> Result<Arc<dyn EventLog>, LogError> {
    match uri.split_once("://") {
        Some(("kafka", rest)) if !rest.is_empty() => Ok(Arc::new(KafkaEventLog::new(kafka_config(rest)?)?)),
        Some(("file", rest)) => match file_path(rest) {
            Some(dir) => Ok(Arc::new(FileEventLog::open(FileLogConfig::new(dir))?)),
            None => Err(LogError::Config(format!("event log uri {uri:?} names no directory"))),
        },
        _ => Err(LogError::Config(scheme_error("event log", uri, "kafka://127.0.0.1:9092 or file:///var/lib/auditlog/log"))),
    }
}

/// The Kafka event log of a `kafka://host:port[,host:port...][?property=value&...]` URI,
/// with its Kafka-only operations (topic creation).
pub fn kafka_event_log(uri: &str) -> Result<KafkaEventLog, LogError> {
    match uri.split_once("://") {
        Some(("kafka", rest)) if !rest.is_empty() => KafkaEventLog::new(kafka_config(rest)?),
        _ => Err(LogError::Config(scheme_error("Kafka event log", uri, "kafka://127.0.0.1:9092"))),
    }
}

/// The Kafka settings of `host:port[,host:port...][?property=value&...]`: each query
/// parameter is a librdkafka property applied last (e.g. `security.protocol=SASL_SSL`, or
/// `group.instance.id=processor-0` for static group membership).
fn kafka_config(rest: &str) -> Result<KafkaConfig, LogError> {
    let (servers, query) = rest.split_once('?').unwrap_or((rest, ""));
    let servers = servers.trim_end_matches('/');
    if servers.is_empty() {
        return Err(LogError::Config(format!("kafka uri kafka://{rest} names no broker")));
    }
    let mut config = KafkaConfig::new(servers);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => config.extra.push((key.to_owned(), value.to_owned())),
            _ => return Err(LogError::Config(format!("kafka uri parameter {pair:?} is not property=value"))),
        }
    }
    Ok(config)
}

/// Opens the event store named by `uri`.
///
/// - `scylla://host:port[,host:port...][/keyspace]` (keyspace default [`DEFAULT_KEYSPACE`]);
/// - `file:///path`: the fjall store in that directory.
pub async fn event_store(uri: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    event_store_with(uri, None).await
}

/// [`event_store`], with each tenant's `retention` known to the writer, which then does not
/// write events already past it (ScyllaDB); every store removes expired events only through
/// `purge_before` sweeps, so a retention change reaches every copy.
pub async fn event_store_with(uri: &str, retention: Option<Retention>) -> Result<Arc<dyn EventStore>, StoreError> {
    match uri.split_once("://") {
        Some(("scylla", rest)) => {
            let config = scylla_config(uri, rest)?;
            let store = ScyllaEventStore::connect(&config).await?;
            Ok(Arc::new(match retention {
                Some(retention) => store.with_retention(retention),
                None => store,
            }))
        }
        Some(("file", rest)) => {
            let dir = file_path(rest).ok_or_else(|| StoreError::Invalid(format!("event store uri {uri:?} names no directory")))?;
            let store = tokio::task::spawn_blocking(move || FjallEventStore::open(dir))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the store: {e}")))??;
            Ok(Arc::new(store))
        }
        _ => Err(StoreError::Invalid(scheme_error("event store", uri, "scylla://127.0.0.1:9042/auditlog or file:///var/lib/auditlog/store"))),
    }
}

/// The ledger store at `uri` (the event store's URI forms):
/// - `scylla://host:port[,host:port...][/keyspace]`: the `ledger_*` tables in that keyspace;
/// - `file:///path`: the file ledger store in that directory.
pub async fn ledger_store(uri: &str) -> Result<Arc<dyn crate::ledger_store::LedgerStore>, crate::ledger_store::LedgerStoreError> {
    use crate::ledger_store::LedgerStoreError;
    let invalid = |e: String| LedgerStoreError::Invalid(e);
    match uri.split_once("://") {
        Some(("scylla", rest)) => {
            let config = scylla_config(uri, rest).map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(crate::ledger_store::scylla::ScyllaLedgerStore::connect(&config).await?))
        }
        Some(("file", rest)) => {
            let dir = file_path(rest).ok_or_else(|| invalid(format!("ledger store uri {uri:?} names no directory")))?;
            let store = tokio::task::spawn_blocking(move || crate::ledger_store::embedded::FileLedgerStore::open(dir))
                .await
                .map_err(|e| LedgerStoreError::Unavailable(format!("opening the ledger store: {e}")))??;
            Ok(Arc::new(store))
        }
        _ => Err(invalid(scheme_error("ledger store", uri, "scylla://127.0.0.1:9042/auditlog or file:///var/lib/auditlog/ledger"))),
    }
}

/// The ScyllaDB settings of `host:port[,host:port...][/keyspace][?replication_factor=N]`.
/// `replication_factor` applies only when the keyspace does not exist yet: it is created
/// with `NetworkTopologyStrategy` and N replicas in each data center (without it:
/// `SimpleStrategy`, one replica, for a single development node).
fn scylla_config(uri: &str, rest: &str) -> Result<ScyllaConfig, StoreError> {
    let invalid = || StoreError::Invalid(format!("event store uri {uri:?}: expected scylla://host:port[,host:port]/keyspace[?replication_factor=N]"));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (nodes, keyspace) = rest.split_once('/').unwrap_or((rest, ""));
    let nodes: Vec<String> = nodes.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect();
    let keyspace = if keyspace.is_empty() { DEFAULT_KEYSPACE } else { keyspace };
    if nodes.is_empty() || !keyspace.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid());
    }
    let mut config = ScyllaConfig::new(nodes, keyspace);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("replication_factor", n)) => {
                let n: u16 = n.parse().ok().filter(|n| *n > 0).ok_or_else(invalid)?;
                config.replication = format!("{{'class': 'NetworkTopologyStrategy', 'replication_factor': {n}}}");
            }
            _ => return Err(StoreError::Invalid(format!("event store uri {uri:?}: unknown parameter {pair:?} (known: replication_factor=N)"))),
        }
    }
    Ok(config)
}

/// The OpenSearch settings of `host:port[/alias][?replicas=N]`: `replicas` is the
/// `number_of_replicas` of the index template, so of every monthly index created from then on
/// (default 0, for a single development node).
fn opensearch_config(uri: &str, rest: &str) -> Result<OpenSearchConfig, IndexError> {
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, alias) = rest.split_once('/').unwrap_or((rest, ""));
    let alias = if alias.is_empty() { DEFAULT_INDEX_ALIAS } else { alias.trim_end_matches('/') };
    let mut config = OpenSearchConfig::new(format!("http://{host}"), alias);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("replicas", n)) => {
                config.replicas = n.parse().map_err(|_| IndexError::Invalid(format!("search index uri {uri:?}: replicas={n:?} is not a number")))?;
            }
            _ => return Err(IndexError::Invalid(format!("search index uri {uri:?}: unknown parameter {pair:?} (known: replicas=N)"))),
        }
    }
    Ok(config)
}

/// Opens the search index named by `uri`.
///
/// - `opensearch://host:port[/alias]` (plain http; alias default [`DEFAULT_INDEX_ALIAS`]);
/// - `http://…` or `https://…`: the OpenSearch node at that URL, default alias;
/// - `file:///path`: the tantivy index in that directory.
pub async fn search_index(uri: &str) -> Result<Arc<dyn SearchIndex>, IndexError> {
    let invalid = || IndexError::Invalid(scheme_error("search index", uri, "opensearch://127.0.0.1:9200 or file:///var/lib/auditlog/index"));
    match uri.split_once("://") {
        Some(("opensearch", rest)) if !rest.is_empty() && !rest.starts_with('/') => {
            Ok(Arc::new(OpenSearchIndex::connect(opensearch_config(uri, rest)?).await?))
        }
        Some(("http" | "https", rest)) if !rest.is_empty() => {
            Ok(Arc::new(OpenSearchIndex::connect(OpenSearchConfig::new(uri, DEFAULT_INDEX_ALIAS)).await?))
        }
        Some(("file", rest)) => {
            let dir = file_path(rest).ok_or_else(invalid)?;
            let index = tokio::task::spawn_blocking(move || TantivySearchIndex::open(dir))
                .await
                .map_err(|e| IndexError::Unavailable(format!("opening the index: {e}")))??;
            Ok(Arc::new(index))
        }
        _ => Err(invalid()),
    }
}

/// Kind written into the format file of a standalone data directory.
pub const DATA_DIR_KIND: &str = "auditlog-data-dir";
/// Format version of a standalone data directory (its layout: `log/`, `store/`, `index/`).
pub const DATA_DIR_VERSION: u32 = 1;

/// The three embedded backends of one standalone data directory.
#[derive(Clone)]
pub struct Embedded {
    /// The file event log, in `<dir>/log`.
    pub log: Arc<FileEventLog>,
    /// The fjall event store, in `<dir>/store`.
    pub store: Arc<FjallEventStore>,
    /// The tantivy search index, in `<dir>/index`.
    pub index: Arc<TantivySearchIndex>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded").field("log", &self.log.dir()).finish_non_exhaustive()
    }
}

/// Errors of opening a standalone data directory.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The directory itself is unusable or of a newer format.
    #[error("data directory: {0}")]
    DataDir(String),
    /// The event log could not be opened.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The event store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The search index could not be opened.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Creates `dir` (and missing parents) readable by its owner only (0700): it holds every
/// tenant's events and the credentials of standalone mode. An existing directory keeps the
/// mode its owner gave it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens (or creates) the embedded log, store and index under `dir` (`log/`, `store/`,
/// `index/`), after checking the directory's own format file. Blocking: recovery reads the
/// log's segments; call it before serving. `log` configures the event log (its `dir` is
/// replaced by `<dir>/log`).
pub fn embedded(dir: &Path, log: Option<FileLogConfig>) -> Result<Embedded, EmbeddedError> {
    create_private_dir(dir).map_err(|e| EmbeddedError::DataDir(format!("{}: {e}", dir.display())))?;
    files::check_format(dir, DATA_DIR_KIND, DATA_DIR_VERSION).map_err(EmbeddedError::DataDir)?;
    let log_config = FileLogConfig { dir: dir.join("log"), ..log.unwrap_or_else(|| FileLogConfig::new(dir.join("log"))) };
    Ok(Embedded {
        log: Arc::new(FileEventLog::open(log_config)?),
        store: Arc::new(FjallEventStore::open(dir.join("store"))?),
        index: Arc::new(TantivySearchIndex::open(dir.join("index"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_or_missing_schemes() {
        assert!(matches!(event_log("kafk://x:1"), Err(LogError::Config(_))));
        assert!(matches!(event_log("127.0.0.1:9092"), Err(LogError::Config(_))));
        assert!(matches!(event_log("kafka://"), Err(LogError::Config(_))));
        assert!(matches!(event_log("file://"), Err(LogError::Config(_))));
    }

    #[tokio::test]
    async fn refuses_bad_store_and_index_uris() {
        for uri in ["cassandra://x:1", "x:1", "scylla://", "scylla://h:1/bad-keyspace!", "file://"] {
            assert!(matches!(event_store(uri).await, Err(StoreError::Invalid(_))), "{uri}");
        }
        for uri in ["elastic://x:1", "x:1", "opensearch://", "http://", "file://"] {
            assert!(matches!(search_index(uri).await, Err(IndexError::Invalid(_))), "{uri}");
        }
    }

    #[test]
    fn scylla_uris_name_nodes_keyspace_and_a_replication_factor() {
        let config = scylla_config("u", "a:9042,b:9042/audit?replication_factor=3").expect("valid");
        assert_eq!(config.keyspace, "audit");
        assert_eq!(config.replication, "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}");
        let single = scylla_config("u", "a:9042").expect("valid");
        assert_eq!((single.keyspace.as_str(), single.replication.contains("SimpleStrategy")), (DEFAULT_KEYSPACE, true));
        for bad in ["a:1/ks?replication_factor=0", "a:1/ks?replication_factor=x", "a:1/ks?consistency=one", "a:1/bad-ks?replication_factor=3"] {
            assert!(matches!(scylla_config("u", bad), Err(StoreError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn opensearch_uris_name_the_alias_and_the_replicas_of_new_indices() {
        let config = opensearch_config("u", "os:9200/audit?replicas=2").expect("valid");
        assert_eq!((config.url.as_str(), config.prefix.as_str(), config.replicas), ("http://os:9200", "audit", 2));
        let plain = opensearch_config("u", "os:9200").expect("valid");
        assert_eq!((plain.prefix.as_str(), plain.replicas), (DEFAULT_INDEX_ALIAS, 0));
        for bad in ["os:9200/a?replicas=-1", "os:9200/a?replicas=x", "os:9200/a?shards=3"] {
            assert!(matches!(opensearch_config("u", bad), Err(IndexError::Invalid(_))), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_new_data_directory_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("auditlog-data");
        let opened = embedded(&dir, None).expect("a new data directory opens");
        drop(opened);
        let mode = std::fs::metadata(&dir).expect("it exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "mode {mode:o}");
    }

    #[test]
    fn opens_kafka_lazily() {
        assert!(event_log("kafka://127.0.0.1:1").is_ok());
        assert!(event_log("kafka://127.0.0.1:1?group.instance.id=p0&linger.ms=2").is_ok());
        assert!(matches!(event_log("kafka://127.0.0.1:1?nonsense"), Err(LogError::Config(_))));
        assert!(matches!(event_log("kafka://?linger.ms=2"), Err(LogError::Config(_))));
    }

    #[tokio::test]
    async fn opens_embedded_backends_from_file_uris() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().display();
        event_log(&format!("file://{base}/log")).expect("file log");
        event_store(&format!("file://{base}/store")).await.expect("fjall store");
        search_index(&format!("file://{base}/index")).await.expect("tantivy index");
    }

    #[test]
    fn opens_a_data_dir_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backends = embedded(dir.path(), None).expect("data dir opens");
        assert!(dir.path().join("log/FORMAT").exists() && dir.path().join("store/FORMAT").exists());
        drop(backends);
        std::fs::write(dir.path().join("FORMAT"), format!("{DATA_DIR_KIND} 99\n")).expect("write");
        let err = embedded(dir.path(), None).expect_err("newer data dir refused").to_string();
        assert!(err.contains("FORMAT") && err.contains("newer"), "{err}");
    }
}
