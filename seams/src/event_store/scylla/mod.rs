//! The ScyllaDB [`EventStore`] (`scylla` crate; Cassandra 5 on dev machines).
//!
//! # Writes
//! The first write of an `(tenant_id, id)` wins: a retry, a replay or a producer's re-send
//! with the same id — even one with another `occurred_at` — leaves the stored winner as it
//! is. Each new event is written to the three list tables and the bucket directory first
//! and to `events_by_id` last, so its id row marks it complete; `write.rs` says why this
//! holds without a lightweight transaction. The id row keeps the first copy's content digest:
//! the read that finds an id taken also tells a retry (same digest, absorbed) from a
//! conflict (reported by [`EventStore::upsert_checked`]); rows of earlier versions, which
//! have none, are never claimed to conflict. Writes travel in unlogged batches grouped by
//! owning replica, with bounded concurrency. [`EventStore::repair`] (replay) also
//! rewrites the list rows of ids already stored, from the stored winner.
//!
//! # Retention
//! Nothing expires by itself: rows carry no TTL, and an event leaves the store only through
//! [`EventStore::purge_before`], which the query API's retention sweep calls per tenant at
//! the tenant's current cutoff, exactly as for the search index and the embedded store. So a
//! retention change reaches every copy at once: raised, every copy keeps the event; lowered,
//! the next sweep removes it from every copy (and reads never serve past the cutoff
//! meanwhile). A write-time TTL would fix the retention of the day the row was written:
//! after a raise, `get` would miss an event that search still finds.
//!
//! With [`ScyllaEventStore::with_retention`], an event already past its tenant's retention
//! when written is not written at all (a replay of an old log does not write rows the next
//! sweep would only turn into tombstones); the retention is looked up at each write, so it
//! follows changes. Rows written `USING TTL` by earlier versions keep their TTL until
//! `auditlog replay --sink scylla` (a [`EventStore::repair`]) rewrites them without one.
//!
//! # Batches too large
//! Clusters refuse a batch past `batch_size_fail_threshold` (ScyllaDB 1 MiB, Cassandra
//! 50 KiB by default). Batches are cut well below it ([`ScyllaConfig::batch_bytes`]), and a
//! batch refused as too large anyway is split in halves until each part fits; never retried
//! whole. A single row refused as too large, or a key longer than CQL's 64 KiB, is the
//! event's own fault: [`StoreError::Invalid`] naming it (the processor then writes the batch
//! one event at a time and dead-letters that one), never "unavailable", which the processor
//! would wait on forever.
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
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use time::OffsetDateTime;

use crate::event_store::{Conflict, EventStore, Retention, StoreError};
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
    /// Approximate bytes per unlogged batch (event JSON, keys and a per-row overhead): a
    /// batch is cut here, and a row larger than this goes alone. Larger batches mean fewer
    /// requests; past the cluster's `batch_size_fail_threshold` (ScyllaDB 1 MiB, Cassandra
    /// 50 KiB by default) a batch is refused and then split in halves, costing a round trip.
    pub batch_bytes: usize,
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
            batch_bytes: write::BATCH_BYTES,
        }
    }

    /// A session on these nodes (the event store's and the ledger store's).
    pub async fn connect_session(&self) -> Result<Session, scylla::errors::NewSessionError> {
        SessionBuilder::new().known_nodes(&self.nodes).connection_timeout(self.connect_timeout).build().await
    }
}

/// The event store on a ScyllaDB (or Cassandra) cluster.
pub struct ScyllaEventStore {
    session: Arc<Session>,
    st: Statements,
    write_concurrency: usize,
    batch_bytes: usize,
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

/// Events a purge lists per query.
const PURGE_PAGE: usize = 500;
/// Events a purge deletes at once (each 3-5 statements): enough to purge millions of rows
/// in minutes, few enough that a sweep does not crowd out the processors' writes.
const PURGE_IN_FLIGHT: usize = 32;

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
        let session = config.connect_session().await.map_err(unavailable)?;
        for statement in schema::statements(&config.keyspace, &config.replication) {
            session.query_unpaged(statement, &[]).await.map_err(unavailable)?;
        }
        session.await_schema_agreement().await.map_err(unavailable)?;
        schema::upgrade(&session, &config.keyspace).await?;
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
            insert_by_id: prepare(format!("INSERT INTO {ks}.events_by_id (tenant_id, {COLUMNS}, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
                .await?,
            select_claim: prepare(format!("SELECT digest FROM {ks}.events_by_id WHERE tenant_id = ? AND id = ?")).await?,
            select_by_id: prepare(format!("SELECT {COLUMNS} FROM {ks}.events_by_id WHERE tenant_id = ? AND id = ?")).await?,
            insert_time: prepare(format!("INSERT INTO {ks}.events_by_time (tenant_id, bucket, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")).await?,
            insert_actor: prepare(format!(
                "INSERT INTO {ks}.events_by_actor (tenant_id, actor_id, bucket, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            insert_target: prepare(format!(
                "INSERT INTO {ks}.events_by_target (tenant_id, target_key, bucket, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        Ok(Self {
            session: Arc::new(session),
            st,
            write_concurrency: config.write_concurrency.max(1),
            batch_bytes: config.batch_bytes.max(1),
            retention: None,
        })
    }

    /// Does not write events already past their tenant's `retention` (looked up at each
    /// write); nothing written expires by itself (see the module docs).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Whether `event` is already past its tenant's retention.
    fn expired(&self, event: &auditlog_schemas::AuditEvent) -> bool {
        let retention = self.retention.as_ref().and_then(|r| r(&event.tenant_id));
        retention.is_some_and(|r| event.occurred_at + r <= OffsetDateTime::now_utc())
    }

    /// Deletes one event from every table; whole-day directory entries when `drop_buckets`.
    /// Its `events_by_time` row goes last: that row is how a purge finds the event, so a
    /// crash midway leaves it for the next sweep to finish.
    async fn delete(&self, stored: &StoredEvent, drop_buckets: bool) -> Result<(), StoreError> {
        let e = &stored.event;
        let us = auditlog_schemas::avro::to_micros(e.occurred_at);
        let b = bucket_of(us);
        let (t, s) = (&e.tenant_id, &*self.session);
        let keys: Vec<String> = e.targets.iter().map(|x| target_key(&x.kind, &x.id)).collect();
        let mut deletes: Vec<BoxFuture<'_, Write>> = vec![
            s.execute_unpaged(&self.st.delete_by_id, (t, &e.id)).boxed(),
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
        s.execute_unpaged(&self.st.delete_time, (t, b, us, &e.id)).await.map_err(unavailable)?;
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
        self.write(events, false).await.map(drop)
    }

    async fn upsert_checked(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, StoreError> {
        self.write(events, false).await
    }

    async fn repair(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.write(events, true).await.map(drop)
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
        let before_day = bucket_of(auditlog_schemas::avro::to_micros(before));
        let filter = EventFilter { tenant_id: tenant_id.to_owned(), to: Some(before), ..EventFilter::default() };
        let mut purged = 0;
        let mut after = None;
        loop {
            // Deleting this page's rows leaves the next page alone: it lies strictly below.
            let page = read::list(self, &filter, &PageRequest { limit: PURGE_PAGE, after }).await?;
            let mut deletes: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::with_capacity(page.events.len());
            for stored in &page.events {
                let whole_day = bucket_of(auditlog_schemas::avro::to_micros(stored.event.occurred_at)) < before_day;
                deletes.push(self.delete(stored, whole_day).boxed());
            }
            futures::stream::iter(deletes).buffer_unordered(PURGE_IN_FLIGHT).try_collect::<()>().await?;
            purged += page.events.len() as u64;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        for bucket in read::buckets(self, tenant_id, "time", "", before_day - 1, i32::MIN).await? {
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
