//! The EventStore conformance scenarios against the fjall event store, plus its durability
//! and cursor specifics.

mod common;
mod scenarios;

use auditlog_seams::event_store::embedded::FjallEventStore;
use auditlog_seams::{EventStore, PageRequest, StoreError};
use scenarios::event_store as s;
use tempfile::TempDir;

fn store() -> (TempDir, FjallEventStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallEventStore::open(dir.path()).expect("store opens");
    (dir, store)
}

#[tokio::test]
async fn idempotent_upsert() {
    s::idempotent_upsert(&store().1).await;
}

#[tokio::test]
async fn conflicts_are_reported() {
    s::conflicts_are_reported(&store().1).await;
}

#[tokio::test]
async fn list_pages_newest_first() {
    s::list_pages_newest_first(&store().1).await;
}

#[tokio::test]
async fn filters() {
    s::filters(&store().1).await;
}

#[tokio::test]
async fn tenant_scoped() {
    s::tenant_scoped(&store().1).await;
}

#[tokio::test]
async fn invalid_requests() {
    s::invalid_requests(&store().1).await;
}

#[tokio::test]
async fn purge_before() {
    s::purge_before(&store().1).await;
}

#[tokio::test]
async fn readiness() {
    store().1.check_ready().await.expect("store is ready");
}

#[tokio::test]
async fn events_survive_reopen_with_their_log_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = s::dataset("tenant");
    {
        let store = FjallEventStore::open(dir.path()).expect("store opens");
        store.upsert(&events).await.expect("upsert");
    }
    let store = FjallEventStore::open(dir.path()).expect("store reopens");
    let got = store.get("tenant", &events[7].event.id).await.expect("get").expect("event kept");
    assert_eq!(got, events[7], "event and log position kept");
}

#[tokio::test]
async fn a_cursor_of_another_query_is_refused() {
    let (_dir, store) = store();
    store.upsert(&s::dataset("tenant")).await.expect("upsert");
    let page = store.list(&s::filter("tenant"), &PageRequest { limit: 2, after: None }).await.expect("list");
    let other = auditlog_seams::EventFilter { actor_id: Some("user-1".into()), ..s::filter("tenant") };
    let refused = store.list(&other, &PageRequest { limit: 2, after: page.next }).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
}

#[tokio::test]
async fn a_newer_store_format_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("FORMAT"), "auditlog-event-store 9\n").expect("write");
    let err = FjallEventStore::open(dir.path()).expect_err("newer format refused").to_string();
    assert!(err.contains("FORMAT") && err.contains("newer"), "{err}");
}

/// The time range is not part of a cursor's identity: the query API raises `from` to the
/// moving retention cutoff between pages, and the next page must still follow on.
#[tokio::test]
async fn a_cursor_survives_a_moved_time_bound() {
    let (_dir, store) = store();
    let events = s::dataset("tenant");
    store.upsert(&events).await.expect("upsert");
    let first = auditlog_seams::EventFilter { from: Some(s::BASE - time::Duration::days(30)), ..s::filter("tenant") };
    let page = store.list(&first, &PageRequest { limit: 5, after: None }).await.expect("first page");
    let moved = auditlog_seams::EventFilter { from: Some(s::BASE - time::Duration::days(29)), ..s::filter("tenant") };
    let next = store.list(&moved, &PageRequest { limit: 5, after: page.next }).await.expect("the cursor is accepted");
    let ids: Vec<_> = page.events.iter().chain(&next.events).map(|e| e.event.id.clone()).collect();
    assert_eq!(ids, s::expected(&events, |_| true)[..10].to_vec(), "the second page follows the first");
}
