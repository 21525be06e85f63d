//! The canonical leaf encoding of a stored event: RFC 8785 (JCS) JSON with UTC timestamps.
//!
//! See the crate documentation for the rules and why they hold across schema versions.

use auditlog_schemas::AuditEvent;
use serde_json::Value;

use crate::LedgerError;
use crate::hash::{Hash, leaf_hash};

/// Top-level fields that are derived or added at read time and never part of a leaf.
pub const DERIVED_FIELDS: &[&str] = &["leaf_index", "verified"];

/// The canonical bytes of `event`: the leaf data whose RFC 6962 leaf hash enters the tree.
pub fn leaf_bytes(event: &AuditEvent) -> Result<Vec<u8>, LedgerError> {
    let mut value = serde_json::to_value(event).map_err(|e| LedgerError::Encoding(e.to_string()))?;
    let Value::Object(fields) = &mut value else {
        return Err(LedgerError::Encoding("event is not a JSON object".to_string()));
    };
    for name in DERIVED_FIELDS {
        fields.remove(*name);
    }
    fields.insert("occurred_at".to_string(), Value::String(canonical_timestamp(event.occurred_at)?));
    fields.insert("received_at".to_string(), Value::String(canonical_timestamp(event.received_at)?));
    serde_json_canonicalizer::to_vec(&value).map_err(|e| LedgerError::Encoding(e.to_string()))
}

/// The leaf hash of `event`: `SHA-256(0x00 || leaf_bytes(event))`.
pub fn event_leaf_hash(event: &AuditEvent) -> Result<Hash, LedgerError> {
    Ok(leaf_hash(&leaf_bytes(event)?))
}

/// The one canonical timestamp ([`auditlog_schemas::signing::canonical_timestamp`]): leaves and
/// producers' signatures write instants alike.
fn canonical_timestamp(at: time::OffsetDateTime) -> Result<String, LedgerError> {
    auditlog_schemas::signing::canonical_timestamp(at).map_err(|e| LedgerError::Encoding(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        serde_json::from_str(include_str!("../../schemas/golden/v2/unsigned.json")).expect("golden event")
    }

    /// The leaf covers the producer's signature (part of the stored event); the read-time
    /// fields never enter it.
    #[test]
    fn the_leaf_covers_the_signature() {
        let unsigned = event();
        let mut signed = unsigned.clone();
        signed.signature = Some(auditlog_schemas::Signature {
            key_id: "k1".into(),
            alg: auditlog_schemas::SignatureAlg::Ed25519,
            value: vec![7; 64],
        });
        let (a, b) = (leaf_bytes(&unsigned).expect("leaf"), leaf_bytes(&signed).expect("leaf"));
        assert_ne!(a, b, "a signature changes the leaf");
        assert!(String::from_utf8(b).expect("utf-8").contains(r#""signature":{"alg":"ed25519","key_id":"k1","value":"#));
        assert!(DERIVED_FIELDS.contains(&"verified") && DERIVED_FIELDS.contains(&"leaf_index"));
    }
}
