//! End to end on the real local stack with the real binary in every role: a platform admin
//! creates a tenant and an API key through the query API; the key ingests through the
//! gateway; both processors materialize the events; the query API lists, gets, searches and
//! counts them; tenant B sees none of it; a revoked key stops working at the gateway.
#![cfg(feature = "real-services")]

mod distributed;

use std::time::{Duration, Instant};

use distributed::{Setup, until};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn get(http: &reqwest::Client, url: &str, key: &str) -> (StatusCode, Value) {
    let answer = http.get(url).header("X-API-Key", key).send().await.expect("query api answers");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_created_through_the_query_api_ingests_at_the_gateway_and_reads_back() {
    let setup = Setup::new("e2e", "auditlog_e2e_test").await;
    let (_gateway, gateway) = setup.serve("gateway").await;
    let (_query, query) = setup.serve("query-api").await;
    let _processors = (setup.processor("scylla"), setup.processor("opensearch"));
    let http = reqwest::Client::new();
    let suffix = &setup.prefix["e2e".len()..];
    let (tenant, other) = (format!("acme{suffix}"), format!("beta{suffix}"));

    // Administration through the query API, as a platform admin.
    let admin = setup.token(None, "platform_admin");
    for id in [&tenant, &other] {
        let created = http.post(format!("{query}/v1/tenants")).bearer_auth(&admin).json(&json!({"id": id, "name": id})).send().await.expect("create tenant");
        assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap_or_default());
    }
    let mut keys = Vec::new();
    for id in [&tenant, &other] {
        let created = http
            .post(format!("{query}/v1/tenants/{id}/api-keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "e2e", "roles": ["writer", "reader"]}))
            .send()
            .await
            .expect("create key");
        assert_eq!(created.status(), StatusCode::CREATED);
        let body: Value = created.json().await.expect("json");
        keys.push((body["key_id"].as_str().expect("key_id").to_owned(), body["key"].as_str().expect("key").to_owned()));
    }
    let (key_id, key) = keys[0].clone();
    let other_key = keys[1].1.clone();

    let events: Vec<Value> = (0..12)
        .map(|n| json!({"action": format!("document.{}", ["read", "update", "delete"][n % 3]), "actor": {"id": format!("user-{}", n % 2)},
                         "targets": [{"type": "document", "id": format!("doc-{n}")}], "description": format!("quarterly report edit {n}")}))
        .collect();
    // The new key works at the gateway within a second or so (the registry is shared).
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let answer = http.post(format!("{gateway}/v1/events")).header("X-API-Key", &key).json(&events[0]).send().await.expect("gateway answers");
        if answer.status() == StatusCode::ACCEPTED {
            break answer.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
        }
        assert!(Instant::now() < deadline, "the new key is still refused by the gateway: {}", answer.status());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut ids = vec![first];
    let batch = http.post(format!("{gateway}/v1/events/batch")).header("X-API-Key", &key).json(&events[1..]).send().await.expect("batch");
    assert_eq!(batch.status(), StatusCode::ACCEPTED);
    let body: Value = batch.json().await.expect("json");
    ids.extend(body["results"].as_array().expect("results").iter().map(|r| r["id"].as_str().expect("id").to_owned()));

    // Both views fill in; the query API serves every read.
    until("every event is listed", 60, || async {
        get(&http, &format!("{query}/v1/events?limit=100"), &key).await.1["events"].as_array().is_some_and(|e| e.len() == ids.len())
    })
    .await;
    // A listed event's by-id row is written last (it marks the event complete): wait for it.
    until("get-by-id serves a listed event", 30, || async { get(&http, &format!("{query}/v1/events/{}", ids[3]), &key).await.0 == StatusCode::OK }).await;
    let (status, one) = get(&http, &format!("{query}/v1/events/{}", ids[3]), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["description"], "quarterly report edit 3");
    assert_eq!(one["tenant_id"], tenant.as_str());
    let (_, by_actor) = get(&http, &format!("{query}/v1/events?actor_id=user-1"), &key).await;
    assert_eq!(by_actor["events"].as_array().map(Vec::len), Some(6));
    until("full-text search finds the event", 30, || async {
        get(&http, &format!("{query}/v1/events?q=edit%207"), &key).await.1["events"].as_array().is_some_and(|e| e.iter().any(|x| x["id"] == ids[7].as_str()))
    })
    .await;
    let (_, stats) = get(&http, &format!("{query}/v1/stats?group_by=action"), &key).await;
    assert_eq!(stats["total"], 12, "{stats}");
    assert!(stats["groups"].as_array().expect("groups").iter().all(|g| g["count"] == 4), "{stats}");

    // Tenant B sees nothing of tenant A's.
    let (status, _) = get(&http, &format!("{query}/v1/events/{}", ids[3]), &other_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, foreign) = get(&http, &format!("{query}/v1/events?limit=100"), &other_key).await;
    assert_eq!(foreign["events"].as_array().map(Vec::len), Some(0), "{foreign}");

    // Revoked through the query API: the gateway refuses the key within a few seconds.
    let revoked = http.delete(format!("{query}/v1/tenants/{tenant}/api-keys/{key_id}")).bearer_auth(&admin).send().await.expect("revoke");
    assert!(revoked.status().is_success(), "{}", revoked.status());
    until("the revoked key is refused by the gateway", 10, || async {
        http.post(format!("{gateway}/v1/events")).header("X-API-Key", &key).json(&events[0]).send().await.expect("gateway").status()
            == StatusCode::UNAUTHORIZED
    })
    .await;
}
