//! Reading a set of verifier keys as a verifier receives them: the `GET /v1/ledger/keys`
//! listing (`{"keys": [{"key_id", "verifier_key", "not_before", "not_after"}]}`) or plain
//! text with one verifier key per line.
//!
//! Every listed key is returned, retired ones included: a checkpoint carries no time, so the
//! validity window cannot be checked against it, and checkpoints signed before a rotation must
//! still verify.

use serde::Deserialize;

use crate::LedgerError;
use crate::note::Verifier;

/// The listing's shape; fields this reader does not need (`not_before`, `not_after`) are
/// ignored, so the listing may grow.
#[derive(Deserialize)]
struct Listing {
    keys: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    key_id: Option<String>,
    verifier_key: String,
}

/// Parses verifier keys from `text`: a JSON key listing when it starts with `{`, otherwise
/// one verifier key per line (blank lines and lines starting with `#` skipped).
///
/// A listing's `key_id`, when present, must be the key's own id in hex. Fails on the first
/// bad key, naming it (`keys[2]`, `line 3`), and when there is no key at all.
pub fn parse_verifier_keys(text: &str) -> Result<Vec<Verifier>, LedgerError> {
    let keys = if text.trim_start().starts_with('{') { parse_listing(text)? } else { parse_lines(text)? };
    if keys.is_empty() {
        return Err(LedgerError::BadKey { at: "keys".to_string(), reason: "no verifier key found".to_string() });
    }
    Ok(keys)
}

fn parse_listing(text: &str) -> Result<Vec<Verifier>, LedgerError> {
    let listing: Listing = serde_json::from_str(text)
        .map_err(|e| LedgerError::BadKey { at: "keys".to_string(), reason: format!("not a key listing {{\"keys\": [...]}}: {e}") })?;
    let mut keys = Vec::with_capacity(listing.keys.len());
    for (i, listed) in listing.keys.into_iter().enumerate() {
        let at = format!("keys[{i}]");
        let key = Verifier::parse(&listed.verifier_key).map_err(|e| LedgerError::BadKey { at: at.clone(), reason: e.to_string() })?;
        if let Some(id) = listed.key_id
            && !id.eq_ignore_ascii_case(&format!("{:08x}", key.key_id()))
        {
            return Err(LedgerError::BadKey { at, reason: format!("key_id {id:?} is not the verifier key's id {:08x}", key.key_id()) });
        }
        keys.push(key);
    }
    Ok(keys)
}

fn parse_lines(text: &str) -> Result<Vec<Verifier>, LedgerError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = Verifier::parse(line).map_err(|e| LedgerError::BadKey { at: format!("line {}", i + 1), reason: e.to_string() })?;
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Signer;

    fn key(name: &str) -> Verifier {
        Signer::generate(name).expect("key").verifier()
    }

    #[test]
    fn reads_the_api_listing_including_retired_keys() {
        let (old, new) = (key("auditlog/acme"), key("auditlog/acme"));
        let listing = serde_json::json!({"keys": [
            {"key_id": format!("{:08x}", old.key_id()), "verifier_key": old.to_string(), "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-02-01T00:00:00Z"},
            {"key_id": format!("{:08x}", new.key_id()), "verifier_key": new.to_string(), "not_before": "2026-02-01T00:00:00Z", "not_after": null, "comment": "later field"},
        ]});
        assert_eq!(parse_verifier_keys(&listing.to_string()).ok(), Some(vec![old, new]));
    }

    #[test]
    fn reads_one_key_per_line() {
        let (a, b) = (key("a"), key("b"));
        let text = format!("# deployment keys\n{a}\n\n  {b}  \n");
        assert_eq!(parse_verifier_keys(&text).ok(), Some(vec![a, b]));
    }

    #[test]
    fn names_the_bad_key() {
        let a = key("a");
        let err = parse_verifier_keys(&format!("{a}\nnot-a-key\n")).expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
        let listing = serde_json::json!({"keys": [{"key_id": "00000000", "verifier_key": a.to_string()}]});
        let err = parse_verifier_keys(&listing.to_string()).expect_err("wrong id");
        assert!(err.to_string().contains("keys[0]") && err.to_string().contains("key_id"), "{err}");
        for bad in ["", "\n# only a comment\n", "{\"keys\": []}", "{\"keys\": 3}", "{", "{\"keys\": [{\"verifier_key\": \"x+1+2\"}]}"] {
            assert!(parse_verifier_keys(bad).is_err(), "{bad:?} accepted");
        }
    }
}
