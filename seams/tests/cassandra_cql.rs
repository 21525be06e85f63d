//! CQL on the real Cassandra of the local stack (the stand-in for ScyllaDB): a keyspace, a
//! table keyed like the event store's, an idempotent upsert and a read back.
#![cfg(feature = "real-services")]

mod common;

use std::time::Duration;

use common::{cassandra_contact_point, unique, within};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

async fn session() -> Session {
    within(
        30,
        "cassandra session",
        SessionBuilder::new().known_node(cassandra_contact_point()).connection_timeout(Duration::from_secs(5)).build(),
    )
    .await
    .unwrap_or_else(|e| panic!("cassandra at {} is not reachable: {e}", cassandra_contact_point()))
}

#[tokio::test]
async fn cql_upsert_is_idempotent_and_reads_back() {
    let session = session().await;
    let keyspace = unique("auditlog_test");
    session
        .query_unpaged(
            format!("CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
            &[],
        )
        .await
        .expect("keyspace created");
    session
        .query_unpaged(
            format!("CREATE TABLE {keyspace}.events_by_id (tenant_id text, id text, action text, occurred_at timestamp, PRIMARY KEY ((tenant_id, id)))"),
            &[],
        )
        .await
        .expect("table created");
    let insert = session
        .prepare(format!("INSERT INTO {keyspace}.events_by_id (tenant_id, id, action) VALUES (?, ?, ?)"))
        .await
        .expect("insert prepared");
    for _ in 0..3 {
        session.execute_unpaged(&insert, ("acme", "evt-1", "user.login")).await.expect("upsert");
    }
    session.execute_unpaged(&insert, ("globex", "evt-1", "user.logout")).await.expect("upsert");

    let rows = session
        .query_unpaged(format!("SELECT tenant_id, id, action FROM {keyspace}.events_by_id"), &[])
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows");
    let mut got: Vec<(String, String, String)> = rows.rows::<(String, String, String)>().expect("typed rows").map(|r| r.expect("row")).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("acme".into(), "evt-1".into(), "user.login".into()),
            ("globex".into(), "evt-1".into(), "user.logout".into())
        ],
        "one row per (tenant_id, id) after repeated upserts"
    );
    session.query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[]).await.expect("keyspace dropped");
}
