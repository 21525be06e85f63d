//! Shared harness of the real-service tests: where the local stack listens, and fresh
//! topics per test. A missing service fails the test with its name; nothing skips.

#![allow(dead_code, missing_docs)]

use std::time::Duration;


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

/// Creates a topic with `partitions` partitions on the local broker, through the event log
/// seam's own `ensure_topic`; panics, naming Kafka, when the broker is not there.
pub async fn create_topic(name: &str, partitions: i32) {
    let log = auditlog_seams::resolve::event_log(&format!("kafka://{}", kafka_bootstrap())).expect("kafka uri is valid");
    tokio::time::timeout(Duration::from_secs(15), log.ensure_topic(name, partitions))
        .await
        .unwrap_or_else(|_| panic!("kafka at {} did not answer within 15 s: is the local stack up?", kafka_bootstrap()))
        .unwrap_or_else(|e| panic!("kafka at {} could not create topic {name}: {e}", kafka_bootstrap()));
}

/// Awaits `fut`, failing the test with `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}
