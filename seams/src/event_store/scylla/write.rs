//! Writes of the ScyllaDB event store, without a lightweight transaction per event.
//!
//! `upsert` runs in three steps, each a set of concurrent, idempotent statements:
//! 1. **Claim check.** Of each `(tenant_id, id)` only the first in the call (the call is in
//!    log order) is kept; ids that `events_by_id` already holds are dropped, since their
//!    stored winner is complete.
//! 2. **List rows and bucket directory.** The rest go to `events_by_time`, `events_by_actor`
//!    and `events_by_target`, and the directory gets each `(index, key, day)` of the call
//!    once.
//! 3. **Id rows**, only after every list row was acknowledged. The id row is the event's
//!    commit mark: a crash before it leaves list rows that the redelivery (offsets are
//!    committed only after `upsert` returned) writes again identically, a crash after it
//!    leaves a complete event.
//!
//! Statements travel in unlogged batches of rows owned by the same replica (node and
//! shard, from the driver's token map), so a batch is one request that its coordinator
//! applies locally, without fanning out: requests, not rows, are what a node spends most on
//! for small writes. Nothing relies on a batch being atomic.
//!
//! Why first-write-wins holds without Paxos: a tenant's events are in one log partition,
//! read in order by one processor at a time, and a batch is acknowledged before the next is
//! written, so a later version of an id is only ever checked after the first version's id
//! row exists. Two processors overlapping during a rebalance write the same records in the
//! same order, hence the same rows. The one window left: a tenant moved to a dedicated topic
//! re-sending an id in both topics at that moment, with both copies written at the same
//! instant by different processors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::cluster::ClusterState;
use scylla::routing::Shard;
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::{ScyllaEventStore, Write, bucket_of, target_key, unavailable};
use crate::event_store::StoreError;
use crate::query::StoredEvent;

/// Statements per unlogged batch. A batch is one request instead of one per row; larger
/// batches hold their rows back until the slowest is written.
pub(super) const BATCH_ROWS: usize = 32;
/// Event JSON per unlogged batch: a batch is also cut here, and a row larger than this goes
/// alone. Clusters refuse batches past `batch_size_fail_threshold` (ScyllaDB 1 MiB,
/// Cassandra 50 KiB by default) and warn well before; events are ~0.5-2 KiB, at most 32 KiB.
pub(super) const BATCH_BYTES: usize = 48 << 10;

/// An event of the call that is not stored yet, with what its rows need.
struct Pending<'a> {
    stored: &'a StoredEvent,
    json: String,
    us: i64,
    bucket: i32,
    ttl: i32,
    target_keys: Vec<String>,
}

/// The columns every event row shares after its partition key: occurred_us, id, event,
/// log_topic, log_partition, log_offset, ttl.
type Shared<'a> = (i64, &'a str, &'a str, &'a str, i32, i64, i32);

/// A row of one of the store's inserts, in the statement's bind order.
enum Row<'a> {
    /// `events_by_id` and `events_by_time`: tenant, then an int (none for the id table).
    Id(&'a str, Shared<'a>),
    Time(&'a str, i32, Shared<'a>),
    /// `events_by_actor` / `events_by_target`: tenant, key, day.
    Keyed(&'a str, &'a str, i32, Shared<'a>),
    /// `buckets`: tenant, index name, index key, day.
    Directory(&'a str, &'a str, &'a str, i32),
}

impl SerializeRow for Row<'_> {
    fn serialize(&self, ctx: &RowSerializationContext<'_>, writer: &mut RowWriter) -> Result<(), SerializationError> {
        match *self {
            Row::Id(t, (us, id, json, topic, partition, offset, ttl)) => {
                (t, us, id, json, topic, partition, offset, ttl).serialize(ctx, writer)
            }
            Row::Time(t, b, (us, id, json, topic, partition, offset, ttl)) => {
                (t, b, us, id, json, topic, partition, offset, ttl).serialize(ctx, writer)
            }
            Row::Keyed(t, key, b, (us, id, json, topic, partition, offset, ttl)) => {
                (t, key, b, us, id, json, topic, partition, offset, ttl).serialize(ctx, writer)
            }
            Row::Directory(t, index, key, b) => (t, index, key, b).serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

impl Row<'_> {
    /// Bytes the row weighs in a batch, roughly: its event JSON.
    fn weight(&self) -> usize {
        match self {
            Row::Id(_, shared) | Row::Time(_, _, shared) | Row::Keyed(_, _, _, shared) => shared.2.len(),
            Row::Directory(..) => 64,
        }
    }
}

/// The replica (node and shard) owning a partition; `None` when the driver cannot tell
/// (no token map yet): such rows batch together, and the coordinator forwards them.
type Owner = Option<(uuid::Uuid, Shard)>;

/// Rows grouped by the replica owning their partition, for batching.
struct Batcher<'a> {
    cluster: Arc<ClusterState>,
    groups: HashMap<Owner, Vec<(&'a PreparedStatement, Row<'a>)>>,
}

impl<'a> Batcher<'a> {
    fn new(cluster: Arc<ClusterState>) -> Self {
        Self { cluster, groups: HashMap::new() }
    }

    fn push(&mut self, statement: &'a PreparedStatement, row: Row<'a>) {
        let owner = self.owner(statement, &row);
        self.groups.entry(owner).or_default().push((statement, row));
    }

    fn owner(&self, statement: &PreparedStatement, row: &Row<'_>) -> Owner {
        let token = statement.calculate_token(row).ok()??;
        let (keyspace, table) = (statement.get_keyspace_name()?, statement.get_table_name()?);
        let replicas = self.cluster.get_token_endpoints(keyspace, table, token);
        replicas.first().map(|(node, shard)| (node.host_id, *shard))
    }

    /// The rows as unlogged batches, one owner each, cut at [`BATCH_ROWS`] rows or
    /// [`BATCH_BYTES`] of event JSON.
    fn into_writes(self, session: &'a scylla::client::session::Session) -> Vec<BoxFuture<'a, Write>> {
        let mut writes = Vec::new();
        for rows in self.groups.into_values() {
            let mut chunk: Vec<(&PreparedStatement, Row<'a>)> = Vec::new();
            let mut bytes = 0;
            for (statement, row) in rows {
                if !chunk.is_empty() && (chunk.len() == BATCH_ROWS || bytes + row.weight() > BATCH_BYTES) {
                    writes.push(batch(session, std::mem::take(&mut chunk)));
                    bytes = 0;
                }
                bytes += row.weight();
                chunk.push((statement, row));
            }
            if !chunk.is_empty() {
                writes.push(batch(session, chunk));
            }
        }
        writes
    }
}

/// One unlogged batch of `rows`.
fn batch<'a>(session: &'a scylla::client::session::Session, rows: Vec<(&PreparedStatement, Row<'a>)>) -> BoxFuture<'a, Write> {
    let (statements, values): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
    let statements = statements.into_iter().map(|st| BatchStatement::PreparedStatement(st.clone())).collect();
    let batch = Batch::new_with_statements(BatchType::Unlogged, statements);
    async move { session.batch(&batch, values).await }.boxed()
}

impl ScyllaEventStore {
    /// Writes `events` (in log order) so that the first write of each id wins. With
    /// `repair`, an id already stored has its winner read back whole and every row written
    /// again (a rebuild of list rows lost to damage; costs a full read per stored id).
    pub(super) async fn write(&self, events: &[StoredEvent], repair: bool) -> Result<(), StoreError> {
        let mut seen = HashSet::with_capacity(events.len());
        let firsts: Vec<&StoredEvent> = events.iter().filter(|e| seen.insert((e.event.tenant_id.as_str(), e.event.id.as_str()))).collect();
        let winners = if repair { self.winners(&firsts).await? } else { Vec::new() };
        let claimed = if repair { winners.iter().map(Option::is_some).collect() } else { self.claimed(&firsts).await? };
        let mut pending = Vec::with_capacity(firsts.len());
        for (i, (stored, claimed)) in firsts.into_iter().zip(claimed).enumerate() {
            let event = match (claimed, winners.get(i)) {
                (false, _) => stored,
                (true, Some(Some(winner))) => winner,
                (true, _) => continue,
            };
            // `None`: past its tenant's retention; it would not be served, and keeping it
            // would break the retention promise.
            if let Some(ttl) = self.ttl_secs(&event.event) {
                pending.push(pending_event(event, ttl)?);
            }
        }
        self.run(self.list_rows(&pending)).await?;
        let mut ids = Batcher::new(self.session.get_cluster_state());
        for p in &pending {
            ids.push(&self.st.insert_by_id, Row::Id(&p.stored.event.tenant_id, shared(p)));
        }
        self.run(ids.into_writes(&self.session)).await
    }

    /// Whether each event's id is already held by `events_by_id`.
    async fn claimed(&self, events: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
        let checks: Vec<BoxFuture<'_, Result<bool, StoreError>>> = events.iter().map(|stored| self.is_claimed(stored).boxed()).collect();
        futures::stream::iter(checks).buffered(self.write_concurrency).try_collect().await
    }

    /// The stored winner of each event's id, if any.
    async fn winners(&self, events: &[&StoredEvent]) -> Result<Vec<Option<StoredEvent>>, StoreError> {
        use crate::event_store::EventStore as _;
        let reads: Vec<BoxFuture<'_, Result<Option<StoredEvent>, StoreError>>> =
            events.iter().map(|stored| self.get(&stored.event.tenant_id, &stored.event.id).boxed()).collect();
        futures::stream::iter(reads).buffered(self.write_concurrency).try_collect().await
    }

    async fn is_claimed(&self, stored: &StoredEvent) -> Result<bool, StoreError> {
        let e = &stored.event;
        let result = self.session.execute_unpaged(&self.st.select_claim, (&e.tenant_id, &e.id)).await.map_err(unavailable)?;
        Ok(result.into_rows_result().map_err(unavailable)?.rows_num() > 0)
    }

    /// The list rows and directory entries of `pending`, as batches.
    fn list_rows<'a>(&'a self, pending: &'a [Pending<'a>]) -> Vec<BoxFuture<'a, Write>> {
        let st = &self.st;
        let mut batcher = Batcher::new(self.session.get_cluster_state());
        let mut directory: HashSet<(&str, &str, &str, i32)> = HashSet::new();
        for p in pending {
            let e = &p.stored.event;
            let (t, b, row) = (e.tenant_id.as_str(), p.bucket, shared(p));
            batcher.push(&st.insert_time, Row::Time(t, b, row));
            batcher.push(&st.insert_actor, Row::Keyed(t, &e.actor.id, b, row));
            directory.insert((t, "time", "", b));
            directory.insert((t, "actor", &e.actor.id, b));
            for key in &p.target_keys {
                batcher.push(&st.insert_target, Row::Keyed(t, key, b, row));
                directory.insert((t, "target", key, b));
            }
        }
        for (t, index, key, b) in directory {
            batcher.push(&st.insert_bucket, Row::Directory(t, index, key, b));
        }
        batcher.into_writes(&self.session)
    }

    /// Runs `writes` with bounded concurrency until all are acknowledged or one failed.
    async fn run(&self, writes: Vec<BoxFuture<'_, Write>>) -> Result<(), StoreError> {
        futures::stream::iter(writes)
            .buffer_unordered(self.write_concurrency)
            .map_err(unavailable)
            .try_for_each(|_| futures::future::ready(Ok(())))
            .await
    }
}

fn shared<'a>(p: &'a Pending<'a>) -> Shared<'a> {
    let pos = &p.stored.position;
    (p.us, &p.stored.event.id, &p.json, &pos.topic, pos.partition, pos.offset, p.ttl)
}

fn pending_event(stored: &StoredEvent, ttl: i32) -> Result<Pending<'_>, StoreError> {
    let e = &stored.event;
    let json = serde_json::to_string(e).map_err(|err| StoreError::Invalid(format!("event {}: {err}", e.id)))?;
    let us = auditlog_schemas::avro::to_micros(e.occurred_at);
    let target_keys = e.targets.iter().map(|x| target_key(&x.kind, &x.id)).collect();
    Ok(Pending { stored, json, us, bucket: bucket_of(us), ttl, target_keys })
}
