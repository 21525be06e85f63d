//! The canonical leaf encoding, pinned: if these bytes change, every existing ledger breaks.

use auditlog_ledger::{event_leaf_hash, leaf_bytes};
use auditlog_schemas::AuditEvent;

fn event(json: serde_json::Value) -> AuditEvent {
    serde_json::from_value(json).expect("valid event")
}

fn sample() -> serde_json::Value {
    serde_json::json!({
        "id": "evt-1",
        "tenant_id": "acme",
        "occurred_at": "2026-03-01T12:00:00.5+02:00",
        "received_at": "2026-03-01T10:00:01Z",
        "action": "document.read",
        "actor": {"id": "u1", "type": "user", "name": "Zoë"},
        "targets": [{"type": "document", "id": "d1"}],
        "outcome": "success",
        "severity": "info",
        "metadata": {"b": 1, "a": [1.5, "x\u{1}", 9007199254740993u64], "é": true}
    })
}

#[test]
fn golden_leaf_bytes() {
    let bytes = leaf_bytes(&event(sample())).expect("encodes");
    let golden = concat!(
        r#"{"action":"document.read","actor":{"id":"u1","name":"Zoë","type":"user"},"id":"evt-1","#,
        r#""metadata":{"a":[1.5,"x\u0001",9007199254740992],"b":1,"é":true},"#,
        r#""occurred_at":"2026-03-01T10:00:00.500000Z","outcome":"success","received_at":"2026-03-01T10:00:01.000000Z","#,
        r#""severity":"info","targets":[{"id":"d1","type":"document"}],"tenant_id":"acme"}"#
    );
    assert_eq!(String::from_utf8(bytes).expect("utf-8"), golden);
    // Numbers are I-JSON doubles, as RFC 8785 has it: 2^53 + 1 prints as 2^53.
    // SHA-256(0x00 || golden), pinned.
    let hash = event_leaf_hash(&event(sample())).expect("hash");
    assert_eq!(hash, auditlog_ledger::leaf_hash(golden.as_bytes()));
}

#[test]
fn same_instant_in_another_offset_is_the_same_leaf() {
    let mut other = sample();
    other["occurred_at"] = "2026-03-01T10:00:00.500Z".into();
    other["received_at"] = "2026-03-01T11:00:01+01:00".into();
    assert_eq!(leaf_bytes(&event(sample())).ok(), leaf_bytes(&event(other)).ok());
}

#[test]
fn absent_optional_fields_are_omitted_not_null() {
    let mut minimal = sample();
    let object = minimal.as_object_mut().expect("object");
    object.remove("metadata");
    let bytes = String::from_utf8(leaf_bytes(&event(minimal)).expect("encodes")).expect("utf-8");
    assert!(!bytes.contains("metadata") && !bytes.contains("null") && !bytes.contains("context"), "{bytes}");
}

#[test]
fn any_field_change_changes_the_leaf() {
    let base = event_leaf_hash(&event(sample())).expect("hash");
    let edits: [(&str, serde_json::Value); 5] = [
        ("action", "document.write".into()),
        ("outcome", "failure".into()),
        ("occurred_at", "2026-03-01T10:00:00.500001Z".into()),
        ("metadata", serde_json::json!({"b": 2})),
        ("targets", serde_json::json!([])),
    ];
    for (field, value) in edits {
        let mut edited = sample();
        edited[field] = value;
        assert_ne!(event_leaf_hash(&event(edited)).expect("hash"), base, "editing {field} kept the leaf");
    }
}
