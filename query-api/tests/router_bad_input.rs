//! Bad input, auth and roles through the router (`oneshot`): every refusal is problem+json
//! naming the parameter, and nothing is a 5xx. The backends are the real ones (constructing
//! them needs the stack), but no request here reaches them with data.

#![cfg(feature = "real-services")]

mod common;

use auditlog_api_common::auth::Role;
use common::*;

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let api = api().await;
    let t = reader(&api.tenant("bad"));
    let cases = [
        ("/v1/events?from=yesterday", "from"),
        ("/v1/events?to=2025-13-01T00:00:00Z", "to"),
        ("/v1/events?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z", "from"),
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?limit=100000", "limit"),
        ("/v1/events?limit=ten", "limit"),
        ("/v1/events?bogus=1", "bogus"),
        ("/v1/events?actor_id=a&actor_id=b", "actor_id"),
        ("/v1/events?outcome=maybe", "outcome"),
        ("/v1/events?severity=loud", "severity"),
        ("/v1/events?action=User%20Login", "action"),
        ("/v1/events?q=", "q"),
        ("/v1/events?cursor=garbage", "cursor"),
        ("/v1/events?cursor=eyJ9.eyJ9", "cursor"),
        ("/v1/stats?group_by=color", "group_by"),
        ("/v1/stats?interval=fortnight", "interval"),
        ("/v1/stats?interval=1s&from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z", "interval"),
        ("/v1/stats?from=2020-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", "from"),
        ("/v1/events/export?format=xml", "format"),
        ("/v1/events/export?format=csv&limit=5", "limit"),
        ("/v1/events/stream?nope=1", "nope"),
    ];
    for (uri, field) in cases {
        let answer = get(&api, uri, &t).await;
        assert_eq!(answer.status.as_u16(), 400, "{uri}: {}", String::from_utf8_lossy(&answer.body));
        answer.assert_problem(400, Some(field));
    }
}

#[tokio::test]
async fn credentials_and_roles_are_checked_on_reads() {
    let api = api().await;
    let tenant = api.tenant("auth");
    get(&api, "/v1/events", "not-a-token").await.assert_problem(401, None);
    let missing = call(&api, "GET", "/v1/events", None, None).await;
    missing.assert_problem(401, None);
    assert!(missing.headers["www-authenticate"].to_str().expect("ascii").starts_with("Bearer"));
    get(&api, "/v1/events", &token(Some(&tenant), &[Role::Writer])).await.assert_problem(403, None);
    get(&api, "/v1/stats", &token(Some(&tenant), &[Role::TenantAdmin])).await.assert_problem(403, None);
    get(&api, "/v1/events", &admin()).await.assert_problem(403, None);
    let forged = format!("{}x", reader(&tenant));
    get(&api, "/v1/events", &forged).await.assert_problem(401, None);
    get(&api, "/v1/nowhere", &reader(&tenant)).await.assert_problem(404, None);
    call(&api, "DELETE", "/v1/events", Some(&reader(&tenant)), None).await.assert_problem(405, None);
}

#[tokio::test]
async fn a_live_tail_needs_websocket_or_event_stream() {
    let api = api().await;
    get(&api, "/v1/events/stream", &reader(&api.tenant("tail"))).await.assert_problem(406, None);
}

#[tokio::test]
async fn ops_routes_answer() {
    let api = api().await;
    let health = call(&api, "GET", "/healthz", None, None).await;
    assert_eq!(health.status.as_u16(), 200);
    let ready = call(&api, "GET", "/readyz", None, None).await;
    assert_eq!(ready.status.as_u16(), 200, "{}", String::from_utf8_lossy(&ready.body));
    let openapi = call(&api, "GET", "/openapi.json", None, None).await.json();
    for path in ["/v1/events", "/v1/events/{id}", "/v1/stats", "/v1/events/export", "/v1/events/stream", "/v1/tenants", "/v1/tenants/{id}/api-keys"] {
        assert!(openapi["paths"][path].is_object(), "{path} documented");
    }
    let docs = call(&api, "GET", "/docs/", None, None).await;
    assert_eq!(docs.status.as_u16(), 200);
    get(&api, "/v1/events?limit=1", &reader(&api.tenant("m"))).await;
    let metrics = String::from_utf8(call(&api, "GET", "/metrics", None, None).await.body).expect("utf8");
    assert!(metrics.contains("auditlog_query_requests_total"), "{metrics}");
}

/// A token that fails against the configuration (issuer, audience, key id, algorithm,
/// signature) is refused with one generic detail: the caller learns nothing of the
/// configuration; an expired token still says so.
#[tokio::test]
async fn auth_errors_do_not_reveal_the_configuration() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let api = api().await;
    let tenant = api.tenant("authcfg");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |iss: &str, aud: &str, exp: u64| serde_json::json!({"sub": "t", "tenant_id": tenant, "roles": ["reader"], "iss": iss, "aud": aud, "exp": exp});
    let sign = |header: Header, claims: &serde_json::Value, secret: &[u8]| jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signs");
    let ok = claims("auditlog", "auditlog", now + 600);
    let with_kid = |alg, kid: &str| Header { kid: Some(kid.to_owned()), ..Header::new(alg) };
    let mismatches = [
        sign(Header::new(Algorithm::HS256), &claims("https://evil.example", "auditlog", now + 600), HS_SECRET.as_bytes()),
        sign(Header::new(Algorithm::HS256), &claims("auditlog", "someone-else", now + 600), HS_SECRET.as_bytes()),
        sign(with_kid(Algorithm::HS256, "no-such-key"), &ok, HS_SECRET.as_bytes()),
        sign(with_kid(Algorithm::HS512, "dev"), &ok, HS_SECRET.as_bytes()),
        sign(Header::new(Algorithm::HS256), &ok, b"another-secret-another-secret-another-secret"),
    ];
    for (i, token) in mismatches.iter().enumerate() {
        let answer = get(&api, "/v1/events", token).await;
        answer.assert_problem(401, None);
        let detail = answer.json()["detail"].as_str().unwrap_or_default().to_owned();
        assert_eq!(detail, "authentication failed: invalid token", "case {i}");
        for word in ["issuer", "audience", "kid", "key id", "algorithm", "HS256", "HS512", "dev", "auditlog", "signature"] {
            assert!(!detail.contains(word), "case {i}: {detail:?} reveals {word:?}");
        }
    }
    let expired = sign(Header::new(Algorithm::HS256), &claims("auditlog", "auditlog", now - 3600), HS_SECRET.as_bytes());
    let answer = get(&api, "/v1/events", &expired).await;
    answer.assert_problem(401, None);
    assert_eq!(answer.json()["detail"], "authentication failed: token expired", "a client needs to know to refresh");
}

/// With a metrics listener, `/metrics` answers there and 404 on the API's listener; the
/// API's listener keeps its other routes.
#[tokio::test]
async fn metrics_move_to_their_own_listener() {
    let api = api().await;
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (main_url, metrics_url) = (format!("http://{}", main.local_addr().expect("addr")), format!("http://{}", metrics.local_addr().expect("addr")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(auditlog_query_api::run_with_metrics_listener(main, Some(metrics), api.state.clone(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let scraped = http.get(format!("{metrics_url}/metrics")).send().await.expect("metrics listener answers");
    assert_eq!(scraped.status().as_u16(), 200);
    assert!(scraped.text().await.expect("body").contains("# TYPE"), "Prometheus text");
    assert_eq!(http.get(format!("{main_url}/metrics")).send().await.expect("main answers").status().as_u16(), 404);
    assert_eq!(http.get(format!("{main_url}/healthz")).send().await.expect("main answers").status().as_u16(), 200);
    assert_eq!(http.get(format!("{metrics_url}/v1/events")).send().await.expect("metrics answers").status().as_u16(), 404, "only /metrics there");
    let _ = stop.send(());
    served.await.expect("joins").expect("serves and stops");
    assert!(http.get(format!("{metrics_url}/metrics")).send().await.is_err(), "the metrics listener closes with the API");
}
