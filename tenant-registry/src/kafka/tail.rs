//! The registry topic's reader: assigned (no group, never commits) from offset 0, replayed to
//! the high watermark before the registry opens, then followed until stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::KafkaRegistryConfig;
use crate::RegistryError;
use crate::record;
use crate::view::View;

/// Longest wait of a fetch with nothing new: bounds how late a change reaches a follower
/// (librdkafka's default, 500 ms, would use half the one-second budget).
const FETCH_WAIT_MAX_MS: &str = "100";

/// Pause after a consumer error before reading again.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

fn consumer_config(config: &KafkaRegistryConfig) -> ClientConfig {
    const PRODUCER_ONLY: &[&str] = &["linger.ms", "batch.size", "compression.type", "acks"];
    let kafka = &config.kafka;
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", format!("{}-tenants", kafka.client_id))
        .set("socket.timeout.ms", kafka.request_timeout.as_millis().to_string())
        // Required by librdkafka, never joined: partitions are assigned, nothing is committed.
        .set("group.id", format!("auditlog-tenants-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
    for (k, v) in kafka.extra.iter().filter(|(k, _)| !PRODUCER_ONLY.contains(&k.as_str())) {
        client.set(k, v);
    }
    client
}

/// Assigns every partition of the topic from the beginning; answers each one's high watermark.
fn assign(consumer: &StreamConsumer, topic: &str, timeout: Duration) -> Result<HashMap<i32, i64>, RegistryError> {
    let unavailable = |e: KafkaError| RegistryError::Unavailable(format!("registry topic {topic}: {e}"));
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(unavailable)?;
    let mut highs = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        if let Some(err) = t.error() {
            return Err(RegistryError::Config(format!(
                "registry topic {topic}: {err:?} (create it compacted, e.g. deploy/local/stack topics)"
            )));
        }
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout).map_err(unavailable)?;
            highs.insert(p.id(), high);
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(unavailable)?;
        }
    }
    if highs.is_empty() {
        return Err(RegistryError::Config(format!("registry topic {topic} has no partitions")));
    }
    consumer.assign(&assignment).map_err(unavailable)?;
    Ok(highs)
}

/// Applies one record to the view; malformed or invalid records are logged (never their
/// value), counted and skipped.
fn apply(view: &View, message: &BorrowedMessage<'_>) {
    if let Err(rejection) = record::apply_read(view, message.key().unwrap_or_default(), message.payload(), message.offset()) {
        rejection.count();
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason = rejection.reason,
            detail = %rejection.detail,
            "skipping invalid tenant registry record"
        );
    }
}

/// Creates the reader and applies every record up to the high watermark found at start.
pub(super) async fn replay(config: &KafkaRegistryConfig, view: &View) -> Result<Arc<StreamConsumer>, RegistryError> {
    let consumer: StreamConsumer = consumer_config(config).create().map_err(|e| RegistryError::Config(e.to_string()))?;
    let consumer = Arc::new(consumer);
    let (assigner, topic, timeout) = (Arc::clone(&consumer), config.topic.clone(), config.kafka.request_timeout.min(config.open_timeout));
    let highs = tokio::task::spawn_blocking(move || assign(&assigner, &topic, timeout))
        .await
        .map_err(|e| RegistryError::Unavailable(format!("registry assignment task failed: {e}")))??;
    // Partitions still to read: those with records at or past the start.
    let mut pending: HashMap<i32, i64> = highs.into_iter().filter(|(_, high)| *high > 0).collect();
    let deadline = tokio::time::Instant::now() + config.open_timeout;
    while !pending.is_empty() {
        let next = tokio::time::timeout_at(deadline, consumer.recv()).await.map_err(|_| {
            RegistryError::Unavailable(format!("registry topic {} not replayed within {:?}", config.topic, config.open_timeout))
        })?;
        match next {
            Ok(message) => {
                apply(view, &message);
                if pending.get(&message.partition()).is_some_and(|high| message.offset() + 1 >= *high) {
                    pending.remove(&message.partition());
                }
            }
            // The end of a partition, also when compaction left a gap before the watermark.
            Err(KafkaError::PartitionEOF(partition)) => {
                pending.remove(&partition);
            }
            Err(err) => tracing::warn!(topic = %config.topic, error = %err, "tenant registry replay read failed; retrying"),
        }
    }
    Ok(consumer)
}

/// Applies every further record until `stop` is cancelled.
pub(super) async fn follow(consumer: Arc<StreamConsumer>, view: Arc<View>, stop: CancellationToken, topic: String) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            next = consumer.recv() => match next {
                Ok(message) => apply(&view, &message),
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(err) => {
                    tracing::warn!(topic, error = %err, "tenant registry tail read failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(ERROR_BACKOFF) => {}
                    }
                }
            },
        }
    }
    tracing::debug!(topic, "tenant registry tail stopped");
}
