//! `auditlog standalone`: the whole product in one process over the embedded backends of one
//! data directory: the ingest gateway, both processors and the query API, on one port.
//!
//! - the event log, store and index are `seams`' embedded ones (`<data-dir>/log`, `store/`,
//!   `index/`); the log is the source of truth, fsynced before an event is acknowledged;
//! - the processors run exactly as on Kafka: one consumer group per view, committing after
//!   the view acknowledged, so after a crash both views catch up from the log;
//! - tenants and API keys are in `<data-dir>/tenants.json` (the file tenant registry);
//! - the ledger (tamper evidence) is built by a third processor (`LedgerSink`) into the file
//!   ledger store `<data-dir>/ledger`, checkpoints signed with `<data-dir>/ledger-key` and
//!   published on the embedded log's `audit.ledger.checkpoints.v1`; the query side serves it;
//! - first start writes the credentials ([`credentials`]); [`router`] puts both APIs on one
//!   port.
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting and close live tails, let requests finish,
//! flush the log, then let each processor (the ledger's too) write and commit its batch in
//! flight.

pub(crate) mod credentials;
mod router;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use auditlog_ingest_gateway::GatewayState;
use auditlog_ingest_gateway::config::{JwtKeyConfig, KeyMaterial, Secret};
use auditlog_processors::ledger::{CHECKPOINT_TOPIC, CheckpointTopic, LedgerSink};
use auditlog_processors::sink::{IndexSink, StoreSink};
use auditlog_processors::{BatchLimits, ProcessorConfig, Sink, SinkKind};
use auditlog_query_api::{Backends, LedgerBackend, QueryState};
use auditlog_schemas::WireCodec;
use auditlog_seams::resolve;
use auditlog_seams::{EventLog, EventStore, SearchIndex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::signal::shutdown_signal;

/// Partitions of the topics standalone creates: per-tenant order holds within one partition,
/// and a few partitions let both processors and the live tail read in parallel.
const PARTITIONS: i32 = 4;
/// Key id of the data directory's HS256 secret in both services' auth config.
const KEY_ID: &str = "standalone-hs256";
/// Longest wait for requests in flight (and live tails) to end once shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the log to make every acknowledged append durable on shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The in-process processors' batches: each batch is one fsynced commit of the embedded
/// store and one of the index (a tantivy commit and reader reload), so under load fewer,
/// larger batches leave more of the 2 cores to ingest; a trickle of events is still written
/// within [`BatchLimits::max_age`].
const VIEW_BATCH: BatchLimits = BatchLimits { max_events: 5_000, max_bytes: 16 << 20, max_age: Duration::from_millis(200) };

/// Options of `auditlog standalone`.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Directory holding the log, the views, tenants and credentials (created if absent).
    #[arg(long, env = "AUDITLOG_DATA_DIR", default_value = "./auditlog-data")]
    data_dir: PathBuf,
    /// Address to listen on (ingest and query API on one port).
    #[arg(long, env = "AUDITLOG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The ledger's deployment name: checkpoints are the logs `<deployment>/<tenant>`.
    #[arg(long = "ledger-deployment", env = "AUDITLOG_LEDGER_DEPLOYMENT", default_value = "auditlog")]
    ledger_deployment: String,
}

/// The open backends of a data directory.
struct Opened {
    log: Arc<dyn EventLog>,
    store: Arc<dyn EventStore>,
    index: Arc<dyn SearchIndex>,
}

async fn open_backends(dir: &Path) -> anyhow::Result<Opened> {
    let owned = dir.to_path_buf();
    let embedded = tokio::task::spawn_blocking(move || resolve::embedded(&owned, None))
        .await
        .context("opening the data directory")?
        .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
    Ok(Opened { log: embedded.log, store: embedded.store, index: embedded.index })
}

fn hs256_key(secret: &Secret) -> JwtKeyConfig {
    JwtKeyConfig { id: KEY_ID.into(), material: KeyMaterial::Secret(secret.clone()), algorithms: vec!["HS256".into()] }
}

/// Runs standalone mode until SIGINT or SIGTERM; fails when the data directory cannot be
/// opened (corrupt, newer format, locked by another process) or a processor stops.
pub async fn standalone(args: StandaloneArgs) -> anyhow::Result<bool> {
    let dir = args.data_dir;
    let backends = open_backends(&dir).await?;
    let secrets = credentials::secrets(&dir)?;
    let secret = Secret::new(secrets.jwt_hs256_secret.clone());

    let mut gateway_config = auditlog_ingest_gateway::config::load(None).map_err(|e| anyhow!("{e}"))?;
    let mut query_config = auditlog_query_api::config::load(None).map_err(|e| anyhow!("{e}"))?;
    // Secrets given through the environment follow the placeholder rule; the data
    // directory's own random secret (not a shared example) is exempt from the HS256 rule.
    crate::startup::refuse_placeholder_secrets(&gateway_config.auth, "AUDITLOG_GATEWAY_", "AUDITLOG_GATEWAY_CONFIG", &[])?;
    let cursor: Vec<_> = query_config.cursor_secret.iter().map(|s| ("cursor_secret", "AUDITLOG_QUERY_CURSOR_SECRET", s)).collect();
    crate::startup::refuse_placeholder_secrets(&query_config.auth, "AUDITLOG_QUERY_", "AUDITLOG_QUERY_CONFIG", &cursor)?;
    gateway_config.auth.keys.push(hs256_key(&secret));
    query_config.auth.keys.push(hs256_key(&secret));
    if query_config.cursor_secret.is_none() {
        query_config.cursor_secret = Some(Secret::new(secrets.cursor_secret.clone()));
    }
    let topic = gateway_config.topic();
    for name in [topic.clone(), auditlog_seams::topics::dead_letters(&topic)] {
        backends.log.ensure_topic(&name, PARTITIONS).await.with_context(|| format!("creating topic {name}"))?;
    }
    let deployment = args.ledger_deployment;
    auditlog_ledger::origin(&deployment, "tenant").with_context(|| crate::startup::setting("--ledger-deployment", "AUDITLOG_LEDGER_DEPLOYMENT", &deployment))?;
    let signer = credentials::ledger_signer(&dir, &deployment)?;
    let ledger_dir = dir.join("ledger");
    let ledger_store = resolve::ledger_store(&format!("file://{}", ledger_dir.display()))
        .await
        .with_context(|| format!("cannot open the ledger store {}", ledger_dir.display()))?;
    backends.log.ensure_topic(CHECKPOINT_TOPIC, 1).await.with_context(|| format!("creating topic {CHECKPOINT_TOPIC}"))?;
    let ledger_sink = LedgerSink::new(
        Arc::clone(&ledger_store),
        vec![signer.clone()],
        deployment.clone(),
        Some(CheckpointTopic { log: Arc::clone(&backends.log), topic: CHECKPOINT_TOPIC.to_owned() }),
    );
    ledger_sink.register_keys().await.context("listing the ledger key in the ledger store")?;

    let registry_path = dir.join("tenants.json");
    let tenants = auditlog_tenant_registry::open_registry(&format!("file://{}", registry_path.display()))
        .await
        .with_context(|| format!("opening the tenant registry {}", registry_path.display()))?;
    let codec = Arc::new(WireCodec::embedded());

    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let issued = credentials::ensure(&dir, tenants.as_ref(), &secret, &gateway_config.auth, &url).await?;

    let gateway = GatewayState::new(gateway_config, Arc::clone(&backends.log), Arc::clone(&codec), tenants.clone())
        .map_err(|e| anyhow!("{e}"))?;
    let query_backends = Backends {
        store: Arc::clone(&backends.store),
        index: Arc::clone(&backends.index),
        log: Arc::clone(&backends.log),
        codec: Arc::clone(&codec),
        tenants,
        ledger: Some(LedgerBackend { store: ledger_store, deployment: deployment.clone() }),
    };
    let query = QueryState::new(query_config, query_backends).map_err(|e| anyhow!("{e}"))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let sinks: [(SinkKind, Arc<dyn Sink>); 3] = [
        (SinkKind::Scylla, Arc::new(StoreSink::new(Arc::clone(&backends.store)))),
        (SinkKind::OpenSearch, Arc::new(IndexSink(Arc::clone(&backends.index)))),
        (SinkKind::Ledger, Arc::new(ledger_sink)),
    ];
    let processors_ops = auditlog_processors::ops::router(Arc::clone(&backends.log), sinks.iter().map(|(_, s)| Arc::clone(s)).collect());
    // Shutdown begins on a signal, or when a processor stops by itself (its error is reported).
    let processor_died = Arc::new(tokio::sync::Notify::new());
    let mut processors = Vec::new();
    for (kind, sink) in sinks {
        processors.push(spawn_processor(kind, &topic, &backends.log, &codec, sink, stop_rx.clone(), Arc::clone(&processor_died)));
    }

    if let Err(err) = query.live().ensure_started().await {
        tracing::warn!(error = %err, "live tail not open yet; the first subscriber retries");
    }
    let sweeper = tokio::spawn(auditlog_query_api::retention::sweeper(
        query.clone(),
        Duration::from_secs(query.config().retention_sweep_secs),
        wait_stop(stop_rx.clone()),
    ));
    let readiness = router::Readiness {
        components: vec![
            ("gateway", auditlog_ingest_gateway::router(gateway.clone())),
            ("query_api", auditlog_query_api::router(query.clone())),
            ("processors", processors_ops),
        ],
        processors: processors.iter().map(|p| (p.name, Arc::clone(&p.running))).collect(),
    };
    let app = router::router(auditlog_ingest_gateway::router(gateway), auditlog_query_api::router(query.clone()), readiness);
    eprintln!("auditlog standalone listening on {url} (data in {})", dir.display());
    eprintln!("{}", credentials::banner(&issued, &url));
    let tenant_key = signer.verifier().renamed(&format!("{deployment}/{}", credentials::DEFAULT_TENANT)).map_err(|e| anyhow!("{e}"))?;
    eprintln!(
        "Ledger: {} (checkpoints signed with {}; verifier key {} of tenant `{}`, GET /v1/ledger/keys lists every tenant's)\n",
        ledger_dir.display(),
        dir.join(credentials::LEDGER_KEY_FILE).display(),
        tenant_key,
        credentials::DEFAULT_TENANT,
    );

    let (begin_tx, mut begun) = watch::channel(false);
    let trigger = tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal("closing live tails, draining requests, flushing the log and committing the processors") => {}
            () = processor_died.notified() => eprintln!("shutting down: a processor stopped"),
        }
        let _ = begin_tx.send(true);
    });
    let live = query.live().clone();
    let drain = begun.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        wait_stop(drain).await;
        live.stop().await;
    });
    let mut served = std::pin::pin!(server.into_future());
    let serve_result = tokio::select! {
        result = &mut served => result,
        _ = begun.wait_for(|s| *s) => match tokio::time::timeout(DRAIN_TIMEOUT, &mut served).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("requests still running after the drain deadline; closing");
                Ok(())
            }
        },
    };
    trigger.abort();
    if let Err(err) = backends.log.flush(FLUSH_TIMEOUT).await {
        tracing::error!(error = %err, "flushing the event log on shutdown");
    }
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    let mut failed = None;
    for p in processors {
        if let Err(err) = p.join().await {
            eprintln!("error: {err:#}");
            failed = Some(err);
        }
    }
    serve_result.context("serving HTTP")?;
    match failed {
        Some(err) => Err(err),
        None => Ok(true),
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn wait_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One in-process processor.
struct Processor {
    name: &'static str,
    /// False once its task ended (readiness).
    running: Arc<AtomicBool>,
    handle: JoinHandle<anyhow::Result<()>>,
}

/// Starts the processor of `kind`; it stops when `stop` turns true, finishing and committing
/// its batch. Ending earlier (an error) marks it not running and notifies `died`.
fn spawn_processor(
    kind: SinkKind,
    topic: &str,
    log: &Arc<dyn EventLog>,
    codec: &Arc<WireCodec>,
    sink: Arc<dyn Sink>,
    stop: watch::Receiver<bool>,
    died: Arc<tokio::sync::Notify>,
) -> Processor {
    let mut config = ProcessorConfig::new(kind);
    config.topic = topic.to_owned();
    config.batch = VIEW_BATCH;
    let name = match kind {
        SinkKind::Scylla => "processor_store",
        SinkKind::OpenSearch => "processor_index",
        SinkKind::Ledger => "processor_ledger",
    };
    let running = Arc::new(AtomicBool::new(true));
    let (log, codec, flag) = (Arc::clone(log), Arc::clone(codec), Arc::clone(&running));
    let handle = tokio::spawn(async move {
        let stopping = stop.clone();
        let result = auditlog_processors::run(config, log, codec, sink, wait_stop(stop)).await;
        flag.store(false, Ordering::Release);
        if !*stopping.borrow() {
            died.notify_one();
        }
        result.map(|_| ()).map_err(|e| anyhow!("processor {name}: {e}"))
    });
    Processor { name, running, handle }
}

impl Processor {
    async fn join(self) -> anyhow::Result<()> {
        self.handle.await.map_err(|e| anyhow!("processor {} panicked: {e}", self.name))?
    }
}
