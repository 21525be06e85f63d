//! The LedgerStore scenarios against the real CQL server of the local stack (Cassandra 5, the
//! stand-in for ScyllaDB), each run in a keyspace of its own.
#![cfg(feature = "real-services")]

mod common;
mod ledger_scenarios;

use auditlog_seams::event_store::scylla::ScyllaConfig;
use auditlog_seams::ledger_store::scylla::ScyllaLedgerStore;
use common::{cassandra_contact_point, unique, within};
use ledger_scenarios as s;

async fn store() -> ScyllaLedgerStore {
    let config = ScyllaConfig::new(vec![cassandra_contact_point()], unique("ledger"));
    within(60, "cassandra connects and the ledger tables are created", ScyllaLedgerStore::connect(&config))
        .await
        .unwrap_or_else(|e| panic!("cassandra at {} is not usable: {e}", cassandra_contact_point()))
}

#[tokio::test]
async fn tiles_are_put_once() {
    s::tiles_are_put_once(&store().await).await;
}

#[tokio::test]
async fn tenant_scoped() {
    s::tenant_scoped(&store().await).await;
}

#[tokio::test]
async fn state_and_checkpoint_round_trip() {
    s::state_and_checkpoint_round_trip(&store().await).await;
}

#[tokio::test]
async fn invalid_requests() {
    s::invalid_requests(&store().await).await;
}

#[tokio::test]
async fn builder_resumes_from_stored_tiles() {
    s::builder_resumes_from_stored_tiles(&store().await).await;
}

#[tokio::test]
async fn tables_are_created_idempotently() {
    let config = ScyllaConfig::new(vec![cassandra_contact_point()], unique("ledger_twice"));
    within(60, "first connect", ScyllaLedgerStore::connect(&config)).await.expect("first");
    within(60, "second connect", ScyllaLedgerStore::connect(&config)).await.expect("second connect reuses the tables");
}

#[tokio::test]
async fn many_leaves_in_one_call() {
    s::many_leaves_in_one_call(&store().await).await;
}

#[tokio::test]
async fn leaves_both_ways() {
    s::leaves_both_ways(&store().await).await;
}

#[tokio::test]
async fn keys_are_listed_once_and_retired() {
    s::keys_are_listed_once_and_retired(&store().await).await;
}
