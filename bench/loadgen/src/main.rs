//! `auditlog-loadgen`: drives realistic audit events from many tenants at a local auditlog
//! ingest gateway and reports requests/s, events/s, status codes and latency percentiles.
//!
//! - `run`: closed loop (maximum rate at N connections) or open loop (fixed request rate,
//!   latency from each request's scheduled start), single events or batches; bounded by a
//!   duration and a request count, and only ever aimed at 127.0.0.1;
//! - `avro-size`: the average Confluent-framed Avro size of the generated events, so the raw
//!   Kafka baseline can send records of the same size.
//!
//! Modules: `events` (the event generator), `tokens` (per-tenant HS256 JWTs), `drive` (the
//! load shapes), `report` (histograms and the summary).

mod drive;
mod events;
mod report;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::drive::{Target, Window};
use crate::report::{Stats, Summary};

/// Longest run accepted, so a mistyped duration cannot load the shared machine for hours.
const MAX_DURATION_SECS: u64 = 600;
/// Bytes of the Confluent wire-format header (magic byte and schema id) before the Avro body.
const WIRE_HEADER_LEN: usize = 5;

#[derive(Debug, Parser)]
#[command(version, about = "Load generator for the auditlog ingest gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one load scenario against a gateway on 127.0.0.1.
    Run(Box<RunArgs>),
    /// Print the average Confluent-framed Avro size (bytes) of the generated events.
    AvroSize {
        /// Events to sample.
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// N connections, each sending its next request as soon as the previous one answered.
    Closed,
    /// A fixed request rate, whatever the answers.
    Open,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Gateway base URL; must point at 127.0.0.1 or localhost.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Load shape.
    #[arg(long, value_enum, default_value = "closed")]
    mode: Mode,
    /// Events per request to `POST /v1/events/batch`; 0 sends single events to `POST /v1/events`.
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Concurrent connections (closed loop) or cap on requests in flight (open loop).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Measured seconds (after the warm-up); at most 600.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Warm-up seconds, sent but not measured (connections, producer batches, registry cache).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Cap on requests sent, warm-up included.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Number of tenants, one JWT each (`bench-tenant-NN`).
    #[arg(long, default_value_t = 50)]
    tenants: usize,
    /// Share of events carrying a producer id (idempotency key).
    #[arg(long, default_value_t = 0.5)]
    id_fraction: f64,
    /// Days of history the events' `occurred_at` spreads over, uniformly (0: they occur now);
    /// for seeding a dataset to query.
    #[arg(long, default_value_t = 0)]
    spread_days: u32,
    /// Share of requests for `bench-tenant-00`, the rest spread over the others alike (0:
    /// every tenant alike).
    #[arg(long, default_value_t = 0.0)]
    hot_tenant_share: f64,
    /// Make this many request bodies up front and send them again and again (0: a new body
    /// per request). Generating events costs the load generator ~17 µs of CPU each, which on
    /// a shared machine is CPU the server does not get; pooled bodies carry no producer id
    /// (the gateway assigns one to each accepted event), so `--id-fraction` is ignored.
    #[arg(long, default_value_t = 0)]
    body_pool: usize,
    /// HS256 secret of the gateway, to sign the tenants' tokens.
    #[arg(long, env = "AUDITLOG_GATEWAY_AUTH_HS256_SECRET", hide_env_values = true)]
    secret: String,
    /// `iss` of the tokens.
    #[arg(long, default_value = "auditlog")]
    issuer: String,
    /// `aud` of the tokens.
    #[arg(long, default_value = "auditlog")]
    audience: String,
    /// Worker threads of the load generator's runtime (on a shared machine, fewer leave more
    /// CPU to the gateway and the broker).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Label of the scenario in the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.max(1))
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(run(*args))
        }
        Command::AvroSize { samples } => avro_size(samples),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    check(&args)?;
    let ttl = args.warmup + args.duration + 600;
    let tenants = tokens::mint(&args.secret, args.tenants, &args.issuer, &args.audience, ttl)?;
    let pool = if args.mode == Mode::Closed { args.connections } else { args.connections.min(256) };
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let base = args.url.trim_end_matches('/').to_owned();
    let target = Target {
        client,
        base,
        tenants,
        batch: args.batch,
        id_fraction: args.id_fraction,
        spread: time::Duration::days(i64::from(args.spread_days)),
        hot_share: args.hot_tenant_share,
        pool: Vec::new(),
    };
    let target = Arc::new(if args.body_pool > 0 { target.with_pool(args.body_pool) } else { target });
    let (load0, cpu0, t0) = (report::loadavg(), report::own_cpu_seconds(), Instant::now());
    let measure_from = t0 + Duration::from_secs(args.warmup);
    let window = Window { measure_from, end: measure_from + Duration::from_secs(args.duration), max_requests: args.max_requests };
    let (stats, lag): (Stats, Option<Duration>) = match args.mode {
        Mode::Closed => (drive::closed_loop(target, args.connections, window).await, None),
        Mode::Open => {
            let (stats, lag) = drive::open_loop(target, args.rate, args.connections, window).await;
            (stats, Some(lag))
        }
    };
    // The window ends when the last measured request could start; requests cut short by the
    // count cap end it earlier.
    let measured = Instant::now().min(window.end).saturating_duration_since(measure_from);
    let mut summary = Summary {
        label: args.label.clone(),
        mode: format!("{:?}", args.mode).to_lowercase(),
        batch: args.batch.max(1),
        connections: args.connections,
        target_rps: (args.mode == Mode::Open).then_some(args.rate),
        seconds: 0.0,
        requests: 0,
        requests_per_s: 0.0,
        events_per_s: 0.0,
        statuses: Default::default(),
        failures: 0,
        errors: Default::default(),
        latency_ms: Default::default(),
        avg_body_bytes: 0,
        max_dispatch_lag_ms: lag.map(|l| l.as_secs_f64() * 1_000.0),
        loadavg: [load0, report::loadavg()],
        loadgen_cpu_s: report::own_cpu_seconds() - cpu0,
        wall_s: t0.elapsed().as_secs_f64(),
    };
    summary.figures(&stats, measured);
    eprintln!("{}", summary.text());
    let json = serde_json::to_string(&summary).context("serializing the summary")?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    Ok(())
}

/// Refuses anything but a bounded run against this machine.
fn check(args: &RunArgs) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&args.url).with_context(|| format!("bad --url {:?}", args.url))?;
    if url.scheme() != "http" || !matches!(url.host_str(), Some("127.0.0.1" | "localhost")) {
        bail!("--url must be http://127.0.0.1:<port> (this tool only loads the local machine)");
    }
    if args.duration == 0 || args.warmup + args.duration > MAX_DURATION_SECS {
        bail!("--warmup + --duration must be 1..={MAX_DURATION_SECS} seconds");
    }
    if args.connections == 0 || args.tenants == 0 || args.max_requests == 0 {
        bail!("--connections, --tenants and --max-requests must be positive");
    }
    if args.batch > 1_000 {
        bail!("--batch is at most 1000 (the gateway's batch limit)");
    }
    if args.mode == Mode::Open && !(args.rate > 0.0 && args.rate <= 100_000.0) {
        bail!("--rate must be in (0, 100000] requests/s");
    }
    if !(0.0..=1.0).contains(&args.id_fraction) || !(0.0..=1.0).contains(&args.hot_tenant_share) {
        bail!("--id-fraction and --hot-tenant-share must be within 0..=1");
    }
    Ok(())
}

/// Validates and encodes `samples` generated events as the gateway does (without the registry:
/// the 5-byte header is added) and prints the average size in bytes.
fn avro_size(samples: usize) -> anyhow::Result<()> {
    let mut events = events::EventGen::new(StdRng::seed_from_u64(1), 0.5);
    let ctx = auditlog_schemas::IngestContext { tenant_id: "bench-tenant-00", received_at: time::OffsetDateTime::now_utc() };
    let (mut avro, mut json) = (0usize, 0usize);
    for _ in 0..samples.max(1) {
        let value = events.event();
        json += serde_json::to_vec(&value).context("serializing an event")?.len();
        let event = auditlog_schemas::validate_event(value, &ctx).map_err(|e| anyhow::anyhow!("generated an invalid event: {e:?}"))?;
        avro += WIRE_HEADER_LEN + event.to_avro_datum().map_err(|e| anyhow::anyhow!("encoding: {e}"))?.len();
    }
    let n = samples.max(1);
    eprintln!("{n} events: average JSON {} B, average Avro (Confluent framed) {} B", json / n, avro / n);
    println!("{}", (avro + n / 2) / n);
    Ok(())
}
