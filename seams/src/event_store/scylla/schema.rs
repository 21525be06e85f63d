//! The CQL schema of the ScyllaDB event store, created idempotently at start. Kept to the CQL
//! that ScyllaDB and Cassandra share (Cassandra 5 stands in for ScyllaDB on dev machines).
//!
//! - `events_by_id`: one row per `(tenant_id, id)`; written last, it marks an event
//!   complete and decides whether a later write of the id is a duplicate (first write wins)
//!   or a conflict (its `digest`, the first copy's content digest, differs); the source of
//!   `get`. Tables created before the `digest` column existed get it added ([`upgrade`]);
//!   their old rows have none (content unknown, never claimed to conflict).
//! - `events_by_time`, `events_by_actor`, `events_by_target`: the same event, denormalized
//!   into one partition per tenant (and actor, or target) and day, newest first, so every
//!   list reads whole partitions in clustering order and a partition stays bounded.
//! - `buckets`: which days hold rows for each of those partitions, so a list walks only the
//!   days that have data instead of every day in the range.

use scylla::client::session::Session;

use crate::event_store::StoreError;

/// Columns added to existing tables since they were first created: `(table, column, type)`.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("events_by_id", "digest", "blob")];

/// Tables of the store, in creation order.
pub(super) fn statements(keyspace: &str, replication: &str) -> Vec<String> {
    let row = "occurred_us bigint, id text, event text, log_topic text, log_partition int, log_offset bigint";
    vec![
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.events_by_id (tenant_id text, {row}, digest blob, \
             PRIMARY KEY ((tenant_id, id)))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.events_by_time (tenant_id text, bucket int, {row}, \
             PRIMARY KEY ((tenant_id, bucket), occurred_us, id)) \
             WITH CLUSTERING ORDER BY (occurred_us DESC, id DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.events_by_actor (tenant_id text, actor_id text, bucket int, {row}, \
             PRIMARY KEY ((tenant_id, actor_id, bucket), occurred_us, id)) \
             WITH CLUSTERING ORDER BY (occurred_us DESC, id DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.events_by_target (tenant_id text, target_key text, bucket int, {row}, \
             PRIMARY KEY ((tenant_id, target_key, bucket), occurred_us, id)) \
             WITH CLUSTERING ORDER BY (occurred_us DESC, id DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.buckets (tenant_id text, index_name text, index_key text, bucket int, \
             PRIMARY KEY ((tenant_id, index_name, index_key), bucket)) \
             WITH CLUSTERING ORDER BY (bucket DESC)"
        ),
    ]
}

/// Adds the [`ADDED_COLUMNS`] a table created by an earlier version lacks. Idempotent: a
/// column is added only when `system_schema` does not list it, and a concurrent start that
/// added it first (the cluster answers that it exists) is success. `ALTER TABLE ... ADD IF
/// NOT EXISTS` would do the same, but not every ScyllaDB release takes it.
pub(super) async fn upgrade(session: &Session, keyspace: &str) -> Result<(), StoreError> {
    let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("upgrading the schema of {keyspace}: {e}"));
    for (table, column, kind) in ADDED_COLUMNS {
        let found = session
            .query_unpaged(
                "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
                (keyspace, table, column),
            )
            .await
            .map_err(|e| unavailable(&e))?
            .into_rows_result()
            .map_err(|e| unavailable(&e))?
            .rows_num();
        if found > 0 {
            continue;
        }
        tracing::info!(keyspace, table, column, "adding a column to a table of an earlier version");
        match session.query_unpaged(format!("ALTER TABLE {keyspace}.{table} ADD {column} {kind}"), &[]).await {
            Ok(_) => {}
            Err(err) if is_already_there(&err.to_string()) => {}
            Err(err) => return Err(unavailable(&err)),
        }
    }
    Ok(())
}

/// Whether an `ALTER TABLE ... ADD` failed because the column exists (added concurrently).
fn is_already_there(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("already exist") || message.contains("conflicts with an existing column")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_column_added_concurrently_is_recognised() {
        assert!(super::is_already_there("Invalid column name digest because it conflicts with an existing column"));
        assert!(super::is_already_there("Column with name 'digest' already exists"));
        assert!(!super::is_already_there("unconfigured table events_by_id"));
    }
}
