//! Conformance scenarios of the [`EventStore`] seam, written once and run against every
//! implementation. Each scenario uses fresh tenant ids, so stores may be shared.

#![allow(dead_code, missing_docs)]

use std::collections::HashSet;

use auditlog_schemas::{Actor, ActorType, AuditEvent, Outcome, Severity, Target};
use auditlog_seams::{ActionFilter, EventFilter, EventStore, LogPosition, PageRequest, StoreError, StoredEvent};
use time::{Duration, OffsetDateTime, macros::datetime};

use crate::common::unique;

/// When the newest event of the datasets occurred.
pub const BASE: OffsetDateTime = datetime!(2026-11-20 12:00:00 UTC);

pub fn stored(tenant: &str, i: usize, at: OffsetDateTime) -> StoredEvent {
    let event = AuditEvent {
        id: format!("evt-{i:03}"),
        tenant_id: tenant.to_owned(),
        occurred_at: at,
        received_at: at,
        action: if i.is_multiple_of(3) { "user.login".into() } else { format!("document.{}", ["read", "delete"][i % 2]) },
        actor: Actor { id: format!("user-{}", i % 4), kind: ActorType::User, name: None, email: None },
        targets: if i.is_multiple_of(5) { vec![] } else { vec![Target { kind: "document".into(), id: format!("doc-{}", i % 7), name: None }] },
        outcome: if i.is_multiple_of(2) { Outcome::Success } else { Outcome::Failure },
        severity: if i.is_multiple_of(10) { Severity::Critical } else { Severity::Info },
        source: None,
        context: None,
        description: Some(format!("event number {i}")),
        metadata: None,
        signature: None,
    };
    StoredEvent { event, position: LogPosition { topic: "audit.events.v1".into(), partition: 2, offset: i as i64 } }
}

/// 30 events spread over three days, 2h apart.
pub fn dataset(tenant: &str) -> Vec<StoredEvent> {
    (0..30).map(|i| stored(tenant, i, BASE - Duration::hours(2 * i as i64))).collect()
}

/// The empty filter of `tenant`.
pub fn filter(tenant: &str) -> EventFilter {
    EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() }
}

pub async fn all_pages(store: &dyn EventStore, filter: &EventFilter, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = store.list(filter, &PageRequest { limit, after }).await.expect("list succeeds");
        assert!(page.events.len() <= limit, "page larger than its limit");
        ids.extend(page.events.iter().map(|e| e.event.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
    panic!("more than 100 pages: the cursor does not advance");
}

/// Ids of the events `keep` selects, newest first (ties by id, descending): the order every
/// read path returns.
pub fn expected(events: &[StoredEvent], keep: impl Fn(&AuditEvent) -> bool) -> Vec<String> {
    let mut kept: Vec<&AuditEvent> = events.iter().map(|s| &s.event).filter(|e| keep(e)).collect();
    kept.sort_by(|a, b| b.occurred_at.cmp(&a.occurred_at).then(b.id.cmp(&a.id)));
    kept.into_iter().map(|e| e.id.clone()).collect()
}

/// Writing the same events again, or a re-send of an id with other content, leaves one event
/// per id, the first one.
pub async fn idempotent_upsert(store: &dyn EventStore) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    for _ in 0..3 {
        store.upsert(&events).await.expect("upsert succeeds");
    }
    let mut resent = events[4].clone();
    resent.event.occurred_at = BASE + Duration::minutes(1);
    resent.event.action = "changed.action".into();
    resent.position.offset = 999;
    store.upsert(&[resent]).await.expect("upsert succeeds");

    let got = store.get(&tenant, &events[4].event.id).await.expect("get succeeds").expect("event exists");
    assert_eq!(got, events[4], "the first write of an id wins");
    let ids = all_pages(store, &filter(&tenant), 7).await;
    assert_eq!(ids, expected(&events, |_| true), "one event per id, newest first");

    // Two versions of a new id in one call (a batch holding a producer's re-send): the first
    // in the call, which is the first in log order, wins, whatever the store's concurrency.
    for round in 0..5 {
        let mut first = stored(&tenant, 100 + round, BASE - Duration::minutes(7));
        first.position.offset = 1_000 + round as i64;
        let mut later = first.clone();
        later.event.occurred_at = BASE - Duration::minutes(3);
        later.event.description = Some("a later version".into());
        later.position.offset = 2_000 + round as i64;
        store.upsert(&[first.clone(), later]).await.expect("upsert succeeds");
        let got = store.get(&tenant, &first.event.id).await.expect("get succeeds").expect("event exists");
        assert_eq!(got, first, "round {round}: the first version in the call wins");
    }
    let listed = all_pages(store, &filter(&tenant), 50).await;
    assert_eq!(listed.len(), events.len() + 5, "one row per id in the lists: {listed:?}");
}

/// A copy of a stored id with other content is reported as a conflict and not written; the
/// same content again (received later: `received_at` is not content) is a silent retry; two
/// copies of a new id in one call: the first is written, the second reported.
pub async fn conflicts_are_reported(store: &dyn EventStore) {
    let tenant = unique("t");
    let mut first = stored(&tenant, 1, BASE);
    first.event.received_at = BASE + Duration::seconds(1);
    assert!(store.upsert_checked(std::slice::from_ref(&first)).await.expect("upsert").is_empty(), "a new id");
    let mut retry = first.clone();
    retry.event.received_at = BASE + Duration::minutes(5);
    retry.position.offset = 50;
    let mut other = first.clone();
    other.event.description = Some("other content".into());
    other.position.offset = 51;
    let fresh = stored(&tenant, 2, BASE);
    let conflicts = store.upsert_checked(&[retry, other.clone(), fresh.clone()]).await.expect("upsert");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = &conflicts[0];
    assert_eq!(c.index, 1, "the copy with other content");
    assert_eq!(c.stored, auditlog_schemas::content_digest(&first.event));
    assert_eq!(c.refused, auditlog_schemas::content_digest(&other.event));
    assert_eq!(store.get(&tenant, &first.event.id).await.expect("get"), Some(first.clone()), "the first copy stays");
    assert_eq!(store.get(&tenant, &fresh.event.id).await.expect("get"), Some(fresh), "the rest of the call is written");

    let a = stored(&tenant, 3, BASE);
    let mut b = a.clone();
    b.event.action = "user.logout".into();
    let same = a.clone();
    let conflicts = store.upsert_checked(&[a.clone(), same, b]).await.expect("upsert");
    assert_eq!(conflicts.iter().map(|c| c.index).collect::<Vec<_>>(), [2], "within one call: {conflicts:?}");
    assert_eq!(store.get(&tenant, &a.event.id).await.expect("get"), Some(a), "the first in the call wins");
    assert_eq!(all_pages(store, &filter(&tenant), 10).await.len(), 3, "one row per id");
}

/// Pages of every size concatenate to the whole list, newest first, with no repeats.
pub async fn list_pages_newest_first(store: &dyn EventStore) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    store.upsert(&events).await.expect("upsert succeeds");
    let want = expected(&events, |_| true);
    for limit in [1, 4, 30, 1000] {
        assert_eq!(all_pages(store, &filter(&tenant), limit).await, want, "limit {limit}");
    }
    // A cursor comes only when more events follow: 30 events in pages of 10 are three full
    // pages, the last without a cursor; filtered (user-1: 8 events) in pages of 4, two.
    let user_1 = EventFilter { actor_id: Some("user-1".into()), outcome: Some(Outcome::Failure), ..filter(&tenant) };
    let failures_of_user_1 = expected(&events, |e| e.actor.id == "user-1" && e.outcome == Outcome::Failure).len();
    for (f, limit, matching) in [(filter(&tenant), 10, 30), (filter(&tenant), 30, 30), (user_1, failures_of_user_1, failures_of_user_1)] {
        let (mut after, mut pages) = (None, 0);
        loop {
            let page = store.list(&f, &PageRequest { limit, after }).await.expect("list succeeds");
            assert_eq!(page.events.len(), limit, "every page is full");
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, matching / limit, "limit {limit}: no empty page after the last full one");
    }
}

/// Which events a case expects.
pub type Keep = Box<dyn Fn(&AuditEvent) -> bool>;

/// Every filter the store serves, alone and combined with a time range.
pub async fn filters(store: &dyn EventStore) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    store.upsert(&events).await.expect("upsert succeeds");
    let from = BASE - Duration::hours(30);
    let to = BASE - Duration::hours(4);
    let cases: Vec<(EventFilter, Keep)> = vec![
        (EventFilter { actor_id: Some("user-1".into()), ..filter(&tenant) }, Box::new(|e| e.actor.id == "user-1")),
        (
            EventFilter { target_type: Some("document".into()), target_id: Some("doc-3".into()), ..filter(&tenant) },
            Box::new(|e| e.targets.iter().any(|t| t.id == "doc-3")),
        ),
        (EventFilter { action: Some(ActionFilter::Exact("user.login".into())), ..filter(&tenant) }, Box::new(|e| e.action == "user.login")),
        (EventFilter { action: Some(ActionFilter::Prefix("document.".into())), ..filter(&tenant) }, Box::new(|e| e.action.starts_with("document."))),
        (EventFilter { outcome: Some(Outcome::Failure), ..filter(&tenant) }, Box::new(|e| e.outcome == Outcome::Failure)),
        (EventFilter { severity: Some(Severity::Critical), ..filter(&tenant) }, Box::new(|e| e.severity == Severity::Critical)),
        (EventFilter { from: Some(from), to: Some(to), ..filter(&tenant) }, Box::new(move |e| e.occurred_at >= from && e.occurred_at < to)),
        (
            EventFilter { actor_id: Some("user-2".into()), from: Some(from), outcome: Some(Outcome::Success), ..filter(&tenant) },
            Box::new(move |e| e.actor.id == "user-2" && e.occurred_at >= from && e.outcome == Outcome::Success),
        ),
    ];
    for (i, (f, keep)) in cases.iter().enumerate() {
        let want = expected(&events, keep);
        assert!(!want.is_empty(), "case {i} selects something");
        assert_eq!(all_pages(store, f, 3).await, want, "case {i}: {f:?}");
    }
}

/// Nothing of one tenant is visible to another.
pub async fn tenant_scoped(store: &dyn EventStore) {
    let (a, b) = (unique("a"), unique("b"));
    let events = dataset(&a);
    store.upsert(&events).await.expect("upsert succeeds");
    assert!(store.get(&b, &events[0].event.id).await.expect("get succeeds").is_none(), "B reads A's event by id");
    assert!(all_pages(store, &filter(&b), 10).await.is_empty(), "B lists A's events");
    let by_actor = EventFilter { actor_id: Some("user-1".into()), ..filter(&b) };
    assert!(all_pages(store, &by_actor, 10).await.is_empty(), "B lists A's events by actor");
    // A cursor taken from A's list gives B nothing of A's: B gets an empty page, or the
    // cursor is refused as not B's.
    let page = store.list(&filter(&a), &PageRequest { limit: 2, after: None }).await.expect("list succeeds");
    match store.list(&filter(&b), &PageRequest { limit: 10, after: page.next }).await {
        Ok(from_b) => assert!(from_b.events.is_empty(), "A's cursor opened A's events to B"),
        Err(StoreError::Invalid(_)) => {}
        Err(err) => panic!("A's cursor in B's list failed: {err}"),
    }
}

/// Requests a store cannot serve are refused as the caller's mistake.
pub async fn invalid_requests(store: &dyn EventStore) {
    let tenant = unique("t");
    let bad_cursor = store.list(&filter(&tenant), &PageRequest { limit: 5, after: Some("garbage".into()) }).await;
    assert!(matches!(bad_cursor, Err(StoreError::Invalid(_))), "{bad_cursor:?}");
    let zero = store.list(&filter(&tenant), &PageRequest { limit: 0, after: None }).await;
    assert!(matches!(zero, Err(StoreError::Invalid(_))), "{zero:?}");
}

/// Purging removes exactly the events older than the cutoff, from every read path.
pub async fn purge_before(store: &dyn EventStore) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    store.upsert(&events).await.expect("upsert succeeds");
    let cutoff = BASE - Duration::hours(25);
    let old: HashSet<String> = events.iter().filter(|e| e.event.occurred_at < cutoff).map(|e| e.event.id.clone()).collect();
    assert_eq!(store.purge_before(&tenant, cutoff).await.expect("purge succeeds"), old.len() as u64);
    assert_eq!(all_pages(store, &filter(&tenant), 50).await, expected(&events, |e| e.occurred_at >= cutoff));
    for id in &old {
        assert!(store.get(&tenant, id).await.expect("get succeeds").is_none(), "{id} still readable by id");
    }
    let by_actor = EventFilter { actor_id: Some("user-1".into()), ..filter(&tenant) };
    assert_eq!(all_pages(store, &by_actor, 50).await, expected(&events, |e| e.occurred_at >= cutoff && e.actor.id == "user-1"));
    // Purged ids can be written again (a replay after retention re-creates them).
    store.upsert(&events[..1]).await.expect("upsert succeeds");
}
