//! [`KafkaTenantRegistry`]: the registry kept as records on a compacted Kafka topic and held
//! in memory by every service.
//!
//! # Design, and why
//! - **One record per entity, full state.** Key `tenant/<id>` or `key/<key_id>`, value the
//!   entity's whole current state as JSON (`crate::record`). With `cleanup.policy=compact`
//!   Kafka keeps the latest record of every key forever, so the topic stays as small as the
//!   registry and a replay from offset 0 rebuilds it exactly. Full states (not deltas) make
//!   every record self-sufficient, so compaction never loses information. A revoked key stays
//!   as state (`revoked: true`), never as a tombstone: a tombstone is deleted after
//!   `delete.retention.ms`, and a lagging reader could miss it and keep trusting the key.
//! - **Only hashes.** A key's record holds the SHA-256 of its secret; the secret is returned
//!   once by `create_api_key` and is never written, logged or kept.
//! - **Writes are durable before they are visible.** Each change is validated against this
//!   process's view, appended with [`EventLog::append`] (idempotent producer, `acks=all`) and
//!   applied to the local view once acknowledged, so the caller reads its own write. Changes
//!   of one process are serialized by a lock; between processes the last write wins (admin
//!   changes are rare and human-paced, and every write is a full state, so nothing half-applied
//!   can result). Signing keys (issue #15) are the exception on two points: a revocation time
//!   only ever moves earlier (every process keeps the earliest it read, in any order), and a
//!   registered key never changes (a later record giving its id other fields is rejected as a
//!   `conflict`; if two processes register one id at once, the one that wrote second keeps
//!   its own key in memory until it restarts, so register a key id in one place).
//! - **Every process follows the topic.** A background task reads the topic from offset 0
//!   with `assign` (no consumer group, nothing committed: every process needs every record)
//!   and applies each record, with `fetch.wait.max.ms` low enough that a change made anywhere
//!   reaches every process well within a second. Each entity remembers the offset that set
//!   it; an older record never overwrites a newer one, so the writer's own apply and the
//!   tail's can come in any order.
//! - **Records are checked like requests.** Anyone with produce rights on the topic can write
//!   to it, so every record read is checked with the validators the admin API applies to its
//!   input (tenant id, name and bounds, key id, hash and roles) and against the state already
//!   applied (a key never changes tenant). A rejected record is skipped, logged at WARN with
//!   topic, partition, offset and reason, and counted in [`crate::RECORDS_REJECTED_METRIC`];
//!   the reader never stops or panics on one.
//! - **Replay before serving.** [`KafkaTenantRegistry::open`] reads up to the high watermark
//!   it found at start before it returns, so a restarted service knows every tenant and key
//!   before its first request. Reads ([`TenantRegistry`]) answer from memory.
//! - **Why Kafka and not a database.** Kafka is already the platform's source of truth and
//!   a dependency of every service; a compacted topic gives durability, ordering and push
//!   notification of changes without another store to operate.
//! - **Bounded, stoppable.** The tail holds one message at a time (no channel); it stops when
//!   the registry is dropped, on [`KafkaTenantRegistry::shutdown`], or when the token given in
//!   [`KafkaRegistryConfig::shutdown`] is cancelled.

mod tail;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auditlog_seams::event_log::kafka::{KafkaConfig, KafkaEventLog};
use auditlog_seams::{EventLog, OutgoingRecord};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api_key::KeyHash;
use crate::view::{Change, View};
use crate::{ApiKeyRecord, IssuedKey, NewSigningKey, RegistryError, Role, SigningKeyRecord, TenantAdmin, TenantPatch, TenantRegistry, TenantSettings, record};

/// The registry topic unless configured otherwise (compacted, one partition, kept forever).
pub const DEFAULT_TOPIC: &str = "auditlog.tenants.v1";

/// How long [`KafkaTenantRegistry::open`] may take to reach the end of the topic; a service
/// that cannot learn its tenants fails to start rather than serve with a partial view.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the Kafka registry.
#[derive(Debug, Clone)]
pub struct KafkaRegistryConfig {
    /// Broker connection (its `extra` properties also apply to the tail's consumer).
    pub kafka: KafkaConfig,
    /// The compacted registry topic; it must exist.
    pub topic: String,
    /// Budget of the initial replay ([`DEFAULT_OPEN_TIMEOUT`]).
    pub open_timeout: Duration,
    /// Cancelling it stops the tail (the registry only ever cancels a child of it).
    pub shutdown: CancellationToken,
}

impl KafkaRegistryConfig {
    /// Defaults for a broker at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            kafka: KafkaConfig::new(bootstrap_servers),
            topic: DEFAULT_TOPIC.to_owned(),
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            shutdown: CancellationToken::new(),
        }
    }
}

/// The registry on a compacted Kafka topic; see the module docs.
pub struct KafkaTenantRegistry {
    view: Arc<View>,
    log: Arc<dyn EventLog>,
    topic: String,
    /// Serializes this process's changes: check against the view, append, apply.
    writes: tokio::sync::Mutex<()>,
    /// Stops the tail; cancelled on drop (shutdown).
    stop: CancellationToken,
    /// The tail task; finished means the view is no longer kept current (readiness).
    tail: JoinHandle<()>,
}

impl std::fmt::Debug for KafkaTenantRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTenantRegistry").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl KafkaTenantRegistry {
    /// Opens the registry with its own producer, replays the topic and starts following it.
    pub async fn open(config: KafkaRegistryConfig) -> Result<Self, RegistryError> {
        let log: Arc<dyn EventLog> = Arc::new(KafkaEventLog::new(config.kafka.clone())?);
        Self::open_with_log(log, config).await
    }

    /// Like [`Self::open`], appending through `log` (e.g. the service's own producer).
    pub async fn open_with_log(log: Arc<dyn EventLog>, config: KafkaRegistryConfig) -> Result<Self, RegistryError> {
        let view = Arc::new(View::default());
        let stop = config.shutdown.child_token();
        let consumer = tail::replay(&config, &view).await?;
        let tail = tokio::spawn(tail::follow(consumer, Arc::clone(&view), stop.clone(), config.topic.clone()));
        Ok(Self { view, log, topic: config.topic, writes: tokio::sync::Mutex::new(()), stop, tail })
    }

    /// The registry topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Stops following the topic; reads keep answering from the last view.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Appends `change` durably, then applies it here.
    async fn record(&self, change: Change) -> Result<(), RegistryError> {
        let (key, payload) = record::encode(&change).ok_or_else(|| RegistryError::Config("removals are not written".into()))?;
        let headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
        let position = self.log.append(OutgoingRecord { topic: self.topic.clone(), key, payload, headers }).await?;
        self.view.apply(change, position.offset);
        Ok(())
    }
}

impl Drop for KafkaTenantRegistry {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TenantRegistry for KafkaTenantRegistry {
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord> {
        self.view.key_by_hash(hash)
    }

    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings> {
        self.view.tenant(tenant_id)
    }

    fn signing_key(&self, tenant_id: &str, key_id: &str) -> Option<SigningKeyRecord> {
        self.view.signing_key(tenant_id, key_id)
    }
}

#[async_trait]
impl TenantAdmin for KafkaTenantRegistry {
    async fn create_tenant(&self, settings: TenantSettings) -> Result<TenantSettings, RegistryError> {
        let _serial = self.writes.lock().await;
        let settings = self.view.plan_create_tenant(settings)?;
        self.record(Change::Tenant(settings.clone())).await?;
        tracing::info!(tenant_id = %settings.id, "tenant created");
        Ok(settings)
    }

    async fn update_tenant(&self, tenant_id: &str, patch: TenantPatch) -> Result<TenantSettings, RegistryError> {
        let _serial = self.writes.lock().await;
        let settings = self.view.plan_update_tenant(tenant_id, &patch)?;
        self.record(Change::Tenant(settings.clone())).await?;
        tracing::info!(tenant_id, "tenant updated");
        Ok(settings)
    }

    async fn create_api_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<IssuedKey, RegistryError> {
        let _serial = self.writes.lock().await;
        let (change, issued) = self.view.plan_create_key(tenant_id, name, roles)?;
        self.record(change).await?;
        tracing::info!(tenant_id, key_id = %issued.key_id, "api key created");
        Ok(issued)
    }

    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<ApiKeyRecord, RegistryError> {
        let _serial = self.writes.lock().await;
        let (hash, record) = self.view.plan_revoke(tenant_id, key_id)?;
        self.record(Change::Key { hash, record: record.clone() }).await?;
        tracing::info!(tenant_id, key_id, "api key revoked");
        Ok(record)
    }

    async fn add_signing_key(&self, tenant_id: &str, key: NewSigningKey) -> Result<SigningKeyRecord, RegistryError> {
        let _serial = self.writes.lock().await;
        let record = self.view.plan_add_signing_key(tenant_id, key)?;
        self.record(Change::SigningKey(record.clone())).await?;
        tracing::info!(tenant_id, key_id = %record.key_id, producer = %record.producer, "signing key registered");
        Ok(record)
    }

    async fn revoke_signing_key(&self, tenant_id: &str, key_id: &str, at: time::OffsetDateTime) -> Result<SigningKeyRecord, RegistryError> {
        let _serial = self.writes.lock().await;
        let (record, changed) = self.view.plan_revoke_signing_key(tenant_id, key_id, at)?;
        if changed {
            self.record(Change::SigningKey(record.clone())).await?;
            tracing::info!(tenant_id, key_id, "signing key revoked");
        }
        Ok(record)
    }

    fn list_signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>, RegistryError> {
        self.view.list_signing_keys(tenant_id)
    }

    fn list_tenants(&self) -> Vec<TenantSettings> {
        self.view.list_tenants()
    }

    fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, RegistryError> {
        self.view.list_keys(tenant_id)
    }

    async fn check_ready(&self) -> Result<(), RegistryError> {
        if self.tail.is_finished() {
            return Err(RegistryError::Unavailable(format!("no longer following {}", self.topic)));
        }
        Ok(self.log.check_ready().await?)
    }
}
