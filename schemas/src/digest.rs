//! The content digest of an event: what tells a producer's retry (the same id, the same
//! content: idempotent) from a conflict (the same id, other content: refused or
//! dead-lettered, never silently dropped). Defined once, here; the gateway's idempotency
//! cache, the event stores (which keep it beside the id) and the processors all use it.
//!
//! # Canonical encoding (version 1)
//! The digest is SHA-256 over the bytes `auditlog.content.v1\n` followed by a canonical JSON
//! text of the producer-supplied content of the event:
//!
//! - the event's JSON form (as the query API returns it), **without** the key and the
//!   server-assigned fields: `id` and `tenant_id` (the key the digest is compared under) and
//!   `received_at` (set by the gateway, different on every retry);
//! - `occurred_at` as an integer of microseconds since the Unix epoch (the precision events
//!   travel at in Avro), and **left out** when it equals `received_at`: the gateway defaults
//!   an absent `occurred_at` to the receive time, so a retry of an event sent without one has
//!   another `occurred_at` but the same content;
//! - defaults applied (`outcome`, `severity`, `actor.type`, `targets`) and absent optional
//!   fields left out, exactly as validation completes an event: an explicit default and an
//!   omitted field are the same content;
//! - objects with their keys sorted by their UTF-8 bytes, arrays in order, no white space,
//!   strings and numbers as `serde_json` writes them (a number keeps its JSON type: `1` and
//!   `1.0` differ).
//!
//! The encoding is a function of the [`AuditEvent`] alone, so the gateway (from the
//! validated event) and a processor (from the event decoded from Avro) compute the same
//! digest, and a view rebuilt by a replay gets the digests back.
//!
//! Generated ids: an event whose id the gateway generated has a digest like any other and the
//! stores keep it, but its id is new by construction (UUIDv7), so it can never meet another
//! copy with other content; the gateway's cache does not remember it.

use sha2::{Digest as _, Sha256};

use crate::AuditEvent;
use crate::avro::to_micros;

/// SHA-256 of an event's canonical content ([`content_digest`]).
pub type ContentDigest = [u8; 32];

/// Prefix of the hashed bytes: names the encoding, so that a later one cannot collide.
const DOMAIN: &[u8] = b"auditlog.content.v1\n";

/// The digest of `event`'s producer-supplied content (see the module docs).
pub fn content_digest(event: &AuditEvent) -> ContentDigest {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(canonical_content(event).as_bytes());
    hasher.finalize().into()
}

/// The canonical JSON text [`content_digest`] hashes.
pub fn canonical_content(event: &AuditEvent) -> String {
    let mut value = match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(map)) => map,
        // An AuditEvent always serializes to an object (its fields are plain data).
        _ => serde_json::Map::new(),
    };
    for server_assigned in ["id", "tenant_id", "received_at", "occurred_at"] {
        value.remove(server_assigned);
    }
    if event.occurred_at != event.received_at {
        value.insert("occurred_at".into(), to_micros(event.occurred_at).into());
    }
    let mut out = String::with_capacity(512);
    write_canonical(&serde_json::Value::Object(value), &mut out);
    out
}

/// Lower-case hex of a digest, for logs and dead-letter headers.
pub fn hex(digest: &ContentDigest) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes `value` with object keys sorted at every level and no insignificant white space.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn event(value: serde_json::Value) -> AuditEvent {
        let mut base = json!({
            "id": "e1", "tenant_id": "acme", "action": "user.login",
            "occurred_at": "2026-11-20T12:00:00Z", "received_at": "2026-11-20T12:00:05Z",
            "actor": {"id": "u1", "type": "user"},
        });
        base.as_object_mut().expect("object").extend(value.as_object().expect("object").clone());
        serde_json::from_value(base).expect("an event")
    }

    #[test]
    fn the_key_and_server_fields_are_not_content() {
        let a = event(json!({}));
        let b = event(json!({"id": "e2", "tenant_id": "globex", "received_at": "2030-01-01T00:00:00Z"}));
        assert_eq!(content_digest(&a), content_digest(&b));
    }

    #[test]
    fn every_producer_field_is_content() {
        let base = content_digest(&event(json!({})));
        for change in [
            json!({"action": "user.logout"}),
            json!({"occurred_at": "2026-11-20T12:00:00.000001Z"}),
            json!({"actor": {"id": "u1", "type": "service"}}),
            json!({"actor": {"id": "u1", "type": "user", "name": "Ann"}}),
            json!({"targets": [{"type": "doc", "id": "d1"}]}),
            json!({"outcome": "success"}),
            json!({"severity": "error"}),
            json!({"source": {"service": "s"}}),
            json!({"context": {"ip": "10.0.0.1"}}),
            json!({"description": "x"}),
            json!({"metadata": {"a": 1}}),
            json!({"metadata": {"a": 1.0}}),
        ] {
            assert_ne!(content_digest(&event(change.clone())), base, "{change} must change the digest");
        }
    }

    #[test]
    fn key_order_and_explicit_defaults_do_not_matter() {
        let a = event(json!({"metadata": {"a": 1, "b": {"y": [1, 2], "x": null}}}));
        let b = event(json!({"metadata": {"b": {"x": null, "y": [1, 2]}, "a": 1}, "outcome": "unknown", "severity": "info", "targets": []}));
        assert_eq!(content_digest(&a), content_digest(&b));
    }

    /// An event sent without `occurred_at` gets its receive time: a retry received later has
    /// another `occurred_at` and the same content.
    #[test]
    fn a_defaulted_occurred_at_is_not_content() {
        let mut first = event(json!({}));
        first.occurred_at = datetime!(2026-11-20 12:00:05 UTC);
        first.received_at = first.occurred_at;
        let mut retry = first.clone();
        retry.received_at = datetime!(2026-11-20 12:07:00 UTC);
        retry.occurred_at = retry.received_at;
        assert_eq!(content_digest(&first), content_digest(&retry));
        let mut explicit = retry.clone();
        explicit.occurred_at = datetime!(2026-11-20 12:00:05 UTC);
        assert_ne!(content_digest(&first), content_digest(&explicit), "an explicit time is content");
    }

    #[test]
    fn the_encoding_is_pinned() {
        let e = event(json!({"metadata": {"z": "ü", "a": [true, 1.5]}}));
        assert_eq!(
            canonical_content(&e),
            r#"{"action":"user.login","actor":{"id":"u1","type":"user"},"metadata":{"a":[true,1.5],"z":"ü"},"occurred_at":1795176000000000,"outcome":"unknown","severity":"info","targets":[]}"#
        );
        assert_eq!(hex(&content_digest(&e)).len(), 64);
    }
}
