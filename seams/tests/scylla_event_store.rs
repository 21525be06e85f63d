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

/// With a retention, rows expire when it has passed since the event occurred (Cassandra
/// TTL), and an event already past it is not written; other tenants keep theirs.
#[tokio::test]
async fn retention_expires_rows_by_ttl() {
    use std::sync::Arc;
    use time::{Duration, OffsetDateTime};
    let tenant = common::unique("ttl");
    let keep_forever = common::unique("forever");
    let short = tenant.clone();
    let retention: auditlog_seams::event_store::Retention = Arc::new(move |t: &str| (t == short).then(|| Duration::days(1)));
    let store = store().await.with_retention(retention);
    let now = OffsetDateTime::now_utc();
    // Occurred a day minus 3 s ago: 3 s left. Occurred 2 days ago: already expired.
    let expiring = scenarios::event_store::stored(&tenant, 1, now - Duration::days(1) + Duration::seconds(3));
    let expired = scenarios::event_store::stored(&tenant, 2, now - Duration::days(2));
    let other = scenarios::event_store::stored(&keep_forever, 3, now - Duration::days(2));
    store.upsert(&[expiring.clone(), expired.clone(), other.clone()]).await.expect("upsert");
    let id = |s: &auditlog_seams::StoredEvent| s.event.id.clone();
    assert!(store.get(&tenant, &id(&expiring)).await.expect("get").is_some(), "written with time left");
    assert!(store.get(&tenant, &id(&expired)).await.expect("get").is_none(), "already past retention: not written");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(store.get(&tenant, &id(&expiring)).await.expect("get").is_none(), "expired by its TTL");
    let listed = store.list(&scenarios::event_store::filter(&tenant), &auditlog_seams::PageRequest { limit: 10, after: None }).await.expect("list");
    assert!(listed.events.is_empty(), "no list table keeps it: {:?}", listed.events);
    assert!(store.get(&keep_forever, &id(&other)).await.expect("get").is_some(), "a tenant without retention keeps its events");
}
