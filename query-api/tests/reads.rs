//! Lists, filters, paging, get by id, stats and retention against the real store and index
//! (the cross-tenant matrix, tenant B never seeing or reaching tenant A's events, is in
//! `isolation.rs`, over these backends and the embedded ones).

#![cfg(feature = "real-services")]

mod common;

use std::collections::HashSet;

use auditlog_schemas::AuditEvent;
use auditlog_tenant_registry::TenantSettings;
use common::*;
use serde_json::Value;
use time::OffsetDateTime;

/// Which seeded events a filter should select.
type Keep = Box<dyn Fn(&AuditEvent) -> bool>;

async fn seeded(n: usize) -> (TestApi, String, Vec<AuditEvent>) {
    let api = api().await;
    let tenant = api.tenant("ra");
    let events: Vec<AuditEvent> = (0..n).map(|i| event(&tenant, i)).collect();
    seed(&api, &events).await;
    (api, tenant, events)
}

fn expected(events: &[AuditEvent], keep: impl Fn(&AuditEvent) -> bool) -> Vec<String> {
    let mut kept: Vec<&AuditEvent> = events.iter().filter(|e| keep(e)).collect();
    kept.sort_by(|a, b| (b.occurred_at, &b.id).cmp(&(a.occurred_at, &a.id)));
    kept.into_iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn every_filter_selects_what_it_names_newest_first() {
    let (api, tenant, events) = seeded(24).await;
    let t = reader(&tenant);
    let all = get(&api, "/v1/events?limit=100", &t).await;
    assert_eq!(all.status.as_u16(), 200);
    let body = all.json();
    assert_eq!(ids(&body), expected(&events, |_| true));
    assert_eq!(body["next_cursor"], Value::Null);
    let first: AuditEvent = serde_json::from_value(body["events"][0].clone()).expect("an AuditEvent");
    assert_eq!(first, *events.iter().find(|e| e.id == first.id).expect("seeded"), "served exactly as stored");
    let cases: Vec<(String, Keep)> = vec![
        ("actor_id=user-1".into(), Box::new(|e| e.actor.id == "user-1")),
        ("action=user.login".into(), Box::new(|e| e.action == "user.login")),
        ("action=document.*".into(), Box::new(|e| e.action.starts_with("document."))),
        ("target_type=document&target_id=doc-2".into(), Box::new(|e| e.targets[0].id == "doc-2")),
        ("target_id=doc-3".into(), Box::new(|e| e.targets[0].id == "doc-3")),
        ("outcome=failure".into(), Box::new(|e| e.outcome == auditlog_schemas::Outcome::Failure)),
        ("severity=critical".into(), Box::new(|e| e.severity == auditlog_schemas::Severity::Critical)),
        ("q=zebra".into(), Box::new(|e| e.description.as_deref().is_some_and(|d| d.contains("zebra")))),
        ("actor_id=user-0&outcome=success".into(), Box::new(|e| e.actor.id == "user-0" && e.outcome == auditlog_schemas::Outcome::Success)),
    ];
    for (query, keep) in cases {
        let answer = get(&api, &format!("/v1/events?limit=100&{query}"), &t).await;
        assert_eq!(answer.status.as_u16(), 200, "{query}");
        let want = expected(&events, keep);
        assert!(!want.is_empty(), "{query} selects something");
        assert_eq!(ids(&answer.json()), want, "{query}");
    }
    let mid = events[10].occurred_at;
    let from = mid.format(&time::format_description::well_known::Rfc3339).expect("formats");
    let answer = get(&api, &format!("/v1/events?limit=100&from={}", urlencode(&from)), &t).await;
    assert_eq!(ids(&answer.json()), expected(&events, |e| e.occurred_at >= mid));
    let answer = get(&api, &format!("/v1/events?limit=100&to={}", urlencode(&from)), &t).await;
    assert_eq!(ids(&answer.json()), expected(&events, |e| e.occurred_at < mid));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn cursors_page_through_everything_once_and_bind_to_tenant_and_query() {
    let (api, tenant, events) = seeded(23).await;
    let t = reader(&tenant);
    for query in ["", "&outcome=failure"] {
        let mut seen = Vec::new();
        let mut uri = format!("/v1/events?limit=5{query}");
        loop {
            let body = get(&api, &uri, &t).await.json();
            seen.extend(ids(&body));
            match body["next_cursor"].as_str() {
                Some(cursor) => uri = format!("/v1/events?limit=5{query}&cursor={cursor}"),
                None => break,
            }
        }
        let want = if query.is_empty() { expected(&events, |_| true) } else { expected(&events, |e| e.outcome == auditlog_schemas::Outcome::Failure) };
        assert_eq!(seen, want, "paging {query:?}");
    }
    let page = get(&api, "/v1/events?limit=5", &t).await.json();
    let cursor = page["next_cursor"].as_str().expect("more pages").to_owned();
    let other = reader(&api.tenant("rb"));
    get(&api, &format!("/v1/events?limit=5&cursor={cursor}"), &other).await.assert_problem(400, Some("cursor"));
    get(&api, &format!("/v1/events?limit=5&actor_id=user-1&cursor={cursor}"), &t).await.assert_problem(400, Some("cursor"));
    let mut forged = cursor.clone();
    forged.replace_range(2..3, if &cursor[2..3] == "A" { "B" } else { "A" });
    get(&api, &format!("/v1/events?limit=5&cursor={forged}"), &t).await.assert_problem(400, Some("cursor"));
}

#[tokio::test]
async fn stats_count_exactly_by_group_and_bucket() {
    let (api, tenant, events) = seeded(20).await;
    let t = reader(&tenant);
    let body = get(&api, "/v1/stats?group_by=action&interval=1h", &t).await.json();
    assert_eq!(body["total"], events.len());
    let mut groups: Vec<(String, u64)> =
        body["groups"].as_array().expect("groups").iter().map(|g| (g["key"].as_str().expect("key").to_owned(), g["count"].as_u64().expect("count"))).collect();
    groups.sort();
    let mut want: Vec<(String, u64)> = ["document.delete", "document.read", "user.login", "user.logout"]
        .iter()
        .map(|a| ((*a).to_owned(), events.iter().filter(|e| e.action == *a).count() as u64))
        .collect();
    want.sort();
    assert_eq!(groups, want);
    let histogram_total: u64 = body["histogram"].as_array().expect("histogram").iter().map(|b| b["count"].as_u64().expect("count")).sum();
    assert_eq!(histogram_total, events.len() as u64);
    assert!(body["histogram"][0]["start"].as_str().is_some_and(|s| s.ends_with('Z')));
    let failures = get(&api, "/v1stats?x=1", &t).await;
    failures.assert_problem(404, None);
    let by_outcome = get(&api, "/v1/stats?group_by=outcome&severity=critical", &t).await.json();
    let critical = events.iter().filter(|e| e.severity == auditlog_schemas::Severity::Critical).count();
    assert_eq!(by_outcome["total"], critical);
}

#[tokio::test]
async fn events_past_retention_are_not_served_and_are_swept() {
    let api = api().await;
    let tenant = api.tenant("ret");
    api.tenants.upsert_tenant(TenantSettings { retention_days: 1, ..TenantSettings::new(tenant.clone()) });
    let mut old = event(&tenant, 1);
    old.occurred_at = OffsetDateTime::now_utc() - time::Duration::days(3);
    let fresh = event(&tenant, 2);
    seed(&api, &[old.clone(), fresh.clone()]).await;
    let t = reader(&tenant);
    assert_eq!(ids(&get(&api, "/v1/events?limit=10", &t).await.json()), vec![fresh.id.clone()]);
    get(&api, &format!("/v1/events/{}", old.id), &t).await.assert_problem(404, None);
    assert_eq!(get(&api, "/v1/stats", &t).await.json()["total"], 1);
    let (rows, docs) = auditlog_query_api::retention::sweep(&api.state).await;
    assert!(rows >= 1 && docs >= 1, "swept {rows} rows, {docs} documents");
    assert!(api.store.get(&tenant, &old.id).await.expect("store answers").is_none(), "purged from the store");
    assert!(api.store.get(&tenant, &fresh.id).await.expect("store answers").is_some(), "fresh events stay");
    let unique_ids: HashSet<String> = ids(&get(&api, "/v1/events?limit=10", &t).await.json()).into_iter().collect();
    assert_eq!(unique_ids.len(), 1);
}
