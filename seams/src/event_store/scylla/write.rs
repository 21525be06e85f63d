//! Writes of the ScyllaDB event store, without a lightweight transaction per event.
//!
//! `upsert` runs in three steps, each a set of concurrent, idempotent statements:
//! 1. **Claim check.** Of each `(tenant_id, id)` only the first in the call (the call is in
//!    log order) is kept; ids that `events_by_id` already holds are dropped, since their
//!    stored winner is complete.
//! 2. **List rows and bucket directory.** The rest go to `events_by_time`, `events_by_actor`
//!    and `events_by_target`, grouped by partition into unlogged single-partition batches (a
//!    replica applies one as a single mutation, atomically), and the directory gets each
//!    `(index, key, day)` of the call once.
//! 3. **Id rows**, only after every list row was acknowledged. The id row is the event's
//!    commit mark: a crash before it leaves list rows that the redelivery (offsets are
//!    committed only after `upsert` returned) writes again identically, a crash after it
//!    leaves a complete event.
//!
//! Why first-write-wins holds without Paxos: a tenant's events are in one log partition,
//! read in order by one processor at a time, and a batch is acknowledged before the next is
//! written, so a later version of an id is only ever checked after the first version's id
//! row exists. Two processors overlapping during a rebalance write the same records in the
//! same order, hence the same rows. The one window left: a tenant moved to a dedicated topic
//! re-sending an id in both topics at that moment, with both copies written at the same
//! instant by different processors.

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::{ScyllaEventStore, Write, bucket_of, target_key, unavailable};
use crate::event_store::StoreError;
use crate::query::StoredEvent;

/// Rows of one partition per unlogged batch. A batch is one request and one mutation for the
/// replica instead of one per row; larger batches trip the cluster's batch-size warnings
/// (ScyllaDB warns past 128 KiB, events are ~0.5-2 KiB as JSON) and hold one partition's
/// writes back longer.
pub(super) const BATCH_ROWS: usize = 32;

/// An event of the call that is not stored yet, with what its rows need.
struct Pending<'a> {
    stored: &'a StoredEvent,
    json: String,
    us: i64,
    bucket: i32,
    ttl: i32,
    target_keys: Vec<String>,
}

/// A row of `events_by_time`, in the insert's bind order.
type TimeRow<'a> = (&'a str, i32, i64, &'a str, &'a str, &'a str, i32, i64, i32);
/// A row of `events_by_actor` or `events_by_target` (the key after the tenant).
type KeyedRow<'a> = (&'a str, &'a str, i32, i64, &'a str, &'a str, &'a str, i32, i64, i32);

impl ScyllaEventStore {
    /// Writes `events` (in log order) so that the first write of each id wins.
    pub(super) async fn write(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let mut seen = HashSet::with_capacity(events.len());
        let firsts: Vec<&StoredEvent> = events.iter().filter(|e| seen.insert((e.event.tenant_id.as_str(), e.event.id.as_str()))).collect();
        let claimed = self.claimed(&firsts).await?;
        let mut pending = Vec::with_capacity(firsts.len());
        for (stored, claimed) in firsts.into_iter().zip(claimed) {
            if claimed {
                continue;
            }
            // `None`: past its tenant's retention; it would not be served, and keeping it
            // would break the retention promise.
            if let Some(ttl) = self.ttl_secs(&stored.event) {
                pending.push(pending_event(stored, ttl)?);
            }
        }
        self.run(self.list_rows(&pending)).await?;
        let s = &*self.session;
        let id_rows = pending.iter().map(|p| {
            let (e, pos) = (&p.stored.event, &p.stored.position);
            s.execute_unpaged(&self.st.insert_by_id, (&e.tenant_id, p.us, &e.id, &p.json, &pos.topic, pos.partition, pos.offset, p.ttl)).boxed()
        });
        self.run(id_rows.collect()).await
    }

    /// Whether each event's id is already held by `events_by_id`.
    async fn claimed(&self, events: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
        let checks: Vec<BoxFuture<'_, Result<bool, StoreError>>> = events.iter().map(|stored| self.is_claimed(stored).boxed()).collect();
        futures::stream::iter(checks).buffered(self.write_concurrency).try_collect().await
    }

    async fn is_claimed(&self, stored: &StoredEvent) -> Result<bool, StoreError> {
        let e = &stored.event;
        let result = self.session.execute_unpaged(&self.st.select_claim, (&e.tenant_id, &e.id)).await.map_err(unavailable)?;
        Ok(result.into_rows_result().map_err(unavailable)?.rows_num() > 0)
    }

    /// The list rows and directory entries of `pending`, as batches and statements.
    fn list_rows<'a>(&'a self, pending: &'a [Pending<'a>]) -> Vec<BoxFuture<'a, Write>> {
        let mut by_time: HashMap<(&str, i32), Vec<TimeRow<'a>>> = HashMap::new();
        let mut by_actor: HashMap<(&str, &str, i32), Vec<KeyedRow<'a>>> = HashMap::new();
        let mut by_target: HashMap<(&str, &str, i32), Vec<KeyedRow<'a>>> = HashMap::new();
        let mut directory: HashSet<(&str, &str, &str, i32)> = HashSet::new();
        for p in pending {
            let (e, pos) = (&p.stored.event, &p.stored.position);
            let (t, b) = (e.tenant_id.as_str(), p.bucket);
            let row = (p.us, e.id.as_str(), p.json.as_str(), pos.topic.as_str(), pos.partition, pos.offset, p.ttl);
            by_time.entry((t, b)).or_default().push((t, b, row.0, row.1, row.2, row.3, row.4, row.5, row.6));
            let actor = e.actor.id.as_str();
            by_actor.entry((t, actor, b)).or_default().push((t, actor, b, row.0, row.1, row.2, row.3, row.4, row.5, row.6));
            directory.insert((t, "time", "", b));
            directory.insert((t, "actor", actor, b));
            for key in &p.target_keys {
                by_target.entry((t, key, b)).or_default().push((t, key, b, row.0, row.1, row.2, row.3, row.4, row.5, row.6));
                directory.insert((t, "target", key, b));
            }
        }
        let mut writes = Vec::new();
        writes.extend(by_time.into_values().flat_map(|rows| self.batches(&self.st.insert_time, rows)));
        writes.extend(by_actor.into_values().flat_map(|rows| self.batches(&self.st.insert_actor, rows)));
        writes.extend(by_target.into_values().flat_map(|rows| self.batches(&self.st.insert_target, rows)));
        let s = &*self.session;
        writes.extend(directory.into_iter().map(|entry| s.execute_unpaged(&self.st.insert_bucket, entry).boxed()));
        writes
    }

    /// One partition's `rows` of `statement`, as unlogged batches of at most [`BATCH_ROWS`].
    fn batches<'a, R>(&'a self, statement: &PreparedStatement, rows: Vec<R>) -> Vec<BoxFuture<'a, Write>>
    where
        R: scylla::serialize::row::SerializeRow + Send + Sync + 'a,
    {
        let mut rows = rows.into_iter().peekable();
        let mut batches = Vec::new();
        while rows.peek().is_some() {
            let chunk: Vec<R> = rows.by_ref().take(BATCH_ROWS).collect();
            let statements = vec![BatchStatement::PreparedStatement(statement.clone()); chunk.len()];
            let batch = Batch::new_with_statements(BatchType::Unlogged, statements);
            let session = &*self.session;
            batches.push(async move { session.batch(&batch, chunk).await }.boxed());
        }
        batches
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

fn pending_event(stored: &StoredEvent, ttl: i32) -> Result<Pending<'_>, StoreError> {
    let e = &stored.event;
    let json = serde_json::to_string(e).map_err(|err| StoreError::Invalid(format!("event {}: {err}", e.id)))?;
    let us = auditlog_schemas::avro::to_micros(e.occurred_at);
    let target_keys = e.targets.iter().map(|x| target_key(&x.kind, &x.id)).collect();
    Ok(Pending { stored, json, us, bucket: bucket_of(us), ttl, target_keys })
}
