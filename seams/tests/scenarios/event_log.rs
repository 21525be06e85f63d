//! Conformance scenarios of the [`EventLog`] seam, written once and run against every
//! implementation. Each takes a log and fresh, empty topics made by the backend's harness.

#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use auditlog_seams::{EventLog, LogPosition, OutgoingRecord, TopicSelector};
use futures::future::join_all;

use crate::common::within;

fn record(topic: &str, key: &str, i: usize) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_owned(),
        key: key.to_owned(),
        payload: format!("{key}-payload-{i}").into_bytes(),
        headers: vec![("event_id".into(), format!("{key}-{i}").into_bytes()), ("tenant_id".into(), key.as_bytes().to_vec())],
    }
}

/// Appends many records concurrently and reads them back in order, byte for byte.
pub async fn append_then_consume_in_order(log: Arc<dyn EventLog>, topic: &str) {
    let sent: Vec<OutgoingRecord> = (0..100).map(|i| record(topic, "tenant-a", i)).collect();
    let positions: Vec<LogPosition> = within(30, "appends acknowledged", join_all(sent.iter().cloned().map(|r| log.append(r))))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every append is acknowledged");
    assert!(positions.iter().all(|p| p.topic == topic && p.partition == positions[0].partition), "one key, one partition");
    assert!(positions.windows(2).all(|w| w[1].offset > w[0].offset), "acknowledged offsets follow append order");

    let mut consumer = log.consume(&crate::common::unique("group"), TopicSelector::Topics(vec![topic.to_owned()])).await.expect("consumer opens");
    for (i, expected) in sent.iter().enumerate() {
        let got = within(30, "record consumed", consumer.next()).await.expect("record read");
        assert_eq!(got.position, positions[i], "record {i} position");
        assert_eq!(got.payload, expected.payload, "record {i} payload");
        assert_eq!(got.key.as_deref(), Some(expected.key.as_bytes()), "record {i} key");
        assert_eq!(got.headers, expected.headers, "record {i} headers");
    }
}

/// Records of one key share a partition; other keys may land elsewhere but keep their order.
pub async fn per_key_ordering_across_keys(log: Arc<dyn EventLog>, topic: &str) {
    let keys: Vec<String> = (0..8).map(|k| format!("tenant-{k}")).collect();
    let sent: Vec<OutgoingRecord> = (0..20).flat_map(|i| keys.iter().map(move |k| (k.clone(), i))).map(|(k, i)| record(topic, &k, i)).collect();
    let positions = within(30, "appends acknowledged", join_all(sent.iter().cloned().map(|r| log.append(r)))).await;
    let mut partition_of = std::collections::HashMap::new();
    for (r, p) in sent.iter().zip(&positions) {
        let p = p.as_ref().expect("append acknowledged");
        let first = *partition_of.entry(r.key.clone()).or_insert(p.partition);
        assert_eq!(first, p.partition, "key {} changed partition", r.key);
    }
    let mut consumer = log.consume(&crate::common::unique("group"), TopicSelector::Topics(vec![topic.to_owned()])).await.expect("consumer opens");
    let mut next_index = std::collections::HashMap::new();
    for _ in 0..sent.len() {
        let got = within(30, "record consumed", consumer.next()).await.expect("record read");
        let key = String::from_utf8(got.key.expect("key present")).expect("utf-8 key");
        let i = next_index.entry(key.clone()).or_insert(0usize);
        assert_eq!(got.payload, format!("{key}-payload-{i}").into_bytes(), "key {key} out of order");
        *i += 1;
    }
    assert!(next_index.values().all(|&n| n == 20), "every record of every key arrived once");
}

/// A group resumes after its last commit; uncommitted records are delivered again.
pub async fn commit_then_resume(log: Arc<dyn EventLog>, topic: &str) {
    let sent: Vec<OutgoingRecord> = (0..10).map(|i| record(topic, "tenant-c", i)).collect();
    for r in join_all(sent.iter().cloned().map(|r| log.append(r))).await {
        r.expect("append acknowledged");
    }
    let group = crate::common::unique("group");
    let selector = TopicSelector::Topics(vec![topic.to_owned()]);
    let mut first = log.consume(&group, selector.clone()).await.expect("consumer opens");
    let mut read = Vec::new();
    for _ in 0..6 {
        read.push(within(30, "record consumed", first.next()).await.expect("record read"));
    }
    // Process only the first four: commit up to index 3.
    within(15, "commit", first.commit(&[read[3].position.clone()])).await.expect("commit succeeds");
    drop(first);

    let mut second = log.consume(&group, selector).await.expect("consumer reopens");
    let got = within(60, "record after resume", second.next()).await.expect("record read");
    assert_eq!(got.payload, sent[4].payload, "resumes right after the committed record");
    assert_eq!(got.position.offset, read[3].position.offset + 1);
}

/// A tail sees only what is appended after it opened.
pub async fn tail_starts_at_the_end(log: Arc<dyn EventLog>, topic: &str) {
    for r in join_all((0..5).map(|i| log.append(record(topic, "tenant-t", i)))).await {
        r.expect("append acknowledged");
    }
    let mut tail = log.tail(&[topic.to_owned()]).await.expect("tail opens");
    let fresh = record(topic, "tenant-t", 99);
    let position = log.append(fresh.clone()).await.expect("append acknowledged");
    let got = within(30, "tail delivers the new record", tail.next()).await.expect("record read");
    assert_eq!(got.payload, fresh.payload, "tail delivered an old record");
    assert_eq!(got.position, position);
}

/// A tail from a position delivers that partition's records from there on, in order, then
/// what is appended later.
pub async fn tail_from_a_position(log: Arc<dyn EventLog>, topic: &str) {
    let mut positions = Vec::new();
    for i in 0..5 {
        positions.push(log.append(record(topic, "tenant-r", i)).await.expect("append acknowledged"));
    }
    let mut tail = log.tail_from(&positions[2]).await.expect("tail opens");
    for (i, position) in positions.iter().enumerate().skip(2) {
        let got = within(30, "record from the position", tail.next()).await.expect("record read");
        assert_eq!((&got.position, got.payload), (position, record(topic, "tenant-r", i).payload), "record {i}");
    }
    let later = log.append(record(topic, "tenant-r", 5)).await.expect("append acknowledged");
    let got = within(30, "a record appended later", tail.next()).await.expect("record read");
    assert_eq!(got.position, later);
}

/// Appending to a topic that does not exist fails instead of hanging or succeeding.
pub async fn append_to_missing_topic_fails(log: Arc<dyn EventLog>) {
    let missing = crate::common::unique("missing");
    let result = within(60, "append to a missing topic answers", log.append(record(&missing, "tenant-x", 0))).await;
    assert!(result.is_err(), "append to missing topic {missing} was acknowledged");
}

/// `ensure_topic` creates a usable topic, and is harmless when the topic exists.
pub async fn ensure_topic_is_idempotent(log: Arc<dyn EventLog>) {
    let topic = crate::common::unique("ensured");
    within(30, "topic created", log.ensure_topic(&topic, 2)).await.expect("topic created");
    within(30, "existing topic accepted", log.ensure_topic(&topic, 2)).await.expect("existing topic is fine");
    let position = within(30, "append to the new topic", log.append(record(&topic, "tenant-e", 0))).await.expect("append acknowledged");
    assert_eq!(position.topic, topic);
}
