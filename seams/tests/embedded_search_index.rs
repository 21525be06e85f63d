//! The SearchIndex conformance scenarios against the tantivy search index, plus its
//! durability and query-syntax specifics.

mod common;
mod scenarios;

use auditlog_seams::search_index::embedded::TantivySearchIndex;
use auditlog_seams::{EventFilter, GroupBy, IndexError, PageRequest, SearchIndex};
use futures::FutureExt;
use futures::future::BoxFuture;
use scenarios::event_store::{dataset, filter};
use scenarios::search_index as s;
use tempfile::TempDir;

fn index() -> (TempDir, TantivySearchIndex) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = TantivySearchIndex::open(dir.path()).expect("index opens");
    (dir, index)
}

/// Searchable as soon as `index` returned: nothing to settle.
fn settle() -> BoxFuture<'static, ()> {
    async {}.boxed()
}

#[tokio::test]
async fn idempotent_index_and_round_trip() {
    s::idempotent_index_and_round_trip(&index().1, &settle).await;
}

#[tokio::test]
async fn search_filters_and_pages() {
    s::search_filters_and_pages(&index().1, &settle).await;
}

#[tokio::test]
async fn stats() {
    s::stats(&index().1, &settle).await;
}

#[tokio::test]
async fn tenant_scoped() {
    s::tenant_scoped(&index().1, &settle).await;
}

#[tokio::test]
async fn invalid_requests() {
    s::invalid_requests(&index().1).await;
}

#[tokio::test]
async fn purge_before() {
    s::purge_before(&index().1, &settle).await;
}

#[tokio::test]
async fn readiness() {
    index().1.check_ready().await.expect("index is ready");
}

#[tokio::test]
async fn malformed_query_text_is_invalid_not_a_panic() {
    let (_dir, index) = index();
    index.index(&dataset("t")).await.expect("index");
    for text in ["(unbalanced", "description:[1 TO", "\"open quote", "a AND OR b", "^^^", "nosuchfield:x"] {
        let result = index.search(&EventFilter { text: Some(text.into()), ..filter("t") }, &PageRequest { limit: 5, after: None }).await;
        assert!(matches!(result, Ok(_) | Err(IndexError::Invalid(_))), "{text}: {result:?}");
    }
    let bad = index.search(&EventFilter { text: Some("(unbalanced".into()), ..filter("t") }, &PageRequest { limit: 5, after: None }).await;
    assert!(matches!(bad, Err(IndexError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn documents_survive_reopen_and_groups_are_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let index = TantivySearchIndex::open(dir.path()).expect("index opens");
        index.index(&dataset("t")).await.expect("index");
    }
    let index = TantivySearchIndex::open(dir.path()).expect("index reopens");
    let stats = index.stats(&filter("t"), Some(GroupBy::Outcome), None).await.expect("stats");
    assert_eq!(stats.total, 30);
    assert_eq!(stats.groups, vec![("failure".to_owned(), 15), ("success".to_owned(), 15)], "largest first, ties by key");
    let hit = index.search(&EventFilter { text: Some("event number 12".into()), ..filter("t") }, &PageRequest { limit: 5, after: None }).await.expect("search");
    assert_eq!(hit.events.iter().map(|e| e.event.id.as_str()).collect::<Vec<_>>(), vec!["evt-012"]);
    assert_eq!(hit.events[0].position.offset, 12, "log position kept");
}

/// Grouping by a key with hundreds of distinct values, over several segments: every group's
/// count is exact (the terms of a segment's dictionary span many blocks, and a group's
/// documents are spread over segments).
#[tokio::test]
async fn stats_group_many_keys_across_segments_exactly() {
    let (_dir, index) = index();
    let mut want: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let base = dataset("t").remove(0);
    for batch in 0..3u64 {
        let events: Vec<_> = (0..600u64)
            .map(|i| {
                let mut stored = base.clone();
                stored.event.id = format!("evt-{batch}-{i}");
                // 700 actors spread over the three segments; the last 100 of each batch share one.
                let actor = if i >= 500 { "actor-common".to_owned() } else { format!("actor-{:04}", (i * 7 + batch * 101) % 700) };
                *want.entry(actor.clone()).or_default() += 1;
                stored.event.actor.id = actor;
                stored
            })
            .collect();
        index.index(&events).await.expect("index succeeds");
    }
    let stats = index.stats(&filter("t"), Some(GroupBy::ActorId), None).await.expect("stats");
    assert_eq!(stats.total, 1_800);
    let got: std::collections::HashMap<String, u64> = stats.groups.into_iter().collect();
    assert_eq!(got.len(), want.len(), "one group per actor");
    assert_eq!(got, want, "every group counted exactly");
}
