//! One event as an export line or the API returns it: the event's JSON plus the read-time
//! fields (`leaf_index`, and `proof` on an export line), turned into its leaf hash.
//!
//! Nothing may ride along unverified: `AuditEvent` and its nested records deny unknown
//! fields, so an added member fails the parse, and a member given twice anywhere (where
//! `serde_json` would silently keep the last) fails before it.

use std::collections::HashSet;
use std::fmt;

use auditlog_ledger::leaf::DERIVED_FIELDS;
use auditlog_ledger::{Hash, event_leaf_hash};
use auditlog_schemas::AuditEvent;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::Failure;

/// The export line's inclusion proof member (not part of the event).
const PROOF_FIELD: &str = "proof";

/// Longest event id quoted in a message.
const MAX_QUOTED_ID: usize = 80;

/// An event with its read-time fields, and its leaf hash.
pub(super) struct Entry {
    /// The event id.
    pub id: String,
    /// The event's tenant.
    pub tenant_id: String,
    /// `leaf_index`, when the JSON carries it.
    pub leaf_index: Option<u64>,
    /// `proof` (an export line's inclusion proof), when the JSON carries it.
    pub proof: Option<Vec<Hash>>,
    /// `leaf_hash(leaf_bytes(event))`.
    pub leaf: Hash,
    /// The event itself (its producer signature is checked against a key list).
    pub event: AuditEvent,
}

impl Entry {
    /// Parses one JSON text. With `export_line`, `leaf_index` and `proof` are required.
    pub fn parse(bytes: &[u8], export_line: bool) -> Result<Self, Failure> {
        serde_json::from_slice::<NoDuplicateMembers>(bytes).map_err(|e| Failure::new(json_problem(&e)))?;
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Failure::new(json_problem(&e)))?;
        Self::from_value(value, export_line)
    }

    /// Like [`Entry::parse`], for JSON already parsed (and checked for duplicate members).
    pub fn from_value(value: Value, export_line: bool) -> Result<Self, Failure> {
        let Value::Object(mut fields) = value else { return Err(Failure::new("is not a JSON object")) };
        let id = fields.get("id").and_then(Value::as_str).map(quote_id);
        let fail = |reason: String| Failure { event_id: id.clone(), reason, ..Failure::default() };
        let leaf_index = match fields.remove("leaf_index") {
            None if export_line => return Err(fail("has no leaf_index (was the export taken with proofs=true?)".into())),
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| fail(format!("leaf_index {v} is not a non-negative 64-bit integer")))?),
        };
        let proof = match fields.remove(PROOF_FIELD) {
            None if export_line => return Err(fail("has no proof (was the export taken with proofs=true?)".into())),
            None => None,
            Some(v) => Some(proof_hashes(v).map_err(&fail)?),
        };
        for name in DERIVED_FIELDS {
            fields.remove(*name);
        }
        let mut failure = fail(String::new());
        failure.leaf_index = leaf_index;
        let event: AuditEvent = serde_json::from_value(Value::Object(fields)).map_err(|e| Failure { reason: format!("is not a valid audit event: {e}"), ..failure })?;
        let leaf = event_leaf_hash(&event).map_err(|e| fail(e.to_string()))?;
        Ok(Self { id: event.id.clone(), tenant_id: event.tenant_id.clone(), leaf_index, proof, leaf, event })
    }

    /// The event id as messages show it.
    pub fn shown_id(&self) -> String {
        quote_id(&self.id)
    }

    /// The event must belong to the tenant whose log `origin` (`<deployment>/<tenant>`) names.
    pub fn check_tenant(&self, origin: &str) -> Result<(), String> {
        match origin.rsplit_once('/') {
            Some((_, tenant)) if tenant != self.tenant_id => {
                Err(format!("belongs to tenant {:?}, but the checkpoint is the log of {origin:?}", self.tenant_id))
            }
            _ => Ok(()),
        }
    }
}

/// `proof`: an array of base64 SHA-256 hashes.
fn proof_hashes(value: Value) -> Result<Vec<Hash>, String> {
    let Value::Array(items) = value else { return Err("proof is not an array of base64 hashes".into()) };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item.as_str().and_then(|s| Hash::from_base64(s).ok()).ok_or_else(|| format!("proof[{i}] is not a base64 SHA-256 hash")))
        .collect()
}

/// An event id as messages show it: at most [`MAX_QUOTED_ID`] characters, control characters
/// escaped (the id comes from the file being checked).
fn quote_id(id: &str) -> String {
    let short: String = id.chars().take(MAX_QUOTED_ID).collect();
    let escaped: String = short.chars().flat_map(char::escape_debug).collect();
    if id.chars().count() > MAX_QUOTED_ID { format!("{escaped}...") } else { escaped }
}

/// A JSON syntax problem, saying when it looks like a cut-off file.
pub(super) fn json_problem(err: &serde_json::Error) -> String {
    if err.is_eof() { format!("JSON ends early (truncated?): {err}") } else { format!("not valid JSON: {err}") }
}

/// Any JSON value, refusing an object that names a member twice (at any depth).
pub(super) struct NoDuplicateMembers;

impl<'de> Deserialize<'de> for NoDuplicateMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = NoDuplicateMembers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateMembers>()?.is_some() {}
        Ok(NoDuplicateMembers)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<NoDuplicateMembers>()?;
            if !names.insert(name.clone()) {
                return Err(de::Error::custom(format!("member {:?} appears twice in one object", quote_id(&name))));
            }
        }
        Ok(NoDuplicateMembers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        for bad in [r#"{"a":1,"a":1}"#, r#"{"m":{"x":1,"y":2,"x":3}}"#, r#"[{"k":[{"z":0,"z":0}]}]"#] {
            assert!(serde_json::from_str::<NoDuplicateMembers>(bad).is_err(), "{bad}");
        }
        for good in [r#"{"a":1,"b":{"a":2}}"#, "[1,2.5,-3,null,true,\"s\"]", "{}"] {
            assert!(serde_json::from_str::<NoDuplicateMembers>(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn ids_in_messages_are_short_and_escaped() {
        assert_eq!(quote_id("a\nb"), "a\\nb");
        assert_eq!(quote_id(&"x".repeat(200)).len(), MAX_QUOTED_ID + 3);
    }

    #[test]
    fn object_without_fields_is_refused_not_panicking() {
        let map = serde_json::Map::new();
        assert!(Entry::from_value(Value::Object(map), true).is_err());
    }
}
