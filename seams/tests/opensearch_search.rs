//! Index and search documents on the real OpenSearch of the local stack: `_id` = event id
//! makes re-indexing idempotent, full text finds the description, routing keeps tenants apart.
#![cfg(feature = "real-services")]

mod common;

use common::{opensearch_url, unique, within};
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::indices::{IndicesCreateParts, IndicesDeleteParts};
use opensearch::params::Refresh;
use opensearch::{IndexParts, OpenSearch, SearchParts};
use serde_json::{Value, json};

fn client() -> OpenSearch {
    let url = opensearch_url().parse().expect("opensearch url parses");
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url)).disable_proxy().build().expect("transport builds");
    OpenSearch::new(transport)
}

async fn ok(response: Result<opensearch::http::response::Response, opensearch::Error>, what: &str) -> Value {
    let response = response.unwrap_or_else(|e| panic!("opensearch at {} is not reachable ({what}): {e}", opensearch_url()));
    let status = response.status_code();
    let body: Value = response.json().await.expect("json body");
    assert!(status.is_success(), "{what} failed with {status}: {body}");
    body
}

#[tokio::test]
async fn index_then_search_by_text_and_filters() {
    let client = client();
    let index = unique("auditlog_test");
    ok(
        within(30, "create index", client.indices().create(IndicesCreateParts::Index(&index)).body(json!({
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {
                "tenant_id": {"type": "keyword"}, "action": {"type": "keyword"},
                "description": {"type": "text"}, "occurred_at": {"type": "date"},
                "metadata": {"type": "flat_object"}
            }}
        })).send()).await,
        "create index",
    )
    .await;

    let docs = [
        ("acme", "evt-1", "document.delete", "deleted the quarterly board minutes"),
        ("acme", "evt-2", "user.login", "signed in from a new device"),
        ("globex", "evt-3", "document.delete", "deleted the board minutes draft"),
    ];
    for _ in 0..2 {
        for (tenant, id, action, description) in docs {
            let body = json!({"tenant_id": tenant, "action": action, "description": description,
                              "occurred_at": "2026-11-20T09:15:30.123456Z", "metadata": {"k": {"n": "v"}}});
            ok(
                client.index(IndexParts::IndexId(&index, id)).routing(tenant).body(body).refresh(Refresh::True).send().await,
                "index document",
            )
            .await;
        }
    }

    let found = ok(
        client
            .search(SearchParts::Index(&[&index]))
            .routing(&["acme"])
            .body(json!({"query": {"bool": {
                "must": [{"match": {"description": "board minutes"}}],
                "filter": [{"term": {"tenant_id": "acme"}}]
            }}}))
            .send()
            .await,
        "search",
    )
    .await;
    let ids: Vec<&str> = found["hits"]["hits"].as_array().expect("hits").iter().map(|h| h["_id"].as_str().expect("_id")).collect();
    assert_eq!(ids, ["evt-1"], "full text within one tenant: {found}");

    let all = ok(client.search(SearchParts::Index(&[&index])).body(json!({"query": {"match_all": {}}, "track_total_hits": true})).send().await, "count").await;
    assert_eq!(all["hits"]["total"]["value"].as_u64(), Some(3), "re-indexing by _id added no documents: {all}");

    ok(client.indices().delete(IndicesDeleteParts::Index(&[&index])).send().await, "delete index").await;
}
