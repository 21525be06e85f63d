//! JSON ⇄ Avro conversion keeps every event intact (property test).

use auditlog_schemas::avro::current_schema;
use auditlog_schemas::{Actor, ActorType, AuditEvent, Context, Outcome, Severity, Signature, SignatureAlg, Source, Target};
use proptest::prelude::*;
use time::OffsetDateTime;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = AuditEvent> {
    let micros = -62_135_596_800_000_000i64..253_402_300_799_000_000i64; // years 1..=9999
    (
        (text(), text(), micros.clone(), micros, "[a-z0-9_.:-]{1,32}"),
        (text(), 0..4usize, opt_text(), opt_text()),
        proptest::collection::vec((text(), text(), opt_text()), 0..4),
        (0..3usize, 0..5usize, proptest::option::of((opt_text(), opt_text(), opt_text()))),
        (proptest::option::of((opt_text(), opt_text(), opt_text(), opt_text(), opt_text())), opt_text()),
        proptest::option::of(proptest::collection::btree_map(text(), json_value(), 0..4)),
        proptest::option::of(("[A-Za-z0-9._:-]{1,16}", any::<bool>(), proptest::collection::vec(any::<u8>(), 64))),
    )
        .prop_map(|((id, tenant, occurred, received, action), actor, targets, (o, s, source), (context, description), metadata, signature)| {
            let at = |us: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).expect("in range");
            AuditEvent {
                id,
                tenant_id: tenant,
                occurred_at: at(occurred),
                received_at: at(received),
                action,
                actor: Actor {
                    id: actor.0,
                    kind: [ActorType::User, ActorType::Service, ActorType::System, ActorType::ApiKey][actor.1],
                    name: actor.2,
                    email: actor.3,
                },
                targets: targets.into_iter().map(|(kind, id, name)| Target { kind, id, name }).collect(),
                outcome: [Outcome::Success, Outcome::Failure, Outcome::Unknown][o],
                severity: [Severity::Debug, Severity::Info, Severity::Warning, Severity::Error, Severity::Critical][s],
                source: source.map(|(service, version, host)| Source { service, version, host }),
                context: context.map(|(ip, user_agent, request_id, trace_id, location)| Context {
                    ip,
                    user_agent,
                    request_id,
                    trace_id,
                    location,
                }),
                description,
                metadata: metadata.map(|m| m.into_iter().collect()),
                signature: signature.map(|(key_id, ed, value)| Signature {
                    key_id,
                    alg: if ed { SignatureAlg::Ed25519 } else { SignatureAlg::EcdsaP256Sha256 },
                    value,
                }),
            }
        })
}

proptest! {
    #[test]
    fn avro_roundtrip_is_lossless(event in event()) {
        let bytes = event.to_avro_datum().expect("encodes");
        let back = AuditEvent::from_avro_datum(current_schema(), &bytes).expect("decodes");
        prop_assert_eq!(back, event);
    }

    #[test]
    fn json_roundtrip_is_lossless(event in event()) {
        let text = serde_json::to_string(&event).expect("serializes");
        let back: AuditEvent = serde_json::from_str(&text).expect("deserializes");
        prop_assert_eq!(back, event);
    }
}
