//! The design contract's validation rules, with every offending field named.

use auditlog_schemas::{IngestContext, Outcome, Rejection, Severity, validate_event};
use serde_json::{Value, json};
use time::macros::datetime;

fn ctx() -> IngestContext<'static> {
    IngestContext { tenant_id: "acme", received_at: datetime!(2026-11-20 10:00:00 UTC) }
}

fn fields(input: Value) -> Vec<String> {
    match validate_event(input, &ctx()) {
        Err(Rejection::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        Err(other) => panic!("expected invalid, got {other:?}"),
        Ok(event) => panic!("expected invalid, got a valid event with id {}", event.id),
    }
}

#[test]
fn minimal_event_gets_id_defaults_and_timestamps() {
    let event = validate_event(json!({"action": "user.login", "actor": {"id": "u1"}}), &ctx()).expect("valid");
    assert_eq!(event.tenant_id, "acme");
    assert_eq!(event.occurred_at, ctx().received_at);
    assert_eq!(event.received_at, ctx().received_at);
    assert_eq!(event.outcome, Outcome::Unknown);
    assert_eq!(event.severity, Severity::Info);
    let id = uuid::Uuid::parse_str(&event.id).expect("assigned id is a uuid");
    assert_eq!(id.get_version_num(), 7);
}

#[test]
fn producer_id_is_kept_and_occurred_at_normalized_to_utc() {
    let event = validate_event(
        json!({"id": "evt-1", "tenant_id": "acme", "action": "a", "actor": {"id": "u"},
                "occurred_at": "2026-11-20T11:00:00+02:00"}),
        &ctx(),
    )
    .expect("valid");
    assert_eq!(event.id, "evt-1");
    assert_eq!(event.occurred_at, datetime!(2026-11-20 09:00:00 UTC));
}

#[test]
fn every_offending_field_is_named() {
    let got = fields(json!({
        "action": "User Login!",
        "actor": {"type": "robot", "email": "nope", "extra": 1},
        "targets": [{"type": "doc", "id": "1"}, {"id": ""}, 7],
        "outcome": "maybe",
        "severity": 3,
        "occurred_at": "yesterday",
        "context": {"ip": "300.1.1.1"},
        "metadata": [1, 2],
        "unknown_field": true,
    }));
    for field in [
        "action", "actor.id", "actor.type", "actor.email", "actor.extra", "targets[1].type", "targets[1].id",
        "targets[2]", "outcome", "severity", "occurred_at", "context.ip", "metadata", "unknown_field",
    ] {
        assert!(got.contains(&field.to_owned()), "{field} not named in {got:?}");
    }
}

#[test]
fn required_fields() {
    assert_eq!(fields(json!({})), ["action", "actor"]);
    assert_eq!(fields(json!({"action": "a", "actor": {}})), ["actor.id"]);
    assert_eq!(fields(json!({"action": "", "actor": {"id": "u"}})), ["action"]);
    assert_eq!(fields(json!({"action": "a", "actor": "u"})), ["actor"]);
}

#[test]
fn not_an_object() {
    for input in [json!([]), json!("x"), json!(null), json!(1)] {
        assert_eq!(fields(input), [""]);
    }
}

#[test]
fn action_length_and_charset() {
    let ok = "a".repeat(128);
    assert!(validate_event(json!({"action": ok, "actor": {"id": "u"}}), &ctx()).is_ok());
    assert_eq!(fields(json!({"action": "a".repeat(129), "actor": {"id": "u"}})), ["action"]);
    for good in ["user.login", "doc:v2_delete-all", "0"] {
        assert!(validate_event(json!({"action": good, "actor": {"id": "u"}}), &ctx()).is_ok(), "{good}");
    }
    for bad in ["User.login", "a b", "é", "a/b"] {
        assert_eq!(fields(json!({"action": bad, "actor": {"id": "u"}})), ["action"], "{bad}");
    }
}

#[test]
fn occurred_at_future_limit_is_five_minutes() {
    let base = json!({"action": "a", "actor": {"id": "u"}});
    let with = |t: &str| {
        let mut v = base.clone();
        v["occurred_at"] = json!(t);
        v
    };
    assert!(validate_event(with("2026-11-20T10:05:00Z"), &ctx()).is_ok());
    assert_eq!(fields(with("2026-11-20T10:05:01Z")), ["occurred_at"]);
    assert!(validate_event(with("1999-01-01T00:00:00Z"), &ctx()).is_ok());
}

#[test]
fn targets_at_most_sixteen() {
    let targets: Vec<Value> = (0..17).map(|i| json!({"type": "doc", "id": i.to_string()})).collect();
    assert!(validate_event(json!({"action": "a", "actor": {"id": "u"}, "targets": targets[..16]}), &ctx()).is_ok());
    assert_eq!(fields(json!({"action": "a", "actor": {"id": "u"}, "targets": targets})), ["targets"]);
}

#[test]
fn metadata_size_limit() {
    let big = "x".repeat(16 * 1024);
    assert_eq!(fields(json!({"action": "a", "actor": {"id": "u"}, "metadata": {"k": big}})), ["metadata"]);
    let nested = json!({"action": "a", "actor": {"id": "u"}, "metadata": {"a": {"b": [1, {"c": null}]}}});
    assert!(validate_event(nested, &ctx()).is_ok());
}

#[test]
fn whole_event_size_limit() {
    let text = "x".repeat(8 * 1024);
    let long = |c: &str| c.repeat(250);
    let targets: Vec<Value> = (0..16).map(|i| json!({"type": long("t"), "id": format!("{i}{}", long("i")), "name": long("n")})).collect();
    let event = json!({"action": "a", "actor": {"id": "u"}, "description": text, "targets": targets,
                       "metadata": {"k": "m".repeat(16 * 1024 - 16)}, "context": {"user_agent": "u".repeat(1024)}});
    assert_eq!(fields(event), [""]);
}

#[test]
fn tenant_mismatch_is_its_own_rejection() {
    let input = json!({"tenant_id": "globex", "action": "a", "actor": {"id": "u"}});
    assert_eq!(validate_event(input, &ctx()), Err(Rejection::TenantMismatch));
}

#[test]
fn received_at_is_not_accepted_from_producers() {
    assert_eq!(fields(json!({"action": "a", "actor": {"id": "u"}, "received_at": "2026-11-20T10:00:00Z"})), ["received_at"]);
}

#[test]
fn nulls_mean_absent() {
    let event = validate_event(
        json!({"action": "a", "actor": {"id": "u", "name": null}, "targets": null, "metadata": null, "id": null}),
        &ctx(),
    )
    .expect("valid");
    assert!(event.targets.is_empty() && event.metadata.is_none() && event.actor.name.is_none());
}

#[test]
fn timestamps_are_completed_at_microsecond_precision() {
    let received_at = time::macros::datetime!(2026-01-31 12:00:00.123456789 UTC);
    let ctx = IngestContext { tenant_id: "acme", received_at };
    let input = serde_json::json!({"action": "user.login", "actor": {"id": "u1"}, "occurred_at": "2026-01-31T11:59:59.987654321Z"});
    let event = validate_event(input, &ctx).expect("valid");
    assert_eq!(event.received_at, time::macros::datetime!(2026-01-31 12:00:00.123456 UTC));
    assert_eq!(event.occurred_at, time::macros::datetime!(2026-01-31 11:59:59.987654 UTC));
}

fn signed_event() -> Value {
    json!({"id": "evt-1", "action": "a", "actor": {"id": "u"}, "occurred_at": "2026-11-20T09:00:00Z",
           "signature": {"key_id": "docs-api.2026:1", "alg": "ed25519", "value": "A".repeat(86) + "=="}})
}

#[test]
fn a_signature_is_kept_and_its_fields_are_checked() {
    let event = validate_event(signed_event(), &ctx()).expect("valid");
    let signature = event.signature.expect("kept");
    assert_eq!((signature.key_id.as_str(), signature.alg, signature.value.len()), ("docs-api.2026:1", auditlog_schemas::SignatureAlg::Ed25519, 64));
    let mut bad = signed_event();
    bad["signature"] = json!({"key_id": "a/b", "alg": "rsa", "value": "AAAA", "extra": 1});
    let got = fields(bad);
    for field in ["signature.key_id", "signature.alg", "signature.value", "signature.extra"] {
        assert!(got.contains(&field.to_owned()), "{field} not named in {got:?}");
    }
    for (value, name) in [(json!("not base64!"), "signature.value"), (json!(7), "signature.value"), (json!("k".repeat(129)), "signature.key_id")] {
        let mut bad = signed_event();
        let key = name.rsplit('.').next().expect("leaf");
        bad["signature"][key] = value;
        assert_eq!(fields(bad), vec![name.to_owned()]);
    }
    let mut bad = signed_event();
    bad["signature"] = json!("ed25519:abc");
    assert_eq!(fields(bad), vec!["signature".to_owned()]);
    let mut missing = signed_event();
    missing["signature"] = json!({});
    let got = fields(missing);
    assert_eq!(got, vec!["signature.key_id", "signature.alg", "signature.value"], "each required field named");
    // An ECDSA signature is r || s, 64 bytes, not DER.
    let mut der = signed_event();
    der["signature"]["alg"] = json!("ecdsa-p256-sha256");
    der["signature"]["value"] = json!("A".repeat(94));
    assert_eq!(fields(der), vec!["signature.value"]);
}

#[test]
fn a_signed_event_carries_its_id() {
    let mut unsigned_id = signed_event();
    unsigned_id.as_object_mut().expect("object").remove("id");
    match validate_event(unsigned_id, &ctx()) {
        Err(Rejection::Invalid(errors)) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, "id");
            assert_eq!(errors[0].message, "a signed event carries its id");
        }
        other => panic!("expected the id named, got {other:?}"),
    }
    // A null signature is no signature.
    let mut null = signed_event();
    null["signature"] = Value::Null;
    null.as_object_mut().expect("object").remove("id");
    assert!(validate_event(null, &ctx()).expect("valid").signature.is_none());
}
