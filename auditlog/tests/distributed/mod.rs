//! Harness of the black-box tests of the distributed roles: the real `auditlog` binary as
//! gateway, processors and query API on the local stack, each test on its own topic family,
//! index alias and tenants.

#![allow(dead_code, missing_docs)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{EventFilter, EventStore, PageRequest, SearchIndex};

pub const BIN: &str = env!("CARGO_BIN_EXE_auditlog");
pub const SECRET: &str = "distributed-test-secret-0123456789abcdef";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One test's names: topics `<prefix>.v1[.…]`, index alias, keyspace.
pub struct Setup {
    pub prefix: String,
    pub alias: String,
    pub keyspace: &'static str,
}

impl Setup {
    /// Fresh names; creates the topic (3 partitions) and its dead-letter topic.
    pub async fn new(name: &str, keyspace: &'static str) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let setup = Self { prefix: format!("{name}{suffix}"), alias: format!("{name}-{suffix}"), keyspace };
        let log = auditlog_seams::resolve::event_log("kafka://127.0.0.1:9092").expect("kafka uri");
        log.ensure_topic(&setup.topic(), 3).await.expect("kafka creates the topic: is the local stack up?");
        log.ensure_topic(&format!("{}.dlq", setup.topic()), 1).await.expect("kafka creates the dlq topic");
        setup
    }

    pub fn topic(&self) -> String {
        format!("{}.v1", self.prefix)
    }

    /// The binary with this test's backends in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("AUDITLOG_GATEWAY_AUTH_HS256_SECRET", SECRET)
            .env("AUDITLOG_QUERY_AUTH_HS256_SECRET", SECRET)
            .env("AUDITLOG_GATEWAY_TOPIC_PREFIX", &self.prefix)
            .env("AUDITLOG_QUERY_TOPIC_PREFIX", &self.prefix)
            .env("AUDITLOG_TOPIC", self.topic())
            .env("AUDITLOG_EVENT_STORE", format!("scylla://127.0.0.1:9042/{}", self.keyspace))
            .env("AUDITLOG_LEDGER_STORE", format!("scylla://127.0.0.1:9042/{}", self.keyspace))
            .env("AUDITLOG_CHECKPOINT_TOPIC", format!("{}.checkpoints", self.prefix))
            .env("AUDITLOG_SEARCH_INDEX", format!("opensearch://127.0.0.1:9200/{}", self.alias))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    pub fn processor(&self, sink: &str) -> Proc {
        let group = format!("{}-{sink}", self.prefix);
        let instance = format!("{sink}-0");
        let args = ["processor", "--sink", sink, "--group", &group, "--instance-id", &instance, "--listen", "127.0.0.1:0"];
        Proc(self.command(&args).spawn().expect("the processor starts"))
    }

    /// The ledger processor, signing with the key in `key_file`, its ledger in `keyspace`
    /// (consumer group `<prefix>-ledger-<keyspace>`).
    pub fn ledger_processor(&self, key_file: &std::path::Path, keyspace: &str) -> Proc {
        let group = format!("{}-ledger-{keyspace}", self.prefix);
        let key = key_file.display().to_string();
        let store = format!("scylla://127.0.0.1:9042/{keyspace}");
        let instance = format!("ledger-{keyspace}-0");
        let args = [
            "processor", "--sink", "ledger", "--group", &group, "--instance-id", &instance, "--listen", "127.0.0.1:0", "--ledger-key-file", &key, "--ledger-store", &store,
        ];
        Proc(self.command(&args).spawn().expect("the ledger processor starts"))
    }

    /// Starts `role` (`gateway` or `query-api`) on a free port and waits for `/readyz`.
    pub async fn serve(&self, role: &str) -> (Proc, String) {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let proc = Proc(self.command(&[role, "--listen", &listen]).spawn().unwrap_or_else(|e| panic!("{role} starts: {e}")));
        let url = format!("http://{listen}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while !client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(60), "{role} did not become ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (proc, url)
    }

    /// A development JWT signed with the shared secret; its tenant is registered first (with
    /// `auditlog admin create-tenant`, as an operator must: a credential of an unregistered
    /// tenant is refused).
    pub fn token(&self, tenant: Option<&str>, roles: &str) -> String {
        let mut args = vec!["admin", "token", "--roles", roles];
        if let Some(t) = tenant {
            let out = self.command(&["admin", "create-tenant", "--id", t]).stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("auditlog admin create-tenant runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() || stderr.contains("already exists"), "create-tenant {t} failed: {stderr}");
            args.extend(["--tenant", t]);
        }
        let out = self.command(&args).stdout(Stdio::piped()).output().expect("auditlog admin token runs");
        assert!(out.status.success(), "admin token failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 token").trim().to_owned()
    }

    pub async fn store(&self) -> ScyllaEventStore {
        ScyllaEventStore::connect(&ScyllaConfig::new(vec!["127.0.0.1:9042".into()], self.keyspace)).await.expect("cassandra is up")
    }

    pub async fn index(&self) -> OpenSearchIndex {
        OpenSearchIndex::connect(OpenSearchConfig::new("http://127.0.0.1:9200", self.alias.clone())).await.expect("opensearch is up")
    }
}

/// Polls `check` every 250 ms until it holds; fails naming `what` after `secs` seconds.
pub async fn until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every id the store lists for `tenant` (repeats kept, to detect duplicates).
pub async fn store_ids(store: &ScyllaEventStore, tenant: &str) -> Vec<String> {
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

/// Every id the index finds for `tenant` after a refresh (repeats kept).
pub async fn index_ids(index: &OpenSearchIndex, tenant: &str) -> Vec<String> {
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
