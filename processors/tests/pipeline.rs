//! The processors against the real local stack (Kafka, registry, Cassandra, OpenSearch):
//! every event of several tenants lands once in each view with every field intact, poison
//! records go to the dead-letter topic without stopping the partition, and a replay
//! rebuilds a view without doubling anything.
#![cfg(feature = "real-services")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use auditlog_processors::dlq;
use auditlog_processors::reconcile::reconcile;
use auditlog_processors::replay::{ReplayOptions, replay};
use auditlog_processors::sink::IndexSink;
use auditlog_processors::{Sink, SinkError, SinkKind, Stopped};
use auditlog_schemas::AuditEvent;
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{Conflict, EventLog, EventStore, LogPosition, StoredEvent, TopicSelector};
use common::{Running, Stack, dead_letter_count, event, eventually, indexed_in, opensearch_url, unique, within};

/// The events a view holds for `tenant`, by id, failing on any id held twice.
fn by_id(events: Vec<StoredEvent>) -> BTreeMap<String, StoredEvent> {
    let mut out = BTreeMap::new();
    for stored in events {
        let id = stored.event.id.clone();
        assert!(out.insert(id.clone(), stored).is_none(), "event {id} is held twice");
    }
    out
}

fn assert_view_exact(view: &str, held: &BTreeMap<String, StoredEvent>, expected: &HashMap<String, (AuditEvent, LogPosition)>) {
    assert_eq!(held.len(), expected.len(), "{view}: {} events held, {} expected", held.len(), expected.len());
    for (id, (event, position)) in expected {
        let stored = held.get(id).unwrap_or_else(|| panic!("{view}: event {id} is missing"));
        assert_eq!(&stored.event, event, "{view}: event {id} differs from what was produced");
        assert_eq!(&stored.position, position, "{view}: event {id} has another log position");
    }
}

/// A sink that records the ids of every event handed to it, then writes them to `inner`.
struct CountingSink {
    inner: Arc<dyn Sink>,
    written: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Sink for CountingSink {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn write(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, SinkError> {
        self.written.lock().expect("lock").extend(events.iter().map(|e| e.event.id.clone()));
        self.inner.write(events).await
    }

    async fn check_ready(&self) -> Result<(), SinkError> {
        self.inner.check_ready().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_tenants_with_repeated_ids_land_once_in_both_views_with_every_field() {
    let stack = Stack::new().await;
    let (a, b, c) = (unique("ta"), unique("tb"), unique("tc"));
    let dedicated = format!("{}.{c}", stack.topic);
    stack.log.ensure_topic(&dedicated, 2).await.expect("dedicated topic");
    // tenant -> id -> (event, position of its first append)
    let mut expected: HashMap<String, HashMap<String, (AuditEvent, LogPosition)>> = HashMap::new();
    for (tenant, count) in [(&a, 40), (&b, 25), (&c, 15)] {
        for n in 0..count {
            let e = event(tenant, &format!("{tenant}-e{n}"), n);
            let position = if *tenant == c { stack.append_to(&dedicated, &e).await } else { stack.append(&e).await };
            expected.entry(tenant.clone()).or_default().insert(e.id.clone(), (e, position));
        }
    }
    // Repeats: the same event again (a producer retry), and a re-send of an id with other
    // content (the first one wins in both views).
    for (tenant, n) in [(&a, 3), (&a, 7), (&b, 0)] {
        let (first, _) = expected[tenant][&format!("{tenant}-e{n}")].clone();
        stack.append(&first).await;
        let mut other = event(tenant, &first.id, n + 100);
        other.description = Some("a different body under the same id".into());
        stack.append(&other).await;
    }

    // The restart below joins this same consumer group.
    let scylla_config = stack.config(SinkKind::Scylla);
    let opensearch_config = stack.config(SinkKind::OpenSearch);
    let scylla = Running::start(&stack, scylla_config.clone());
    let opensearch = Running::start(&stack, opensearch_config.clone());
    for (tenant, events) in &expected {
        let want = events.len();
        eventually(90, &format!("scylla holds {want} events of {tenant}"), || async { stack.stored(tenant).await.len() >= want }).await;
        eventually(90, &format!("opensearch holds {want} events of {tenant}"), || async { stack.indexed(tenant).await.len() >= want }).await;
    }
    assert_eq!(scylla.stop().await, Stopped::Shutdown);
    assert_eq!(opensearch.stop().await, Stopped::Shutdown);
    for (tenant, events) in &expected {
        assert_view_exact("scylla", &by_id(stack.stored(tenant).await), events);
        assert_view_exact("opensearch", &by_id(stack.indexed(tenant).await), events);
    }

    // Restarted processors resume from their committed offsets: each writes the one event
    // appended since, and nothing it wrote before (a re-read from offset 0 would hand the
    // sinks every event again: the idempotent views alone could not tell).
    let late = event(&a, &format!("{a}-late"), 999);
    let position = stack.append(&late).await;
    expected.get_mut(&a).expect("tenant a").insert(late.id.clone(), (late.clone(), position));
    let want = expected[&a].len();
    for (kind, config) in [(SinkKind::Scylla, scylla_config), (SinkKind::OpenSearch, opensearch_config)] {
        let counting = Arc::new(CountingSink { inner: stack.sink(kind), written: Mutex::new(Vec::new()) });
        let again = Running::start_with(&stack, config, counting.clone());
        match kind {
            SinkKind::Scylla => eventually(90, "scylla stores the new event", || async { stack.stored(&a).await.len() == want }).await,
            SinkKind::OpenSearch => eventually(90, "opensearch indexes the new event", || async { stack.indexed(&a).await.len() == want }).await,
            SinkKind::Ledger => unreachable!("this test runs the two read models"),
        }
        again.stop().await;
        let written = counting.written.lock().expect("lock").clone();
        // (A retried batch may hand the new event over twice; never an earlier one.)
        assert!(!written.is_empty() && written.iter().all(|id| *id == late.id), "the restarted {} processor re-read events it had committed: {written:?}", kind.as_str());
    }
    assert_view_exact("scylla after a restart", &by_id(stack.stored(&a).await), &expected[&a]);
    assert_view_exact("opensearch after a restart", &by_id(stack.indexed(&a).await), &expected[&a]);

    // reconcile agrees: every tenant exact in both views.
    let config = stack.config(SinkKind::Scylla);
    let log: Arc<dyn EventLog> = stack.log.clone();
    let reports = within(120, "reconcile", reconcile(&config, log, stack.codec.clone(), stack.store.clone(), stack.index.clone(), None, std::future::pending()))
        .await
        .expect("reconcile runs");
    assert_eq!(reports.len(), 3, "three tenants in the log: {reports:?}");
    for report in &reports {
        assert!(report.is_exact(), "not exact: {report:?}");
        assert_eq!(report.log as usize, expected[&report.tenant].len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_records_go_to_the_dead_letter_topic_and_the_partition_keeps_moving() {
    let stack = Stack::new().await;
    let tenant = unique("tp");
    let before = event(&tenant, &format!("{tenant}-before"), 1);
    stack.append(&before).await;
    let garbage = stack.append_raw(&tenant, b"not avro at all".to_vec()).await;
    let unknown_schema = stack.append_raw(&tenant, vec![0, 0x7f, 0xff, 0xff, 0x01, 2, 3]).await;
    let after: Vec<AuditEvent> = (0..5).map(|n| event(&tenant, &format!("{tenant}-after{n}"), n)).collect();
    for e in &after {
        stack.append(e).await;
    }

    let processor = Running::start(&stack, stack.config(SinkKind::Scylla));
    eventually(90, "the events after the poison records are stored", || async { stack.stored(&tenant).await.len() == 6 }).await;
    processor.stop().await;

    let mut dead = stack.log.consume(&unique("dlq-reader-"), TopicSelector::Topics(vec![format!("{}.dlq", stack.topic)])).await.expect("consume the dlq");
    let mut letters = Vec::new();
    for _ in 0..2 {
        letters.push(within(30, "two dead letters", dead.next()).await.expect("a dead letter"));
    }
    for (letter, origin) in letters.iter().zip([&garbage, &unknown_schema]) {
        let header = |name: &str| String::from_utf8_lossy(letter.header(name).unwrap_or_default()).into_owned();
        assert_eq!(header(dlq::REASON), "decode");
        assert_eq!(header(dlq::SINK), "scylla");
        assert_eq!(header(dlq::ORIGIN_TOPIC), origin.topic);
        assert_eq!(header(dlq::ORIGIN_PARTITION), origin.partition.to_string());
        assert_eq!(header(dlq::ORIGIN_OFFSET), origin.offset.to_string());
        assert!(!header(dlq::ERROR).is_empty(), "the error is given");
        assert_eq!(letter.key.as_deref(), Some(tenant.as_bytes()), "the key is kept");
    }
    assert_eq!(letters[0].payload, b"not avro at all", "the payload is kept unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_rebuilds_an_empty_view_for_one_tenant_without_doubling() {
    let stack = Stack::new().await;
    let (tenant, other) = (unique("tr"), unique("tx"));
    let mut expected = HashMap::new();
    for n in 0..30 {
        let e = event(&tenant, &format!("{tenant}-e{n}"), n);
        let position = stack.append(&e).await;
        expected.insert(e.id.clone(), (e, position));
        stack.append(&event(&other, &format!("{other}-e{n}"), n)).await;
    }
    // A brand-new, empty index: the view to rebuild.
    let fresh = Arc::new(OpenSearchIndex::connect(OpenSearchConfig::new(opensearch_url(), unique("rebuilt-"))).await.expect("opensearch"));
    let config = stack.config(SinkKind::OpenSearch);
    for round in 0..2 {
        let log: Arc<dyn EventLog> = stack.log.clone();
        let options = ReplayOptions { tenant: Some(tenant.clone()), from: None };
        let report = within(120, "replay", replay(&config, log, stack.codec.clone(), Arc::new(IndexSink(fresh.clone())), options, |_| {}, std::future::pending()))
            .await
            .expect("replay runs");
        assert!(report.complete, "round {round}: replay read every partition to its end");
        assert_eq!(report.records, 60, "round {round}: every record of the topic was read");
        assert_view_exact(&format!("rebuilt index, round {round}"), &by_id(indexed_in(&fresh, &tenant).await), &expected);
        assert!(indexed_in(&fresh, &other).await.is_empty(), "the other tenant was not replayed");
    }
}

/// A producer id re-used with other content, reaching the log past the gateway's cache (a
/// retry through another replica, or after the entry was evicted): the store keeps the first
/// copy, the conflicting one goes to the dead-letter topic with reason `conflict`, once (the
/// OpenSearch processor keeps its first copy silently), and the conflict metric rises. A
/// retry of the same content, received again later, makes no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflicting_copy_of_a_stored_id_is_dead_lettered_once_and_the_first_copy_stays() {
    let metrics = auditlog_processors::metrics::handle();
    let counted_before = common::conflicts_counted(&metrics.render());
    let stack = Stack::new().await;
    let tenant = unique("tc");
    let id = format!("{tenant}-e1");
    let first = event(&tenant, &id, 1);
    stack.append(&first).await;
    let scylla = Running::start(&stack, stack.config(SinkKind::Scylla));
    let opensearch = Running::start(&stack, stack.config(SinkKind::OpenSearch));
    eventually(90, "the first copy is stored", || async { stack.stored(&tenant).await.len() == 1 }).await;

    // Later batches: the same content received again (a retry; sent without `occurred_at`,
    // so the gateway completed it with the later receive time), then other content under
    // the same id, then one more event.
    let mut retry = first.clone();
    retry.received_at += time::Duration::seconds(30);
    retry.occurred_at = retry.received_at;
    stack.append(&retry).await;
    let mut other = first.clone();
    other.description = Some("other content under a taken id".into());
    let conflict = stack.append(&other).await;
    let after = event(&tenant, &format!("{tenant}-e2"), 2);
    stack.append(&after).await;
    eventually(90, "both views hold the later event", || async { stack.stored(&tenant).await.len() == 2 && stack.indexed(&tenant).await.len() == 2 }).await;
    eventually(60, "the conflict is dead-lettered", || async { dead_letter_count(&stack).await >= 1 }).await;
    scylla.stop().await;
    opensearch.stop().await;

    let stored = stack.store.get(&tenant, &id).await.expect("get").expect("stored");
    assert_eq!(stored.event, first, "the first copy stays in the store");
    let indexed = by_id(stack.indexed(&tenant).await);
    assert_eq!(indexed[&id].event, first, "the first copy stays in the index");

    assert_eq!(dead_letter_count(&stack).await, 1, "one dead letter: the conflict, once, and none for the retry");
    let mut dead = stack.log.consume(&unique("dlq-reader-"), TopicSelector::Topics(vec![format!("{}.dlq", stack.topic)])).await.expect("consume the dlq");
    let letter = within(30, "the dead letter", dead.next()).await.expect("a dead letter");
    let header = |name: &str| String::from_utf8_lossy(letter.header(name).unwrap_or_default()).into_owned();
    assert_eq!(header(dlq::REASON), "conflict");
    assert_eq!(header(dlq::SINK), "scylla");
    assert_eq!(header(dlq::ORIGIN_TOPIC), conflict.topic);
    assert_eq!(header(dlq::ORIGIN_PARTITION), conflict.partition.to_string());
    assert_eq!(header(dlq::ORIGIN_OFFSET), conflict.offset.to_string());
    assert!(header(dlq::ERROR).contains(&id), "the error names the id: {}", header(dlq::ERROR));
    let refused = stack.codec.decode(&letter.payload).await.expect("the letter holds the record");
    assert_eq!(refused, other, "the dead letter is the conflicting copy");
    assert!(common::conflicts_counted(&metrics.render()) > counted_before, "the conflict metric rose");
}
