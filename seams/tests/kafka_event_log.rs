//! The EventLog conformance scenarios against the real Kafka broker of the local stack.
#![cfg(feature = "real-services")]

mod common;
mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use auditlog_seams::event_log::kafka::{KafkaConfig, KafkaEventLog};
use auditlog_seams::EventLog;
use common::{create_topic, kafka_bootstrap, unique};

fn log() -> Arc<dyn EventLog> {
    let mut config = KafkaConfig::new(kafka_bootstrap());
    config.delivery_timeout = Duration::from_secs(20);
    Arc::new(KafkaEventLog::new(config).expect("kafka config is valid"))
}

async fn fresh_topic(partitions: i32) -> String {
    let topic = unique("conformance");
    create_topic(&topic, partitions).await;
    topic
}

#[tokio::test]
async fn append_then_consume_in_order() {
    scenarios::event_log::append_then_consume_in_order(log(), &fresh_topic(3).await).await;
}

#[tokio::test]
async fn per_key_ordering_across_keys() {
    scenarios::event_log::per_key_ordering_across_keys(log(), &fresh_topic(4).await).await;
}

#[tokio::test]
async fn commit_then_resume() {
    scenarios::event_log::commit_then_resume(log(), &fresh_topic(1).await).await;
}

#[tokio::test]
async fn tail_starts_at_the_end() {
    scenarios::event_log::tail_starts_at_the_end(log(), &fresh_topic(3).await).await;
}

#[tokio::test]
async fn tail_from_a_position() {
    scenarios::event_log::tail_from_a_position(log(), &fresh_topic(3).await).await;
}

#[tokio::test]
async fn append_to_missing_topic_fails() {
    scenarios::event_log::append_to_missing_topic_fails(log()).await;
}

#[tokio::test]
async fn readiness_reflects_the_broker() {
    log().check_ready().await.expect("broker of the local stack is reachable");
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.request_timeout = Duration::from_secs(2);
    let nowhere = KafkaEventLog::new(config).expect("config is valid");
    assert!(nowhere.check_ready().await.is_err(), "a broker that is not there reported ready");
}

#[tokio::test]
async fn ensure_topic_is_idempotent() {
    scenarios::event_log::ensure_topic_is_idempotent(log()).await;
}
