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

/// The store with the scenario dataset of a new tenant, and a raw session to damage its rows.
async fn stored_dataset(prefix: &str) -> (ScyllaEventStore, String, Vec<auditlog_seams::StoredEvent>, scylla::client::session::Session) {
    let store = store().await;
    let tenant = common::unique(prefix);
    let events = s::dataset(&tenant);
    store.upsert(&events).await.expect("upsert");
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(cassandra_contact_point())
        .build()
        .await
        .expect("cassandra session");
    (store, tenant, events, session)
}

/// The id row is written after the list rows and marks an event complete. A crash between
/// the two leaves list rows and no id row; the redelivery that follows completes the event,
/// listed once, and a later version of the id still loses to it.
#[tokio::test]
async fn redelivery_completes_an_event_cut_off_before_its_id_row() {
    let (store, tenant, events, session) = stored_dataset("cut").await;
    let cut = &events[3];
    session
        .query_unpaged("DELETE FROM auditlog_conformance.events_by_id WHERE tenant_id = ? AND id = ?", (&tenant, &cut.event.id))
        .await
        .expect("delete the id row");
    assert!(store.get(&tenant, &cut.event.id).await.expect("get").is_none(), "the id row is gone");

    store.upsert(&events).await.expect("redelivery");
    assert_eq!(store.get(&tenant, &cut.event.id).await.expect("get").as_ref(), Some(cut), "the redelivery completes it");
    let ids = s::all_pages(&store, &s::filter(&tenant), 50).await;
    assert_eq!(ids, s::expected(&events, |_| true), "every event listed once");

    let mut later = cut.clone();
    later.event.occurred_at += time::Duration::minutes(1);
    later.position.offset = 999;
    store.upsert(&[later]).await.expect("upsert a later version");
    assert_eq!(store.get(&tenant, &cut.event.id).await.expect("get").as_ref(), Some(cut), "the first version stays");
    assert_eq!(s::all_pages(&store, &s::filter(&tenant), 50).await.len(), events.len(), "no second row for the id");
}

/// A list row lost while the id row stayed (damage, or a crash of a store version that wrote
/// the id row first): `upsert` sees the id stored and leaves it, `repair` (replay) writes the
/// stored winner's rows again, and still keeps the first version.
#[tokio::test]
async fn repair_restores_the_list_rows_of_a_stored_id() {
    let (store, tenant, events, session) = stored_dataset("repair").await;
    let lost = &events[5];
    let us = auditlog_schemas::avro::to_micros(lost.event.occurred_at);
    let bucket = i32::try_from(us.div_euclid(86_400_000_000)).expect("a day number");
    session
        .query_unpaged(
            "DELETE FROM auditlog_conformance.events_by_time WHERE tenant_id = ? AND bucket = ? AND occurred_us = ? AND id = ?",
            (&tenant, bucket, us, &lost.event.id),
        )
        .await
        .expect("delete a list row");
    let want = s::expected(&events, |_| true);
    let without: Vec<String> = want.iter().filter(|id| **id != lost.event.id).cloned().collect();
    assert_eq!(s::all_pages(&store, &s::filter(&tenant), 50).await, without, "the row is gone");

    store.upsert(&events).await.expect("upsert again");
    assert_eq!(s::all_pages(&store, &s::filter(&tenant), 50).await, without, "upsert leaves a stored id alone");

    let mut later = lost.clone();
    later.event.occurred_at += time::Duration::minutes(1);
    later.position.offset = 999;
    store.repair(&[later]).await.expect("repair");
    assert_eq!(s::all_pages(&store, &s::filter(&tenant), 50).await, want, "repair writes the stored winner's rows again");
    assert_eq!(store.get(&tenant, &lost.event.id).await.expect("get").as_ref(), Some(lost), "the first version still wins");
}
