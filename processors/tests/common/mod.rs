//! Harness of the processors' real-service tests: the local stack's addresses, events made
//! the way the gateway makes them, appends in the Confluent wire format, processors running
//! in the background, and waiting for a view to hold what it should.

#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use auditlog_processors::sink::{IndexSink, StoreSink};
use auditlog_processors::{ProcessorConfig, Sink, SinkKind};
use auditlog_schemas::{AuditEvent, IngestContext, WireCodec, validate_event};
use auditlog_seams::event_log::kafka::{KafkaConfig, KafkaEventLog};
use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{EventFilter, EventLog, EventStore, LogPosition, OutgoingRecord, PageRequest, SearchIndex, StoredEvent};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn kafka_bootstrap() -> String {
    env_or("AUDITLOG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
}

pub fn registry_url() -> String {
    env_or("AUDITLOG_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
}

pub fn cassandra_contact_point() -> String {
    env_or("AUDITLOG_CASSANDRA", "127.0.0.1:9042")
}

pub fn opensearch_url() -> String {
    env_or("AUDITLOG_OPENSEARCH_URL", "http://127.0.0.1:9200")
}

/// A unique lowercase name (topic, tenant, index prefix).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Awaits `fut`, failing the test with `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut).await.unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}

/// The backends of one test: its own topic family, a shared keyspace, its own index prefix.
pub struct Stack {
    pub topic: String,
    pub log: Arc<KafkaEventLog>,
    pub codec: Arc<WireCodec>,
    pub store: Arc<ScyllaEventStore>,
    pub index: Arc<OpenSearchIndex>,
    /// The index's alias (and prefix of its monthly indices).
    pub alias: String,
}

impl Stack {
    /// Opens every backend; creates `<topic>` (3 partitions) and `<topic>.dlq`.
    pub async fn new() -> Self {
        let topic = unique("proc.events.");
        let log = Arc::new(KafkaEventLog::new(KafkaConfig::new(kafka_bootstrap())).expect("kafka config is valid"));
        for (name, partitions) in [(topic.clone(), 3), (format!("{topic}.dlq"), 1)] {
            within(20, "kafka creates the test topics", log.ensure_topic(&name, partitions))
                .await
                .unwrap_or_else(|e| panic!("kafka at {} cannot create {name}: {e}", kafka_bootstrap()));
        }
        let codec = Arc::new(WireCodec::new(&registry_url(), Duration::from_secs(10)).expect("registry url is valid"));
        let store = within(90, "cassandra connects", ScyllaEventStore::connect(&ScyllaConfig::new(vec![cassandra_contact_point()], "auditlog_processors_test")))
            .await
            .unwrap_or_else(|e| panic!("cassandra at {} is not usable: {e}", cassandra_contact_point()));
        let alias = unique("proc-");
        let index = within(60, "opensearch connects", OpenSearchIndex::connect(OpenSearchConfig::new(opensearch_url(), alias.clone())))
            .await
            .unwrap_or_else(|e| panic!("opensearch at {} is not usable: {e}", opensearch_url()));
        Self { topic, log, codec, store: Arc::new(store), index: Arc::new(index), alias }
    }

    pub fn config(&self, sink: SinkKind) -> ProcessorConfig {
        let mut config = ProcessorConfig::new(sink);
        config.topic.clone_from(&self.topic);
        config.group = unique(&format!("proc-test-{}-", sink.as_str()));
        config
    }

    pub fn sink(&self, kind: SinkKind) -> Arc<dyn Sink> {
        match kind {
            SinkKind::Scylla => Arc::new(StoreSink::new(self.store.clone())),
            SinkKind::OpenSearch => Arc::new(IndexSink(self.index.clone())),
            SinkKind::Ledger => panic!("the ledger sink is built by the ledger tests"),
        }
    }

    /// Encodes and appends `event` to `topic`; panics unless the broker acknowledged it.
    pub async fn append_to(&self, topic: &str, event: &AuditEvent) -> LogPosition {
        let payload = self.codec.encode(topic, event).await.expect("registry takes the schema");
        self.log.append(OutgoingRecord::for_event(topic, event, payload)).await.expect("kafka acknowledges")
    }

    pub async fn append(&self, event: &AuditEvent) -> LogPosition {
        let topic = self.topic.clone();
        self.append_to(&topic, event).await
    }

    /// Appends raw bytes as a record of `tenant`.
    pub async fn append_raw(&self, tenant: &str, payload: Vec<u8>) -> LogPosition {
        let record = OutgoingRecord { topic: self.topic.clone(), key: tenant.to_owned(), payload, headers: vec![] };
        self.log.append(record).await.expect("kafka acknowledges")
    }

    /// The tenant's events in the store, newest first, every page.
    pub async fn stored(&self, tenant: &str) -> Vec<StoredEvent> {
        self.try_stored(tenant).await.expect("store lists")
    }

    /// Like [`Stack::stored`], but an error (the store restarting) is returned, not a panic.
    pub async fn try_stored(&self, tenant: &str) -> Result<Vec<StoredEvent>, auditlog_seams::StoreError> {
        let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
        let mut page = PageRequest { limit: 500, after: None };
        let mut out = Vec::new();
        loop {
            let answer = self.store.list(&filter, &page).await?;
            out.extend(answer.events);
            match answer.next {
                Some(next) => page.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// The tenant's events in the index, newest first, every page (after a refresh).
    pub async fn indexed(&self, tenant: &str) -> Vec<StoredEvent> {
        indexed_in(&self.index, tenant).await
    }

    /// Like [`Stack::indexed`], but an error (the index restarting) is returned, not a panic.
    pub async fn try_indexed(&self, tenant: &str) -> Result<Vec<StoredEvent>, auditlog_seams::IndexError> {
        self.index.refresh().await?;
        let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
        let mut page = PageRequest { limit: 500, after: None };
        let mut out = Vec::new();
        loop {
            let answer = self.index.search(&filter, &page).await?;
            out.extend(answer.events);
            match answer.next {
                Some(next) => page.after = Some(next),
                None => return Ok(out),
            }
        }
    }
}

/// The tenant's events in `index`, newest first, every page (after a refresh).
pub async fn indexed_in(index: &OpenSearchIndex, tenant: &str) -> Vec<StoredEvent> {
    index.refresh().await.expect("refresh");
    let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
    let mut page = PageRequest { limit: 500, after: None };
    let mut out = Vec::new();
    loop {
        let answer = index.search(&filter, &page).await.expect("index searches");
        out.extend(answer.events);
        match answer.next {
            Some(next) => page.after = Some(next),
            None => return out,
        }
    }
}

/// A valid event of `tenant`, completed as the gateway completes it.
pub fn event(tenant: &str, id: &str, n: usize) -> AuditEvent {
    let input = json!({
        "id": id,
        "action": format!("document.update_{}", n % 3),
        "actor": {"id": format!("user-{}", n % 5), "type": "user", "name": "Ada Lovelace", "email": "ada@example.com"},
        "targets": [{"type": "document", "id": format!("doc-{n}"), "name": "Quarterly report"}],
        "outcome": if n.is_multiple_of(4) { "failure" } else { "success" },
        "severity": "info",
        "source": {"service": "docs", "version": "1.2.3", "host": "web-1"},
        "context": {"ip": "192.0.2.7", "user_agent": "curl/8", "request_id": format!("req-{n}")},
        "description": format!("edited paragraph {n} of the report"),
        "metadata": {"n": n, "nested": {"tags": ["a", "b"]}},
    });
    let ctx = IngestContext { tenant_id: tenant, received_at: OffsetDateTime::now_utc() };
    validate_event(input, &ctx).unwrap_or_else(|e| panic!("test event is valid: {e:?}"))
}

/// A processor running in the background until [`Running::stop`].
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<auditlog_processors::Stopped>,
}

impl Running {
    pub fn start(stack: &Stack, config: ProcessorConfig) -> Self {
        let sink = stack.sink(config.sink);
        Self::start_with(stack, config, sink)
    }

    /// A processor writing to `sink` instead of the stack's own.
    pub fn start_with(stack: &Stack, config: ProcessorConfig, sink: Arc<dyn Sink>) -> Self {
        let log: Arc<dyn EventLog> = stack.log.clone();
        let codec = stack.codec.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            auditlog_processors::run(config, log, codec, sink, async {
                let _ = stopped.await;
            })
            .await
            .expect("the processor runs")
        });
        Self { stop: Some(stop), task }
    }

    /// Requests a graceful shutdown and waits for it.
    pub async fn stop(mut self) -> auditlog_processors::Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within(60, "the processor shuts down", &mut self.task).await.expect("the processor task ends cleanly")
    }
}

/// Polls `check` every 250 ms until it returns true, failing after `secs` with `what`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(secs, what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
}

/// One HTTP/1.1 request to `base` (`http://host:port`); returns the status and the body.
/// Enough for the few OpenSearch admin calls a test makes, without an HTTP client crate.
pub async fn http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Records in the dead-letter topic of `stack` so far.
pub async fn dead_letter_count(stack: &Stack) -> i64 {
    let dlq = auditlog_seams::TopicSelector::Topics(vec![format!("{}.dlq", stack.topic)]);
    stack.log.watermarks(&dlq).await.expect("dlq watermarks").iter().map(|w| w.high - w.low).sum()
}

/// The conflict counter of the scylla sink in `rendered` Prometheus text.
pub fn conflicts_counted(rendered: &str) -> u64 {
    rendered
        .lines()
        .find(|l| l.starts_with("auditlog_processor_conflicts_total{sink=\"scylla\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}
