//! The Kafka [`EventLog`]: an idempotent `acks=all` producer, consumer-group members with
//! manual commits, and group-less tails, all through `rdkafka` (librdkafka).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::{
    EventLog, LogConsumer, LogError, LogPosition, LogRecord, LogTail, OutgoingRecord, PartitionLag, TopicSelector, Watermarks,
};

/// Settings of the Kafka event log.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `client.id`, shown in broker logs and metrics.
    pub client_id: String,
    /// How long a record may wait for its acknowledgement, retries included
    /// (`message.timeout.ms`). Bounds how long an append can hang when the broker is away.
    pub delivery_timeout: Duration,
    /// How long an append may wait for room in the producer queue before it fails; a full
    /// queue is backpressure, not a reason to grow memory.
    pub queue_timeout: Duration,
    /// Time budget of metadata, watermark and commit calls.
    pub request_timeout: Duration,
    /// Extra librdkafka properties, applied last (e.g. `linger.ms`, `compression.type`).
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for a broker at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "auditlog".into(),
            delivery_timeout: Duration::from_secs(10),
            queue_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            extra: Vec::new(),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            .set("socket.timeout.ms", self.request_timeout.as_millis().to_string());
        config
    }

    fn producer_config(&self) -> ClientConfig {
        let mut config = self.base();
        config
            // Exactly-once per partition on retries, ordering kept with requests in flight.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", self.delivery_timeout.as_millis().to_string())
            // lz4: cheap on CPU, good enough on JSON-ish Avro; the gateway is CPU bound.
            .set("compression.type", "lz4")
            // A few milliseconds of lingering fills batches under load at little latency cost.
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            // Bounds the producer's memory; a full queue makes appends wait, then fail.
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "262144");
        self.apply_extra(&mut config);
        config
    }

    fn consumer_config(&self, group: &str, offset_reset: &str) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", offset_reset)
            .set("enable.partition.eof", "false")
            // A member that died is noticed after 10 s (librdkafka's default is 45 s), so
            // its partitions move to the survivors sooner. With `group.instance.id` (static
            // membership, e.g. a StatefulSet's pod name) a restarted member takes its
            // partitions back at once, without a rebalance.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000")
            .set("topic.metadata.refresh.interval.ms", "5000");
        self.apply_extra_consumer(&mut config);
        config
    }

    fn apply_extra(&self, config: &mut ClientConfig) {
        // Consumer-only properties would make librdkafka warn on the producer; skip them.
        const CONSUMER_ONLY: &[&str] =
            &["group.instance.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "partition.assignment.strategy"];
        for (k, v) in self.extra.iter().filter(|(k, _)| !CONSUMER_ONLY.contains(&k.as_str())) {
            config.set(k, v);
        }
    }

    fn apply_extra_consumer(&self, config: &mut ClientConfig) {
        // Producer-only properties would make librdkafka warn on a consumer; skip them.
        const PRODUCER_ONLY: &[&str] = &["linger.ms", "batch.size", "compression.type", "acks"];
        for (k, v) in self.extra.iter().filter(|(k, _)| !PRODUCER_ONLY.contains(&k.as_str())) {
            config.set(k, v);
        }
    }
}

/// The event log on a Kafka cluster.
pub struct KafkaEventLog {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaEventLog").field("config", &self.config).finish_non_exhaustive()
    }
}

pub use super::TopicSpec;

/// What [`KafkaEventLog::create_topic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCreation {
    /// The topic was created as specified.
    Created,
    /// The topic existed already and was left as it is.
    Existed,
}

impl KafkaEventLog {
    /// Creates the producer; connections are made lazily.
    pub fn new(config: KafkaConfig) -> Result<Self, LogError> {
        let producer = config.producer_config().create().map_err(config_error)?;
        Ok(Self { config, producer })
    }

    /// Creates the topic of `spec` unless one of that name exists; an existing topic is
    /// left as it is, whatever its settings.
    pub async fn create_topic(&self, spec: &TopicSpec) -> Result<TopicCreation, LogError> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        use rdkafka::types::RDKafkaErrorCode;
        let admin: AdminClient<DefaultClientContext> = self.config.base().create().map_err(config_error)?;
        let options = AdminOptions::new().request_timeout(Some(self.config.request_timeout));
        let mut topic = NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(spec.replication_factor));
        for (key, value) in &spec.configs {
            topic = topic.set(key, value);
        }
        let mut outcome = TopicCreation::Created;
        for result in admin.create_topics([&topic], &options).await.map_err(classify)? {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => outcome = TopicCreation::Existed,
                Err((topic, code)) => return Err(LogError::Rejected(format!("creating topic {topic}: {code}"))),
            }
        }
        Ok(outcome)
    }
}

fn config_error(err: KafkaError) -> LogError {
    LogError::Config(err.to_string())
}

/// Sorts a Kafka error into transient (retry) and permanent (refused).
fn classify(err: KafkaError) -> LogError {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let permanent = matches!(
        err.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::UnknownTopicOrPartition
                | Code::UnknownTopic
                | Code::TopicAuthorizationFailed
                | Code::InvalidRecord
                | Code::InvalidMessage
        )
    );
    if permanent { LogError::Rejected(err.to_string()) } else { LogError::Unavailable(err.to_string()) }
}

#[async_trait]
impl EventLog for KafkaEventLog {
    async fn append(&self, record: OutgoingRecord) -> Result<LogPosition, LogError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        let future = FutureRecord::to(&record.topic)
            .key(record.key.as_bytes())
            .payload(&record.payload)
            .headers(headers);
        match self.producer.send(future, Timeout::After(self.config.queue_timeout)).await {
            Ok(delivery) => Ok(LogPosition {
                topic: record.topic,
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((err, _)) => Err(classify(err)),
        }
    }

    async fn consume(&self, group: &str, topics: TopicSelector) -> Result<Box<dyn LogConsumer>, LogError> {
        let consumer: StreamConsumer = self.config.consumer_config(group, "earliest").create().map_err(config_error)?;
        let names: Vec<String> = match topics {
            TopicSelector::Topics(t) => t,
            TopicSelector::Pattern(p) if p.starts_with('^') => vec![p],
            TopicSelector::Pattern(p) => vec![format!("^{p}")],
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).map_err(classify)?;
        Ok(Box::new(KafkaConsumer { consumer: Arc::new(consumer), lag: Arc::default() }))
    }

    async fn tail(&self, topics: &[String]) -> Result<Box<dyn LogTail>, LogError> {
        let group = format!("auditlog-tail-{}", uuid::Uuid::new_v4());
        let consumer: StreamConsumer = self.config.consumer_config(&group, "latest").create().map_err(config_error)?;
        let consumer = Arc::new(consumer);
        let timeout = self.config.request_timeout;
        let topics = topics.to_vec();
        let assigner = Arc::clone(&consumer);
        // Resolving the end offsets explicitly makes the start deterministic: everything
        // appended after `tail` returned is delivered.
        tokio::task::spawn_blocking(move || -> Result<(), LogError> {
            let mut assignment = TopicPartitionList::new();
            for topic in &topics {
                let metadata = assigner.fetch_metadata(Some(topic), timeout).map_err(classify)?;
                for t in metadata.topics() {
                    if let Some(err) = t.error() {
                        return Err(LogError::Rejected(format!("topic {topic}: {err:?}")));
                    }
                    for p in t.partitions() {
                        let (_, high) = assigner.fetch_watermarks(topic, p.id(), timeout).map_err(classify)?;
                        assignment
                            .add_partition_offset(topic, p.id(), Offset::Offset(high))
                            .map_err(classify)?;
                    }
                }
            }
            assigner.assign(&assignment).map_err(classify)
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("tail setup task failed: {e}")))??;
        Ok(Box::new(KafkaTail { consumer }))
    }

    async fn tail_from(&self, from: &LogPosition) -> Result<Box<dyn LogTail>, LogError> {
        let group = format!("auditlog-tail-{}", uuid::Uuid::new_v4());
        let consumer: StreamConsumer = self.config.consumer_config(&group, "earliest").create().map_err(config_error)?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&from.topic, from.partition, Offset::Offset(from.offset)).map_err(classify)?;
        consumer.assign(&assignment).map_err(classify)?;
        Ok(Box::new(KafkaTail { consumer: Arc::new(consumer) }))
    }

    async fn check_ready(&self) -> Result<(), LogError> {
        let producer = self.producer.clone();
        let timeout = self.config.request_timeout.min(Duration::from_secs(3));
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| LogError::Unavailable(format!("readiness task failed: {e}")))?
            .map_err(classify)
    }

    async fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(), LogError> {
        // -1: the broker's default.replication.factor (KIP-464).
        let spec = TopicSpec { name: name.to_owned(), partitions, replication_factor: -1, configs: Vec::new() };
        self.create_topic(&spec).await.map(|_| ())
    }

    async fn ensure_topic_as(&self, spec: &TopicSpec) -> Result<(), LogError> {
        self.create_topic(spec).await.map(|_| ())
    }

    async fn watermarks(&self, topics: &TopicSelector) -> Result<Vec<Watermarks>, LogError> {
        let matches: Box<dyn Fn(&str) -> bool + Send> = match topics {
            TopicSelector::Topics(names) => {
                let names = names.clone();
                Box::new(move |t| names.iter().any(|n| n == t))
            }
            TopicSelector::Pattern(pattern) => {
                let re = regex::Regex::new(pattern).map_err(|e| LogError::Config(format!("topic pattern {pattern:?}: {e}")))?;
                Box::new(move |t| re.is_match(t))
            }
        };
        let producer = self.producer.clone();
        let timeout = self.config.request_timeout;
        tokio::task::spawn_blocking(move || -> Result<Vec<Watermarks>, LogError> {
            let client = producer.client();
            let metadata = client.fetch_metadata(None, timeout).map_err(classify)?;
            let mut out = Vec::new();
            for topic in metadata.topics().iter().filter(|t| matches(t.name())) {
                for p in topic.partitions() {
                    let (low, high) = client.fetch_watermarks(topic.name(), p.id(), timeout).map_err(classify)?;
                    out.push(Watermarks { topic: topic.name().to_owned(), partition: p.id(), low, high });
                }
            }
            out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(out)
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("watermark task failed: {e}")))?
    }

    fn pending(&self) -> usize {
        usize::try_from(self.producer.in_flight_count()).unwrap_or(0)
    }

    async fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| LogError::Unavailable(format!("flush task failed: {e}")))?
            .map_err(classify)
    }
}

fn to_record(message: &rdkafka::message::BorrowedMessage<'_>) -> LogRecord {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    LogRecord {
        position: LogPosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
        timestamp_ms: message.timestamp().to_millis(),
    }
}

async fn recv(consumer: &StreamConsumer) -> Result<LogRecord, LogError> {
    let message = consumer.recv().await.map_err(classify)?;
    Ok(to_record(&message))
}

struct KafkaConsumer {
    consumer: Arc<StreamConsumer>,
    /// The latest finished lag sample, and whether a refresh is running.
    lag: Arc<std::sync::Mutex<LagSample>>,
}

#[derive(Default)]
struct LagSample {
    partitions: Vec<PartitionLag>,
    refreshing: bool,
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn next(&mut self) -> Result<LogRecord, LogError> {
        recv(&self.consumer).await
    }

    async fn commit(&mut self, positions: &[LogPosition]) -> Result<(), LogError> {
        // The committed offset is the next one to read: one past the last processed record.
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for p in positions {
            let slot = next.entry((p.topic.as_str(), p.partition)).or_insert(p.offset + 1);
            *slot = (*slot).max(p.offset + 1);
        }
        // Only partitions this member owns now (see the trait docs).
        let owned = self.consumer.assignment().map_err(classify)?;
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if owned.find_partition(topic, partition).is_some() {
                list.add_partition_offset(topic, partition, Offset::Offset(offset)).map_err(classify)?;
            } else {
                tracing::info!(topic, partition, offset, "partition revoked while its batch was written; not committing it");
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| LogError::Unavailable(format!("commit task failed: {e}")))?
            .map_err(classify)
    }

    /// The previous sample's figures, at most one sampling interval old: each call starts a
    /// refresh in the background and returns at once. Asking the broker takes one offsets
    /// request per owned partition, each queued behind the consumer's fetch long-poll (up to
    /// `fetch.wait.max.ms`), seconds in all; a processor that waited for it stopped consuming
    /// for that long every sample.
    async fn lag(&mut self) -> Result<Vec<PartitionLag>, LogError> {
        let mut sample = self.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !sample.refreshing {
            sample.refreshing = true;
            let (consumer, slot) = (Arc::clone(&self.consumer), Arc::clone(&self.lag));
            tokio::task::spawn_blocking(move || {
                /// Ends the refresh however the sampling ends (a panic included), so the
                /// next call starts another.
                struct Done(Arc<std::sync::Mutex<LagSample>>, Option<Vec<PartitionLag>>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        let mut sample = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        sample.refreshing = false;
                        if let Some(partitions) = self.1.take() {
                            sample.partitions = partitions;
                        }
                    }
                }
                let mut done = Done(slot, None);
                match sample_lag(&consumer) {
                    Ok(partitions) => done.1 = Some(partitions),
                    Err(error) => tracing::debug!(%error, "cannot sample consumer lag"),
                }
            });
        }
        Ok(sample.partitions.clone())
    }
}

/// Each owned partition's read position and high watermark, from the broker (blocking).
fn sample_lag(consumer: &StreamConsumer) -> Result<Vec<PartitionLag>, LogError> {
    let positions = consumer.position().map_err(classify)?;
    let mut out = Vec::new();
    for element in positions.elements() {
        let (_, high) = consumer
            .client()
            .fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(5))
            .map_err(classify)?;
        let position = match element.offset() {
            Offset::Offset(o) => o,
            // Nothing read from this partition yet: no position to measure from.
            _ => continue,
        };
        out.push(PartitionLag { topic: element.topic().to_owned(), partition: element.partition(), position, high });
    }
    Ok(out)
}

struct KafkaTail {
    consumer: Arc<StreamConsumer>,
}

#[async_trait]
impl LogTail for KafkaTail {
    async fn next(&mut self) -> Result<LogRecord, LogError> {
        recv(&self.consumer).await
    }
}
