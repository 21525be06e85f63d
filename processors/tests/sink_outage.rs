//! With Cassandra, then OpenSearch, stopped for a while the processors commit nothing past
//! what their sink acknowledged, and every event arrives once the sink is back. Stops and
//! restarts real services of the local stack, so it is the only test of its binary.
#![cfg(feature = "real-services")]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use auditlog_processors::SinkKind;
use common::{Running, Stack, event, eventually, kafka_bootstrap, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn stack(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/stack");
    let status = Command::new(&script).args(args).status().unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "deploy/local/stack {} failed: {status}", args.join(" "));
}

/// Brings every service back even when an assertion fails.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        stack(&["up"]);
    }
}

/// The group's committed offsets summed over the topic's partitions.
fn committed(group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer for reading commits");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let offsets = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed offsets");
    offsets.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum()
}

/// Events of `tenant` in the sink's view; 0 while the view cannot answer (restarting).
/// `auditlog_processor_retries_total{sink, reason="unavailable"}` in this process, as the
/// processor's `/metrics` renders it.
fn unavailable_retries(sink: SinkKind) -> f64 {
    let rendered = auditlog_processors::metrics::handle().render();
    let series = format!("{}{{sink=\"{}\",reason=\"unavailable\"}} ", auditlog_processors::metrics::RETRIES_TOTAL, sink.as_str());
    rendered.lines().find_map(|line| line.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

async fn count(stack_: &Stack, sink: SinkKind, tenant: &str) -> usize {
    match sink {
        SinkKind::Scylla => stack_.try_stored(tenant).await.map_or(0, |e| e.len()),
        SinkKind::OpenSearch => stack_.try_indexed(tenant).await.map_or(0, |e| e.len()),
        SinkKind::Ledger => unreachable!("the outage tests run the two read models"),
    }
}

async fn outage(stack_: &Stack, sink: SinkKind, service: &str) {
    let tenant = unique("to");
    let config = stack_.config(sink);
    let group = config.group.clone();
    let processor = Running::start(stack_, config);
    // Before the outage: 10 events arrive and are committed.
    for n in 0..10 {
        stack_.append(&event(&tenant, &format!("{tenant}-a{n}"), n)).await;
    }
    eventually(60, "the first events arrive", || async { count(stack_, sink, &tenant).await >= 10 }).await;
    eventually(30, "the first events are committed", || async { committed(&group, &stack_.topic, 3) >= 10 }).await;
    let committed_before = committed(&group, &stack_.topic, 3);

    let _restart = RestartOnDrop;
    stack(&["down", service]);
    for n in 0..20 {
        stack_.append(&event(&tenant, &format!("{tenant}-b{n}"), n)).await;
    }
    // The sink is down: once the processor has been refused by it several times over (so it
    // has read the new events and tried to write them), it has still committed nothing.
    let refused_before = unavailable_retries(sink);
    eventually(120, "the processor keeps retrying the stopped sink", || async { unavailable_retries(sink) >= refused_before + 3.0 }).await;
    assert_eq!(committed(&group, &stack_.topic, 3), committed_before, "{service} down: nothing may be committed past what it acknowledged");

    stack(&["up"]);
    eventually(180, "every event arrives after the sink returned", || async { count(stack_, sink, &tenant).await >= 30 }).await;
    eventually(30, "the rest is committed", || async { committed(&group, &stack_.topic, 3) >= committed_before + 20 }).await;
    processor.stop().await;
    assert_eq!(count(stack_, sink, &tenant).await, 30, "{service}: each event once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_sink_is_waited_for_and_nothing_is_committed_past_it() {
    let stack_ = Stack::new().await;
    outage(&stack_, SinkKind::Scylla, "cassandra").await;
    outage(&stack_, SinkKind::OpenSearch, "opensearch").await;
}
