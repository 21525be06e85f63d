//! `auditlog query-api`: serves the query API (reads, search, stats, exports, live tail,
//! administration) over the distributed backends named by URI.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use auditlog_query_api::config::load;
use auditlog_query_api::{Backends, QueryState, run};
use auditlog_schemas::WireCodec;
use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{EventStore, SearchIndex, resolve};

/// Keyspace of a `scylla://` URI without one (the processors' default).
const DEFAULT_KEYSPACE: &str = "auditlog";
/// Alias of an OpenSearch URI without one (the processors' default).
const DEFAULT_INDEX_ALIAS: &str = "auditlog-events";

/// Options of `auditlog query-api`.
#[derive(Debug, clap::Args)]
pub struct QueryApiArgs {
    /// Query API config (JSON); defaults plus `AUDITLOG_QUERY_*` variables when absent.
    #[arg(long, env = "AUDITLOG_QUERY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "AUDITLOG_QUERY_LISTEN", default_value = "127.0.0.1:8090")]
    listen: String,
    /// Event log URI (live tail; admin actions are appended to it).
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092")]
    event_log: String,
    /// Event store URI: `scylla://host:port[,host:port...][/keyspace]`.
    #[arg(long, env = "AUDITLOG_EVENT_STORE", default_value = "scylla://127.0.0.1:9042/auditlog")]
    event_store: String,
    /// Search index URI: `opensearch://host:port[/alias]` or `http(s)://host:port`.
    #[arg(long, env = "AUDITLOG_SEARCH_INDEX", default_value = "opensearch://127.0.0.1:9200/auditlog-events")]
    search_index: String,
    /// Tenant registry URI, the gateway's (`memory://` keeps it in this process only).
    #[arg(long, env = "AUDITLOG_TENANT_REGISTRY", default_value = "kafka://127.0.0.1:9092")]
    tenant_registry: String,
}

/// Opens the event store named by `uri`.
async fn event_store(uri: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    let Some(rest) = uri.strip_prefix("scylla://") else {
        bail!("unsupported event store uri {uri:?}, e.g. scylla://127.0.0.1:9042/auditlog");
    };
    let (nodes, keyspace) = rest.split_once('/').unwrap_or((rest, ""));
    let nodes: Vec<String> = nodes.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect();
    let keyspace = if keyspace.is_empty() { DEFAULT_KEYSPACE } else { keyspace };
    if nodes.is_empty() {
        bail!("event store uri {uri:?} names no node");
    }
    Ok(Arc::new(ScyllaEventStore::connect(&ScyllaConfig::new(nodes, keyspace)).await?))
}

/// Opens the search index named by `uri`.
async fn search_index(uri: &str) -> anyhow::Result<Arc<dyn SearchIndex>> {
    let config = match uri.split_once("://") {
        Some(("opensearch", rest)) if !rest.is_empty() => {
            let (host, alias) = rest.split_once('/').unwrap_or((rest, ""));
            let alias = if alias.is_empty() { DEFAULT_INDEX_ALIAS } else { alias.trim_end_matches('/') };
            OpenSearchConfig::new(format!("http://{host}"), alias)
        }
        Some(("http" | "https", rest)) if !rest.is_empty() => OpenSearchConfig::new(uri, DEFAULT_INDEX_ALIAS),
        _ => bail!("unsupported search index uri {uri:?}, e.g. opensearch://127.0.0.1:9200"),
    };
    Ok(Arc::new(OpenSearchIndex::connect(config).await?))
}

/// Serves the query API until SIGINT or SIGTERM, then closes live tails and drains.
pub async fn query_api(args: QueryApiArgs) -> anyhow::Result<bool> {
    let config = load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = resolve::event_log(&args.event_log)?;
    let store = event_store(&args.event_store).await.with_context(|| format!("opening the event store at {}", args.event_store))?;
    let index = search_index(&args.search_index).await.with_context(|| format!("opening the search index at {}", args.search_index))?;
    let codec = Arc::new(WireCodec::new(&config.registry_url, Duration::from_secs(5))?);
    let tenants = auditlog_tenant_registry::open_registry(&args.tenant_registry)
        .await
        .with_context(|| format!("opening the tenant registry at {}", args.tenant_registry))?;
    let state = QueryState::new(config, Backends { store, index, log, codec, tenants }).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("auditlog query API listening on http://{}", listener.local_addr()?);
    run(listener, state, shutdown_signal()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(true)
}

/// Resolves on ctrl-c or SIGTERM (Kubernetes stops pods with SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("shutting down: closing live tails and draining requests");
}
