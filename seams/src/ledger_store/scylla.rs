//! The ScyllaDB/Cassandra [`LedgerStore`], in the event store's keyspace conventions.
//!
//! Tables, created idempotently at connect (CQL that ScyllaDB and Cassandra share):
//! - `ledger_tiles ((tenant_id, path)) → data blob`: one row per tile, written with
//!   `INSERT ... IF NOT EXISTS` (a lightweight transaction), so two writers cannot both win
//!   and an existing tile is never overwritten; a refused insert compares the stored bytes.
//! - `ledger_state (tenant_id) → size, builder, log_topic, log_partition, log_offset`: one row,
//!   written by one `INSERT`, so size, builder state and position are atomic together.
//! - `ledger_checkpoints (tenant_id) → size, note`: the latest checkpoint.
//!
//! Writes return once acknowledged at the session's consistency (the tile transaction at
//! SERIAL); see the event store's notes on commit-log durability.

use std::sync::Arc;

use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use super::{LedgerState, LedgerStore, LedgerStoreError, StoredCheckpoint, check_tenant, check_tile_path};
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
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.connect_timeout)
            .build()
            .await
            .map_err(unavailable)?;
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
}
