//! Crash test of the processors, with the real binaries and the real local stack: while a
//! load runs through the gateway, both processors are killed with SIGKILL every few seconds
//! for over a minute and restarted; afterwards each view holds exactly the ids the gateway
//! acknowledged, each once.
#![cfg(feature = "real-services")]

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{EventFilter, EventStore, PageRequest, SearchIndex};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_auditlog");
const SECRET: &str = "crash-test-secret-0123456789abcdef";
const KEYSPACE: &str = "auditlog_crash_test";
/// How long processors are killed and restarted (the issue asks for at least a minute).
const CHAOS: Duration = Duration::from_secs(65);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    prefix: String,
    alias: String,
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("AUDITLOG_GATEWAY_AUTH_HS256_SECRET", SECRET)
            .env("AUDITLOG_GATEWAY_TOPIC_PREFIX", &self.prefix)
            .env("AUDITLOG_TOPIC", format!("{}.v1", self.prefix))
            .env("AUDITLOG_EVENT_STORE", format!("scylla://127.0.0.1:9042/{KEYSPACE}"))
            .env("AUDITLOG_SEARCH_INDEX", format!("opensearch://127.0.0.1:9200/{}", self.alias))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    fn processor(&self, sink: &str) -> Proc {
        let child = self
            .command(&[
                "processor",
                "--sink",
                sink,
                "--group",
                &format!("{}-{sink}", self.prefix),
                "--instance-id",
                &format!("{sink}-0"),
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("the processor starts");
        Proc(child)
    }
}

fn token(setup: &Setup, tenant: &str) -> String {
    let out = setup.command(&["admin", "token", "--tenant", tenant, "--roles", "writer"]).output().expect("auditlog admin token runs");
    assert!(out.status.success(), "admin token failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 token").trim().to_owned()
}

/// Sends batches until `stop`, recording every id the gateway acknowledged.
async fn load(url: String, tenant: String, token: String, acked: Arc<Mutex<HashSet<String>>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let client = reqwest::Client::new();
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let batch: Vec<Value> = (0..20)
            .map(|i| {
                n += 1;
                // Every 10th event repeats an earlier id: a producer retry.
                let id = if i == 9 && n > 40 { format!("{tenant}-{}", n - 30) } else { format!("{tenant}-{n}") };
                json!({"id": id, "action": "document.read", "actor": {"id": format!("u{}", n % 7)}, "description": format!("event {n}")})
            })
            .collect();
        let Ok(answer) = client.post(format!("{url}/v1/events/batch")).bearer_auth(&token).json(&batch).send().await else {
            continue;
        };
        if answer.status().as_u16() != 202 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let body: Value = answer.json().await.expect("json answer");
        {
            let mut ids = acked.lock().expect("lock");
            for result in body["results"].as_array().expect("results") {
                ids.insert(result["id"].as_str().expect("id").to_owned());
            }
        }
        // About 100 events/s per tenant: a steady load the processors keep up with while
        // they are killed, so the test measures loss and duplication, not throughput.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn store_ids(store: &ScyllaEventStore, tenant: &str) -> Vec<String> {
    let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
    let mut page = PageRequest { limit: 1000, after: None };
    let mut ids = Vec::new();
    loop {
        let answer = store.list(&filter, &page).await.expect("store lists");
        ids.extend(answer.events.into_iter().map(|s| s.event.id));
        match answer.next {
            Some(next) => page.after = Some(next),
            None => return ids,
        }
    }
}

async fn index_ids(index: &OpenSearchIndex, tenant: &str) -> Vec<String> {
    index.refresh().await.expect("refresh");
    let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
    let mut page = PageRequest { limit: 1000, after: None };
    let mut ids = Vec::new();
    loop {
        let answer = index.search(&filter, &page).await.expect("index searches");
        ids.extend(answer.events.into_iter().map(|s| s.event.id));
        match answer.next {
            Some(next) => page.after = Some(next),
            None => return ids,
        }
    }
}

fn assert_exact(view: &str, listed: &[String], acked: &HashSet<String>) {
    let held: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(held.len(), listed.len(), "{view}: {} ids listed more than once", listed.len() - held.len());
    let missing: Vec<_> = acked.difference(&held).take(10).collect();
    let extra: Vec<_> = held.difference(acked).take(10).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{view}: missing {missing:?}, extra {extra:?} (held {}, acked {})", held.len(), acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_processors_repeatedly_loses_and_doubles_nothing() {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let setup = Setup { prefix: format!("crash{suffix}"), alias: format!("crash-{suffix}") };
    let topic = format!("{}.v1", setup.prefix);
    let log = auditlog_seams::resolve::event_log("kafka://127.0.0.1:9092").expect("kafka uri");
    log.ensure_topic(&topic, 3).await.expect("kafka creates the topic: is the local stack up?");
    log.ensure_topic(&format!("{topic}.dlq"), 1).await.expect("kafka creates the dlq topic");
    let store = ScyllaEventStore::connect(&ScyllaConfig::new(vec!["127.0.0.1:9042".into()], KEYSPACE)).await.expect("cassandra is up");
    let index = OpenSearchIndex::connect(OpenSearchConfig::new("http://127.0.0.1:9200", setup.alias.clone())).await.expect("opensearch is up");

    let port = free_port();
    let _gateway = Proc(
        setup
            .command(&["gateway", "--listen", &format!("127.0.0.1:{port}"), "--tenant-registry", "memory://"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the gateway starts"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "the gateway did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let tenants = [format!("ca{suffix}"), format!("cb{suffix}")];
    let acked: Vec<Arc<Mutex<HashSet<String>>>> = tenants.iter().map(|_| Arc::default()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads: Vec<_> = tenants
        .iter()
        .zip(&acked)
        .map(|(tenant, acked)| tokio::spawn(load(url.clone(), tenant.clone(), token(&setup, tenant), Arc::clone(acked), Arc::clone(&stop))))
        .collect();

    // Chaos: SIGKILL one of the processors every 2-3 s, restart it at once.
    let mut scylla = setup.processor("scylla");
    let mut opensearch = setup.processor("opensearch");
    let chaos = Instant::now();
    let mut kills = 0;
    while chaos.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(2_000 + (kills % 3) * 500)).await;
        if kills % 2 == 0 {
            drop(scylla);
            scylla = setup.processor("scylla");
        } else {
            drop(opensearch);
            opensearch = setup.processor("opensearch");
        }
        kills += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for load in loads {
        load.await.expect("load task");
    }
    assert!(kills >= 20, "processors were killed {kills} times");

    // Let the last incarnations catch up, then compare every view with what was acknowledged.
    for (tenant, acked) in tenants.iter().zip(&acked) {
        let acked = acked.lock().expect("lock").clone();
        assert!(acked.len() > 2_000, "the load was acknowledged ({} ids for {tenant})", acked.len());
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (s, o) = (store_ids(&store, tenant).await, index_ids(&index, tenant).await);
            if (s.len() >= acked.len() && o.len() >= acked.len()) || Instant::now() > deadline {
                assert_exact("scylla", &s, &acked);
                assert_exact("opensearch", &o, &acked);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    drop((scylla, opensearch));
}
