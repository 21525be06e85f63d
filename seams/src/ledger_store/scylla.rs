//! The ScyllaDB/Cassandra [`LedgerStore`], in the event store's keyspace conventions.
//!
//! Tables, created idempotently at connect (CQL that ScyllaDB and Cassandra share):
//! - `ledger_tiles ((tenant_id, path)) → data blob`: one row per tile, written with
//!   `INSERT ... IF NOT EXISTS` (a lightweight transaction), so two writers cannot both win
//!   and an existing tile is never overwritten; a refused insert compares the stored bytes.
//! - `ledger_state (tenant_id) → size, builder, log_topic, log_partition, log_offset`: one row,
//!   written by one `INSERT`, so size, builder state and position are atomic together.
//! - `ledger_checkpoints (tenant_id) → size, note`: the latest checkpoint.
//! - `ledger_ids ((tenant_id, bucket), id) → leaf_index` and
//!   `ledger_leaves ((tenant_id, bucket), leaf_index) → id`: each leaf both ways. An id's bucket
//!   is [`id_bucket`] (CRC-32 of the id modulo [`ID_BUCKETS`]), so a tenant's ids spread over a
//!   fixed set of partitions that a batch of leaves targets together; a `ledger_leaves` bucket
//!   holds [`LEAVES_PER_BUCKET`] consecutive indexes, so no partition grows without bound.
//!   Leaf rows are written as unlogged batches, one per partition (at most [`ROWS_PER_BATCH`]
//!   rows, about 50 KiB: below Cassandra's batch-size warning), and the duplicate check reads
//!   one partition per query (`id IN ?`). A partition's batch is atomic and isolated on its
//!   replica, and the rows are idempotent overwrites, so a batch replayed after a crash lands on
//!   the same rows. Known limit: an `ledger_ids` partition holds about 1/32 of a tenant's ids
//!   (some 20 MB for 10 million events).
//! - `ledger_keys (public_key) → name, not_before, not_after`: the deployment's signing keys
//!   (times in microseconds since the epoch), listed with `IF NOT EXISTS`.
//!
//! Writes return once acknowledged at the session's consistency (the tile transaction at
//! SERIAL); see the event store's notes on commit-log durability.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use time::OffsetDateTime;
use scylla::client::session::Session;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use super::{LeafEntry, LedgerState, LedgerStore, LedgerStoreError, SigningKeyRecord, StoredCheckpoint, check_tenant, check_tile_path};
use crate::LogPosition;
use crate::event_store::scylla::ScyllaConfig;

/// The CQL-backed ledger store.
#[derive(Clone)]
pub struct ScyllaLedgerStore {
    session: Arc<Session>,
    st: Arc<Statements>,
}

struct Statements {
    insert_tile: PreparedStatement,
    select_tile: PreparedStatement,
    insert_state: PreparedStatement,
    select_state: PreparedStatement,
    insert_checkpoint: PreparedStatement,
    select_checkpoint: PreparedStatement,
    insert_leaf_id: PreparedStatement,
    insert_leaf: PreparedStatement,
    select_leaf_ids: PreparedStatement,
    select_leaves: PreparedStatement,
    insert_key: PreparedStatement,
    retire_key: PreparedStatement,
    select_keys: PreparedStatement,
}

/// Consecutive leaf indexes per `ledger_leaves` partition.
pub const LEAVES_PER_BUCKET: u64 = 1 << 16;

/// Partitions of a tenant's `ledger_ids` (id → leaf index). Fixed forever: an id's partition
/// is computed from it.
pub const ID_BUCKETS: u32 = 32;

/// Rows per unlogged batch (one partition's).
pub const ROWS_PER_BATCH: usize = 500;

/// Ids per `IN` read.
const IDS_PER_READ: usize = 100;

/// Leaf statements (batches or reads) in flight at once, per call.
const LEAF_CONCURRENCY: usize = 16;

/// Tile writes (lightweight transactions) in flight at once, per call.
const TILE_CONCURRENCY: usize = 16;

/// The `ledger_ids` partition of `id` within its tenant: CRC-32 (IEEE) of its UTF-8 bytes
/// modulo [`ID_BUCKETS`].
pub fn id_bucket(id: &str) -> i32 {
    (crc32fast::hash(id.as_bytes()) % ID_BUCKETS) as i32
}

fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Result<OffsetDateTime, LedgerStoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).map_err(|e| LedgerStoreError::Corrupt(format!("key time {us}: {e}")))
}

/// The bound values of one leaf row in a batch (every row of a batch has one type of values).
enum LeafRow<'a> {
    /// `ledger_ids`: tenant, bucket, id, leaf index.
    ById(&'a str, i32, &'a str, i64),
    /// `ledger_leaves`: tenant, bucket, leaf index, id.
    ByIndex(&'a str, i64, i64, &'a str),
}

impl SerializeRow for LeafRow<'_> {
    fn serialize(&self, ctx: &RowSerializationContext<'_>, writer: &mut RowWriter<'_>) -> Result<(), SerializationError> {
        match self {
            Self::ById(tenant, bucket, id, index) => (tenant, bucket, id, index).serialize(ctx, writer),
            Self::ByIndex(tenant, bucket, index, id) => (tenant, bucket, index, id).serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

impl std::fmt::Debug for ScyllaLedgerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaLedgerStore").finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> LedgerStoreError {
    LedgerStoreError::Unavailable(err.to_string())
}

/// The ledger tables, in creation order.
fn schema(keyspace: &str, replication: &str) -> Vec<String> {
    vec![
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"),
        format!("CREATE TABLE IF NOT EXISTS {keyspace}.ledger_tiles (tenant_id text, path text, data blob, PRIMARY KEY ((tenant_id, path)))"),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.ledger_state (tenant_id text PRIMARY KEY, size bigint, builder blob, \
             log_topic text, log_partition int, log_offset bigint)"
        ),
        format!("CREATE TABLE IF NOT EXISTS {keyspace}.ledger_checkpoints (tenant_id text PRIMARY KEY, size bigint, note text)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.ledger_ids (tenant_id text, bucket int, id text, leaf_index bigint, \
             PRIMARY KEY ((tenant_id, bucket), id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.ledger_leaves (tenant_id text, bucket bigint, leaf_index bigint, id text, \
             PRIMARY KEY ((tenant_id, bucket), leaf_index))"
        ),
        format!("CREATE TABLE IF NOT EXISTS {keyspace}.ledger_keys (public_key blob PRIMARY KEY, name text, not_before bigint, not_after bigint)"),
    ]
}

fn size_to_cql(size: u64) -> Result<i64, LedgerStoreError> {
    i64::try_from(size).map_err(|_| LedgerStoreError::Invalid(format!("tree size {size} exceeds bigint")))
}

fn size_from_cql(size: i64) -> Result<u64, LedgerStoreError> {
    u64::try_from(size).map_err(|_| LedgerStoreError::Corrupt(format!("negative tree size {size}")))
}

impl ScyllaLedgerStore {
    /// Connects, creates the keyspace and the ledger tables if needed, prepares statements.
    pub async fn connect(config: &ScyllaConfig) -> Result<Self, LedgerStoreError> {
        let session = config.connect_session().await.map_err(unavailable)?;
        Self::with_session(Arc::new(session), &config.keyspace, &config.replication).await
    }

    /// Uses an existing session (shared with the event store), creating the tables if needed.
    pub async fn with_session(session: Arc<Session>, keyspace: &str, replication: &str) -> Result<Self, LedgerStoreError> {
        for statement in schema(keyspace, replication) {
            session.query_unpaged(statement, &[]).await.map_err(unavailable)?;
        }
        session.await_schema_agreement().await.map_err(unavailable)?;
        let prepare = |cql: String| {
            let session = &session;
            async move { session.prepare(cql).await.map_err(unavailable) }
        };
        let ks = keyspace;
        let st = Statements {
            insert_tile: prepare(format!("INSERT INTO {ks}.ledger_tiles (tenant_id, path, data) VALUES (?, ?, ?) IF NOT EXISTS")).await?,
            select_tile: prepare(format!("SELECT data FROM {ks}.ledger_tiles WHERE tenant_id = ? AND path = ?")).await?,
            insert_state: prepare(format!(
                "INSERT INTO {ks}.ledger_state (tenant_id, size, builder, log_topic, log_partition, log_offset) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            select_state: prepare(format!("SELECT size, builder, log_topic, log_partition, log_offset FROM {ks}.ledger_state WHERE tenant_id = ?")).await?,
            insert_checkpoint: prepare(format!("INSERT INTO {ks}.ledger_checkpoints (tenant_id, size, note) VALUES (?, ?, ?)")).await?,
            select_checkpoint: prepare(format!("SELECT size, note FROM {ks}.ledger_checkpoints WHERE tenant_id = ?")).await?,
            insert_leaf_id: prepare(format!("INSERT INTO {ks}.ledger_ids (tenant_id, bucket, id, leaf_index) VALUES (?, ?, ?, ?)")).await?,
            insert_leaf: prepare(format!("INSERT INTO {ks}.ledger_leaves (tenant_id, bucket, leaf_index, id) VALUES (?, ?, ?, ?)")).await?,
            select_leaf_ids: prepare(format!("SELECT id, leaf_index FROM {ks}.ledger_ids WHERE tenant_id = ? AND bucket = ? AND id IN ?")).await?,
            select_leaves: prepare(format!(
                "SELECT leaf_index, id FROM {ks}.ledger_leaves WHERE tenant_id = ? AND bucket = ? AND leaf_index >= ? LIMIT ?"
            ))
            .await?,
            insert_key: prepare(format!("INSERT INTO {ks}.ledger_keys (public_key, name, not_before) VALUES (?, ?, ?) IF NOT EXISTS")).await?,
            retire_key: prepare(format!("UPDATE {ks}.ledger_keys SET not_after = ? WHERE public_key = ? IF EXISTS")).await?,
            select_keys: prepare(format!("SELECT public_key, name, not_before, not_after FROM {ks}.ledger_keys")).await?,
        };
        Ok(Self { session, st: Arc::new(st) })
    }
}

#[async_trait]
impl LedgerStore for ScyllaLedgerStore {
    async fn put_tile(&self, tenant: &str, path: &str, data: &[u8]) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        check_tile_path(path)?;
        let result = self.session.execute_unpaged(&self.st.insert_tile, (tenant, path, data)).await.map_err(unavailable)?;
        let row = result.into_rows_result().map_err(unavailable)?.maybe_first_row::<Row>().map_err(unavailable)?;
        let applied = matches!(row.as_ref().and_then(|r| r.columns.first()), Some(Some(CqlValue::Boolean(true))));
        if applied {
            return Ok(());
        }
        match self.get_tile(tenant, path).await? {
            Some(existing) if existing == data => Ok(()),
            _ => Err(LedgerStoreError::Conflict { tenant: tenant.to_string(), path: path.to_string() }),
        }
    }

    async fn get_tile(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, LedgerStoreError> {
        check_tenant(tenant)?;
        check_tile_path(path)?;
        let result = self.session.execute_unpaged(&self.st.select_tile, (tenant, path)).await.map_err(unavailable)?;
        let row = result.into_rows_result().map_err(unavailable)?.maybe_first_row::<(Vec<u8>,)>().map_err(unavailable)?;
        Ok(row.map(|(data,)| data))
    }

    async fn save_state(&self, tenant: &str, state: &LedgerState) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        let p = &state.position;
        let values = (tenant, size_to_cql(state.size)?, &state.builder, &p.topic, p.partition, p.offset);
        self.session.execute_unpaged(&self.st.insert_state, values).await.map_err(unavailable)?;
        Ok(())
    }

    async fn load_state(&self, tenant: &str) -> Result<Option<LedgerState>, LedgerStoreError> {
        check_tenant(tenant)?;
        let result = self.session.execute_unpaged(&self.st.select_state, (tenant,)).await.map_err(unavailable)?;
        let row = result
            .into_rows_result()
            .map_err(unavailable)?
            .maybe_first_row::<(i64, Vec<u8>, String, i32, i64)>()
            .map_err(unavailable)?;
        row.map(|(size, builder, topic, partition, offset)| {
            Ok(LedgerState { size: size_from_cql(size)?, builder, position: LogPosition { topic, partition, offset } })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, tenant: &str, checkpoint: &StoredCheckpoint) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        let values = (tenant, size_to_cql(checkpoint.size)?, &checkpoint.note);
        self.session.execute_unpaged(&self.st.insert_checkpoint, values).await.map_err(unavailable)?;
        Ok(())
    }

    async fn load_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>, LedgerStoreError> {
        check_tenant(tenant)?;
        let result = self.session.execute_unpaged(&self.st.select_checkpoint, (tenant,)).await.map_err(unavailable)?;
        let row = result.into_rows_result().map_err(unavailable)?.maybe_first_row::<(i64, String)>().map_err(unavailable)?;
        row.map(|(size, note)| Ok(StoredCheckpoint { size: size_from_cql(size)?, note })).transpose()
    }

    async fn put_tiles(&self, tenant: &str, tiles: &[(String, Vec<u8>)]) -> Result<(), LedgerStoreError> {
        // Independent put-if-absent writes: their order does not matter (the state that makes
        // them part of the tree is saved after all of them), so they run concurrently.
        let writes: Vec<_> = tiles.iter().map(|(path, data)| self.put_tile(tenant, path, data)).collect();
        futures::stream::iter(writes).buffer_unordered(TILE_CONCURRENCY).try_collect().await
    }

    async fn put_leaves(&self, tenant: &str, leaves: &[LeafEntry]) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        // Rows grouped by partition: id → index by id bucket, index → id by index bucket.
        let mut by_id: HashMap<i32, Vec<(&str, i64)>> = HashMap::new();
        let mut by_index: HashMap<i64, Vec<(&str, i64)>> = HashMap::new();
        for leaf in leaves {
            let row = (leaf.id.as_str(), size_to_cql(leaf.index)?);
            by_id.entry(id_bucket(&leaf.id)).or_default().push(row);
            by_index.entry(size_to_cql(leaf.index / LEAVES_PER_BUCKET)?).or_default().push(row);
        }
        let mut batches: Vec<(Batch, Vec<LeafRow<'_>>)> = Vec::new();
        for (bucket, rows) in &by_id {
            for chunk in rows.chunks(ROWS_PER_BATCH) {
                let mut batch = Batch::new(BatchType::Unlogged);
                let mut values = Vec::with_capacity(chunk.len());
                for &(id, index) in chunk {
                    batch.append_statement(self.st.insert_leaf_id.clone());
                    values.push(LeafRow::ById(tenant, *bucket, id, index));
                }
                batches.push((batch, values));
            }
        }
        for (bucket, rows) in &by_index {
            for chunk in rows.chunks(ROWS_PER_BATCH) {
                let mut batch = Batch::new(BatchType::Unlogged);
                let mut values = Vec::with_capacity(chunk.len());
                for &(id, index) in chunk {
                    batch.append_statement(self.st.insert_leaf.clone());
                    values.push(LeafRow::ByIndex(tenant, *bucket, index, id));
                }
                batches.push((batch, values));
            }
        }
        let mut writes = Vec::with_capacity(batches.len());
        for (batch, values) in &batches {
            writes.push(async move {
                self.session.batch(batch, values).await.map_err(unavailable)?;
                Ok::<(), LedgerStoreError>(())
            });
        }
        futures::stream::iter(writes).buffer_unordered(LEAF_CONCURRENCY).try_collect().await
    }

    async fn leaf_indexes(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, u64>, LedgerStoreError> {
        check_tenant(tenant)?;
        let mut by_bucket: HashMap<i32, Vec<&str>> = HashMap::new();
        for id in ids {
            by_bucket.entry(id_bucket(id)).or_default().push(id);
        }
        let mut reads = Vec::new();
        for (bucket, ids) in &by_bucket {
            for chunk in ids.chunks(IDS_PER_READ) {
                reads.push(async move {
                    let result = self.session.execute_unpaged(&self.st.select_leaf_ids, (tenant, *bucket, chunk)).await.map_err(unavailable)?;
                    let rows = result.into_rows_result().map_err(unavailable)?;
                    let mut found = Vec::with_capacity(chunk.len());
                    for row in rows.rows::<(String, i64)>().map_err(unavailable)? {
                        let (id, index) = row.map_err(unavailable)?;
                        found.push((id, size_from_cql(index)?));
                    }
                    Ok::<_, LedgerStoreError>(found)
                });
            }
        }
        let found: Vec<Vec<(String, u64)>> = futures::stream::iter(reads).buffer_unordered(LEAF_CONCURRENCY).try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn leaves(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<LeafEntry>, LedgerStoreError> {
        check_tenant(tenant)?;
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < limit {
            let bucket = next / LEAVES_PER_BUCKET;
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let values = (tenant, size_to_cql(bucket)?, size_to_cql(next)?, want);
            let result = self.session.execute_unpaged(&self.st.select_leaves, values).await.map_err(unavailable)?;
            let rows = result.into_rows_result().map_err(unavailable)?;
            let before = out.len();
            for row in rows.rows::<(i64, String)>().map_err(unavailable)? {
                let (index, id) = row.map_err(unavailable)?;
                out.push(LeafEntry { index: size_from_cql(index)?, id });
            }
            // Leaves are dense: the next bucket holds more only when this one ran to its end.
            let bucket_end = (bucket + 1) * LEAVES_PER_BUCKET;
            if out.len() == before || out.last().map(|l| l.index + 1) != Some(bucket_end) {
                break;
            }
            next = bucket_end;
        }
        Ok(out)
    }

    async fn put_key(&self, key: &SigningKeyRecord) -> Result<(), LedgerStoreError> {
        let values = (&key.public_key, &key.name, micros(key.not_before));
        self.session.execute_unpaged(&self.st.insert_key, values).await.map_err(unavailable)?;
        if let Some(at) = key.not_after {
            self.retire_key(&key.public_key, at).await?;
        }
        Ok(())
    }

    async fn retire_key(&self, public_key: &[u8], at: OffsetDateTime) -> Result<(), LedgerStoreError> {
        self.session.execute_unpaged(&self.st.retire_key, (micros(at), public_key)).await.map_err(unavailable)?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, LedgerStoreError> {
        let result = self.session.execute_unpaged(&self.st.select_keys, &[]).await.map_err(unavailable)?;
        let rows = result.into_rows_result().map_err(unavailable)?;
        let mut keys = Vec::new();
        for row in rows.rows::<(Vec<u8>, String, i64, Option<i64>)>().map_err(unavailable)? {
            let (public_key, name, not_before, not_after) = row.map_err(unavailable)?;
            keys.push(SigningKeyRecord { public_key, name, not_before: from_micros(not_before)?, not_after: not_after.map(from_micros).transpose()? });
        }
        keys.sort_by_key(|k| k.not_before);
        Ok(keys)
    }
}
