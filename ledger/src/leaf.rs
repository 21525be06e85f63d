//! The canonical leaf encoding of a stored event: RFC 8785 (JCS) JSON with UTC timestamps.
//!
//! See the crate documentation for the rules and why they hold across schema versions.

use auditlog_schemas::AuditEvent;
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use crate::LedgerError;
use crate::hash::{Hash, leaf_hash};

/// Top-level fields that are derived or added at read time and never part of a leaf.
pub const DERIVED_FIELDS: &[&str] = &["leaf_index"];

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

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC: always six fractional digits (the stored precision is
/// microseconds), nine only when a value carries nanoseconds. Independent of how the `time`
/// crate chooses to print RFC 3339, so a dependency upgrade cannot move a leaf.
fn canonical_timestamp(at: OffsetDateTime) -> Result<String, LedgerError> {
    let utc = at.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&utc.year()) {
        return Err(LedgerError::Encoding(format!("timestamp year {} is outside 0000..9999", utc.year())));
    }
    let nanos = utc.nanosecond();
    let fraction = if nanos.is_multiple_of(1000) { format!("{:06}", nanos / 1000) } else { format!("{nanos:09}") };
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}
