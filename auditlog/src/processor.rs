//! `auditlog processor`, `auditlog replay` and `auditlog reconcile`: fill a read model from
//! the log, rebuild one, and compare both with the log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use auditlog_processors::reconcile::reconcile;
use auditlog_processors::replay::{ReplayOptions, replay};
use auditlog_processors::sink::{IndexSink, StoreSink};
use auditlog_processors::{ProcessorConfig, Sink, SinkKind};
use auditlog_schemas::WireCodec;
use auditlog_seams::event_store::Retention;
use auditlog_seams::resolve;
use auditlog_tenant_registry::DEFAULT_RETENTION_DAYS;
use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::signal::shutdown_signal;
use crate::startup;

/// Registry calls (schema lookups by id) give up after this long; the processor then
/// retries, it never dead-letters an event because the registry was away.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the log and the read models are.
#[derive(Debug, Clone, clap::Args)]
pub struct ViewBackends {
    /// Event log URI.
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092")]
    event_log: String,
    /// Confluent-compatible schema registry base URL.
    #[arg(long, env = "AUDITLOG_REGISTRY_URL", default_value = "http://127.0.0.1:8081/apis/ccompat/v7")]
    registry: String,
    /// Event store URI (`scylla://host:port[,host:port]/keyspace`).
    #[arg(long, env = "AUDITLOG_EVENT_STORE", default_value = "scylla://127.0.0.1:9042/auditlog")]
    store: String,
    /// Search index URI (`opensearch://host:port`, or an http(s) URL).
    #[arg(long, env = "AUDITLOG_SEARCH_INDEX", default_value = "opensearch://127.0.0.1:9200")]
    index: String,
    /// Tenant registry: ScyllaDB does not write events already past their tenant's retention
    /// (the query API's retention sweep removes the rest from every view).
    #[arg(long, env = "AUDITLOG_TENANT_REGISTRY", default_value = "kafka://127.0.0.1:9092")]
    tenant_registry: String,
    /// Ledger store URI (`scylla://host:port/keyspace` or `file:///dir`): the ledger
    /// processor's tiles, tree states and checkpoints. Default: the event store's `scylla://`
    /// URI (the ledger tables live in its keyspace).
    #[arg(long, env = "AUDITLOG_LEDGER_STORE")]
    ledger_store: Option<String>,
    /// The shared topic; dedicated tenant topics are `<topic>.<tenant>`.
    #[arg(long, env = "AUDITLOG_TOPIC", default_value = "audit.events.v1")]
    topic: String,
    /// A standalone data directory (stopped): sets the event log, store, index and tenant
    /// registry to the embedded ones inside it, overriding the options above.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

impl ViewBackends {
    /// The backends with `--data-dir` applied.
    pub fn resolved(&self) -> Self {
        let mut backends = self.clone();
        if let Some(dir) = &self.data_dir {
            let uri = |sub: &str| format!("file://{}", dir.join(sub).display());
            backends.event_log = uri("log");
            backends.store = uri("store");
            backends.index = uri("index");
            backends.tenant_registry = uri("tenants.json");
            backends.ledger_store = Some(uri("ledger"));
        }
        if backends.ledger_store.is_none() {
            backends.ledger_store = Some(default_ledger_store(&backends.store));
        }
        backends
    }

    /// The codec of the event log: the registry's for Kafka, the built-in schema ids for the
    /// embedded log (standalone mode has no registry).
    fn codec(&self) -> anyhow::Result<Arc<WireCodec>> {
        Ok(Arc::new(if self.event_log.starts_with("file://") {
            WireCodec::embedded()
        } else {
            WireCodec::new(&self.registry, REGISTRY_TIMEOUT).with_context(|| startup::setting("--registry", "AUDITLOG_REGISTRY_URL", &self.registry))?
        }))
    }
}

/// Options of `auditlog processor`.
#[derive(Debug, clap::Args)]
pub struct ProcessorArgs {
    /// The read model to fill: `scylla` or `opensearch`.
    #[arg(long, value_parser = parse_sink)]
    sink: SinkKind,
    /// Consumer group (default `auditlog-processor-<sink>`).
    #[arg(long, env = "AUDITLOG_PROCESSOR_GROUP")]
    group: Option<String>,
    /// Static group membership (`group.instance.id`), e.g. a StatefulSet pod's name: a
    /// restarted processor takes its partitions back at once instead of after a rebalance.
    /// Two live processors must never share one.
    #[arg(long, env = "AUDITLOG_PROCESSOR_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "AUDITLOG_PROCESSOR_LISTEN", default_value = "127.0.0.1:9464")]
    listen: String,
    /// Events per batch.
    #[arg(long, env = "AUDITLOG_PROCESSOR_BATCH_EVENTS", default_value_t = 1_000)]
    batch_events: usize,
    /// Longest wait before a partial batch is written, in milliseconds.
    #[arg(long, env = "AUDITLOG_PROCESSOR_BATCH_AGE_MS", default_value_t = 100)]
    batch_age_ms: u64,
    #[command(flatten)]
    ledger: LedgerArgs,
    #[command(flatten)]
    backends: ViewBackends,
}

/// The ledger store when none is configured: the event store's keyspace when it is ScyllaDB,
/// otherwise none (`none`).
pub fn default_ledger_store(event_store: &str) -> String {
    if event_store.starts_with("scylla://") { event_store.to_owned() } else { "none".to_owned() }
}

impl ViewBackends {
    /// The event log URI.
    pub fn event_log_uri(&self) -> &str {
        &self.event_log
    }

    /// The ledger store URI ([`ViewBackends::resolved`] always sets it).
    pub fn ledger_uri(&self) -> &str {
        self.ledger_store.as_deref().unwrap_or("none")
    }
}

/// Options of the ledger processor (`--sink ledger`).
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerArgs {
    /// Checkpoint signing key files (Go `note` signer form, `PRIVATE+KEY+<name>+<id>+<key>`,
    /// from `auditlog ledger-key`); two while a key rotation overlaps.
    #[arg(long = "ledger-key-file", env = "AUDITLOG_LEDGER_KEY_FILES", value_delimiter = ',')]
    key_files: Vec<std::path::PathBuf>,
    /// The deployment's name: checkpoint origins are `<deployment>/<tenant>`.
    #[arg(long = "ledger-deployment", env = "AUDITLOG_LEDGER_DEPLOYMENT", default_value = "auditlog")]
    deployment: String,
    /// The compacted topic checkpoints are published on.
    #[arg(long = "checkpoint-topic", env = "AUDITLOG_CHECKPOINT_TOPIC", default_value = auditlog_processors::ledger::CHECKPOINT_TOPIC)]
    checkpoint_topic: String,
}

/// The signers of `files`; at least one.
pub fn load_signers(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<auditlog_ledger::Signer>> {
    if files.is_empty() {
        bail!("--ledger-key-file / AUDITLOG_LEDGER_KEY_FILES: the ledger needs a signing key (make one with `auditlog ledger-key --name <deployment>`)");
    }
    files
        .iter()
        .map(|path| {
            let setting = startup::setting("--ledger-key-file", "AUDITLOG_LEDGER_KEY_FILES", &path.display().to_string());
            let text = std::fs::read_to_string(path).with_context(|| setting.clone())?;
            auditlog_ledger::Signer::parse(text.trim()).map_err(|e| anyhow::anyhow!("{setting}: not a signer key: {e}"))
        })
        .collect()
}

/// The ledger sink: the store, the signing keys listed in it, checkpoints published on `log`.
pub async fn ledger_sink(args: &LedgerArgs, store_uri: &str, log: Arc<dyn auditlog_seams::EventLog>) -> anyhow::Result<Arc<auditlog_processors::ledger::LedgerSink>> {
    use auditlog_processors::ledger::{CheckpointTopic, LedgerSink};
    let signers = load_signers(&args.key_files)?;
    auditlog_ledger::origin(&args.deployment, "tenant").with_context(|| startup::setting("--ledger-deployment", "AUDITLOG_LEDGER_DEPLOYMENT", &args.deployment))?;
    let store = resolve::ledger_store(store_uri).await.with_context(|| startup::setting("--ledger-store", "AUDITLOG_LEDGER_STORE", store_uri))?;
    let spec = auditlog_seams::event_log::TopicSpec {
        name: args.checkpoint_topic.clone(),
        partitions: 1,
        replication_factor: -1,
        configs: vec![("cleanup.policy".into(), "compact".into())],
    };
    log.ensure_topic_as(&spec).await.with_context(|| format!("creating the checkpoint topic {}", args.checkpoint_topic))?;
    let sink = LedgerSink::new(store, signers, args.deployment.clone(), Some(CheckpointTopic { log, topic: args.checkpoint_topic.clone() }));
    sink.register_keys().await.context("listing the signing keys in the ledger store")?;
    Ok(Arc::new(sink))
}

/// Options of `auditlog replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The read model to rebuild: `scylla` or `opensearch`.
    #[arg(long, value_parser = parse_sink)]
    sink: SinkKind,
    /// Only this tenant's events.
    #[arg(long)]
    tenant: Option<String>,
    /// `earliest` (default) or an RFC 3339 time: only events that occurred from then on.
    #[arg(long, default_value = "earliest")]
    from: String,
    #[command(flatten)]
    backends: ViewBackends,
}

/// Options of `auditlog reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    backends: ViewBackends,
}

fn parse_sink(name: &str) -> Result<SinkKind, String> {
    SinkKind::parse(name).ok_or_else(|| format!("unknown sink {name:?}: expected scylla, opensearch or ledger"))
}

/// Each tenant's retention from the registry, looked up at each write; tenants without
/// settings get the default, as the query API serves them. The store only skips events
/// already past it: nothing it writes expires by itself, so a raised retention keeps every
/// copy and a lowered one reaches every copy at the query API's next sweep.
async fn retention(backends: &ViewBackends) -> anyhow::Result<Retention> {
    let tenants = auditlog_tenant_registry::open_registry(&backends.tenant_registry)
        .await
        .with_context(|| startup::setting("--tenant-registry", "AUDITLOG_TENANT_REGISTRY", &backends.tenant_registry))?;
    Ok(Arc::new(move |tenant: &str| {
        let days = tenants.tenant(tenant).map_or(DEFAULT_RETENTION_DAYS, |t| t.retention_days);
        Some(time::Duration::days(i64::from(days)))
    }))
}

/// The sink of `kind`; `rebuild` (replay) makes the event store repair ids it holds already.
async fn open_sink(kind: SinkKind, backends: &ViewBackends, rebuild: bool) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match kind {
        SinkKind::Scylla => {
            let store = resolve::event_store_with(&backends.store, Some(retention(backends).await?))
                .await
                .with_context(|| startup::setting("--store", "AUDITLOG_EVENT_STORE", &backends.store))?;
            Arc::new(if rebuild { StoreSink::repairing(store) } else { StoreSink::new(store) })
        }
        SinkKind::OpenSearch => Arc::new(IndexSink(
            resolve::search_index(&backends.index).await.with_context(|| startup::setting("--index", "AUDITLOG_SEARCH_INDEX", &backends.index))?,
        )),
        SinkKind::Ledger => bail!("the ledger is built by `auditlog processor --sink ledger` only: it is append-only, never replayed into"),
    })
}

fn config(kind: SinkKind, backends: &ViewBackends) -> ProcessorConfig {
    let mut config = ProcessorConfig::new(kind);
    config.topic.clone_from(&backends.topic);
    config
}

/// Runs one processor until SIGINT/SIGTERM, then finishes its batch and commits.
pub async fn processor(mut args: ProcessorArgs) -> anyhow::Result<bool> {
    args.backends = args.backends.resolved();
    let mut event_log = args.backends.event_log.clone();
    if let Some(id) = &args.instance_id {
        if !event_log.starts_with("kafka://") {
            bail!("--instance-id applies to a kafka:// event log only");
        }
        event_log.push(if event_log.contains('?') { '&' } else { '?' });
        event_log.push_str(&format!("group.instance.id={id}"));
    }
    let log_setting = startup::setting("--event-log", "AUDITLOG_EVENT_LOG", &args.backends.event_log);
    let log = resolve::event_log(&event_log).context(log_setting.clone())?;
    startup::log_reachable(log.as_ref(), &log_setting).await?;
    let codec = args.backends.codec()?;
    let sink: Arc<dyn Sink> = match args.sink {
        SinkKind::Ledger => ledger_sink(&args.ledger, args.backends.ledger_uri(), Arc::clone(&log)).await?,
        kind => open_sink(kind, &args.backends, false).await?,
    };
    let mut config = config(args.sink, &args.backends);
    if let Some(group) = args.group {
        config.group = group;
    }
    config.batch.max_events = args.batch_events.max(1);
    config.batch.max_age = Duration::from_millis(args.batch_age_ms);
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("auditlog processor ({}) consuming as group {}; health on http://{}", args.sink.as_str(), config.group, listener.local_addr()?);
    let ops = auditlog_processors::ops::router(Arc::clone(&log), vec![Arc::clone(&sink)]);
    let (stop_ops, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, ops).with_graceful_shutdown(async { ops_stopped.await.unwrap_or(()) }).await
    });
    let stopped = auditlog_processors::run(config, log, codec, sink, shutdown_signal("finishing the batch in flight and committing it")).await;
    let _ = stop_ops.send(());
    let _ = server.await;
    stopped?;
    Ok(true)
}

/// Replays the log into one read model, with a progress bar.
pub async fn replay_command(mut args: ReplayArgs) -> anyhow::Result<bool> {
    args.backends = args.backends.resolved();
    let from = match args.from.as_str() {
        "earliest" => None,
        time => Some(OffsetDateTime::parse(time, &Rfc3339).with_context(|| format!("--from {time:?} is neither `earliest` nor an RFC 3339 time"))?),
    };
    let log = resolve::event_log(&args.backends.event_log)?;
    let codec = args.backends.codec()?;
    let sink = open_sink(args.sink, &args.backends, true).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} replay [{elapsed_precise}] {wide_bar} {pos}/{len} records ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let shown = bar.clone();
    let progress = move |step: Result<u64, u64>| match step {
        Err(total) => shown.set_length(total),
        Ok(n) => shown.inc(n),
    };
    let options = ReplayOptions { tenant: args.tenant, from };
    let config = config(args.sink, &args.backends);
    let report = replay(&config, log, codec, sink, options, progress, shutdown_signal("stopping the replay")).await?;
    bar.finish();
    eprintln!("replayed {} records into {} in {:.1} s{}", report.records, args.sink.as_str(), report.seconds, if report.complete { "" } else { " (interrupted)" });
    Ok(report.complete)
}

/// Prints, per tenant, the log's events against both views; succeeds when both are exact.
pub async fn reconcile_command(mut args: ReconcileArgs) -> anyhow::Result<bool> {
    args.backends = args.backends.resolved();
    let log = resolve::event_log(&args.backends.event_log)?;
    let codec = args.backends.codec()?;
    let store = resolve::event_store(&args.backends.store).await.with_context(|| format!("opening the event store at {}", args.backends.store))?;
    let index = resolve::search_index(&args.backends.index).await.with_context(|| format!("opening the search index at {}", args.backends.index))?;
    let config = config(SinkKind::Scylla, &args.backends);
    let reports = reconcile(&config, log, codec, store, index, args.tenant, shutdown_signal("stopping the reconciliation")).await?;
    if reports.is_empty() {
        bail!("the log holds no events to reconcile");
    }
    for report in &reports {
        println!("{}", serde_json::to_string(report)?);
    }
    let exact = reports.iter().filter(|r| r.is_exact()).count();
    eprintln!("{exact} of {} tenants exact in both views", reports.len());
    Ok(exact == reports.len())
}

/// Options of `auditlog audit-views`.
#[derive(Debug, clap::Args)]
pub struct AuditViewsArgs {
    /// The tenants to audit (repeatable); at least one.
    #[arg(long, required = true)]
    tenant: Vec<String>,
    /// Verifier keys checkpoints must be signed by (`<name>+<id>+<key>`, repeatable); without
    /// one, the keys the ledger store lists.
    #[arg(long)]
    key: Vec<String>,
    /// The deployment's name (checkpoint origins are `<deployment>/<tenant>`).
    #[arg(long = "ledger-deployment", env = "AUDITLOG_LEDGER_DEPLOYMENT", default_value = "auditlog")]
    deployment: String,
    #[command(flatten)]
    backends: ViewBackends,
}

/// Compares both read models with each tenant's ledger; one line per finding, exit 0 only
/// when none.
pub async fn audit_views_command(mut args: AuditViewsArgs) -> anyhow::Result<bool> {
    use auditlog_processors::audit::{Views, audit_tenant};
    args.backends = args.backends.resolved();
    let keys = args
        .key
        .iter()
        .map(|k| auditlog_ledger::Verifier::parse(k).map_err(|e| anyhow::anyhow!("--key {k:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ledger_uri = args.backends.ledger_uri();
    let ledger = resolve::ledger_store(ledger_uri).await.with_context(|| startup::setting("--ledger-store", "AUDITLOG_LEDGER_STORE", ledger_uri))?;
    let store = resolve::event_store(&args.backends.store).await.with_context(|| format!("opening the event store at {}", args.backends.store))?;
    let index = resolve::search_index(&args.backends.index).await.with_context(|| format!("opening the search index at {}", args.backends.index))?;
    let embedded = args.backends.store.starts_with("file:");
    let views = Views { store: Some(store.as_ref()), index: Some(index.as_ref()), embedded };
    let mut clean = true;
    for tenant in &args.tenant {
        let audit = audit_tenant(ledger.as_ref(), &views, tenant, &args.deployment, &keys).await?;
        for finding in &audit.findings {
            println!("{tenant}: {finding}");
        }
        let compared: Vec<String> = audit.compared.iter().map(|(view, n)| format!("{view} {n}")).collect();
        eprintln!("{tenant}: tree size {}, compared {}: {} finding(s)", audit.tree_size, compared.join(", "), audit.findings.len());
        clean &= audit.findings.is_empty();
    }
    Ok(clean)
}
