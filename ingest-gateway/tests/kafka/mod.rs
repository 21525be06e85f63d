//! Kafka helpers of the real-service tests: fresh topics, and reading back what the gateway
//! wrote with a plain consumer. A missing broker fails the test, naming Kafka; nothing skips.

#![allow(dead_code, missing_docs)]

use std::time::Duration;

use auditlog_seams::{LogRecord, TopicSelector, resolve};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::common::{kafka_bootstrap, unique};

/// Creates a topic with `partitions` partitions on the local broker, through the event log
/// seam's own `ensure_topic`; panics, naming Kafka, when the broker is not there.
pub async fn create_topic(name: &str, partitions: i32) {
    let log = resolve::event_log(&format!("kafka://{}", kafka_bootstrap())).expect("kafka uri is valid");
    tokio::time::timeout(Duration::from_secs(15), log.ensure_topic(name, partitions))
        .await
        .unwrap_or_else(|_| panic!("kafka at {} did not answer within 15 s: is the local stack up?", kafka_bootstrap()))
        .unwrap_or_else(|e| panic!("kafka at {} could not create topic {name}: {e}", kafka_bootstrap()));
}

/// The first `n` records of `topic` (all partitions), in log order per partition, read by a
/// fresh consumer group from the earliest offset; sorted by (partition, offset).
pub async fn read_records(topic: &str, n: usize) -> Vec<LogRecord> {
    let log = resolve::event_log(&format!("kafka://{}", kafka_bootstrap())).expect("kafka uri is valid");
    let mut consumer = log.consume(&unique("gw-test"), TopicSelector::Topics(vec![topic.to_owned()])).await.expect("consumer opens");
    let mut records = Vec::with_capacity(n);
    while records.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records on {topic} after 30 s", records.len()))
            .expect("kafka delivers");
        records.push(next);
    }
    records.sort_by(|a, b| a.position.cmp(&b.position));
    records
}

/// Records on `topic`: the sum of its partitions' high watermarks (fresh topics start at 0).
pub async fn count_records(topic: &str) -> i64 {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("group.id", unique("gw-count"))
            .create()
            .expect("consumer config is valid");
        let timeout = Duration::from_secs(10);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout).expect("kafka answers metadata");
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        assert!(!partitions.is_empty(), "topic {topic} has no partitions");
        partitions
            .into_iter()
            .map(|p| consumer.fetch_watermarks(&topic, p, timeout).expect("kafka answers watermarks").1)
            .sum()
    })
    .await
    .expect("count task joins")
}
