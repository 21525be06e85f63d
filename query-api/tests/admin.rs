//! Administration: role checks on every admin endpoint, tenants and API keys on the
//! registry, a created key that authenticates until revoked, and every change recorded as an
//! audit event of the platform trail (tenant `system`, read here from the log).

#![cfg(feature = "real-services")]

mod common;

use auditlog_api_common::auth::Role;
use auditlog_query_api::router;
use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::json;
use tower::ServiceExt;

#[tokio::test]
async fn every_admin_endpoint_checks_roles() {
    let api = api().await;
    let (a, b) = (unique("ada"), unique("adb"));
    for tenant in [&a, &b] {
        api.tenants.upsert_tenant(auditlog_tenant_registry::TenantSettings::new(tenant.clone()));
    }
    let a_admin = token(Some(&a), &[Role::TenantAdmin]);
    let b_admin = token(Some(&b), &[Role::TenantAdmin]);
    let a_reader = reader(&a);
    let platform_routes = [("POST", "/v1/tenants".to_owned(), Some(json!({"id": unique("x")}))), ("GET", "/v1/tenants".to_owned(), None)];
    for (method, uri, body) in &platform_routes {
        for t in [&a_admin, &a_reader] {
            call(&api, method, uri, Some(t), body.clone()).await.assert_problem(403, None);
        }
        call(&api, method, uri, None, body.clone()).await.assert_problem(401, None);
    }
    let tenant_routes = [("GET", format!("/v1/tenants/{a}"), None), ("PATCH", format!("/v1/tenants/{a}"), Some(json!({"retention_days": 400})))];
    for (method, uri, body) in &tenant_routes {
        for t in [&b_admin, &a_reader] {
            call(&api, method, uri, Some(t), body.clone()).await.assert_problem(403, None);
        }
        call(&api, method, uri, None, body.clone()).await.assert_problem(401, None);
    }
    // A tenant admin reads its tenant's settings and raises its retention, and nothing else:
    // lowering it is the platform's (no self-erasure).
    let own = call(&api, "GET", &format!("/v1/tenants/{a}"), Some(&a_admin), None).await;
    assert_eq!(own.status.as_u16(), 200, "{}", String::from_utf8_lossy(&own.body));
    let patched = call(&api, "PATCH", &format!("/v1/tenants/{a}"), Some(&a_admin), Some(json!({"retention_days": 400}))).await;
    assert_eq!(patched.json()["retention_days"], 400, "{}", String::from_utf8_lossy(&patched.body));
    for platform_only in [
        json!({"rate_limit_per_sec": 5}),
        json!({"retention_days": 500, "dedicated_topic": true}),
        json!({"name": "A"}),
        json!({"retention_days": 30}),
        json!({"status": "disabled"}),
        json!({"legal_hold": false}),
    ] {
        call(&api, "PATCH", &format!("/v1/tenants/{a}"), Some(&a_admin), Some(platform_only)).await.assert_problem(403, None);
    }
    let kept = auditlog_tenant_registry::TenantRegistry::tenant(api.tenants.as_ref(), &a).expect("tenant a");
    assert_eq!((kept.retention_days, kept.rate_limit_per_sec, kept.dedicated_topic), (400, None, false), "refused patches changed nothing");
    let key_routes = [
        ("POST", format!("/v1/tenants/{b}/api-keys"), Some(json!({"name": "k", "roles": ["reader"]}))),
        ("GET", format!("/v1/tenants/{b}/api-keys"), None),
        ("DELETE", format!("/v1/tenants/{b}/api-keys/key_x"), None),
    ];
    for (method, uri, body) in &key_routes {
        call(&api, method, uri, Some(&a_admin), body.clone()).await.assert_problem(403, None);
        call(&api, method, uri, Some(&a_reader), body.clone()).await.assert_problem(403, None);
    }
    let own = call(&api, "GET", &format!("/v1/tenants/{a}/api-keys"), Some(&a_admin), None).await;
    assert_eq!(own.status.as_u16(), 200, "a tenant admin manages its own keys");
}

#[tokio::test]
async fn tenants_are_created_read_patched_and_audited() {
    let api = api().await;
    let id = unique("tn");
    let created = call(&api, "POST", "/v1/tenants", Some(&admin()), Some(json!({"id": id, "name": "Acme", "retention_days": 90}))).await;
    assert_eq!(created.status.as_u16(), 201, "{}", String::from_utf8_lossy(&created.body));
    let expected = json!({"id": id, "name": "Acme", "retention_days": 90, "rate_limit_per_sec": null, "dedicated_topic": false, "status": "active", "legal_hold": false, "signatures": "off"});
    assert_eq!(created.json(), expected);
    // The platform trail from here on.
    let mut trail = api.log.tail(&[api.config.topic()]).await.expect("a tail of the topic");
    call(&api, "POST", "/v1/tenants", Some(&admin()), Some(json!({"id": id}))).await.assert_problem(409, None);
    call(&api, "POST", "/v1/tenants", Some(&admin()), Some(json!({"id": "Bad Id!"}))).await.assert_problem(422, Some("id"));
    call(&api, "POST", "/v1/tenants", Some(&admin()), Some(json!({"id": "x", "color": "red"}))).await.assert_problem(422, None);
    let fetched = call(&api, "GET", &format!("/v1/tenants/{id}"), Some(&admin()), None).await.json();
    assert_eq!(fetched["retention_days"], 90);
    let patched = call(&api, "PATCH", &format!("/v1/tenants/{id}"), Some(&admin()), Some(json!({"retention_days": 30, "rate_limit_per_sec": 50}))).await;
    assert_eq!((patched.json()["retention_days"].clone(), patched.json()["pending_retention_days"].clone()), (json!(90), json!(30)), "a lowering waits for its grace period");
    assert_eq!(auditlog_tenant_registry::TenantRegistry::tenant(api.tenants.as_ref(), &id).map(|t| t.rate_limit_per_sec), Some(Some(50)), "the registry has the change");
    call(&api, "PATCH", &format!("/v1/tenants/{id}"), Some(&admin()), Some(json!({"retention_days": 0}))).await.assert_problem(422, Some("retention_days"));
    call(&api, "PATCH", &format!("/v1/tenants/{id}"), Some(&admin()), Some(json!({"retention_days": 29}))).await.assert_problem(422, Some("retention_days"));
    for bad in [json!(-1), json!("x"), json!(1.5)] {
        let body = json!({"id": unique("x"), "retention_days": bad});
        call(&api, "POST", "/v1/tenants", Some(&admin()), Some(body)).await.assert_problem(422, Some("retention_days"));
    }
    call(&api, "PATCH", &format!("/v1/tenants/{id}"), Some(&admin()), Some(json!({"rate_limit_per_sec": "fast"}))).await.assert_problem(422, Some("rate_limit_per_sec"));
    call(&api, "POST", &format!("/v1/tenants/{id}/api-keys"), Some(&admin()), Some(json!({"name": "k", "roles": "reader"}))).await.assert_problem(422, Some("roles"));
    call(&api, "POST", &format!("/v1/tenants/{id}/api-keys"), Some(&admin()), Some(json!({"roles": ["reader"]}))).await.assert_problem(422, Some("name"));
    call(&api, "POST", "/v1/tenants", Some(&admin()), Some(json!({"id": "x", "colour": "red"}))).await.assert_problem(422, Some("colour"));
    let plain = Request::builder().method("PATCH").uri(format!("/v1/tenants/{id}")).header("authorization", format!("Bearer {}", admin()));
    let plain = plain.header("content-type", "text/plain").body(Body::from(r#"{"retention_days": 7}"#)).expect("request");
    let answer = router(api.state.clone()).oneshot(plain).await.expect("infallible");
    assert_eq!(answer.status().as_u16(), 415, "an admin body must be declared application/json");
    call(&api, "GET", "/v1/tenants/nope-nope", Some(&admin()), None).await.assert_problem(404, None);
    let listed = call(&api, "GET", "/v1/tenants", Some(&admin()), None).await.json();
    assert!(listed["tenants"].as_array().expect("tenants").iter().any(|t| t["id"] == id.as_str()));

    let actions = platform_trail(&api, trail.as_mut(), &id, "tenant.update").await;
    assert_eq!(actions, ["tenant.update"]);
}

/// The actions of the platform trail (tenant `system`) that concern `tenant`, read from `tail`
/// up to the first `last`.
async fn platform_trail(api: &TestApi, tail: &mut dyn auditlog_seams::LogTail, tenant: &str, last: &str) -> Vec<String> {
    let mut actions = Vec::new();
    while actions.last().is_none_or(|a| a != last) {
        let record = within(10, "the platform's audit events", tail.next()).await.expect("a record");
        let Ok(event) = api.codec.decode(&record.payload).await else { continue };
        if event.tenant_id == "system" && event.targets.iter().any(|t| t.kind == "tenant" && t.id == tenant) {
            actions.push(event.action);
        }
    }
    actions
}

#[tokio::test]
async fn a_created_key_authenticates_until_revoked() {
    let api = api().await;
    let tenant = unique("key");
    api.tenants.upsert_tenant(auditlog_tenant_registry::TenantSettings::new(tenant.clone()));
    let tenant_admin = token(Some(&tenant), &[Role::TenantAdmin]);
    let uri = format!("/v1/tenants/{tenant}/api-keys");
    call(&api, "POST", &uri, Some(&tenant_admin), Some(json!({"name": "ci", "roles": ["root"]}))).await.assert_problem(422, Some("roles"));
    call(&api, "POST", &uri, Some(&tenant_admin), Some(json!({"name": "ci", "roles": ["platform_admin"]}))).await.assert_problem(422, Some("roles"));
    call(&api, "POST", "/v1/tenants/nobody-here/api-keys", Some(&admin()), Some(json!({"name": "ci", "roles": ["reader"]}))).await.assert_problem(404, None);
    let created = call(&api, "POST", &uri, Some(&tenant_admin), Some(json!({"name": "ci", "roles": ["reader"]}))).await;
    assert_eq!(created.status.as_u16(), 201, "{}", String::from_utf8_lossy(&created.body));
    let body = created.json();
    let (key_id, key) = (body["key_id"].as_str().expect("key_id").to_owned(), body["key"].as_str().expect("key").to_owned());
    assert!(key.starts_with("alk_"));
    let seeded = event(&tenant, 0);
    seed(&api, std::slice::from_ref(&seeded)).await;
    let listed = get(&api, "/v1/events?limit=5", &key).await;
    assert_eq!(ids(&listed.json()), vec![seeded.id.clone()], "the key reads its tenant");
    let with_header = call(&api, "GET", "/v1/events?limit=5", None, None).await;
    with_header.assert_problem(401, None);
    let keys = call(&api, "GET", &uri, Some(&tenant_admin), None).await.json();
    let record = &keys["api_keys"][0];
    assert_eq!(record["key_id"], key_id.as_str());
    assert!(!keys.to_string().contains(&key), "the secret is never listed");
    let mut trail = api.log.tail(&[api.config.topic()]).await.expect("a tail of the topic");
    let revoked = call(&api, "DELETE", &format!("{uri}/{key_id}"), Some(&tenant_admin), None).await;
    assert_eq!(revoked.status.as_u16(), 204);
    get(&api, "/v1/events?limit=5", &key).await.assert_problem(401, None);
    let again = call(&api, "DELETE", &format!("{uri}/{key_id}"), Some(&tenant_admin), None).await;
    assert_eq!(again.status.as_u16(), 204, "revoking a revoked key is a no-op");
    call(&api, "DELETE", &format!("{uri}/key_unknown"), Some(&tenant_admin), None).await.assert_problem(404, None);
    // A marker action after both revocations: the trail up to it holds one revocation.
    let marker = call(&api, "POST", &uri, Some(&tenant_admin), Some(json!({"name": "marker", "roles": ["reader"]}))).await;
    assert_eq!(marker.status.as_u16(), 201);
    let actions = platform_trail(&api, trail.as_mut(), &tenant, "api_key.create").await;
    assert_eq!(actions, ["api_key.revoke", "api_key.create"], "one revocation recorded, then the marker");
}

#[tokio::test]
async fn a_dedicated_topic_is_kept_forever_and_replicated_as_configured_never_by_broker_defaults() {
    use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;

    let mut config = test_config();
    config.dedicated_topic_replication_factor = 1;
    config.dedicated_topic_min_insync_replicas = Some(1);
    let api = api_with(config).await;
    let id = unique("ded");
    let created = call(&api, "POST", "/v1/tenants", Some(&admin()), Some(json!({"id": id, "dedicated_topic": true}))).await;
    assert_eq!(created.status.as_u16(), 201, "{}", String::from_utf8_lossy(&created.body));

    let topic = api.config.dedicated_topic(&id);
    let admin_client: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", env_or("AUDITLOG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")).create().expect("an admin client");
    let described = admin_client.describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new()).await.expect("describe configs");
    let resource = described[0].as_ref().expect("the topic exists");
    for (name, value) in [("retention.ms", "-1"), ("min.insync.replicas", "1")] {
        let entry = resource.get(name).unwrap_or_else(|| panic!("{name} of {topic}"));
        assert_eq!(entry.value.as_deref(), Some(value), "{name} of {topic}");
        assert_eq!(entry.source, ConfigSource::DynamicTopic, "{name} of {topic} is set on the topic, not inherited from the broker");
    }
}
