//! Shared harness of the real-service tests: where the local stack listens, and fresh
//! topics per test. A missing service fails the test with its name; nothing skips.

#![allow(dead_code, missing_docs)]

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

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

/// A unique, lowercase name for this test's topic, index or keyspace.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Creates a topic with `partitions` partitions on the local broker; panics, naming Kafka,
/// when the broker is not there.
pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("socket.timeout.ms", "5000")
        .create()
        .expect("admin client config is valid");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = tokio::time::timeout(Duration::from_secs(15), admin.create_topics([&topic], &options))
        .await
        .unwrap_or_else(|_| panic!("kafka at {} did not answer within 15 s: is the local stack up?", kafka_bootstrap()))
        .unwrap_or_else(|e| panic!("kafka at {} refused create_topics: {e}", kafka_bootstrap()));
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("kafka could not create topic {topic}: {code}"));
    }
}

/// Awaits `fut`, failing the test with `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}
