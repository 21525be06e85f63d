//! A producer id re-used with other content, past the gateway's cache (another gateway
//! replica, an evicted entry): the processors keep the first copy in both views and the event
//! store's processor dead-letters the other copy with reason `conflict`, once; a retry with
//! the same content is absorbed silently. Runs on the embedded backends, as standalone
//! composes them (file log, fjall store, tantivy index, both processors); `pipeline.rs` has
//! the same against Kafka and Cassandra.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auditlog_processors::sink::{IndexSink, StoreSink};
use auditlog_processors::{ProcessorConfig, Sink, SinkKind, dlq};
use auditlog_schemas::{AuditEvent, IngestContext, WireCodec, validate_event};
use auditlog_seams::{EventFilter, EventLog, EventStore, LogPosition, LogRecord, OutgoingRecord, PageRequest, SearchIndex, TopicSelector};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

const TOPIC: &str = "audit.events.v1";
const DLQ: &str = "audit.events.v1.dlq";

/// An event as the gateway completes it, received now.
fn event(tenant: &str, id: &str, description: &str) -> AuditEvent {
    let input = json!({
        "id": id, "action": "document.update", "actor": {"id": "ada", "type": "user"},
        "targets": [{"type": "document", "id": "doc-1"}], "description": description,
        "occurred_at": "2026-11-20T12:00:00Z", "metadata": {"n": 1},
    });
    let ctx = IngestContext { tenant_id: tenant, received_at: OffsetDateTime::now_utc() };
    validate_event(input, &ctx).expect("a valid event")
}

async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut).await.unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}

async fn eventually<Fut: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> Fut) {
    within(60, what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Every record in the dead-letter topic now (a fresh group reads from the start).
async fn dead_letters(log: &dyn EventLog, group: &str) -> Vec<LogRecord> {
    let ends = log.watermarks(&TopicSelector::Topics(vec![DLQ.into()])).await.expect("watermarks");
    let total: i64 = ends.iter().map(|w| w.high - w.low).sum();
    let mut consumer = log.consume(group, TopicSelector::Topics(vec![DLQ.into()])).await.expect("consume the dlq");
    let mut letters = Vec::new();
    for _ in 0..total {
        letters.push(within(10, "a dead letter", consumer.next()).await.expect("a dead letter"));
    }
    letters
}

fn header(record: &LogRecord, name: &str) -> String {
    String::from_utf8_lossy(record.header(name).unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflicting_copy_is_dead_lettered_once_and_the_first_copy_stays() {
    let metrics = auditlog_processors::metrics::handle();
    let before = common::conflicts_counted(&metrics.render());
    let dir = tempfile::tempdir().expect("tempdir");
    let backends = auditlog_seams::resolve::embedded(dir.path(), None).expect("embedded backends");
    let log: Arc<dyn EventLog> = backends.log.clone();
    for topic in [TOPIC, DLQ] {
        log.ensure_topic(topic, 2).await.expect("topic");
    }
    let codec = Arc::new(WireCodec::embedded());
    let append = |e: AuditEvent| {
        let (log, codec) = (log.clone(), codec.clone());
        async move {
            let payload = codec.encode(TOPIC, &e).await.expect("encode");
            log.append(OutgoingRecord::for_event(TOPIC, &e, payload)).await.expect("append")
        }
    };

    let (stop_tx, stop) = watch::channel(false);
    let sinks: [(SinkKind, Arc<dyn Sink>); 2] = [
        (SinkKind::Scylla, Arc::new(StoreSink::new(backends.store.clone()))),
        (SinkKind::OpenSearch, Arc::new(IndexSink(backends.index.clone()))),
    ];
    let mut processors = Vec::new();
    for (kind, sink) in sinks {
        let mut config = ProcessorConfig::new(kind);
        config.topic = TOPIC.into();
        config.batch.max_age = Duration::from_millis(20);
        let (log, codec, mut stop) = (log.clone(), codec.clone(), stop.clone());
        processors.push(tokio::spawn(async move {
            auditlog_processors::run(config, log, codec, sink, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        }));
    }

    let tenant = "acme";
    let first = event(tenant, "evt-1", "the first copy");
    append(first.clone()).await;
    let filter = EventFilter { tenant_id: tenant.into(), ..EventFilter::default() };
    let page = PageRequest { limit: 100, after: None };
    let store = backends.store.clone();
    eventually("the first copy is stored", || async { store.get(tenant, "evt-1").await.expect("get").is_some() }).await;

    // Later, beyond any gateway cache: a retry (same content, received again), a conflicting
    // copy under the same id, and one more event to know when the partition was read.
    append(event(tenant, "evt-1", "the first copy")).await;
    let conflict: LogPosition = append(event(tenant, "evt-1", "other content under the same id")).await;
    append(event(tenant, "evt-2", "after")).await;
    let index = backends.index.clone();
    eventually("both views hold evt-2", || async {
        let stored = store.list(&filter, &page).await.expect("list").events.len();
        let indexed = index.search(&filter, &page).await.expect("search").events.len();
        stored == 2 && indexed == 2
    })
    .await;
    eventually("a dead letter is written", || async { !dead_letters(log.as_ref(), &format!("peek-{}", uuid::Uuid::new_v4())).await.is_empty() }).await;
    let _ = stop_tx.send(true);
    for p in processors {
        within(30, "processor stops", p).await.expect("task").expect("processor ran");
    }

    let stored = store.get(tenant, "evt-1").await.expect("get").expect("stored");
    assert_eq!(stored.event, first, "the first copy stays in the store");
    let indexed = index.search(&filter, &page).await.expect("search").events;
    let indexed_first = indexed.iter().find(|e| e.event.id == "evt-1").expect("indexed");
    assert_eq!(indexed_first.event, first, "the first copy stays in the index");

    let letters = dead_letters(log.as_ref(), "reader").await;
    assert_eq!(letters.len(), 1, "one dead letter: the conflict, once (not per sink), and none for the retry");
    let letter = &letters[0];
    assert_eq!(header(letter, dlq::REASON), "conflict");
    assert_eq!(header(letter, dlq::SINK), "scylla");
    assert_eq!(header(letter, dlq::ORIGIN_OFFSET), conflict.offset.to_string());
    assert_eq!(header(letter, dlq::ORIGIN_PARTITION), conflict.partition.to_string());
    assert!(header(letter, dlq::ERROR).contains("evt-1"), "the error names the id: {}", header(letter, dlq::ERROR));
    let refused = codec.decode(&letter.payload).await.expect("the letter holds the record");
    assert_eq!(refused.description.as_deref(), Some("other content under the same id"));

    assert!(common::conflicts_counted(&metrics.render()) > before, "the conflict metric rose");
}
