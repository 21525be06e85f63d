//! The ScyllaDB [`EventStore`] (`scylla` crate; Cassandra 5 on dev machines).
//!
//! # Writes
//! The first write of an `(tenant_id, id)` wins: a retry, a replay or a producer's re-send
//! with the same id — even one with another `occurred_at` — leaves the stored winner as it
//! is. Each new event is written to the three list tables and the bucket directory first
//! and to `events_by_id` last, so its id row marks it complete; `write.rs` says why this
//! holds without a lightweight transaction. Writes travel in unlogged batches grouped by
//! owning replica, with bounded concurrency. [`EventStore::repair`] (replay) also
//! rewrites the list rows of ids already stored, from the stored winner.
//!
//! # Retention
//! With [`ScyllaEventStore::with_retention`], every row of an event is written `USING TTL`
//! the time left of its tenant's retention, so expired events disappear without a sweep; an
//! event already past it is not written at all. The bucket directory has no TTL (an expired
//! day leaves an entry that lists nothing, removed by `purge_before`).
//!
//! # Durability
//! `upsert` returns once every statement was acknowledged at the session's consistency
//! (LOCAL_QUORUM by default). Whether an acknowledged write survives a node crash depends on
//! the commit log: ScyllaDB and the local Cassandra run with batch/group commit-log sync, so
//! committing Kafka offsets after `upsert` returned never skips an event a crash lost.

mod read;
mod schema;
mod write;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use time::OffsetDateTime;

use crate::event_store::{EventStore, Retention, StoreError};
use crate::query::{EventFilter, Page, PageRequest, StoredEvent};
use crate::LogPosition;

/// Settings of the ScyllaDB event store.
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// `host:port` of one or more nodes.
    pub nodes: Vec<String>,
    /// Keyspace holding the tables.
    pub keyspace: String,
    /// CQL replication map, e.g. `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
    pub replication: String,
    /// Statements in flight from one `upsert`. Each write waits for the commit log's fsync,
    /// so throughput is in-flight writes over write latency: on the local Cassandra, 64 gave
    /// ~700 events/s, 256 ~1,500 (its `concurrent_writes` raised to 128 to match); fewer
    /// spares the cluster when many processors write together.
    pub write_concurrency: usize,
    /// Time budget of connecting to a node.
    pub connect_timeout: Duration,
}

impl ScyllaConfig {
    /// Defaults for one local node and keyspace `keyspace` (replication factor 1).
    pub fn new(nodes: Vec<String>, keyspace: impl Into<String>) -> Self {
        Self {
            nodes,
            keyspace: keyspace.into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            write_concurrency: 256,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The event store on a ScyllaDB (or Cassandra) cluster.
pub struct ScyllaEventStore {
    session: Arc<Session>,
    st: Statements,
    write_concurrency: usize,
    retention: Option<Retention>,
}

impl std::fmt::Debug for ScyllaEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaEventStore").finish_non_exhaustive()
    }
}

struct Statements {
    insert_by_id: PreparedStatement,
    select_claim: PreparedStatement,
    select_by_id: PreparedStatement,
    insert_time: PreparedStatement,
    insert_actor: PreparedStatement,
    insert_target: PreparedStatement,
    insert_bucket: PreparedStatement,
    list_time: PreparedStatement,
    list_actor: PreparedStatement,
    list_target: PreparedStatement,
    select_buckets: PreparedStatement,
    delete_by_id: PreparedStatement,
    delete_time: PreparedStatement,
    delete_actor: PreparedStatement,
    delete_target: PreparedStatement,
    delete_bucket: PreparedStatement,
}

/// Outcome of one write statement.
type Write = Result<scylla::response::query_result::QueryResult, scylla::errors::ExecutionError>;

/// The columns every event table shares, in select order.
const COLUMNS: &str = "occurred_us, id, event, log_topic, log_partition, log_offset";

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Day bucket of a timestamp in microseconds.
pub(crate) fn bucket_of(micros: i64) -> i32 {
    // |i64| / 86.4e9 < 2^31, so the cast cannot truncate.
    micros.div_euclid(86_400_000_000) as i32
}

/// Key of a target in `events_by_target` and the bucket directory.
pub(crate) fn target_key(kind: &str, id: &str) -> String {
    format!("{kind}\u{1f}{id}")
}

impl ScyllaEventStore {
    /// Connects, creates the keyspace and tables if needed, and prepares every statement.
    pub async fn connect(config: &ScyllaConfig) -> Result<Self, StoreError> {
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.connect_timeout)
            .build()
            .await
            .map_err(unavailable)?;
        for statement in schema::statements(&config.keyspace, &config.replication) {
            session.query_unpaged(statement, &[]).await.map_err(unavailable)?;
        }
        session.await_schema_agreement().await.map_err(unavailable)?;
        let ks = &config.keyspace;
        let prepare = |cql: String| {
            let session = &session;
            async move { session.prepare(cql).await.map_err(unavailable) }
        };
        let list = |table: &str, pk: &str| {
            format!("SELECT {COLUMNS} FROM {ks}.{table} WHERE {pk} AND (occurred_us, id) < (?, ?) LIMIT ?")
        };
        let st = Statements {
            insert_by_id: prepare(format!("INSERT INTO {ks}.events_by_id (tenant_id, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?")).await?,
            select_claim: prepare(format!("SELECT id FROM {ks}.events_by_id WHERE tenant_id = ? AND id = ?")).await?,
            select_by_id: prepare(format!("SELECT {COLUMNS} FROM {ks}.events_by_id WHERE tenant_id = ? AND id = ?")).await?,
            insert_time: prepare(format!("INSERT INTO {ks}.events_by_time (tenant_id, bucket, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?")).await?,
            insert_actor: prepare(format!(
                "INSERT INTO {ks}.events_by_actor (tenant_id, actor_id, bucket, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ))
            .await?,
            insert_target: prepare(format!(
                "INSERT INTO {ks}.events_by_target (tenant_id, target_key, bucket, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ))
            .await?,
            insert_bucket: prepare(format!("INSERT INTO {ks}.buckets (tenant_id, index_name, index_key, bucket) VALUES (?, ?, ?, ?)")).await?,
            list_time: prepare(list("events_by_time", "tenant_id = ? AND bucket = ?")).await?,
            list_actor: prepare(list("events_by_actor", "tenant_id = ? AND actor_id = ? AND bucket = ?")).await?,
            list_target: prepare(list("events_by_target", "tenant_id = ? AND target_key = ? AND bucket = ?")).await?,
            select_buckets: prepare(format!(
                "SELECT bucket FROM {ks}.buckets WHERE tenant_id = ? AND index_name = ? AND index_key = ? AND bucket <= ? AND bucket >= ?"
            ))
            .await?,
            delete_by_id: prepare(format!("DELETE FROM {ks}.events_by_id WHERE tenant_id = ? AND id = ?")).await?,
            delete_time: prepare(format!(
                "DELETE FROM {ks}.events_by_time WHERE tenant_id = ? AND bucket = ? AND occurred_us = ? AND id = ?"
            ))
            .await?,
            delete_actor: prepare(format!(
                "DELETE FROM {ks}.events_by_actor WHERE tenant_id = ? AND actor_id = ? AND bucket = ? AND occurred_us = ? AND id = ?"
            ))
            .await?,
            delete_target: prepare(format!(
                "DELETE FROM {ks}.events_by_target WHERE tenant_id = ? AND target_key = ? AND bucket = ? AND occurred_us = ? AND id = ?"
            ))
            .await?,
            delete_bucket: prepare(format!(
                "DELETE FROM {ks}.buckets WHERE tenant_id = ? AND index_name = ? AND index_key = ? AND bucket = ?"
            ))
            .await?,
        };
        Ok(Self { session: Arc::new(session), st, write_concurrency: config.write_concurrency.max(1), retention: None })
    }

    /// Expires each event when its tenant's `retention` has passed since it occurred.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// The TTL of an event's rows in seconds (0: none), or `None` when it is already past
    /// its tenant's retention.
    fn ttl_secs(&self, event: &auditlog_schemas::AuditEvent) -> Option<i32> {
        /// Cassandra's largest TTL (20 years).
        const MAX_TTL_SECS: i64 = 630_720_000;
        let Some(retention) = self.retention.as_ref().and_then(|r| r(&event.tenant_id)) else {
            return Some(0);
        };
        let left = (event.occurred_at + retention - OffsetDateTime::now_utc()).whole_seconds();
        // `left` is in 1..=MAX_TTL_SECS, so the cast cannot truncate.
        (left > 0).then(|| left.min(MAX_TTL_SECS) as i32)
    }

    /// Deletes one event from every table; whole-day directory entries when `drop_buckets`.
    async fn delete(&self, stored: &StoredEvent, drop_buckets: bool) -> Result<(), StoreError> {
        let e = &stored.event;
        let us = auditlog_schemas::avro::to_micros(e.occurred_at);
        let b = bucket_of(us);
        let (t, s) = (&e.tenant_id, &*self.session);
        let keys: Vec<String> = e.targets.iter().map(|x| target_key(&x.kind, &x.id)).collect();
        let mut deletes: Vec<BoxFuture<'_, Write>> = vec![
            s.execute_unpaged(&self.st.delete_time, (t, b, us, &e.id)).boxed(),
            s.execute_unpaged(&self.st.delete_actor, (t, &e.actor.id, b, us, &e.id)).boxed(),
        ];
        for key in &keys {
            deletes.push(s.execute_unpaged(&self.st.delete_target, (t, key, b, us, &e.id)).boxed());
        }
        if drop_buckets {
            deletes.push(s.execute_unpaged(&self.st.delete_bucket, (t, "actor", &e.actor.id, b)).boxed());
            for key in &keys {
                deletes.push(s.execute_unpaged(&self.st.delete_bucket, (t, "target", key, b)).boxed());
            }
        }
        for result in futures::future::join_all(deletes).await {
            result.map_err(unavailable)?;
        }
        // The id row goes last, so a crash midway leaves it to claim the id on redelivery.
        s.execute_unpaged(&self.st.delete_by_id, (t, &e.id)).await.map_err(unavailable)?;
        Ok(())
    }
}

/// Builds a [`StoredEvent`] from the shared columns.
pub(crate) fn stored_from_row(row: (i64, String, String, String, i32, i64)) -> Result<StoredEvent, StoreError> {
    let (_, id, json, topic, partition, offset) = row;
    let event = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?;
    Ok(StoredEvent { event, position: LogPosition { topic, partition, offset } })
}

#[async_trait]
impl EventStore for ScyllaEventStore {
    async fn upsert(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.write(events, false).await
    }

    async fn repair(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.write(events, true).await
    }

    async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let result = self.session.execute_unpaged(&self.st.select_by_id, (tenant_id, id)).await.map_err(unavailable)?;
        let row = result
            .into_rows_result()
            .map_err(unavailable)?
            .maybe_first_row::<(i64, String, String, String, i32, i64)>()
            .map_err(unavailable)?;
        row.map(stored_from_row).transpose()
    }

    async fn list(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, StoreError> {
        read::list(self, filter, page).await
    }

    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before_us = auditlog_schemas::avro::to_micros(before);
        let filter = EventFilter { tenant_id: tenant_id.to_owned(), to: Some(before), ..EventFilter::default() };
        let mut purged = 0;
        let mut after = None;
        loop {
            let page = read::list(self, &filter, &PageRequest { limit: 500, after }).await?;
            for stored in &page.events {
                let whole_day = bucket_of(auditlog_schemas::avro::to_micros(stored.event.occurred_at)) < bucket_of(before_us);
                self.delete(stored, whole_day).await?;
                purged += 1;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        for bucket in read::buckets(self, tenant_id, "time", "", bucket_of(before_us) - 1, i32::MIN).await? {
            self.session
                .execute_unpaged(&self.st.delete_bucket, (tenant_id, "time", "", bucket))
                .await
                .map_err(unavailable)?;
        }
        Ok(purged)
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.session.query_unpaged("SELECT release_version FROM system.local", &[]).await.map_err(unavailable)?;
        Ok(())
    }
}
