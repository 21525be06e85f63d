//! The ledger processor against the real stack (Kafka, the schema registry, Cassandra): one
//! leaf per distinct event in log order, retried duplicates and a re-read of the whole log
//! add nothing, a restart resumes exactly, and every checkpoint is signed, consistent with the
//! later ones and published on the compacted checkpoint topic for stock consumers.
#![cfg(feature = "real-services")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auditlog_ledger::{Checkpoint, Hash, Signer, event_leaf_hash, root_of};
use auditlog_processors::SinkKind;
use auditlog_processors::ledger::{CheckpointTopic, LedgerSink};
use auditlog_schemas::AuditEvent;
use auditlog_seams::event_store::scylla::ScyllaConfig;
use auditlog_seams::EventLog as _;
use auditlog_seams::ledger_store::LedgerStore;
use auditlog_seams::ledger_store::scylla::ScyllaLedgerStore;
use common::{Running, Stack, cassandra_contact_point, event, eventually, kafka_bootstrap, unique, within};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const DEPLOYMENT: &str = "ledger.test";

struct Ledger {
    store: Arc<ScyllaLedgerStore>,
    signer: Signer,
    checkpoint_topic: String,
}

impl Ledger {
    async fn new(stack: &Stack) -> Self {
        let config = ScyllaConfig::new(vec![cassandra_contact_point()], unique("ledger_proc_"));
        let store = within(90, "cassandra creates the ledger tables", ScyllaLedgerStore::connect(&config)).await.expect("ledger store");
        let checkpoint_topic = unique("proc.checkpoints.");
        within(20, "kafka creates the checkpoint topic", stack.log.ensure_topic(&checkpoint_topic, 1)).await.expect("topic");
        Self { store: Arc::new(store), signer: Signer::generate("ledger-test-key").expect("key"), checkpoint_topic }
    }

    /// A fresh sink (no cached trees), as a restarted process has.
    fn sink(&self, stack: &Stack) -> Arc<LedgerSink> {
        let publish = CheckpointTopic { log: stack.log.clone() as Arc<dyn auditlog_seams::EventLog>, topic: self.checkpoint_topic.clone() };
        Arc::new(LedgerSink::new(self.store.clone(), vec![self.signer.clone()], DEPLOYMENT, Some(publish)))
    }

    async fn size(&self, tenant: &str) -> u64 {
        self.store.load_checkpoint(tenant).await.expect("checkpoint").map_or(0, |c| c.size)
    }

    /// The tenant's latest checkpoint, opened with the signer's public key under its origin.
    async fn checkpoint(&self, tenant: &str) -> Checkpoint {
        let stored = self.store.load_checkpoint(tenant).await.expect("load").expect("a checkpoint exists");
        let origin = auditlog_ledger::origin(DEPLOYMENT, tenant).expect("origin");
        let (checkpoint, _) = Checkpoint::open(&stored.note, &[self.signer.verifier()], Some(&origin)).expect("the checkpoint verifies");
        assert_eq!(checkpoint.size, stored.size);
        checkpoint
    }
}

fn leaves(events: &[AuditEvent]) -> Vec<Hash> {
    events.iter().map(|e| event_leaf_hash(e).expect("leaf")).collect()
}

#[tokio::test]
async fn one_leaf_per_distinct_event_in_log_order_and_a_restart_resumes_exactly() {
    let stack = Stack::new().await;
    let ledger = Ledger::new(&stack).await;
    let (a, b) = (unique("lga"), unique("lgb"));
    let mut expected_a: Vec<AuditEvent> = Vec::new();
    for n in 0..150 {
        let e = event(&a, &format!("a-{n:04}"), n);
        stack.append(&e).await;
        expected_a.push(e);
        if n % 50 == 10 {
            // A producer retry: the same event again, and a second copy of an id with other
            // content; neither becomes a leaf.
            stack.append(&expected_a[n - 3]).await;
            stack.append(&event(&a, &format!("a-{:04}", n - 5), n + 1000)).await;
        }
    }
    let expected_b: Vec<AuditEvent> = (0..40).map(|n| event(&b, &format!("b-{n:04}"), n)).collect();
    for e in &expected_b {
        stack.append(e).await;
    }
    let config = stack.config(SinkKind::Ledger);
    let group = config.group.clone();
    let running = Running::start_with(&stack, config, ledger.sink(&stack));
    eventually(90, "the ledger covers both tenants", || async { ledger.size(&a).await == 150 && ledger.size(&b).await == 40 }).await;
    let first = ledger.checkpoint(&a).await;
    assert_eq!(first.root, root_of(&leaves(&expected_a)), "the root is the tree of the distinct events in log order");
    assert_eq!(ledger.checkpoint(&b).await.root, root_of(&leaves(&expected_b)));
    let ids = vec!["a-0010".to_string(), "a-0149".to_string(), "b-0000".to_string()];
    let indexes = ledger.store.leaf_indexes(&a, &ids).await.expect("indexes");
    assert_eq!((indexes.get("a-0010"), indexes.get("a-0149"), indexes.get("b-0000")), (Some(&10), Some(&149), None));
    running.stop().await;

    // More events, one a duplicate, while the processor is down; a new process (empty cache)
    // resumes from the committed offsets and the saved tree.
    for n in 150..200 {
        let e = event(&a, &format!("a-{n:04}"), n);
        stack.append(&e).await;
        expected_a.push(e);
    }
    stack.append(&expected_a[5]).await;
    let mut config = stack.config(SinkKind::Ledger);
    config.group = group;
    let running = Running::start_with(&stack, config, ledger.sink(&stack));
    eventually(90, "the restarted ledger covers the new events", || async { ledger.size(&a).await >= 200 }).await;
    running.stop().await;
    let second = ledger.checkpoint(&a).await;
    assert_eq!(second.size, 200, "no leaf for the duplicate");
    assert_eq!(second.root, root_of(&leaves(&expected_a)));
    let proof = auditlog_ledger::proof::consistency_tiles(first.size, second.size, second.size).expect("tiles");
    let mut reader = auditlog_ledger::TileHashReader::new(second.size);
    for tile in proof {
        let data = ledger.store.get_tile(&a, &tile.path()).await.expect("get").expect("stored tile");
        reader.insert(tile, data).expect("insert");
    }
    let hashes = auditlog_ledger::prove_consistency(first.size, second.size, &reader).expect("prove");
    auditlog_ledger::verify_consistency(&hashes, first.size, &first.root, second.size, &second.root).expect("the later checkpoint extends the earlier");

    // A re-read of the whole log by a new group (a lost offset commit, a replay) adds nothing;
    // a marker appended after it starts shows when it has read everything before.
    let running = Running::start_with(&stack, stack.config(SinkKind::Ledger), ledger.sink(&stack));
    let marker = event(&a, "a-marker", 7);
    stack.append(&marker).await;
    expected_a.push(marker);
    eventually(90, "the re-read reaches the marker", || async { ledger.size(&a).await >= 201 }).await;
    running.stop().await;
    let third = ledger.checkpoint(&a).await;
    assert_eq!(third.size, 201, "re-reading the log made no second leaf");
    assert_eq!(third.root, root_of(&leaves(&expected_a)));

    // Stock Kafka consumers read the checkpoints from the compacted topic.
    let published = published_checkpoints(&ledger.checkpoint_topic).await;
    let last_a = published.iter().rev().find(|(key, _)| key == &a).expect("a checkpoint of tenant a was published");
    let origin = auditlog_ledger::origin(DEPLOYMENT, &a).expect("origin");
    let (checkpoint, _) = Checkpoint::open(&last_a.1, &[ledger.signer.verifier()], Some(&origin)).expect("the published note verifies");
    assert_eq!(checkpoint.size, 201);
    // Every checkpoint issued is consistent with every later one of its tenant: sizes only grow
    // and equal sizes carry equal roots.
    let mut seen: Vec<(u64, Hash)> = Vec::new();
    for (_, note) in published.iter().filter(|(key, _)| key == &a) {
        let (c, _) = Checkpoint::open(note, &[ledger.signer.verifier()], Some(&origin)).expect("verifies");
        if let Some((size, root)) = seen.last() {
            assert!(c.size >= *size, "checkpoint sizes only grow");
            if c.size == *size {
                assert_eq!(&c.root, root);
            }
        }
        seen.push((c.size, c.root));
    }
    assert!(seen.len() >= 2, "checkpoints were issued as the tree grew: {}", seen.len());
}

/// Every (key, value) of the topic, read by a plain rdkafka consumer.
async fn published_checkpoints(topic: &str) -> Vec<(String, String)> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("group.id", unique("ckpt-reader-"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let (_, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)).expect("watermarks");
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, 0, Offset::Beginning).expect("assign");
        consumer.assign(&assignment).expect("assign");
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (out.len() as i64) < high && std::time::Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(500)) {
                let message = message.expect("message");
                let key = String::from_utf8(message.key().unwrap_or_default().to_vec()).expect("utf-8 key");
                let value = String::from_utf8(message.payload().unwrap_or_default().to_vec()).expect("utf-8 note");
                out.push((key, value));
            }
        }
        assert_eq!(out.len() as i64, high, "read the whole checkpoint topic");
        out
    })
    .await
    .expect("reader task")
}

/// Edits, deletions, a swap and a forged insert made directly in Cassandra and OpenSearch are
/// each named by `audit-views` (`auditlog_processors::audit`); the untouched system audits clean.
#[tokio::test]
async fn audit_views_names_every_event_tampered_with_in_the_stores() {
    use auditlog_processors::audit::{EventFinding, Finding, Problem, Views, audit_tenant};
    let stack = Stack::new().await;
    let ledger = Ledger::new(&stack).await;
    let tenant = unique("aud");
    let events: Vec<AuditEvent> = (0..30).map(|n| event(&tenant, &format!("ev-{n:03}"), n)).collect();
    for e in &events {
        stack.append(e).await;
    }
    let running = [
        Running::start(&stack, stack.config(SinkKind::Scylla)),
        Running::start(&stack, stack.config(SinkKind::OpenSearch)),
        Running::start_with(&stack, stack.config(SinkKind::Ledger), ledger.sink(&stack)),
    ];
    eventually(120, "every view and the ledger hold the 30 events", || async {
        ledger.size(&tenant).await == 30 && stack.stored(&tenant).await.len() == 30 && stack.indexed(&tenant).await.len() == 30
    })
    .await;
    for r in running {
        r.stop().await;
    }
    let views = Views { store: Some(stack.store.as_ref()), index: Some(stack.index.as_ref()), embedded: false };
    let keys = [ledger.signer.verifier()];
    let clean = audit_tenant(ledger.store.as_ref(), &views, &tenant, DEPLOYMENT, &keys).await.expect("audit");
    assert_eq!(clean.findings, Vec::<Finding>::new(), "an untouched system audits clean");
    assert_eq!(clean.tree_size, 30);
    assert_eq!(clean.compared, vec![("scylla", 30), ("scylla-by-id", 30), ("opensearch", 30)]);

    // Tamper, as someone with write access to the stores would.
    let session = scylla::client::session_builder::SessionBuilder::new().known_node(cassandra_contact_point()).build().await.expect("cql session");
    let ks = "auditlog_processors_test";
    let row = |id: &str| {
        let (session, tenant, id) = (&session, tenant.clone(), id.to_owned());
        async move {
            let cql = format!("SELECT bucket, occurred_us, event, log_topic, log_partition, log_offset FROM {ks}.events_by_time WHERE tenant_id = ? AND id = ? ALLOW FILTERING");
            let rows = session.query_unpaged(cql, (&tenant, &id)).await.expect("select").into_rows_result().expect("rows");
            rows.first_row::<(i32, i64, String, String, i32, i64)>().expect("one row")
        }
    };
    let set_event = |bucket: i32, occurred: i64, id: &str, text: String| {
        let (session, tenant, id) = (&session, tenant.clone(), id.to_owned());
        async move {
            let cql = format!("UPDATE {ks}.events_by_time SET event = ? WHERE tenant_id = ? AND bucket = ? AND occurred_us = ? AND id = ?");
            session.query_unpaged(cql, (text, &tenant, bucket, occurred, &id)).await.expect("update");
        }
    };
    // 1. one field of one event changed (the time-ordered copy lists and exports read)
    let (bucket, occurred, text, ..) = row("ev-003").await;
    set_event(bucket, occurred, "ev-003", text.replacen("\"outcome\":\"success\"", "\"outcome\":\"failure\"", 1)).await;
    // 2. one event deleted from the by-id table (what get-by-id serves)
    session.query_unpaged(format!("DELETE FROM {ks}.events_by_id WHERE tenant_id = ? AND id = ?"), (&tenant, "ev-007")).await.expect("delete");
    // 3. two events swapped: each row now holds the other's content
    let (b15, o15, t15, ..) = row("ev-015").await;
    let (b16, o16, t16, ..) = row("ev-016").await;
    set_event(b15, o15, "ev-015", t16).await;
    set_event(b16, o16, "ev-016", t15).await;
    // 4. a forged event inserted
    let (b20, o20, t20, topic, partition, offset) = row("ev-020").await;
    let forged = t20.replace("ev-020", "ev-forged");
    let cql = format!(
        "INSERT INTO {ks}.events_by_time (tenant_id, bucket, occurred_us, id, event, log_topic, log_partition, log_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    );
    session.query_unpaged(cql, (&tenant, b20, o20 + 1, "ev-forged", forged, topic, partition, offset)).await.expect("insert");
    // 5. one event edited in OpenSearch
    let body = format!(
        r#"{{"query":{{"term":{{"_id":"{tenant}:ev-012"}}}},"script":{{"source":"ctx._source.description = 'nothing happened'","lang":"painless"}}}}"#
    );
    let (status, answer) = common::http(&common::opensearch_url(), "POST", &format!("/{}/_update_by_query?refresh=true", stack.alias), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"updated\":1"), "{answer}");

    let audit = audit_tenant(ledger.store.as_ref(), &views, &tenant, DEPLOYMENT, &keys).await.expect("audit");
    let found = |view: &str, id: &str, problem: Problem| {
        audit.findings.iter().any(|f| matches!(f, Finding::Event(EventFinding { view: v, id: i, problem: p, .. }) if *v == view && i == id && *p == problem))
    };
    let report: Vec<String> = audit.findings.iter().map(ToString::to_string).collect();
    assert!(found("scylla", "ev-003", Problem::Edited), "{report:#?}");
    assert!(found("scylla-by-id", "ev-007", Problem::Missing), "{report:#?}");
    assert!(found("scylla", "ev-forged", Problem::Extra), "{report:#?}");
    assert!(found("opensearch", "ev-012", Problem::Edited), "{report:#?}");
    // The swapped rows each still hold an intact event, but under the other's log position:
    // the walk in leaf order finds the positions going backwards.
    assert!(found("scylla", "ev-016", Problem::OutOfOrder), "the swap is named: {report:#?}");
    // Nothing untouched is named.
    for line in &report {
        assert!(["ev-003", "ev-007", "ev-forged", "ev-012", "ev-015", "ev-016"].iter().any(|id| line.contains(id)), "a clean event was named: {line}");
    }
    // A checkpoint under an unknown key is refused as a whole.
    let stranger = Signer::generate("stranger").expect("key");
    let refused = audit_tenant(ledger.store.as_ref(), &views, &tenant, DEPLOYMENT, &[stranger.verifier()]).await.expect("audit");
    assert!(matches!(refused.findings.as_slice(), [Finding::Ledger(_)]), "{:?}", refused.findings);
}
