//! The SearchIndex conformance scenarios against the real OpenSearch of the local stack.
#![cfg(feature = "real-services")]

mod common;
mod scenarios;

use std::sync::Arc;

use auditlog_seams::SearchIndex;
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use common::{opensearch_url, unique, within};
use futures::FutureExt;
use futures::future::BoxFuture;
use scenarios::search_index as s;

async fn index() -> Arc<OpenSearchIndex> {
    let config = OpenSearchConfig::new(opensearch_url(), unique("auditlog_conformance"));
    Arc::new(
        within(60, "opensearch answers", OpenSearchIndex::connect(config))
            .await
            .unwrap_or_else(|e| panic!("opensearch at {} is not usable: {e}", opensearch_url())),
    )
}

fn settle(index: &Arc<OpenSearchIndex>) -> impl Fn() -> BoxFuture<'static, ()> + Sync {
    let index = Arc::clone(index);
    move || {
        let index = Arc::clone(&index);
        async move { index.refresh().await.expect("refresh succeeds") }.boxed()
    }
}

#[tokio::test]
async fn idempotent_index_and_round_trip() {
    let i = index().await;
    s::idempotent_index_and_round_trip(i.as_ref(), &settle(&i)).await;
}

#[tokio::test]
async fn search_filters_and_pages() {
    let i = index().await;
    s::search_filters_and_pages(i.as_ref(), &settle(&i)).await;
}

#[tokio::test]
async fn stats() {
    let i = index().await;
    s::stats(i.as_ref(), &settle(&i)).await;
}

#[tokio::test]
async fn tenant_scoped() {
    let i = index().await;
    s::tenant_scoped(i.as_ref(), &settle(&i)).await;
}

#[tokio::test]
async fn invalid_requests() {
    s::invalid_requests(index().await.as_ref()).await;
}

#[tokio::test]
async fn purge_before() {
    let i = index().await;
    s::purge_before(i.as_ref(), &settle(&i)).await;
}

#[tokio::test]
async fn readiness() {
    index().await.check_ready().await.expect("opensearch is ready");
}
