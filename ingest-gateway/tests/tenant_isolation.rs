//! A writer of tenant B cannot write into tenant A, over the embedded file log (no stack
//! needed): with a JWT or an API key, one event or a batch (all of A's, or A's among B's), a
//! body naming A is refused (403 problem+json naming `tenant_id`) and nothing reaches the
//! log. The positive control, B's own invalid event, passes authentication and reaches
//! validation (422), so the 403s are about the tenant, not the credential. (The real-stack
//! round trip, B's own events landing under B, is in `real_services.rs`.)

mod common;

use auditlog_ingest_gateway::auth::Role;
use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn a_writer_of_b_cannot_write_into_a() {
    let dir = std::env::temp_dir().join(unique("gw-isolation"));
    let gw = gateway_on(&format!("file://{}", dir.display()), test_config());
    let (a, b) = ("acme", "globex");
    let b_key = gw.tenants.create_api_key(b, "ci", vec![Role::Writer]).expect("b is registered");
    let as_a = json!({"action": "a.b", "actor": {"id": "u"}, "tenant_id": a});
    let as_b = json!({"action": "a.b", "actor": {"id": "u"}, "tenant_id": b});
    let invalid_b = json!({"action": "Not An Action!", "actor": {"id": "u"}, "tenant_id": b});
    for (kind, credential) in [("jwt writer", writer_token(b)), ("api key writer", b_key.key.clone())] {
        let posts = [
            ("/v1/events", as_a.clone()),
            ("/v1/events/batch", json!([as_a, as_a])),
            ("/v1/events/batch", json!([as_b, as_a, as_b])),
        ];
        for (path, body) in posts {
            let answer = send(&gw, post_json(path, &credential, &body)).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{kind} {path} {body}: {:?}", answer.body);
            assert_eq!(answer.headers["content-type"], "application/problem+json");
            assert!(mentions(&answer.body, "tenant_id"), "{kind}: the problem names tenant_id: {}", answer.body);
            assert_eq!(gw.log.appends(), 0, "{kind} {path}: nothing reached the log");
        }
        let own = send(&gw, post_json("/v1/events", &credential, &invalid_b)).await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{kind}: b's own event passes authentication: {:?}", own.body);
    }
    assert_eq!(gw.log.appends(), 0);
    drop(gw);
    std::fs::remove_dir_all(&dir).expect("the log directory is removed");
}

fn mentions(body: &Value, field: &str) -> bool {
    body.to_string().contains(field)
}
