//! `auditlog-ledger-bench`: the driver of `bench/ledger-bench.sh` (not shipped).
//!
//! - `fill`: grows one tenant's ledger to `--leaves` leaves directly through the `LedgerStore`
//!   seam (the tree builder's batches, tiles, leaf rows, state, then one signed checkpoint),
//!   with synthetic event ids ([`leaf_id`]); resumes a partial fill from the saved state.
//! - `covered`: waits until the checkpoints of the given tenants cover `--expect` leaves in
//!   all (the ledger processor's drain), printing the time it took.
//! - `proofs`: `/v1/events/{id}/proof` latency through the query API for random ids of a
//!   filled tenant at a fixed concurrency, and the same proof computed in-process from the
//!   store (checkpoint, leaf index, tiles, proof) for comparison.
//! - `lag`: an open-loop load of single events on the gateway; for each acknowledged event,
//!   the time until a saved checkpoint of its tenant covers its leaf (store polled every
//!   `--poll-ms`; leaf indexes read from the store afterwards).
//!
//! Every result is one `RESULT <kind> key=value ...` line on stdout.

#[allow(dead_code)]
#[path = "events.rs"]
mod events;
#[allow(dead_code)]
#[path = "tokens.rs"]
mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use auditlog_ledger::proof::inclusion_tiles;
use auditlog_ledger::{Checkpoint, Signer, TileHashReader, TreeState, leaf_hash, origin, prove_inclusion};
use auditlog_seams::LogPosition;
use auditlog_seams::ledger_store::{LeafEntry, LedgerState, LedgerStore, StoredCheckpoint};
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;

#[derive(Parser)]
#[command(about = "Ledger benchmark driver (bench/ledger-bench.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fill one tenant's ledger through the LedgerStore seam.
    Fill {
        /// Ledger store URI (`scylla://127.0.0.1:9042/<keyspace>`).
        #[arg(long)]
        store: String,
        #[arg(long)]
        tenant: String,
        /// Leaves the tree ends with.
        #[arg(long)]
        leaves: u64,
        /// Leaves per append.
        #[arg(long, default_value_t = 65_536)]
        batch: u64,
        /// Signer key file (`auditlog ledger-key`).
        #[arg(long)]
        key_file: std::path::PathBuf,
        #[arg(long, default_value = "auditlog")]
        deployment: String,
    },
    /// Wait until the tenants' checkpoints cover `expect` leaves in all.
    Covered {
        #[arg(long)]
        store: String,
        /// Tenants `bench-tenant-00` .. `bench-tenant-<N-1>`.
        #[arg(long)]
        tenants: usize,
        #[arg(long)]
        expect: u64,
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
    },
    /// Inclusion-proof latency through the query API and in-process.
    Proofs {
        /// Query API base URL (none: only the in-process proofs).
        #[arg(long)]
        url: Option<String>,
        /// The query API's HS256 secret.
        #[arg(long, env = "LEDGER_BENCH_QUERY_SECRET", default_value = "")]
        secret: String,
        #[arg(long)]
        tenant: String,
        /// Leaves of the filled tenant (ids are drawn from 0..leaves).
        #[arg(long)]
        leaves: u64,
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 2_000)]
        warmup: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Also compute `in_process` proofs from this store, one at a time.
        #[arg(long)]
        store: Option<String>,
        #[arg(long, default_value_t = 2_000)]
        in_process: usize,
    },
    /// Checkpoint lag under an open-loop load on the gateway.
    Lag {
        /// Gateway base URL.
        #[arg(long)]
        gateway: String,
        /// The gateway's HS256 secret.
        #[arg(long, env = "AUDITLOG_GATEWAY_AUTH_HS256_SECRET")]
        secret: String,
        #[arg(long)]
        store: String,
        #[arg(long, default_value_t = 10)]
        tenants: usize,
        /// Events per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        #[arg(long, default_value_t = 50)]
        poll_ms: u64,
        /// Give up waiting for the last checkpoints after this long.
        #[arg(long, default_value_t = 60)]
        settle_secs: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Fill { store, tenant, leaves, batch, key_file, deployment } => fill(&store, &tenant, leaves, batch, &key_file, &deployment).await,
            Command::Covered { store, tenants, expect, timeout_secs } => covered(&store, tenants, expect, timeout_secs).await,
            Command::Proofs { url, secret, tenant, leaves, requests, warmup, concurrency, store, in_process } => {
                if let Some(url) = url {
                    proofs(&url, &secret, &tenant, leaves, requests, warmup, concurrency).await?;
                }
                if let Some(store) = store {
                    proofs_in_process(&store, &tenant, leaves, in_process).await?;
                }
                Ok(())
            }
            Command::Lag { gateway, secret, store, tenants, rate, duration_secs, poll_ms, settle_secs } => {
                lag(&gateway, &secret, &store, tenants, rate, duration_secs, poll_ms, settle_secs).await
            }
        }
    })
}

async fn open_store(uri: &str) -> anyhow::Result<Arc<dyn LedgerStore>> {
    auditlog_seams::resolve::ledger_store(uri).await.with_context(|| format!("opening the ledger store {uri}"))
}

/// The synthetic event id of leaf `i`: a UUID-shaped string from a bijective mix of `i`, so
/// ids are spread like random UUIDs and any leaf's id can be recomputed.
fn leaf_id(i: u64) -> String {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let hi = mix(i.wrapping_add(0x9e37_79b9_7f4a_7c15));
    uuid::Uuid::from_u64_pair(hi, i).to_string()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    (h.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0
}

fn percentiles(h: &Histogram<u64>) -> String {
    format!(
        "n={} p50_ms={} p99_ms={} p99.9_ms={} max_ms={}",
        h.len(),
        ms(h, 0.5),
        ms(h, 0.99),
        ms(h, 0.999),
        (h.max() as f64 / 1000.0 * 100.0).round() / 100.0
    )
}

async fn fill(uri: &str, tenant: &str, leaves: u64, batch: u64, key_file: &std::path::Path, deployment: &str) -> anyhow::Result<()> {
    let store = open_store(uri).await?;
    let signer = Signer::parse(std::fs::read_to_string(key_file).with_context(|| format!("reading {}", key_file.display()))?.trim())
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
    let mut state = match store.load_state(tenant).await? {
        Some(saved) => TreeState::from_bytes(&saved.builder).map_err(|e| anyhow::anyhow!("saved state: {e}"))?,
        None => TreeState::empty(),
    };
    let resumed_at = state.size();
    let started = Instant::now();
    let mut last_report = Instant::now();
    while state.size() < leaves {
        let from = state.size();
        let count = batch.min(leaves - from);
        let ids: Vec<String> = (from..from + count).map(leaf_id).collect();
        let hashes: Vec<_> = ids.iter().map(|id| leaf_hash(id.as_bytes())).collect();
        let appended = state.append(&hashes);
        let tiles: Vec<(String, Vec<u8>)> = appended.tiles.iter().map(|(tile, data)| (tile.path(), data.clone())).collect();
        store.put_tiles(tenant, &tiles).await?;
        let rows: Vec<LeafEntry> = ids.into_iter().enumerate().map(|(i, id)| LeafEntry { index: from + i as u64, id }).collect();
        store.put_leaves(tenant, &rows).await?;
        let size = appended.state.size();
        let position = LogPosition { topic: "bench.ledger.fill".into(), partition: 0, offset: i64::try_from(size)? };
        store.save_state(tenant, &LedgerState { size, builder: appended.state.to_bytes(), position }).await?;
        state = appended.state;
        if last_report.elapsed() > Duration::from_secs(10) || state.size() == leaves {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("fill: {} of {leaves} leaves, {:.0} leaves/s", state.size(), (state.size() - resumed_at) as f64 / secs);
            last_report = Instant::now();
        }
    }
    let note = Checkpoint { origin: origin(deployment, tenant)?, size: state.size(), root: state.root(), extensions: Vec::new() }
        .sign(std::slice::from_ref(&signer))
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    store.save_checkpoint(tenant, &StoredCheckpoint { size: state.size(), note }).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT fill tenant={tenant} leaves={} written={} seconds={secs:.1} leaves_per_sec={:.0}",
        state.size(),
        state.size() - resumed_at,
        (state.size() - resumed_at) as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn bench_tenant(n: usize) -> String {
    format!("bench-tenant-{n:02}")
}

async fn checkpoint_sizes(store: &Arc<dyn LedgerStore>, tenants: &[String]) -> anyhow::Result<Vec<u64>> {
    let reads = tenants.iter().map(|t| store.load_checkpoint(t));
    let found = futures::future::join_all(reads).await;
    found.into_iter().map(|c| Ok(c?.map_or(0, |c| c.size))).collect()
}

async fn covered(uri: &str, tenants: usize, expect: u64, timeout_secs: u64) -> anyhow::Result<()> {
    let store = open_store(uri).await?;
    let names: Vec<String> = (0..tenants).map(bench_tenant).collect();
    let started = Instant::now();
    let mut first_leaf: Option<f64> = None;
    let mut last_report = Instant::now();
    loop {
        let total: u64 = checkpoint_sizes(&store, &names).await?.iter().sum();
        let now = started.elapsed().as_secs_f64();
        if total > 0 && first_leaf.is_none() {
            first_leaf = Some(now);
        }
        if total >= expect || now > timeout_secs as f64 {
            let complete = total >= expect;
            let from_first = now - first_leaf.unwrap_or(0.0);
            println!(
                "RESULT covered leaves={total} expect={expect} complete={complete} seconds={now:.2} first_checkpoint_s={:.2} events_per_sec={:.0} events_per_sec_after_first={:.0}",
                first_leaf.unwrap_or(f64::NAN),
                total as f64 / now,
                total as f64 / from_first.max(1e-9)
            );
            return Ok(());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("covered: {total} of {expect} leaves after {now:.0} s ({:.0}/s)", total as f64 / now);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Serialize)]
struct ReaderClaims<'a> {
    sub: &'a str,
    tenant_id: &'a str,
    roles: [&'a str; 1],
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

fn reader_token(secret: &str, tenant: &str) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = ReaderClaims { sub: "auditlog-ledger-bench", tenant_id: tenant, roles: ["reader"], iss: "auditlog", aud: "auditlog", iat: now, nbf: now, exp: now + 3600 };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    Ok(format!("Bearer {}", jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)?))
}

#[derive(serde::Deserialize)]
struct ProofAnswer {
    leaf_index: u64,
    hashes: Vec<String>,
}

async fn proofs(url: &str, secret: &str, tenant: &str, leaves: u64, requests: usize, warmup: usize, concurrency: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let bearer = reader_token(secret, tenant)?;
    let one = |i: u64| {
        let (client, bearer) = (client.clone(), bearer.clone());
        async move {
            let started = Instant::now();
            let answer = client.get(format!("{url}/v1/events/{}/proof", leaf_id(i))).header("authorization", bearer).send().await;
            let outcome = match answer {
                Ok(r) if r.status() == 200 => match r.json::<ProofAnswer>().await {
                    Ok(p) if p.leaf_index == i && !p.hashes.is_empty() => Ok(()),
                    Ok(p) => Err(format!("leaf_index {} for leaf {i}", p.leaf_index)),
                    Err(e) => Err(format!("body: {e}")),
                },
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(format!("request: {e}")),
            };
            (started.elapsed(), outcome)
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let warm: Vec<u64> = (0..warmup).map(|_| rng.random_range(0..leaves)).collect();
    let _ = futures::stream::iter(warm.into_iter().map(one)).buffer_unordered(concurrency).collect::<Vec<_>>().await;
    let ids: Vec<u64> = (0..requests).map(|_| rng.random_range(0..leaves)).collect();
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let answers = futures::stream::iter(ids.into_iter().map(one)).buffer_unordered(concurrency).collect::<Vec<_>>().await;
    let wall = started.elapsed().as_secs_f64();
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut h = histogram();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for (latency, outcome) in answers {
        match outcome {
            Ok(()) => h.record(latency.as_micros().max(1) as u64)?,
            Err(e) => *errors.entry(e.chars().take(60).collect()).or_default() += 1,
        }
    }
    let load = |s: &str| s.split_whitespace().next().unwrap_or("?").to_string();
    println!(
        "RESULT proofs_api concurrency={concurrency} {} req_per_sec={:.0} errors={} load={}->{}",
        percentiles(&h),
        h.len() as f64 / wall,
        errors.values().sum::<usize>(),
        load(&load0),
        load(&load1)
    );
    if !errors.is_empty() {
        eprintln!("proof errors: {errors:?}");
    }
    Ok(())
}

async fn proofs_in_process(uri: &str, tenant: &str, leaves: u64, count: usize) -> anyhow::Result<()> {
    let store = open_store(uri).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut h = histogram();
    for _ in 0..count {
        let i = rng.random_range(0..leaves);
        let started = Instant::now();
        let checkpoint = store.load_checkpoint(tenant).await?.context("no checkpoint")?;
        let id = leaf_id(i);
        let index = *store.leaf_indexes(tenant, std::slice::from_ref(&id)).await?.get(&id).context("no leaf row")?;
        let tiles = inclusion_tiles(index, checkpoint.size, checkpoint.size)?;
        let fetched = futures::stream::iter(tiles.iter().map(|t| {
            let store = Arc::clone(&store);
            async move { store.get_tile(tenant, &t.path()).await }
        }))
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
        let mut reader = TileHashReader::new(checkpoint.size);
        for (tile, data) in tiles.iter().zip(fetched) {
            reader.insert(*tile, data?.context("missing tile")?)?;
        }
        let proof = prove_inclusion(index, checkpoint.size, &reader)?;
        if index != i || proof.is_empty() {
            bail!("leaf {i}: index {index}, {} hashes", proof.len());
        }
        h.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    println!("RESULT proofs_in_process {}", percentiles(&h));
    Ok(())
}

struct Acked {
    tenant: usize,
    id: String,
    at: Instant,
}

#[allow(clippy::too_many_arguments)]
async fn lag(gateway: &str, secret: &str, uri: &str, tenants: usize, rate: f64, duration_secs: u64, poll_ms: u64, settle_secs: u64) -> anyhow::Result<()> {
    let store = open_store(uri).await?;
    let names: Arc<Vec<String>> = Arc::new((0..tenants).map(bench_tenant).collect());
    let writers = tokens::mint(secret, tenants, "auditlog", "auditlog", duration_secs + 600)?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    // Poller: (when, tenant, size) each time a tenant's checkpoint grows.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (store, names, stop) = (Arc::clone(&store), Arc::clone(&names), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut seen = vec![0u64; names.len()];
            let mut growth: Vec<Vec<(Instant, u64)>> = vec![Vec::new(); names.len()];
            let mut tick = tokio::time::interval(Duration::from_millis(poll_ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let Ok(sizes) = checkpoint_sizes(&store, &names).await else { continue };
                let now = Instant::now();
                for (t, size) in sizes.into_iter().enumerate() {
                    if size > seen[t] {
                        seen[t] = size;
                        growth[t].push((now, size));
                    }
                }
            }
            growth
        })
    };
    let initial = checkpoint_sizes(&store, &names).await?;
    let total = (rate * duration_secs as f64) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Acked, String>>();
    let mut generator = events::EventGen::new(rand::rngs::StdRng::seed_from_u64(16), 0.5);
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let start = Instant::now();
    let mut max_lag = Duration::ZERO;
    for k in 0..total {
        let due = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(due));
        let tenant = (k as usize) % tenants;
        let body = serde_json::to_vec(&generator.event())?;
        let (client, bearer, tx) = (client.clone(), writers[tenant].bearer.clone(), tx.clone());
        let url = format!("{gateway}/v1/events");
        tokio::spawn(async move {
            let answer = client.post(url).header("authorization", bearer).header("content-type", "application/json").body(body).send().await;
            let at = Instant::now();
            let outcome = match answer {
                Ok(r) if r.status() == 202 => match r.json::<serde_json::Value>().await {
                    Ok(v) => v.get("id").and_then(|id| id.as_str()).map(|id| Acked { tenant, id: id.to_string(), at }).ok_or_else(|| "no id".to_string()),
                    Err(e) => Err(format!("body: {e}")),
                },
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(format!("request: {e}")),
            };
            let _ = tx.send(outcome);
        });
    }
    drop(tx);
    let mut acked = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    while let Some(outcome) = rx.recv().await {
        match outcome {
            Ok(a) => acked.push(a),
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    let sent_secs = start.elapsed().as_secs_f64();
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // Wait until every tenant's checkpoint covers what it was sent (ids are unique).
    let mut per_tenant = initial.clone();
    for a in &acked {
        per_tenant[a.tenant] += 1;
    }
    let settle = Instant::now();
    loop {
        let sizes = checkpoint_sizes(&store, &names).await?;
        if sizes.iter().zip(&per_tenant).all(|(s, want)| s >= want) || settle.elapsed() > Duration::from_secs(settle_secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
    tokio::time::sleep(Duration::from_millis(2 * poll_ms)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let growth = poller.await?;
    // Leaf index of every acknowledged event, then the first checkpoint seen that covers it.
    let mut by_tenant: Vec<Vec<&Acked>> = vec![Vec::new(); tenants];
    for a in &acked {
        by_tenant[a.tenant].push(a);
    }
    let mut h = histogram();
    let mut uncovered = 0usize;
    for (t, events) in by_tenant.iter().enumerate() {
        for chunk in events.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(|a| a.id.clone()).collect();
            let indexes = store.leaf_indexes(&names[t], &ids).await?;
            for a in chunk {
                let seen = indexes.get(&a.id).and_then(|&index| growth[t].iter().find(|(_, size)| *size > index));
                match seen {
                    Some((when, _)) => h.record(when.saturating_duration_since(a.at).as_micros().max(1) as u64)?,
                    None => uncovered += 1,
                }
            }
        }
    }
    let load = |s: &str| s.split_whitespace().next().unwrap_or("?").to_string();
    println!(
        "RESULT lag rate={rate} seconds={sent_secs:.1} sent={total} acked={} failed={} uncovered={uncovered} {} poll_ms={poll_ms} max_dispatch_lag_ms={:.1} load={}->{}",
        acked.len(),
        errors.values().sum::<usize>(),
        percentiles(&h),
        max_lag.as_secs_f64() * 1000.0,
        load(&load0),
        load(&load1)
    );
    if !errors.is_empty() {
        eprintln!("gateway errors: {errors:?}");
    }
    Ok(())
}
