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
async fn conflicts_are_reported() {
    s::conflicts_are_reported(&store().await).await;
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

/// A store in a keyspace of its own, and a raw session to look at its rows.
async fn own_keyspace(prefix: &str, batch_bytes: Option<usize>) -> (ScyllaEventStore, String, scylla::client::session::Session) {
    let keyspace = common::unique(prefix);
    let mut config = ScyllaConfig::new(vec![cassandra_contact_point()], keyspace.clone());
    if let Some(bytes) = batch_bytes {
        config.batch_bytes = bytes;
    }
    let store = within(60, "cassandra creates the keyspace", ScyllaEventStore::connect(&config)).await.expect("cassandra is usable");
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(cassandra_contact_point())
        .build()
        .await
        .expect("cassandra session");
    (store, keyspace, session)
}

/// Rows of `table` in the partition `key` (a `WHERE` clause over the bound `values`).
async fn count(session: &scylla::client::session::Session, keyspace: &str, table: &str, key: &str, values: impl scylla::serialize::row::SerializeRow) -> i64 {
    let result = session.query_unpaged(format!("SELECT count(*) FROM {keyspace}.{table} WHERE {key}"), values).await.expect("count");
    result.into_rows_result().expect("rows").first_row::<(i64,)>().expect("a count").0
}

/// Retention is not fixed when a row is written: an event stored with 3 s left of its
/// tenant's retention is still served by id and by every list after the retention is raised
/// and those 3 s passed (a write-time TTL expired it: get-by-id 404 while search found it).
/// `purge_before`, the retention sweep, then removes it from every table, with an exact
/// count. An event already past the retention when written is not written.
#[tokio::test]
async fn raised_retention_keeps_events_and_purge_removes_them_from_every_table() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use time::{Duration, OffsetDateTime};
    let (store, ks, session) = own_keyspace("retention", None).await;
    let tenant = common::unique("raise");
    let days = Arc::new(AtomicI64::new(1));
    let (short, current) = (tenant.clone(), Arc::clone(&days));
    let retention: auditlog_seams::event_store::Retention =
        Arc::new(move |t: &str| (t == short).then(|| Duration::days(current.load(Ordering::SeqCst))));
    let store = store.with_retention(retention);
    let now = OffsetDateTime::now_utc();
    let kept = s::stored(&tenant, 1, now - Duration::days(1) + Duration::seconds(3));
    let expired = s::stored(&tenant, 2, now - Duration::days(2));
    store.upsert(&[kept.clone(), expired.clone()]).await.expect("upsert");
    assert!(store.get(&tenant, &expired.event.id).await.expect("get").is_none(), "already past retention: not written");

    days.store(30, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(store.get(&tenant, &kept.event.id).await.expect("get").as_ref(), Some(&kept), "still served by id after the raise");
    let target = &kept.event.targets[0];
    let filters = [
        s::filter(&tenant),
        auditlog_seams::EventFilter { actor_id: Some(kept.event.actor.id.clone()), ..s::filter(&tenant) },
        auditlog_seams::EventFilter { target_type: Some(target.kind.clone()), target_id: Some(target.id.clone()), ..s::filter(&tenant) },
    ];
    for filter in &filters {
        assert_eq!(s::all_pages(&store, filter, 10).await, vec![kept.event.id.clone()], "still listed by {filter:?}");
    }

    assert_eq!(store.purge_before(&tenant, now + Duration::days(1)).await.expect("purge"), 1, "one event purged");
    let us = auditlog_schemas::avro::to_micros(kept.event.occurred_at);
    let day = i32::try_from(us.div_euclid(86_400_000_000)).expect("a day number");
    let (t, id, actor) = (tenant.as_str(), kept.event.id.as_str(), kept.event.actor.id.as_str());
    let key = format!("{}\u{1f}{}", target.kind, target.id);
    let left = [
        ("events_by_id", count(&session, &ks, "events_by_id", "tenant_id = ? AND id = ?", (t, id)).await),
        ("events_by_time", count(&session, &ks, "events_by_time", "tenant_id = ? AND bucket = ?", (t, day)).await),
        ("events_by_actor", count(&session, &ks, "events_by_actor", "tenant_id = ? AND actor_id = ? AND bucket = ?", (t, actor, day)).await),
        ("events_by_target", count(&session, &ks, "events_by_target", "tenant_id = ? AND target_key = ? AND bucket = ?", (t, &key, day)).await),
        ("time days", count(&session, &ks, "buckets", "tenant_id = ? AND index_name = 'time' AND index_key = ''", (t,)).await),
        ("actor days", count(&session, &ks, "buckets", "tenant_id = ? AND index_name = 'actor' AND index_key = ?", (t, actor)).await),
        ("target days", count(&session, &ks, "buckets", "tenant_id = ? AND index_name = 'target' AND index_key = ?", (t, &key)).await),
    ];
    assert!(left.iter().all(|(_, n)| *n == 0), "purged from every table: {left:?}");
    assert!(store.get(&tenant, id).await.expect("get").is_none(), "gone by id");
}

/// A batch the cluster refuses as too large ("Batch too large": past the local Cassandra's
/// 1 MiB `batch_size_fail_threshold`, as 48 KiB batches are past stock Cassandra's 50 KiB)
/// is split until it fits; every event is written, none is retried whole forever.
#[tokio::test]
async fn a_batch_too_large_is_split() {
    let (store, _ks, _session) = own_keyspace("split", Some(64 << 20)).await;
    let tenant = common::unique("split");
    let events: Vec<auditlog_seams::StoredEvent> = s::dataset(&tenant)
        .into_iter()
        .map(|mut stored| {
            stored.event.description = Some("x".repeat(100 << 10));
            stored
        })
        .collect();
    within(120, "upsert of 30 events of 100 KiB in 64 MiB batches", store.upsert(&events)).await.expect("written in parts");
    assert_eq!(s::all_pages(&store, &s::filter(&tenant), 50).await, s::expected(&events, |_| true), "every event listed once");
    for stored in &events {
        assert!(store.get(&tenant, &stored.event.id).await.expect("get").is_some(), "{} stored", stored.event.id);
    }
}

/// An event the cluster could never take (a target key past CQL's 64 KiB) is refused as
/// invalid, naming it, before any of its rows is written; the processor then dead-letters
/// it. Unavailable, the processor would wait on it forever.
#[tokio::test]
async fn an_event_with_a_key_too_long_is_invalid_not_unavailable() {
    let (store, _ks, _session) = own_keyspace("toolong", None).await;
    let tenant = common::unique("toolong");
    let good = s::stored(&tenant, 1, s::BASE);
    let mut bad = s::stored(&tenant, 2, s::BASE);
    bad.event.targets = vec![auditlog_schemas::Target { kind: "document".into(), id: "d".repeat(70_000), name: None }];
    let refused = within(30, "upsert of an event with a 70 KB target id", store.upsert(&[good.clone(), bad.clone()])).await;
    match refused {
        Err(auditlog_seams::StoreError::Invalid(reason)) => assert!(reason.contains(&bad.event.id), "names the event: {reason}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert!(s::all_pages(&store, &s::filter(&tenant), 10).await.is_empty(), "nothing of the call written");
    within(30, "upsert of the good event alone", store.upsert(std::slice::from_ref(&good))).await.expect("the good event alone is written");
    assert_eq!(s::all_pages(&store, &s::filter(&tenant), 10).await, vec![good.event.id.clone()]);
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

/// A keyspace created by an earlier version (its `events_by_id` without the `digest`
/// column) gets the column when a store connects, again idempotently on the next connect.
/// Its old rows have no digest: a later copy with other content is not claimed to conflict
/// (unknown), and the first copy still wins; new ids are stored with their digest.
#[tokio::test]
async fn an_earlier_by_id_table_gets_the_digest_column() {
    let keyspace = common::unique("upgrade");
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(cassandra_contact_point())
        .build()
        .await
        .expect("cassandra session");
    let earlier = [
        format!("CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
        format!(
            "CREATE TABLE {keyspace}.events_by_id (tenant_id text, occurred_us bigint, id text, event text, log_topic text, \
             log_partition int, log_offset bigint, PRIMARY KEY ((tenant_id, id)))"
        ),
    ];
    for cql in earlier {
        session.query_unpaged(cql, &[]).await.expect("the earlier schema");
    }
    session.await_schema_agreement().await.expect("schema agreement");
    let tenant = common::unique("old");
    let old = s::stored(&tenant, 1, s::BASE);
    let json = serde_json::to_string(&old.event).expect("json");
    let us = auditlog_schemas::avro::to_micros(old.event.occurred_at);
    session
        .query_unpaged(
            format!("INSERT INTO {keyspace}.events_by_id (tenant_id, occurred_us, id, event, log_topic, log_partition, log_offset) VALUES (?, ?, ?, ?, ?, ?, ?)"),
            (&tenant, us, &old.event.id, &json, &old.position.topic, old.position.partition, old.position.offset),
        )
        .await
        .expect("a row of the earlier version");

    let config = ScyllaConfig::new(vec![cassandra_contact_point()], keyspace.clone());
    let store = within(60, "the store connects to the earlier keyspace", ScyllaEventStore::connect(&config)).await.expect("upgraded");
    let columns = session
        .query_unpaged(
            "SELECT type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'events_by_id' AND column_name = 'digest'",
            (&keyspace,),
        )
        .await
        .expect("schema query")
        .into_rows_result()
        .expect("rows")
        .rows::<(String,)>()
        .expect("typed")
        .map(|r| r.expect("row").0)
        .collect::<Vec<_>>();
    assert_eq!(columns, ["blob"], "the digest column was added");
    within(60, "a second connect finds the column", ScyllaEventStore::connect(&config)).await.expect("idempotent upgrade");

    let mut other = old.clone();
    other.event.description = Some("other content".into());
    assert!(store.upsert_checked(&[other]).await.expect("upsert").is_empty(), "an old row's content is unknown: no conflict claimed");
    assert_eq!(store.get(&tenant, &old.event.id).await.expect("get"), Some(old), "the old first copy stays");

    let new = s::stored(&tenant, 2, s::BASE);
    store.upsert(std::slice::from_ref(&new)).await.expect("upsert");
    let digest = session
        .query_unpaged(format!("SELECT digest FROM {keyspace}.events_by_id WHERE tenant_id = ? AND id = ?"), (&tenant, &new.event.id))
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows")
        .first_row::<(Option<Vec<u8>>,)>()
        .expect("the row")
        .0;
    assert_eq!(digest.as_deref(), Some(&auditlog_schemas::content_digest(&new.event)[..]), "new rows keep their digest");
}
