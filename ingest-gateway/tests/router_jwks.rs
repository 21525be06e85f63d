//! Router tests of keys loaded from a JWKS file: tokens verify by `kid` against the file's
//! public keys, and files with keys lacking `kid`/`alg` or holding shared secrets are refused.

mod common;

use auditlog_ingest_gateway::{GatewayConfig, GatewayState};
use axum::http::StatusCode;
use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

fn jwk(alg: Algorithm, kid: Option<&str>) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg), alg).expect("public jwk derives");
    jwk.common.key_id = kid.map(str::to_owned);
    jwk
}

fn write_jwks(keys: Vec<Jwk>) -> String {
    let path = std::env::temp_dir().join(format!("{}.jwks.json", unique("gw")));
    std::fs::write(&path, serde_json::to_vec(&JwkSet { keys }).expect("jwks serializes")).expect("temp file writes");
    path.to_string_lossy().into_owned()
}

fn config_with_jwks(path: String) -> GatewayConfig {
    let mut config = test_config();
    config.auth.keys.clear();
    config.auth.jwks_file = Some(path);
    config
}

#[tokio::test]
async fn tokens_verify_against_jwks_keys_by_kid() {
    let path = write_jwks(vec![jwk(Algorithm::RS256, Some("rsa-2026")), jwk(Algorithm::ES256, Some("ec-2026"))]);
    let gw = gateway_on(&format!("kafka://{}", kafka_bootstrap()), config_with_jwks(path));
    let claims = writer_claims("acme");
    let invalid_event = json!({"action": "a.b"});
    for (alg, kid) in [(Algorithm::RS256, "rsa-2026"), (Algorithm::ES256, "ec-2026")] {
        let token = sign_raw(&json!({"alg": alg, "kid": kid}), &claims, &encoding_key(alg), alg);
        let answer = send(&gw, post_json("/v1/events", &token, &invalid_event)).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{kid}: {:?}", answer.body);
    }
    let refused = [
        sign_raw(&json!({"alg": "RS256", "kid": "ec-2026"}), &claims, &encoding_key(Algorithm::RS256), Algorithm::RS256),
        sign_raw(&json!({"alg": "RS256", "kid": "gone"}), &claims, &encoding_key(Algorithm::RS256), Algorithm::RS256),
        sign_raw(&json!({"alg": "HS256", "kid": "rsa-2026"}), &claims, &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()), Algorithm::HS256),
        token(Algorithm::HS256, &claims),
    ];
    for token in refused {
        let answer = send(&gw, post_json("/v1/events", &token, &invalid_event)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
        // A wrong kid, an unknown kid, an algorithm the key does not allow: one answer, which
        // names none of the configured key ids or algorithms.
        assert_eq!(answer.body["detail"], "authentication failed: invalid token", "{:?}", answer.body);
    }
    assert_eq!(gw.log.appends(), 0);
}

#[tokio::test]
async fn jwks_files_with_unusable_keys_are_refused_at_startup() {
    let hmac = Jwk::from_encoding_key(&EncodingKey::from_secret(HS_SECRET.as_bytes()), Algorithm::HS256).expect("jwk");
    let mut no_alg = jwk(Algorithm::RS256, Some("no-alg"));
    no_alg.common.key_algorithm = None;
    for keys in [vec![jwk(Algorithm::RS256, None)], vec![no_alg], vec![hmac]] {
        let config = config_with_jwks(write_jwks(keys));
        let log = auditlog_seams::resolve::event_log("kafka://127.0.0.1:1").expect("uri is valid");
        let codec = std::sync::Arc::new(auditlog_schemas::WireCodec::new(&registry_url(), std::time::Duration::from_secs(1)).expect("codec"));
        let tenants = std::sync::Arc::new(auditlog_ingest_gateway::tenants::InMemoryTenantRegistry::new());
        let result = GatewayState::new(config, log, codec, tenants);
        assert!(matches!(result, Err(auditlog_ingest_gateway::GatewayError::Config(_))), "{result:?}");
    }
    let missing = config_with_jwks("/nonexistent/jwks.json".into());
    let log = auditlog_seams::resolve::event_log("kafka://127.0.0.1:1").expect("uri is valid");
    let codec = std::sync::Arc::new(auditlog_schemas::WireCodec::new(&registry_url(), std::time::Duration::from_secs(1)).expect("codec"));
    let tenants = std::sync::Arc::new(auditlog_ingest_gateway::tenants::InMemoryTenantRegistry::new());
    assert!(GatewayState::new(missing, log, codec, tenants).is_err());
}
