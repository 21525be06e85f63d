//! Router tests (`oneshot`) of authentication: the JWT attack set, API keys and roles. A
//! request whose credential passes reaches validation, so the positive controls send an invalid
//! event and expect 422, while every refused credential gets 401/403 and writes nothing.

mod common;

use auditlog_ingest_gateway::auth::Role;
use auditlog_ingest_gateway::tenants::{TenantPatch, TenantSettings, TenantStatus};
use axum::http::StatusCode;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// An event that fails validation (missing actor), to tell "authenticated" (422) apart.
fn invalid_event() -> Value {
    json!({"action": "user.login"})
}

async fn with_token(gw: &TestGateway, token: &str) -> Answer {
    let answer = send(gw, post_json("/v1/events", token, &invalid_event())).await;
    assert_eq!(gw.log.appends(), 0, "nothing may be written: {:?}", answer.body);
    answer
}

/// Words that would tell a caller how the gateway is configured: never in a 401's detail (the
/// specific reason is logged instead).
const CONFIGURATION_WORDS: [&str; 12] = ["issuer", "audience", "key id", "kid", "algorithm", "HS256", "RS256", "ES256", "EdDSA", "auditlog", "rsa", "signature"];

/// Asserts a 401 problem with a Bearer challenge whose detail mentions `reason` and nothing
/// of the configuration.
async fn refused(gw: &TestGateway, token: &str, reason: &str) {
    let answer = with_token(gw, token).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{reason}: {:?}", answer.body);
    assert_eq!(answer.problem(), "unauthenticated");
    assert_eq!(answer.content_type(), "application/problem+json");
    let challenge = answer.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(reason), "expected {reason:?} in {detail:?}");
    for word in CONFIGURATION_WORDS {
        assert!(!detail.to_lowercase().contains(&word.to_lowercase()), "{detail:?} reveals configuration ({word:?})");
    }
}

#[tokio::test]
async fn valid_tokens_of_every_configured_algorithm_authenticate() {
    let gw = gateway();
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let answer = with_token(&gw, &token(alg, &writer_claims("acme"))).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{alg:?}: {:?}", answer.body);
    }
    let with_kid = sign_raw(&json!({"alg": "RS256", "kid": "rsa"}), &writer_claims("acme"), &encoding_key(Algorithm::RS256), Algorithm::RS256);
    assert_eq!(with_token(&gw, &with_kid).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let gw = gateway();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = writer_claims("acme");
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!("{}.{}.", b64(&json!({"alg": alg, "typ": "JWT"})), b64(&claims));
        refused(&gw, &unsigned, "malformed token header").await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let gw = gateway();
    let confused = EncodingKey::from_secret(RSA_PUBLIC.as_bytes());
    let claims = writer_claims("acme");
    let no_kid = sign_raw(&json!({"alg": "HS256"}), &claims, &confused, Algorithm::HS256);
    refused(&gw, &no_kid, "invalid token").await;
    let kid_rsa = sign_raw(&json!({"alg": "HS256", "kid": "rsa"}), &claims, &confused, Algorithm::HS256);
    refused(&gw, &kid_rsa, "invalid token").await;
}

/// Configuration mismatches (wrong issuer or audience, unknown `kid`, an algorithm the key
/// does not allow, a bad signature) all answer the same "invalid token": a caller cannot probe
/// which issuer, audience, key ids or algorithms are configured.
#[tokio::test]
async fn configuration_mismatches_are_indistinguishable_to_the_caller() {
    let gw = gateway();
    let mut wrong_aud = writer_claims("acme");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = writer_claims("acme");
    wrong_iss["iss"] = json!("https://evil.example");
    let key = encoding_key(Algorithm::HS256);
    let unknown_kid = sign_raw(&json!({"alg": "HS256", "kid": "no-such-key"}), &writer_claims("acme"), &key, Algorithm::HS256);
    let wrong_alg = sign_raw(&json!({"alg": "HS384", "kid": "rsa"}), &writer_claims("acme"), &EncodingKey::from_secret(b"x"), Algorithm::HS384);
    let attacker = EncodingKey::from_secret(b"attacker-secret-attacker-secret-attacker");
    let bad_signature = sign_raw(&json!({"alg": "HS256"}), &writer_claims("acme"), &attacker, Algorithm::HS256);
    let mut details = std::collections::BTreeSet::new();
    for token in [writer_token_with(&wrong_aud), writer_token_with(&wrong_iss), unknown_kid, wrong_alg, bad_signature] {
        let answer = with_token(&gw, &token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
        details.insert(answer.body["detail"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(details.into_iter().collect::<Vec<_>>(), ["authentication failed: invalid token"]);
}

#[tokio::test]
async fn expired_immature_and_wrong_audience_or_issuer_are_refused() {
    let gw = gateway();
    let mut claims = writer_claims("acme");
    claims["exp"] = json!(now() - 3600);
    refused(&gw, &writer_token_with(&claims), "expired").await;
    let mut claims = writer_claims("acme");
    claims["nbf"] = json!(now() + 3600);
    refused(&gw, &writer_token_with(&claims), "nbf").await;
    let mut claims = writer_claims("acme");
    claims["aud"] = json!("someone-else");
    refused(&gw, &writer_token_with(&claims), "invalid token").await;
    let mut claims = writer_claims("acme");
    claims["iss"] = json!("https://evil.example");
    refused(&gw, &writer_token_with(&claims), "invalid token").await;
}

fn writer_token_with(claims: &Value) -> String {
    token(Algorithm::HS256, claims)
}

#[tokio::test]
async fn missing_required_claims_are_refused() {
    let gw = gateway();
    for claim in ["exp", "iss", "aud", "sub"] {
        let mut claims = writer_claims("acme");
        claims.as_object_mut().expect("object").remove(claim);
        refused(&gw, &writer_token_with(&claims), claim).await;
    }
    let mut claims = writer_claims("acme");
    claims.as_object_mut().expect("object").remove("tenant_id");
    refused(&gw, &writer_token_with(&claims), "tenant_id").await;
}

#[tokio::test]
async fn forged_signatures_and_tampered_claims_are_refused() {
    let gw = gateway();
    let good = writer_token("acme");
    let (message, signature) = good.rsplit_once('.').expect("three parts");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    refused(&gw, &format!("{message}.{flipped}{}", &signature[1..]), "invalid token").await;
    let (header, _) = message.split_once('.').expect("header and claims");
    let other_claims = token(Algorithm::HS256, &writer_claims("globex"));
    let foreign_payload = other_claims.split('.').nth(1).expect("claims part");
    refused(&gw, &format!("{header}.{foreign_payload}.{signature}"), "invalid token").await;
    let attacker = EncodingKey::from_secret(b"attacker-secret-attacker-secret-attacker");
    refused(&gw, &sign_raw(&json!({"alg": "HS256"}), &writer_claims("acme"), &attacker, Algorithm::HS256), "invalid token").await;
}

#[tokio::test]
async fn key_pointing_headers_are_refused_even_with_a_valid_signature() {
    let gw = gateway();
    let key = encoding_key(Algorithm::HS256);
    let claims = writer_claims("acme");
    let jwk = json!({"kty": "oct", "k": "YXR0YWNrZXItc2VjcmV0LWF0dGFja2VyLXNlY3JldA"});
    for (name, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", jwk),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = json!({"alg": "HS256"});
        header[name] = value;
        refused(&gw, &sign_raw(&header, &claims, &key, Algorithm::HS256), name).await;
    }
    for kid in ["../../../../dev/null", "' OR 1=1 --", "https://evil.example/key"] {
        refused(&gw, &sign_raw(&json!({"alg": "HS256", "kid": kid}), &claims, &key, Algorithm::HS256), "invalid token").await;
    }
}

#[tokio::test]
async fn missing_or_non_bearer_credentials_are_401() {
    let gw = gateway();
    let answer = send(&gw, request("/v1/events", None, Some("application/json"), invalid_event().to_string())).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.headers.contains_key("www-authenticate"));
    let basic = axum::http::Request::post("/v1/events")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(invalid_event().to_string()))
        .expect("request builds");
    assert_eq!(send(&gw, basic).await.status, StatusCode::UNAUTHORIZED);
    refused(&gw, "not.a.jwt", "malformed").await;
    assert_eq!(gw.log.appends(), 0);
}

#[tokio::test]
async fn roles_are_enforced() {
    let gw = gateway();
    let mut reader = writer_claims("acme");
    reader["roles"] = json!(["reader", "tenant_admin"]);
    let answer = with_token(&gw, &writer_token_with(&reader)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
    assert_eq!(answer.problem(), "forbidden");
    let mut admin = writer_claims("acme");
    admin.as_object_mut().expect("object").remove("tenant_id");
    admin["roles"] = json!(["platform_admin", "writer"]);
    let answer = with_token(&gw, &writer_token_with(&admin)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a tenant-less admin cannot ingest: {:?}", answer.body);
}

#[tokio::test]
async fn api_keys_authenticate_by_header_until_revoked() {
    let gw = gateway();
    gw.tenants.upsert_tenant(TenantSettings::new("acme"));
    let writer = gw.tenants.create_api_key("acme", "ci", vec![Role::Writer]).expect("tenant exists");
    let reader = gw.tenants.create_api_key("acme", "dash", vec![Role::Reader]).expect("tenant exists");
    assert_eq!(with_token(&gw, &writer.key).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let by_header = axum::http::Request::post("/v1/events")
        .header("x-api-key", &writer.key)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(invalid_event().to_string()))
        .expect("request builds");
    assert_eq!(send(&gw, by_header).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(with_token(&gw, &reader.key).await.status, StatusCode::FORBIDDEN);
    let mismatched = json!({"action": "a.b", "actor": {"id": "u"}, "tenant_id": "globex"});
    assert_eq!(send(&gw, post_json("/v1/events", &writer.key, &mismatched)).await.status, StatusCode::FORBIDDEN);
    refused(&gw, "alk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "api key").await;
    assert!(gw.tenants.revoke_api_key("acme", &writer.key_id));
    refused(&gw, &writer.key, "revoked").await;
}

/// Asserts a 403 problem+json and that nothing was written.
async fn forbidden(gw: &TestGateway, credential: &str, why: &str) {
    let answer = with_token(gw, credential).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{why}: {:?}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json", "{why}");
}

#[tokio::test]
async fn tokens_of_unregistered_or_reserved_tenants_are_403() {
    let gw = gateway();
    forbidden(&gw, &writer_token("nobody-created-me"), "a tenant nobody registered").await;
    for reserved in ["system", "dlq"] {
        forbidden(&gw, &writer_token(reserved), reserved).await;
    }
    // Registering a reserved id behind the admin API's back does not make it usable.
    gw.tenants.upsert_tenant(TenantSettings::new("system"));
    forbidden(&gw, &writer_token("system"), "system, even when present in the registry").await;
    let key = gw.tenants.create_api_key("system", "smuggled", vec![Role::Writer]).expect("upsert skips checks");
    assert_ne!(with_token(&gw, &key.key).await.status, StatusCode::UNPROCESSABLE_ENTITY, "a reserved tenant's key is refused");
    assert_eq!(with_token(&gw, &writer_token("acme")).await.status, StatusCode::UNPROCESSABLE_ENTITY, "a registered tenant passes");
}

#[tokio::test]
async fn disabled_deleting_and_deleted_tenants_cannot_ingest() {
    use auditlog_ingest_gateway::tenants::TenantAdmin;
    let gw = gateway();
    let key = gw.tenants.create_api_key("acme", "ci", vec![Role::Writer]).expect("tenant exists");
    assert_eq!(with_token(&gw, &key.key).await.status, StatusCode::UNPROCESSABLE_ENTITY, "active: authenticated");
    let disabled = TenantPatch { status: Some(TenantStatus::Disabled), ..TenantPatch::default() };
    gw.tenants.update_tenant("acme", disabled).await.expect("known tenant");
    forbidden(&gw, &writer_token("acme"), "disabled, token").await;
    forbidden(&gw, &key.key, "disabled, api key").await;
    let deleting = TenantPatch { deletion: Some(Some(time::OffsetDateTime::now_utc() + time::Duration::days(30))), ..TenantPatch::default() };
    gw.tenants.update_tenant("acme", deleting).await.expect("known tenant");
    forbidden(&gw, &writer_token("acme"), "deleting").await;
    let deleted = TenantPatch { status: Some(TenantStatus::Deleted), ..TenantPatch::default() };
    gw.tenants.update_tenant("acme", deleted).await.expect("known tenant");
    forbidden(&gw, &writer_token("acme"), "deleted, token").await;
    assert_eq!(with_token(&gw, &key.key).await.status, StatusCode::UNAUTHORIZED, "a tombstoned tenant's key no longer authenticates");
    assert_eq!(with_token(&gw, &writer_token("globex")).await.status, StatusCode::UNPROCESSABLE_ENTITY, "other tenants are untouched");
}
