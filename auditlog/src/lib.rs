//! The `auditlog` command: one executable, one subcommand per role or tool, so one container
//! image serves every role.
//!
//! Roles: `standalone` (everything in one process over embedded storage), `gateway` (HTTP
//! ingest onto Kafka), `processor` (Kafka into one read model), `query-api` (reads, search,
//! stats, exports, live tail, administration). Tools: `init` (topics, schema, keyspace and
//! index of a deployment), `healthcheck` (the image's health probe), `admin` (tenants, API
//! keys, development JWTs), `replay` and `reconcile` (rebuild and check the read models),
//! `produce` (validate events and append them to Kafka in the Confluent Avro wire format),
//! `tail` (follow a topic and print decoded events), `validate` (check events offline),
//! `verify` (check ledger checkpoints, exports with proofs and proofs offline), `sign` and
//! `signing-key` (producer-side event signatures) and `schema` (print the current Avro schema).

mod admin;
mod commands;
mod dlq;
mod gateway;
mod healthcheck;
mod init;
mod ledger;
mod processor;
mod query_api;
mod sign;
mod signal;
mod standalone;
mod startup;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Multi-tenant audit log on Kafka.
#[derive(Debug, Parser)]
#[command(name = "auditlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the distributed backends are.
#[derive(Debug, Clone, clap::Args)]
struct Backends {
    /// Event log URI.
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092")]
    event_log: String,
    /// Confluent-compatible schema registry base URL.
    #[arg(long, env = "AUDITLOG_REGISTRY_URL", default_value = "http://127.0.0.1:8081/apis/ccompat/v7")]
    registry: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole product in one process with embedded storage (the quickest start).
    Standalone(standalone::StandaloneArgs),
    /// Validate JSON events (one per line on stdin) and append them to the event log.
    Produce {
        /// Tenant the events belong to (the gateway takes it from credentials).
        #[arg(long)]
        tenant: String,
        /// Destination topic.
        #[arg(long, default_value = "audit.events.v1")]
        topic: String,
        #[command(flatten)]
        backends: Backends,
    },
    /// Follow a topic from its end and print each event as one JSON line.
    Tail {
        /// Topics to follow.
        #[arg(long, default_value = "audit.events.v1")]
        topic: Vec<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        backends: Backends,
    },
    /// Validate JSON events (one per line on stdin) and print each completed event or its errors.
    Validate {
        /// Tenant to validate for.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Print the current AuditEvent Avro schema.
    Schema,
    /// Serve the ingest gateway (HTTP ingest onto Kafka).
    Gateway(gateway::GatewayArgs),
    /// Tenants, API keys and development tokens.
    Admin(admin::AdminArgs),
    /// Fill one read model (ScyllaDB or OpenSearch) from the event log, exactly once in effect.
    Processor(processor::ProcessorArgs),
    /// Rebuild one read model from the event log.
    Replay(processor::ReplayArgs),
    /// Compare, per tenant, the events in the log with those in both read models.
    Reconcile(processor::ReconcileArgs),
    /// Serve the query API (reads, search, stats, exports, live tail, administration).
    QueryApi(query_api::QueryApiArgs),
    /// Create the topics, schema, keyspace and index a distributed deployment needs (idempotent).
    Init(init::InitArgs),
    /// Probe a running role's `/healthz` (the container image's health check).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Dead letters: `redrive` sends them back to their origin topic after a fix.
    Dlq(dlq::DlqArgs),
    /// Check a checkpoint, an export with proofs, or a proof offline (exit 0 all holds, 1 a
    /// check failed, 2 usage or unreadable input).
    Verify(verify::VerifyArgs),
    /// Sign an event with a producer's private key: prints it with its `signature` added.
    Sign(sign::SignArgs),
    /// Producer signing keys: `generate` makes one (PKCS#8 PEM) and prints its public key.
    SigningKey(sign::SigningKeyArgs),
    /// Make an Ed25519 checkpoint signing key for the ledger processor.
    LedgerKey(ledger::LedgerKeyArgs),
    /// Issues tenants' ledger checkpoints now, signed by the given keys (after a key rotation,
    /// or for a witness), beside a running ledger processor.
    LedgerCheckpoint(ledger::LedgerCheckpointArgs),
    /// Compare what both read models hold with each tenant's ledger: every event edited,
    /// missing, extra or out of order (exit 0 only when none).
    AuditViews(processor::AuditViewsArgs),
}

/// Log filter when `RUST_LOG` is unset. rdkafka's client context repeats every global
/// error (e.g. "all brokers down") many times a second; librdkafka's own log lines say the
/// same once, with repeats suppressed.
/// fjall, its LSM tree and tantivy log routine maintenance (flushes, merges) at info.
const DEFAULT_LOG_FILTER: &str = "info,rdkafka::client=off,fjall=warn,lsm_tree=warn,tantivy=warn";

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `AUDITLOG_LOG_FORMAT=json`: one JSON object per line, for log shippers.
    if std::env::var("AUDITLOG_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Standalone(args) => standalone::standalone(args).await,
            Command::Produce { tenant, topic, backends } => {
                commands::produce(&tenant, &topic, &backends.event_log, &backends.registry).await
            }
            Command::Tail { topic, count, backends } => {
                commands::tail(&topic, count, &backends.event_log, &backends.registry).await
            }
            Command::Validate { tenant } => commands::validate(&tenant),
            Command::Gateway(args) => gateway::gateway(args).await,
            Command::Admin(args) => admin::admin(args).await,
            Command::Processor(args) => processor::processor(args).await,
            Command::Replay(args) => processor::replay_command(args).await,
            Command::Reconcile(args) => processor::reconcile_command(args).await,
            Command::QueryApi(args) => query_api::query_api(args).await,
            Command::Init(args) => init::init(args).await,
            Command::Healthcheck(args) => healthcheck::healthcheck(args).await,
            Command::Dlq(args) => dlq::dlq(args).await,
            Command::Verify(args) => verify::verify(args),
            Command::LedgerKey(args) => ledger::ledger_key(args),
            Command::LedgerCheckpoint(args) => ledger::ledger_checkpoint(args).await,
            Command::Sign(args) => sign::sign(args),
            Command::SigningKey(args) => sign::signing_key(args),
            Command::AuditViews(args) => processor::audit_views_command(args).await,
            Command::Schema => {
                println!("{}", auditlog_schemas::avro::current_schema_text().trim_end());
                Ok(true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
