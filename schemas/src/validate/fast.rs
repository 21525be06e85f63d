//! The fast path of [`super::validate_json`]: an event deserialized by serde straight from its
//! text into typed fields, then checked against the same rules as the walk, without building
//! a JSON tree first. It only ever accepts. Anything it cannot accept (a serde error of any
//! kind, unknown or repeated fields included, or any broken rule) returns `None`, and the
//! caller walks the event with [`super::validate_event`], which names every problem. So the
//! walk decides every rejection and the fast path must accept exactly what the walk accepts,
//! completed the same way (the `the_fast_path_agrees_with_the_walk` test checks both).

use std::net::IpAddr;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    Accepted, IngestContext, check_size, is_action_char, is_id_char, json_len, limits, looks_like_email, parse_actor_type,
    parse_outcome, parse_severity, signature_value_problem, text_problem, to_micros_precision,
};
use crate::event::{Actor, AuditEvent, Context, Signature, SignatureAlg, Source, Target};

/// An event as the walk's contract allows it: every field optional (null is absent), no
/// unknown field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    id: Option<String>,
    tenant_id: Option<String>,
    occurred_at: Option<String>,
    received_at: Option<IgnoredAny>,
    action: Option<String>,
    actor: Option<EventActor>,
    targets: Option<Vec<EventTarget>>,
    outcome: Option<String>,
    severity: Option<String>,
    source: Option<EventSource>,
    context: Option<EventContext>,
    description: Option<String>,
    metadata: Option<Map<String, Value>>,
    signature: Option<EventSignature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSignature {
    key_id: Option<String>,
    alg: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventActor {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventTarget {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSource {
    service: Option<String>,
    version: Option<String>,
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventContext {
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    location: Option<String>,
}

/// Whether an optional string field keeps the walk's limits.
fn fits(s: &Option<String>, min: usize, max: usize, allowed: Option<fn(char) -> bool>) -> bool {
    s.as_deref().is_none_or(|s| text_problem(s, min, max, allowed, "").is_none())
}

/// A required string field: present and within the walk's limits.
fn required(s: Option<String>, max: usize, allowed: Option<fn(char) -> bool>) -> Option<String> {
    s.filter(|s| text_problem(s, 1, max, allowed, "").is_none())
}

/// An enumeration: absent (the default) or one of its symbols.
fn symbol<T: Default>(s: Option<String>, parse: fn(&str) -> Option<T>) -> Option<T> {
    match s {
        None => Some(T::default()),
        Some(s) => parse(&s),
    }
}

fn actor(a: EventActor) -> Option<Actor> {
    let short = limits::SHORT_TEXT_MAX_CHARS;
    let email_ok = fits(&a.email, 3, short, None) && a.email.as_deref().is_none_or(looks_like_email);
    if !(fits(&a.name, 0, short, None) && email_ok) {
        return None;
    }
    Some(Actor { id: required(a.id, short, None)?, kind: symbol(a.kind, parse_actor_type)?, name: a.name, email: a.email })
}

fn target(t: EventTarget) -> Option<Target> {
    let short = limits::SHORT_TEXT_MAX_CHARS;
    if !fits(&t.name, 0, short, None) {
        return None;
    }
    Some(Target { kind: required(t.kind, short, None)?, id: required(t.id, short, None)?, name: t.name })
}

fn source(s: EventSource) -> Option<Source> {
    let short = limits::SHORT_TEXT_MAX_CHARS;
    let ok = fits(&s.service, 0, short, None) && fits(&s.version, 0, short, None) && fits(&s.host, 0, short, None);
    ok.then_some(Source { service: s.service, version: s.version, host: s.host })
}

fn context(c: EventContext) -> Option<Context> {
    let short = limits::SHORT_TEXT_MAX_CHARS;
    let ip_ok = fits(&c.ip, 1, 64, None) && c.ip.as_deref().is_none_or(|ip| ip.parse::<IpAddr>().is_ok());
    let ok = ip_ok
        && fits(&c.user_agent, 0, limits::USER_AGENT_MAX_CHARS, None)
        && fits(&c.request_id, 0, short, None)
        && fits(&c.trace_id, 0, short, None)
        && fits(&c.location, 0, short, None);
    ok.then_some(Context { ip: c.ip, user_agent: c.user_agent, request_id: c.request_id, trace_id: c.trace_id, location: c.location })
}

fn signature(s: EventSignature) -> Option<Signature> {
    let value = signature_value_problem(&required(s.value, 256, None)?).ok()?;
    Some(Signature {
        key_id: required(s.key_id, limits::KEY_ID_MAX_CHARS, Some(is_id_char))?,
        alg: SignatureAlg::parse(&s.alg?)?,
        value,
    })
}

/// The event in `json` when it is valid, completed as the walk completes it; `None` when the
/// walk must decide.
pub(super) fn accept(json: &[u8], ctx: &IngestContext<'_>) -> Option<Accepted> {
    let e: Event = serde_json::from_slice(json).ok()?;
    if e.received_at.is_some()
        || !fits(&e.id, 1, limits::ID_MAX_CHARS, Some(is_id_char))
        || !fits(&e.tenant_id, 1, limits::SHORT_TEXT_MAX_CHARS, None)
        || e.tenant_id.as_deref().is_some_and(|t| t != ctx.tenant_id)
        || !fits(&e.occurred_at, 1, 64, None)
        || !fits(&e.description, 0, limits::DESCRIPTION_MAX_CHARS, None)
        || e.targets.as_ref().is_some_and(|t| t.len() > limits::TARGETS_MAX)
        || e.metadata.as_ref().is_some_and(|m| json_len(m) > limits::METADATA_MAX_BYTES)
    {
        return None;
    }
    let occurred_at = match &e.occurred_at {
        Some(text) => Some(OffsetDateTime::parse(text, &Rfc3339).ok()?.to_offset(time::UtcOffset::UTC)),
        None => None,
    };
    if occurred_at.is_some_and(|occurred| occurred - ctx.received_at > limits::MAX_FUTURE_SKEW) {
        return None;
    }
    let targets = match e.targets {
        Some(targets) => targets.into_iter().map(target).collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    let producer_id = e.id.is_some();
    if e.signature.is_some() && !producer_id {
        return None;
    }
    let event = AuditEvent {
        id: e.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        tenant_id: ctx.tenant_id.to_owned(),
        occurred_at: to_micros_precision(occurred_at.unwrap_or(ctx.received_at)),
        received_at: to_micros_precision(ctx.received_at),
        action: required(e.action, limits::ACTION_MAX_CHARS, Some(is_action_char))?,
        actor: actor(e.actor?)?,
        targets,
        outcome: symbol(e.outcome, parse_outcome)?,
        severity: symbol(e.severity, parse_severity)?,
        source: match e.source {
            Some(s) => Some(source(s)?),
            None => None,
        },
        context: match e.context {
            Some(c) => Some(context(c)?),
            None => None,
        },
        description: e.description,
        metadata: e.metadata,
        signature: match e.signature {
            Some(s) => Some(signature(s)?),
            None => None,
        },
    };
    check_size(&event).ok()?;
    Some(Accepted { event, producer_id })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::validate::validate_event;

    /// Base64 of 64 bytes, a well-formed signature value.
    const B64_64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

    fn ctx() -> IngestContext<'static> {
        IngestContext { tenant_id: "acme", received_at: datetime!(2026-11-20 12:00:00.123456789 UTC) }
    }

    /// A complete valid event: every field the contract has.
    fn full() -> Value {
        let mut v: Value = serde_json::from_str(include_str!("../../golden/v1/event.json")).expect("golden event");
        v.as_object_mut().expect("object").remove("received_at");
        v
    }

    /// `base` with `path` (dot-separated, `targets.0` for an item) set to `to`, or removed
    /// when `to` is `None`.
    fn with(base: &Value, path: &str, to: Option<Value>) -> Value {
        let mut v = base.clone();
        let mut at = &mut v;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = match part.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*part],
            };
        }
        let last = parts[parts.len() - 1];
        match (to, at) {
            (Some(to), Value::Array(items)) => items[last.parse::<usize>().expect("index")] = to,
            (Some(to), at) => at[last] = to,
            (None, Value::Object(map)) => {
                map.remove(last);
            }
            (None, Value::Array(items)) => {
                items.remove(last.parse::<usize>().expect("index"));
            }
            (None, _) => panic!("{path} is in neither an object nor an array"),
        }
        v
    }

    /// Every case: both paths see the same text; the fast path must accept exactly what the
    /// walk accepts, completed identically (a generated id aside).
    fn cases() -> Vec<Value> {
        let full = full();
        let minimal = json!({"action": "user.login", "actor": {"id": "u"}});
        let long = |n: usize| Value::String("x".repeat(n));
        let mut cases = vec![full.clone(), minimal.clone(), json!(null), json!([]), json!("event"), json!({})];
        let fields = [
            "id", "tenant_id", "occurred_at", "action", "actor", "actor.id", "actor.type", "actor.name", "actor.email",
            "targets", "targets.0", "targets.0.type", "targets.0.id", "targets.0.name", "outcome", "severity", "source",
            "source.service", "source.version", "source.host", "context", "context.ip", "context.user_agent",
            "context.request_id", "context.trace_id", "context.location", "description", "metadata", "signature",
        ];
        let values = [
            json!(null), json!(""), json!(7), json!(true), json!([]), json!({}), json!("ok"), json!("a b"), long(65),
            long(129), long(257), long(1025), long(8193), json!({"x": 1}), json!([{"type": "t", "id": "i"}]),
        ];
        for field in fields {
            cases.push(with(&full, field, None));
            for value in &values {
                cases.push(with(&full, field, Some(value.clone())));
            }
        }
        let more = [
            ("id", json!("évt")), ("id", json!("a:b.c_d-e")), ("action", json!("User.Login")), ("action", json!("user.log in")),
            ("occurred_at", json!("2026-11-20T12:04:00Z")), ("occurred_at", json!("2026-11-20T12:06:00Z")),
            ("occurred_at", json!("2026-11-20T14:00:00+02:00")), ("occurred_at", json!("2026-11-20T12:00:00.123456789Z")),
            ("occurred_at", json!("2026-11-20 12:00:00")), ("occurred_at", json!("1999-01-01T00:00:00Z")),
            ("tenant_id", json!("acme")), ("tenant_id", json!("globex")), ("received_at", json!(null)),
            ("received_at", json!("2026-11-20T12:00:00Z")), ("unknown", json!(1)), ("unknown", json!(null)),
            ("actor.unknown", json!(1)), ("targets.0.unknown", json!(1)), ("source.unknown", json!(1)),
            ("context.unknown", json!(1)), ("actor.type", json!("api_key")), ("actor.type", json!("robot")),
            ("actor.email", json!("a@b")), ("actor.email", json!("ab")), ("actor.email", json!("a b@c")),
            ("actor.email", json!("@b.c")), ("context.ip", json!("::1")), ("context.ip", json!("256.1.1.1")),
            ("context.ip", json!("fe80::1%eth0")), ("outcome", json!("failure")), ("outcome", json!("Success")),
            ("severity", json!("critical")), ("severity", json!("fatal")), ("metadata", json!({"big": "y".repeat(16 * 1024)})),
            ("metadata", json!({"n": 1.5e300, "deep": {"a": [1, null, {"b": "\u{1F600}"}]}})), ("description", json!("\u{1F600}".repeat(8192))),
            ("description", json!("\u{1F600}".repeat(8193))), ("description", json!("line\nbreak \"quoted\" \\ back")),
            ("targets", json!((0..16).map(|i| json!({"type": "t", "id": i.to_string()})).collect::<Vec<_>>())),
            ("targets", json!((0..17).map(|i| json!({"type": "t", "id": i.to_string()})).collect::<Vec<_>>())),
            ("targets", json!([{"type": "t", "id": "same"}, {"type": "t", "id": "same"}])), ("targets", json!([null])),
            // Over the 32 KiB event limit, every field within its own.
            ("source.service", json!("s".repeat(256))), ("metadata", json!({"a": "y".repeat(16_000), "b": "z".repeat(3_000)})),
        ];
        for (field, value) in more {
            cases.push(with(&full, field, Some(value.clone())));
            if !field.contains('.') {
                cases.push(with(&minimal, field, Some(value)));
            }
        }
        // A signed event: every signature field, the id rule.
        let signed = with(&full, "signature", Some(json!({"key_id": "k-1", "alg": "ed25519", "value": B64_64})));
        cases.push(signed.clone());
        cases.push(with(&signed, "id", None));
        cases.push(with(&with(&signed, "id", None), "signature.alg", Some(json!("rsa"))));
        let signature_cases = [
            ("signature.alg", json!("ecdsa-p256-sha256")), ("signature.alg", json!("ED25519")), ("signature.key_id", json!("k/1")),
            ("signature.key_id", json!("k".repeat(128))), ("signature.key_id", json!("k".repeat(129))),
            ("signature.value", json!("AAAA")), ("signature.value", json!(B64_64.trim_end_matches('='))),
            ("signature.value", json!(format!("{B64_64}=="))), ("signature.value", json!("*".repeat(88))), ("signature.extra", json!(1)),
        ];
        for (field, value) in signature_cases {
            cases.push(with(&signed, field, Some(value)));
        }
        for field in ["signature.key_id", "signature.alg", "signature.value"] {
            cases.push(with(&signed, field, None));
            for value in &values {
                cases.push(with(&signed, field, Some(value.clone())));
            }
        }
        let huge = with(&with(&full, "metadata", Some(json!({"a": "y".repeat(16_000)}))), "description", Some(json!("d".repeat(8_000))));
        cases.push(with(&huge, "context.user_agent", Some(json!("u".repeat(1_024)))));
        cases
    }

    fn agree(case: &Value) -> bool {
        let text = &serde_json::to_string(case).expect("serializes");
        let fast = accept(text.as_bytes(), &ctx());
        let walked = serde_json::from_str::<Value>(text).ok().map(|v| validate_event(v, &ctx()));
        match (fast, walked) {
            (Some(Accepted { event, producer_id }), Some(Ok(mut walked))) => {
                if !producer_id {
                    assert!(uuid::Uuid::parse_str(&event.id).is_ok(), "{text}: generated id");
                    walked.id = event.id.clone();
                }
                assert_eq!(event, walked, "{text}: both paths complete the event alike");
                assert_eq!(producer_id, case.get("id").is_some_and(|id| !id.is_null()), "{text}: whether the producer chose the id");
                true
            }
            (Some(_), other) => panic!("{text}: the fast path accepted what the walk refuses: {other:?}"),
            (None, Some(Ok(_))) => panic!("{text}: a valid event missed the fast path"),
            (None, _) => false,
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_walk() {
        let (mut accepted, mut refused) = (0, 0);
        for case in cases() {
            if agree(&case) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(accepted > 50 && refused > 200, "both outcomes are exercised: {accepted} accepted, {refused} refused");
    }

    /// Text the walk reads differently from serde's typed view goes to the walk: a repeated
    /// key (the walk keeps the last), invalid JSON.
    #[test]
    fn repeated_keys_and_bad_json_are_left_to_the_walk() {
        let repeated = r#"{"action": "a.b", "actor": {"id": "u"}, "action": "c.d"}"#;
        assert!(accept(repeated.as_bytes(), &ctx()).is_none());
        let walked = validate_event(serde_json::from_str(repeated).expect("json"), &ctx()).expect("valid");
        assert_eq!(walked.action, "c.d");
        for bad in [r#"{"action": "a.b", "actor": {"id": "u"}"#, r#"{"action": "\ud800", "actor": {"id": "u"}}"#, "", "nul"] {
            assert!(accept(bad.as_bytes(), &ctx()).is_none(), "{bad}");
        }
    }
}
