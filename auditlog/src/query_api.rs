//! `auditlog query-api`: serves the query API (reads, search, stats, exports, live tail,
//! administration) over the distributed backends named by URI.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use auditlog_query_api::config::load;
use auditlog_query_api::{Backends, LedgerBackend, QueryState, run_with_metrics_listener};
use auditlog_schemas::WireCodec;
use auditlog_seams::resolve;

use crate::signal::shutdown_signal;
use crate::startup;

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
    /// Event store URI: `scylla://host:port[,host:port...][/keyspace]` or `file:///dir`.
    #[arg(long, env = "AUDITLOG_EVENT_STORE", default_value = "scylla://127.0.0.1:9042/auditlog")]
    event_store: String,
    /// Search index URI: `opensearch://host:port[/alias]`, `http(s)://host:port` or `file:///dir`.
    #[arg(long, env = "AUDITLOG_SEARCH_INDEX", default_value = "opensearch://127.0.0.1:9200/auditlog-events")]
    search_index: String,
    /// Tenant registry URI, the gateway's (`memory://` keeps it in this process only).
    #[arg(long, env = "AUDITLOG_TENANT_REGISTRY", default_value = "kafka://127.0.0.1:9092")]
    tenant_registry: String,
    /// Ledger store URI, the ledger processor's (`scylla://host:port/keyspace` or
    /// `file:///dir`): checkpoints, proofs, tiles and each event's `leaf_index`. `none` turns
    /// the ledger routes off (404 `ledger-not-configured`) and events carry no `leaf_index`.
    /// Default: the event store's `scylla://` URI (the ledger tables live in its keyspace).
    #[arg(long, env = "AUDITLOG_LEDGER_STORE")]
    ledger_store: Option<String>,
    /// The ledger's deployment name (origins `<deployment>/<tenant>`), the ledger processor's.
    #[arg(long = "ledger-deployment", env = "AUDITLOG_LEDGER_DEPLOYMENT", default_value = "auditlog")]
    ledger_deployment: String,
    /// Serve `/metrics` on this address instead of `--listen` (which then answers 404 there),
    /// so only the scraper reaches it.
    #[arg(long, env = "AUDITLOG_QUERY_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    dev: crate::gateway::DevMode,
}

/// Serves the query API until SIGINT or SIGTERM, then closes live tails and drains.
pub async fn query_api(args: QueryApiArgs) -> anyhow::Result<bool> {
    let config = load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    startup::require_jwt_key(&config.auth, "AUDITLOG_QUERY_")?;
    let listeners = std::iter::once(args.listen.as_str()).chain(args.metrics_listen.as_deref()).collect();
    let cursor_var = if std::env::var_os("AUDITLOG_QUERY_CURSOR_SECRET_FILE").is_some() { "AUDITLOG_QUERY_CURSOR_SECRET_FILE" } else { "AUDITLOG_QUERY_CURSOR_SECRET" };
    let extra: Vec<_> = config.cursor_secret.iter().map(|s| ("cursor_secret", cursor_var, s)).collect();
    startup::check_secrets(&config.auth, "AUDITLOG_QUERY_", "AUDITLOG_QUERY_CONFIG", &extra, &startup::Exposure { listeners, dev_mode: args.dev.on })?;
    let log_setting = startup::setting("--event-log", "AUDITLOG_EVENT_LOG", &args.event_log);
    let log = resolve::event_log(&args.event_log).context(log_setting.clone())?;
    startup::log_reachable(log.as_ref(), &log_setting).await?;
    let store = resolve::event_store(&args.event_store)
        .await
        .with_context(|| startup::setting("--event-store", "AUDITLOG_EVENT_STORE", &args.event_store))?;
    let index = resolve::search_index(&args.search_index)
        .await
        .with_context(|| startup::setting("--search-index", "AUDITLOG_SEARCH_INDEX", &args.search_index))?;
    let codec = Arc::new(
        WireCodec::new(&config.registry_url, Duration::from_secs(5))
            .with_context(|| startup::setting("registry_url", "AUDITLOG_QUERY_REGISTRY_URL", &config.registry_url))?,
    );
    let tenants = auditlog_tenant_registry::open_registry(&args.tenant_registry)
        .await
        .with_context(|| startup::setting("--tenant-registry", "AUDITLOG_TENANT_REGISTRY", &args.tenant_registry))?;
    let ledger_store = args.ledger_store.clone().unwrap_or_else(|| crate::processor::default_ledger_store(&args.event_store));
    let ledger = ledger_backend(&ledger_store, &args.ledger_deployment).await?;
    let state = QueryState::new(config, Backends { store, index, log, codec, tenants, ledger }).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("auditlog query API listening on http://{}", listener.local_addr()?);
    let metrics = match &args.metrics_listen {
        Some(addr) => {
            let metrics = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| startup::setting("--metrics-listen", "AUDITLOG_QUERY_METRICS_LISTEN", addr))?;
            eprintln!("auditlog query API metrics on http://{}/metrics", metrics.local_addr()?);
            Some(metrics)
        }
        None => None,
    };
    run_with_metrics_listener(listener, metrics, state, shutdown_signal("closing live tails and draining requests"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(true)
}


/// The ledger the API reads: the store at `uri` under `deployment`, or none for `none`.
async fn ledger_backend(uri: &str, deployment: &str) -> anyhow::Result<Option<LedgerBackend>> {
    if uri == "none" {
        eprintln!("ledger off (--ledger-store none): the ledger routes answer 404 and events carry no leaf_index");
        return Ok(None);
    }
    auditlog_ledger::origin(deployment, "tenant").with_context(|| startup::setting("--ledger-deployment", "AUDITLOG_LEDGER_DEPLOYMENT", deployment))?;
    let store = resolve::ledger_store(uri).await.with_context(|| startup::setting("--ledger-store", "AUDITLOG_LEDGER_STORE", uri))?;
    Ok(Some(LedgerBackend { store, deployment: deployment.to_owned() }))
}
