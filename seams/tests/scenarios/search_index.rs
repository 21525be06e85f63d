//! Conformance scenarios of the [`SearchIndex`] seam, written once and run against every
//! implementation. `settle` makes what was indexed visible to search (a refresh).

#![allow(dead_code, missing_docs)]

use std::collections::HashMap;

use auditlog_schemas::Outcome;
use auditlog_seams::{ActionFilter, EventFilter, GroupBy, IndexError, PageRequest, SearchIndex, StoredEvent};
use futures::future::BoxFuture;
use time::Duration;

use crate::common::unique;
use crate::scenarios::event_store::{BASE, dataset, expected, filter};

pub type Settle<'a> = &'a (dyn Fn() -> BoxFuture<'static, ()> + Sync);

async fn all_pages(index: &dyn SearchIndex, filter: &EventFilter, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = index.search(filter, &PageRequest { limit, after }).await.expect("search succeeds");
        ids.extend(page.events.iter().map(|e| e.event.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
    panic!("more than 100 pages: the cursor does not advance");
}

/// Indexing the same events again leaves one document per id, with every field intact; so
/// does a batch of which only some events are indexed already.
pub async fn idempotent_index_and_round_trip(index: &dyn SearchIndex, settle: Settle<'_>) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    index.index(&events[..events.len() / 2]).await.expect("index succeeds");
    for _ in 0..3 {
        index.index(&events).await.expect("index succeeds");
    }
    settle().await;
    let page = index.search(&filter(&tenant), &PageRequest { limit: 1000, after: None }).await.expect("search succeeds");
    assert_eq!(page.events.len(), events.len(), "one document per id");
    let by_id: HashMap<&str, &StoredEvent> = events.iter().map(|e| (e.event.id.as_str(), e)).collect();
    for got in &page.events {
        assert_eq!(Some(&got), by_id.get(got.event.id.as_str()), "{} changed in the index", got.event.id);
    }
    let stats = index.stats(&filter(&tenant), None, None).await.expect("stats succeed");
    assert_eq!(stats.total, events.len() as u64, "counts unchanged by re-indexing");
}

/// Full text, filters and paging, newest first.
pub async fn search_filters_and_pages(index: &dyn SearchIndex, settle: Settle<'_>) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    index.index(&events).await.expect("index succeeds");
    settle().await;
    assert_eq!(all_pages(index, &filter(&tenant), 7).await, expected(&events, |_| true));
    let text = EventFilter { text: Some("number 7".into()), ..filter(&tenant) };
    assert_eq!(all_pages(index, &text, 10).await, vec!["evt-007".to_owned()], "full text");
    let cases: Vec<(EventFilter, crate::scenarios::event_store::Keep)> = vec![
        (EventFilter { actor_id: Some("user-1".into()), ..filter(&tenant) }, Box::new(|e| e.actor.id == "user-1")),
        (EventFilter { action: Some(ActionFilter::Prefix("document.".into())), ..filter(&tenant) }, Box::new(|e| e.action.starts_with("document."))),
        (
            EventFilter { target_type: Some("document".into()), target_id: Some("doc-3".into()), outcome: Some(Outcome::Failure), ..filter(&tenant) },
            Box::new(|e| e.outcome == Outcome::Failure && e.targets.iter().any(|t| t.id == "doc-3")),
        ),
        (
            EventFilter { from: Some(BASE - Duration::hours(20)), to: Some(BASE - Duration::hours(6)), ..filter(&tenant) },
            Box::new(|e| e.occurred_at >= BASE - Duration::hours(20) && e.occurred_at < BASE - Duration::hours(6)),
        ),
    ];
    for (i, (f, keep)) in cases.iter().enumerate() {
        let want = expected(&events, keep);
        assert!(!want.is_empty(), "case {i} selects something");
        assert_eq!(all_pages(index, f, 4).await, want, "case {i}: {f:?}");
    }
}

/// Exact counts, groups and histogram.
pub async fn stats(index: &dyn SearchIndex, settle: Settle<'_>) {
    let tenant = unique("t");
    let events = dataset(&tenant);
    index.index(&events).await.expect("index succeeds");
    settle().await;
    let stats = index.stats(&filter(&tenant), Some(GroupBy::Action), Some(Duration::days(1))).await.expect("stats succeed");
    assert_eq!(stats.total, 30);
    let mut want: HashMap<String, u64> = HashMap::new();
    for e in &events {
        *want.entry(e.event.action.clone()).or_default() += 1;
    }
    let got: HashMap<String, u64> = stats.groups.into_iter().collect();
    assert_eq!(got, want, "groups by action");
    assert_eq!(stats.histogram.iter().map(|(_, n)| n).sum::<u64>(), 30, "histogram covers every event");
    assert!(stats.histogram.windows(2).all(|w| w[0].0 < w[1].0), "histogram oldest first");
}

/// Nothing of one tenant is visible to another.
pub async fn tenant_scoped(index: &dyn SearchIndex, settle: Settle<'_>) {
    let (a, b) = (unique("a"), unique("b"));
    index.index(&dataset(&a)).await.expect("index succeeds");
    settle().await;
    assert!(all_pages(index, &filter(&b), 10).await.is_empty(), "B sees A's events");
    let text = EventFilter { text: Some("number".into()), ..filter(&b) };
    assert!(all_pages(index, &text, 10).await.is_empty(), "B finds A's events by text");
    assert_eq!(index.stats(&filter(&b), Some(GroupBy::Action), None).await.expect("stats").total, 0);
}

/// Bad cursors and limits are the caller's mistake.
pub async fn invalid_requests(index: &dyn SearchIndex) {
    let bad = index.search(&filter("t"), &PageRequest { limit: 5, after: Some("garbage".into()) }).await;
    assert!(matches!(bad, Err(IndexError::Invalid(_))), "{bad:?}");
    let zero = index.search(&filter("t"), &PageRequest { limit: 0, after: None }).await;
    assert!(matches!(zero, Err(IndexError::Invalid(_))), "{zero:?}");
}

/// Purging removes exactly the tenant's events older than the cutoff.
pub async fn purge_before(index: &dyn SearchIndex, settle: Settle<'_>) {
    let (tenant, other) = (unique("t"), unique("o"));
    let events = dataset(&tenant);
    index.index(&events).await.expect("index succeeds");
    index.index(&dataset(&other)).await.expect("index succeeds");
    settle().await;
    let cutoff = BASE - Duration::hours(25);
    let old = events.iter().filter(|e| e.event.occurred_at < cutoff).count() as u64;
    assert_eq!(index.purge_before(&tenant, cutoff).await.expect("purge succeeds"), old);
    settle().await;
    assert_eq!(all_pages(index, &filter(&tenant), 50).await, expected(&events, |e| e.occurred_at >= cutoff));
    assert_eq!(index.stats(&filter(&other), None, None).await.expect("stats").total, 30, "other tenant untouched");
}
