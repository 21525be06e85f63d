//! The CQL schema of the ScyllaDB event store, created idempotently at start. Kept to the CQL
//! that ScyllaDB and Cassandra share (Cassandra 5 stands in for ScyllaDB on dev machines).
//!
//! - `events_by_id`: one row per `(tenant_id, id)`; written last, it marks an event
//!   complete and decides whether a later write of the id is a duplicate (first write wins);
//!   the source of `get`.
//! - `events_by_time`, `events_by_actor`, `events_by_target`: the same event, denormalized
//!   into one partition per tenant (and actor, or target) and day, newest first, so every
//!   list reads whole partitions in clustering order and a partition stays bounded.
//! - `buckets`: which days hold rows for each of those partitions, so a list walks only the
//!   days that have data instead of every day in the range.

/// Tables of the store, in creation order.
pub(super) fn statements(keyspace: &str, replication: &str) -> Vec<String> {
    let row = "occurred_us bigint, id text, event text, log_topic text, log_partition int, log_offset bigint";
    vec![
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.events_by_id (tenant_id text, {row}, \
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
