//! The EventStore conformance scenarios against the real CQL server of the local stack
//! (Cassandra 5, the stand-in for ScyllaDB).
#![cfg(feature = "real-services")]

mod common;
mod scenarios;

use auditlog_seams::EventStore;
use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
use common::{cassandra_contact_point, within};
use scenarios::event_store as s;

async fn store() -> ScyllaEventStore {
    let config = ScyllaConfig::new(vec![cassandra_contact_point()], "auditlog_conformance");
    within(60, "cassandra connects and the schema is created", ScyllaEventStore::connect(&config))
        .await
        .unwrap_or_else(|e| panic!("cassandra at {} is not usable: {e}", cassandra_contact_point()))
}

#[tokio::test]
async fn idempotent_upsert() {
    s::idempotent_upsert(&store().await).await;
}

#[tokio::test]
async fn list_pages_newest_first() {
    s::list_pages_newest_first(&store().await).await;
}

#[tokio::test]
async fn filters() {
    s::filters(&store().await).await;
}

#[tokio::test]
async fn tenant_scoped() {
    s::tenant_scoped(&store().await).await;
}

#[tokio::test]
async fn invalid_requests() {
    s::invalid_requests(&store().await).await;
}

#[tokio::test]
async fn purge_before() {
    s::purge_before(&store().await).await;
}

#[tokio::test]
async fn readiness() {
    store().await.check_ready().await.expect("cassandra is ready");
}
