//! Processor benchmark against the real local stack (release build; see
//! `bench/processor-bench.sh`, which records the results in `bench/RESULTS.md`).
//!
//! 1. **Sink throughput**: `EVENTS` events are appended to a fresh topic, then each sink
//!    drains the topic into a fresh view through the same pipeline as `auditlog replay`;
//!    events/s = events / drain time.
//! 2. **Freshness**: both processors run live on another fresh topic while events are
//!    appended at `RATE` events/s for `DURATION` s; for every 100th event, the time from the log's
//!    acknowledgement (the moment the gateway answers 202) until the event is readable by id
//!    in ScyllaDB, and searchable (by a unique actor id) in OpenSearch. Prints p50/p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlog_processors::replay::{ReplayOptions, replay};
use auditlog_processors::sink::{IndexSink, StoreSink};
use auditlog_processors::{ProcessorConfig, Sink, SinkKind};
use auditlog_schemas::{AuditEvent, IngestContext, WireCodec, validate_event};
use auditlog_seams::event_log::kafka::{KafkaConfig, KafkaEventLog};
use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{EventFilter, EventLog, EventStore, OutgoingRecord, PageRequest, SearchIndex};
use serde_json::json;
use time::OffsetDateTime;

/// One event in this many is probed; the probes' own reads must not load the views more
/// than the writes they measure (every 10th event polled every 10 ms swamped both).
const PROBE_EVERY: u64 = 100;
/// How often a probe asks each view.
const PROBE_POLL: Duration = Duration::from_millis(25);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn event(tenant: &str, n: u64, actor: &str) -> AuditEvent {
    let action = ["user.login", "document.read", "document.update"][(n % 3) as usize];
    let input = json!({
        "action": action,
        "actor": {"id": actor, "type": "user", "name": "Bench User", "email": "bench@example.com"},
        "targets": [{"type": "document", "id": format!("doc-{}", n % 1000), "name": "Quarterly report"}],
        "outcome": "success",
        "context": {"ip": "192.0.2.7", "user_agent": "bench/1", "request_id": format!("req-{n}")},
        "description": format!("benchmark event number {n} edited the quarterly report"),
        "metadata": {"n": n, "tags": ["bench"]},
    });
    let ctx = IngestContext { tenant_id: tenant, received_at: OffsetDateTime::now_utc() };
    validate_event(input, &ctx).unwrap_or_else(|e| panic!("bench event is valid: {e:?}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Bench {
    log: Arc<KafkaEventLog>,
    codec: Arc<WireCodec>,
    store: Arc<ScyllaEventStore>,
}

impl Bench {
    async fn topic(&self, name: &str) {
        self.log.ensure_topic(name, 6).await.expect("kafka creates the topic");
        self.log.ensure_topic(&format!("{name}.dlq"), 1).await.expect("kafka creates the dlq topic");
    }

    async fn index(&self, alias: &str) -> Arc<OpenSearchIndex> {
        let url = std::env::var("AUDITLOG_OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into());
        Arc::new(OpenSearchIndex::connect(OpenSearchConfig::new(url, alias)).await.expect("opensearch"))
    }
}

async fn throughput(bench: &Bench, run: &str, events: u64) {
    let topic = format!("bench.proc.{run}.v1");
    bench.topic(&topic).await;
    let started = Instant::now();
    let mut pending = Vec::new();
    for n in 0..events {
        let (log, codec, topic) = (bench.log.clone(), bench.codec.clone(), topic.clone());
        let e = event(&format!("t{}", n % 50), n, &format!("user-{}", n % 200));
        pending.push(tokio::spawn(async move {
            let payload = codec.encode(&topic, &e).await.expect("encode");
            log.append(OutgoingRecord::for_event(&topic, &e, payload)).await.expect("ack")
        }));
        if pending.len() >= 5_000 {
            for p in pending.drain(..) {
                p.await.expect("append task");
            }
        }
    }
    for p in pending {
        p.await.expect("append task");
    }
    println!("loaded {events} events into {topic} in {:.1} s", started.elapsed().as_secs_f64());
    let index = bench.index(&format!("bench-proc-{run}")).await;
    let sinks: [(SinkKind, Arc<dyn Sink>); 2] =
        [(SinkKind::Scylla, Arc::new(StoreSink::new(bench.store.clone()))), (SinkKind::OpenSearch, Arc::new(IndexSink(index)))];
    for (kind, sink) in sinks {
        let mut config = ProcessorConfig::new(kind);
        config.topic.clone_from(&topic);
        let log: Arc<dyn EventLog> = bench.log.clone();
        let report = replay(&config, log, bench.codec.clone(), sink, ReplayOptions::default(), |_| {}, std::future::pending())
            .await
            .expect("drain");
        println!(
            "RESULT throughput sink={} events={} seconds={:.2} events_per_sec={:.0}",
            kind.as_str(),
            report.records,
            report.seconds,
            report.records as f64 / report.seconds
        );
    }
}

async fn freshness(bench: &Bench, run: &str, rate: u64, seconds: u64) {
    let topic = format!("bench.fresh.{run}.v1");
    bench.topic(&topic).await;
    let index = bench.index(&format!("bench-fresh-{run}")).await;
    let mut stops = Vec::new();
    for (kind, sink) in [(SinkKind::Scylla, Arc::new(StoreSink::new(bench.store.clone())) as Arc<dyn Sink>), (SinkKind::OpenSearch, Arc::new(IndexSink(index.clone())))] {
        let mut config = ProcessorConfig::new(kind);
        config.topic.clone_from(&topic);
        config.group = format!("bench-fresh-{run}-{}", kind.as_str());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log: Arc<dyn EventLog> = bench.log.clone();
        let codec = bench.codec.clone();
        stops.push((stop, tokio::spawn(auditlog_processors::run(config, log, codec, sink, async { stopped.await.unwrap_or(()) }))));
    }
    tokio::time::sleep(Duration::from_secs(5)).await; // group join
    let mut probes = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let total = rate * seconds;
    for n in 0..total {
        ticker.tick().await;
        let probe = n % PROBE_EVERY == 0;
        let actor = if probe { format!("probe-{run}-{n}") } else { format!("user-{}", n % 200) };
        let e = event("fresh", n, &actor);
        let (log, codec, topic, store, index) = (bench.log.clone(), bench.codec.clone(), topic.clone(), bench.store.clone(), index.clone());
        let task = tokio::spawn(async move {
            let payload = codec.encode(&topic, &e).await.expect("encode");
            log.append(OutgoingRecord::for_event(&topic, &e, payload)).await.expect("ack");
            if !probe {
                return None;
            }
            let acked = Instant::now();
            let (mut scylla, mut opensearch) = (None, None);
            let filter = EventFilter { tenant_id: "fresh".into(), actor_id: Some(actor), ..EventFilter::default() };
            let page = PageRequest { limit: 1, after: None };
            while scylla.is_none() || opensearch.is_none() {
                if scylla.is_none() && store.get("fresh", &e.id).await.ok().flatten().is_some() {
                    scylla = Some(acked.elapsed().as_secs_f64());
                }
                if opensearch.is_none() && index.search(&filter, &page).await.is_ok_and(|p| !p.events.is_empty()) {
                    opensearch = Some(acked.elapsed().as_secs_f64());
                }
                if acked.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tokio::time::sleep(PROBE_POLL).await;
            }
            Some((scylla, opensearch))
        });
        probes.push(task);
    }
    let (mut scylla, mut opensearch) = (Vec::new(), Vec::new());
    let mut lost = 0;
    for p in probes {
        if let Some((s, o)) = p.await.expect("probe task") {
            match s {
                Some(s) => scylla.push(s),
                None => lost += 1,
            }
            match o {
                Some(o) => opensearch.push(o),
                None => lost += 1,
            }
        }
    }
    for (stop, task) in stops {
        let _ = stop.send(());
        let _ = task.await;
    }
    for (name, values) in [("scylla", &mut scylla), ("opensearch", &mut opensearch)] {
        values.sort_by(f64::total_cmp);
        println!(
            "RESULT freshness sink={name} rate={rate} seconds={seconds} probes={} p50_ms={:.0} p99_ms={:.0} max_ms={:.0}",
            values.len(),
            percentile(values, 50.0) * 1e3,
            percentile(values, 99.0) * 1e3,
            values.last().copied().unwrap_or(f64::NAN) * 1e3
        );
    }
    println!("RESULT unseen probes={lost} (not readable within 30 s)");
}

#[tokio::main]
async fn main() {
    let run = format!("{}", OffsetDateTime::now_utc().unix_timestamp());
    let log = Arc::new(KafkaEventLog::new(KafkaConfig::new("127.0.0.1:9092")).expect("kafka config"));
    let codec = Arc::new(WireCodec::new("http://127.0.0.1:8081/apis/ccompat/v7", Duration::from_secs(10)).expect("registry"));
    let mut scylla = ScyllaConfig::new(vec!["127.0.0.1:9042".into()], "auditlog_bench");
    scylla.write_concurrency = env_num("WRITE_CONCURRENCY", scylla.write_concurrency as u64) as usize;
    let store = Arc::new(ScyllaEventStore::connect(&scylla).await.expect("cassandra"));
    let bench = Bench { log, codec, store };
    throughput(&bench, &run, env_num("EVENTS", 50_000)).await;
    if env_num("DURATION", 30) > 0 {
        freshness(&bench, &run, env_num("RATE", 1_000), env_num("DURATION", 30)).await;
    }
}
