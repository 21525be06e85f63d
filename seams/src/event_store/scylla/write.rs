//! Writes of the ScyllaDB event store, without a lightweight transaction per event.
//!
//! `upsert` runs in three steps, each a set of concurrent, idempotent statements:
//! 1. **Claim check.** Of each `(tenant_id, id)` only the first in the call (the call is in
//!    log order) is kept; ids that `events_by_id` already holds are dropped, since their
//!    stored winner is complete. The same read returns the winner's content digest: a
//!    dropped copy with another digest is reported as a [`Conflict`] (the write path reads
//!    nothing more for it).
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
//! for small writes. Nothing relies on a batch being atomic, so a batch the cluster refuses
//! as too large is split in halves and written part by part.
//!
//! Why first-write-wins holds without Paxos: a tenant's events are in one log partition,
//! read in order by one processor at a time, and a batch is acknowledged before the next is
//! written, so a later version of an id is only ever checked after the first version's id
//! row exists. Two processors overlapping during a rebalance write the same records in the
//! same order, hence the same rows. The one window left: a tenant moved to a dedicated topic
//! re-sending an id in both topics at that moment, with both copies written at the same
//! instant by different processors.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::cluster::ClusterState;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::routing::Shard;
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;

use auditlog_schemas::{ContentDigest, content_digest};

use super::{ScyllaEventStore, bucket_of, target_key, unavailable};
use crate::event_store::{Conflict, StoreError};
use crate::query::StoredEvent;

/// Statements per unlogged batch. A batch is one request instead of one per row; larger
/// batches hold their rows back until the slowest is written.
pub(super) const BATCH_ROWS: usize = 32;
/// Default of [`super::ScyllaConfig::batch_bytes`]: under Cassandra's default
/// `batch_size_fail_threshold` (50 KiB), the strictest; events are ~0.5-2 KiB, at most
/// 64 KiB from the gateway.
pub(super) const BATCH_BYTES: usize = 48 << 10;
/// Bytes a row weighs in a batch besides its event JSON and partition key (tenant, id,
/// topic, integers, framing), roughly.
const ROW_OVERHEAD: usize = 128;
/// Longest partition key CQL takes (each component framed by 3 bytes).
const MAX_KEY_BYTES: usize = u16::MAX as usize;

/// An event of the call that is not stored yet, with what its rows need.
struct Pending<'a> {
    stored: &'a StoredEvent,
    digest: ContentDigest,
    json: String,
    us: i64,
    bucket: i32,
    target_keys: Vec<String>,
}

/// The columns every event row shares after its partition key: occurred_us, id, event,
/// log_topic, log_partition, log_offset.
type Shared<'a> = (i64, &'a str, &'a str, &'a str, i32, i64);

/// A row of one of the store's inserts, in the statement's bind order.
enum Row<'a> {
    /// `events_by_id`: tenant, the shared columns, then the content digest.
    Id(&'a str, Shared<'a>, &'a [u8]),
    /// `events_by_time`: tenant, day.
    Time(&'a str, i32, Shared<'a>),
    /// `events_by_actor` / `events_by_target`: tenant, key, day.
    Keyed(&'a str, &'a str, i32, Shared<'a>),
    /// `buckets`: tenant, index name, index key, day.
    Directory(&'a str, &'a str, &'a str, i32),
}

impl SerializeRow for Row<'_> {
    fn serialize(&self, ctx: &RowSerializationContext<'_>, writer: &mut RowWriter) -> Result<(), SerializationError> {
        match *self {
            Row::Id(t, (us, id, json, topic, partition, offset), digest) => {
                (t, us, id, json, topic, partition, offset, digest).serialize(ctx, writer)
            }
            Row::Time(t, b, (us, id, json, topic, partition, offset)) => (t, b, us, id, json, topic, partition, offset).serialize(ctx, writer),
            Row::Keyed(t, key, b, (us, id, json, topic, partition, offset)) => {
                (t, key, b, us, id, json, topic, partition, offset).serialize(ctx, writer)
            }
            Row::Directory(t, index, key, b) => (t, index, key, b).serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

impl Row<'_> {
    /// Bytes the row weighs in a batch, roughly: its event JSON and keys.
    fn weight(&self) -> usize {
        ROW_OVERHEAD
            + match self {
                Row::Id(t, shared, _) | Row::Time(t, _, shared) => t.len() + shared.2.len(),
                Row::Keyed(t, key, _, shared) => t.len() + key.len() + shared.2.len(),
                Row::Directory(t, _, key, _) => t.len() + key.len(),
            }
    }

    /// The row in an error message.
    fn describe(&self) -> String {
        match self {
            Row::Id(_, shared, _) | Row::Time(_, _, shared) | Row::Keyed(_, _, _, shared) => format!("a row of event {}", shared.1),
            Row::Directory(_, index, _, day) => format!("the {index} bucket directory entry of day {day}"),
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
    /// `batch_bytes` (by [`Row::weight`]).
    fn into_writes(self, session: &'a Session, batch_bytes: usize) -> Vec<BoxFuture<'a, Result<(), StoreError>>> {
        let mut writes = Vec::new();
        for rows in self.groups.into_values() {
            let mut chunk: Vec<(&PreparedStatement, Row<'a>)> = Vec::new();
            let mut bytes = 0;
            for (statement, row) in rows {
                if !chunk.is_empty() && (chunk.len() == BATCH_ROWS || bytes + row.weight() > batch_bytes) {
                    writes.push(write_batch(session, std::mem::take(&mut chunk)));
                    bytes = 0;
                }
                bytes += row.weight();
                chunk.push((statement, row));
            }
            if !chunk.is_empty() {
                writes.push(write_batch(session, chunk));
            }
        }
        writes
    }
}

/// Writes `rows` as one unlogged batch. A batch the cluster refuses as too large is split
/// in halves until each part fits, never retried whole; a single row refused so is
/// [`StoreError::Invalid`] naming its event. Any other failure is unavailable.
fn write_batch<'a>(session: &'a Session, mut rows: Vec<(&'a PreparedStatement, Row<'a>)>) -> BoxFuture<'a, Result<(), StoreError>> {
    async move {
        let statements = rows.iter().map(|(st, _)| BatchStatement::PreparedStatement((*st).clone())).collect();
        let batch = Batch::new_with_statements(BatchType::Unlogged, statements);
        let values: Vec<&Row<'a>> = rows.iter().map(|(_, row)| row).collect();
        let Err(err) = session.batch(&batch, values).await else {
            return Ok(());
        };
        let Some(refusal) = too_large(&err) else {
            return Err(unavailable(err));
        };
        if let [(_, row)] = rows.as_slice() {
            return Err(StoreError::Invalid(format!("{} is too large for the store: {refusal}", row.describe())));
        }
        tracing::debug!(rows = rows.len(), refusal, "batch refused as too large; splitting it");
        let right = rows.split_off(rows.len() / 2);
        write_batch(session, rows).await?;
        write_batch(session, right).await
    }
    .boxed()
}

/// The server's message when `err` refuses a request for its size (`Invalid`, e.g.
/// Cassandra's "Batch too large", "Key length of N is longer than maximum of 65535").
fn too_large(err: &ExecutionError) -> Option<&str> {
    match err {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::Invalid, message)) if is_size_refusal(message) => {
            Some(message)
        }
        _ => None,
    }
}

fn is_size_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["too large", "too big", "oversized", "longer than maximum", "exceeds"].iter().any(|s| message.contains(s))
}

impl ScyllaEventStore {
    /// Writes `events` (in log order) so that the first write of each id wins; reports the
    /// copies of a stored (or earlier) id with another content digest. With `repair`, an id
    /// already stored has its winner read back whole and every row written again (a
    /// rebuild of list rows lost to damage; costs a full read per stored id), its digest
    /// computed from the winner (so rows of earlier versions get one).
    pub(super) async fn write(&self, events: &[StoredEvent], repair: bool) -> Result<Vec<Conflict>, StoreError> {
        let digests: Vec<ContentDigest> = events.iter().map(|e| content_digest(&e.event)).collect();
        let (firsts, repeats) = firsts_and_repeats(events);
        let first_events: Vec<&StoredEvent> = firsts.iter().map(|&i| &events[i]).collect();
        let winners = if repair { self.winners(&first_events).await? } else { Vec::new() };
        let claims = if repair {
            winners.iter().map(|w| w.as_ref().map(|w| Some(content_digest(&w.event)))).collect()
        } else {
            self.claims(&first_events).await?
        };
        // The digest each id is held under once this call is written (`None`: unknown).
        let mut held: HashMap<usize, Option<ContentDigest>> = HashMap::with_capacity(firsts.len());
        let mut conflicts = Vec::new();
        let mut pending = Vec::with_capacity(firsts.len());
        for (n, (&i, claim)) in firsts.iter().zip(claims).enumerate() {
            let stored = &events[i];
            let (event, digest) = match (claim, winners.get(n)) {
                (None, _) => (stored, digests[i]),
                (Some(first), winner) => {
                    held.insert(i, first);
                    if let Some(first) = first.filter(|first| *first != digests[i]) {
                        conflicts.push(Conflict { index: i, stored: first, refused: digests[i] });
                    }
                    match (winner, first) {
                        (Some(Some(winner)), Some(first)) => (winner, first),
                        _ => continue,
                    }
                }
            };
            held.entry(i).or_insert(Some(digest));
            // Past its tenant's retention: never served, and the next sweep would delete it.
            if !self.expired(&event.event) {
                pending.push(pending_event(event, digest)?);
            }
        }
        for (i, first) in repeats {
            if let Some(Some(stored)) = held.get(&first).filter(|d| d.is_some_and(|d| d != digests[i])) {
                conflicts.push(Conflict { index: i, stored: *stored, refused: digests[i] });
            }
        }
        conflicts.sort_unstable_by_key(|c| c.index);
        self.run(self.list_rows(&pending)).await?;
        let mut ids = Batcher::new(self.session.get_cluster_state());
        for p in &pending {
            ids.push(&self.st.insert_by_id, Row::Id(&p.stored.event.tenant_id, shared(p), &p.digest));
        }
        self.run(ids.into_writes(&self.session, self.batch_bytes)).await?;
        Ok(conflicts)
    }

    /// For each event, whether `events_by_id` holds its id already (`Some`), and with which
    /// content digest (`Some(None)`: a row of an earlier version, which kept none).
    async fn claims(&self, events: &[&StoredEvent]) -> Result<Vec<Option<Option<ContentDigest>>>, StoreError> {
        let checks: Vec<BoxFuture<'_, Result<Option<Option<ContentDigest>>, StoreError>>> =
            events.iter().map(|stored| self.claim(stored).boxed()).collect();
        futures::stream::iter(checks).buffered(self.write_concurrency).try_collect().await
    }

    /// The stored winner of each event's id, if any.
    async fn winners(&self, events: &[&StoredEvent]) -> Result<Vec<Option<StoredEvent>>, StoreError> {
        use crate::event_store::EventStore as _;
        let reads: Vec<BoxFuture<'_, Result<Option<StoredEvent>, StoreError>>> =
            events.iter().map(|stored| self.get(&stored.event.tenant_id, &stored.event.id).boxed()).collect();
        futures::stream::iter(reads).buffered(self.write_concurrency).try_collect().await
    }

    async fn claim(&self, stored: &StoredEvent) -> Result<Option<Option<ContentDigest>>, StoreError> {
        let e = &stored.event;
        let result = self.session.execute_unpaged(&self.st.select_claim, (&e.tenant_id, &e.id)).await.map_err(unavailable)?;
        let row = result.into_rows_result().map_err(unavailable)?.maybe_first_row::<(Option<Vec<u8>>,)>().map_err(unavailable)?;
        // A digest of another length is not one this store wrote: unknown, like none.
        Ok(row.map(|(digest,)| digest.and_then(|d| ContentDigest::try_from(d.as_slice()).ok())))
    }

    /// The list rows and directory entries of `pending`, as batches.
    fn list_rows<'a>(&'a self, pending: &'a [Pending<'a>]) -> Vec<BoxFuture<'a, Result<(), StoreError>>> {
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
        batcher.into_writes(&self.session, self.batch_bytes)
    }

    /// Runs `writes` with bounded concurrency until all are acknowledged or one failed.
    async fn run(&self, writes: Vec<BoxFuture<'_, Result<(), StoreError>>>) -> Result<(), StoreError> {
        futures::stream::iter(writes).buffer_unordered(self.write_concurrency).try_collect().await
    }
}

/// The index of the first event of each id in `events`, in order, and each later copy of an
/// id with the index of its first.
fn firsts_and_repeats(events: &[StoredEvent]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    let mut repeats = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match first_of.entry((e.event.tenant_id.as_str(), e.event.id.as_str())) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(first) => repeats.push((i, *first.get())),
        }
    }
    let mut firsts: Vec<usize> = first_of.into_values().collect();
    firsts.sort_unstable();
    (firsts, repeats)
}

fn shared<'a>(p: &'a Pending<'a>) -> Shared<'a> {
    let pos = &p.stored.position;
    (p.us, &p.stored.event.id, &p.json, &pos.topic, pos.partition, pos.offset)
}

/// What an event's rows need; [`StoreError::Invalid`] before anything is written when one of
/// its keys is longer than CQL takes (the cluster would refuse that row alone and leave the
/// others written).
fn pending_event(stored: &StoredEvent, digest: ContentDigest) -> Result<Pending<'_>, StoreError> {
    let e = &stored.event;
    let json = serde_json::to_string(e).map_err(|err| StoreError::Invalid(format!("event {}: {err}", e.id)))?;
    let us = auditlog_schemas::avro::to_micros(e.occurred_at);
    let target_keys: Vec<String> = e.targets.iter().map(|x| target_key(&x.kind, &x.id)).collect();
    // The longest partition key of each kind: (tenant, id), and the directory's
    // (tenant, index name, key), which outweighs the list tables' (tenant, key, day).
    let keyed = std::iter::once(("actor id", e.actor.id.len())).chain(target_keys.iter().map(|k| ("target", k.len())));
    let mut keys = std::iter::once(("id", key_bytes(&[e.tenant_id.len(), e.id.len()])))
        .chain(keyed.map(|(what, len)| (what, key_bytes(&[e.tenant_id.len(), "target".len(), len]))));
    if let Some((what, bytes)) = keys.find(|(_, bytes)| *bytes > MAX_KEY_BYTES) {
        return Err(StoreError::Invalid(format!(
            "event {}: its {what} makes a key of {bytes} bytes, longer than the store's limit of {MAX_KEY_BYTES}",
            e.id
        )));
    }
    Ok(Pending { stored, digest, json, us, bucket: bucket_of(us), target_keys })
}

/// Bytes of a composite partition key of components of these lengths.
fn key_bytes(components: &[usize]) -> usize {
    components.iter().map(|len| len + 3).sum()
}

#[cfg(test)]
mod tests {
    use super::is_size_refusal;

    #[test]
    fn size_refusals_are_recognised() {
        assert!(is_size_refusal("Batch too large"));
        assert!(is_size_refusal("Key length of 70004 is longer than maximum of 65535"));
        assert!(is_size_refusal("Rejected an oversized mutation (17000000/16777216) for keyspace ks"));
        assert!(!is_size_refusal("unconfigured table events_by_id"));
        assert!(!is_size_refusal("Keyspace ks does not exist"));
    }
}
