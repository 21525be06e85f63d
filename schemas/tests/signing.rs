//! Signed events: the canonical bytes, and every way a signature can fail to hold.

use auditlog_schemas::signing::{KeyWindow, ProducerKey, SignatureProblem, public_key_problem, signed_bytes, verify};
use auditlog_schemas::{AuditEvent, Signature, SignatureAlg};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use time::macros::datetime;

fn golden(name: &str) -> AuditEvent {
    let path = format!("{}/golden/v2/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden exists")).expect("golden event")
}

/// The golden v2 signing key: Ed25519 with the seed 07 07 ... 07 (a published test key).
fn golden_key() -> ProducerKey {
    ProducerKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
}

fn window(key: &ProducerKey) -> KeyWindow {
    KeyWindow {
        alg: key.alg(),
        public_key: key.public_key(),
        not_before: datetime!(2026-01-01 00:00 UTC),
        not_after: None,
        revoked_at: None,
    }
}

fn signed(key: &ProducerKey) -> AuditEvent {
    let mut event = golden("unsigned");
    key.sign_in_place(&mut event, "k1").expect("signs");
    event
}

#[test]
fn the_golden_signed_event_verifies_and_its_bytes_are_pinned() {
    let event = golden("event");
    let key = golden_key();
    assert_eq!(key.public_key_base64(), "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=");
    verify(&event, &window(&key)).expect("the golden signature (made by examples/sign_event.py) verifies");
    let pinned = std::fs::read(format!("{}/golden/v2/signed_bytes.json", env!("CARGO_MANIFEST_DIR"))).expect("pinned");
    assert_eq!(signed_bytes(&event).expect("bytes"), pinned, "the canonical bytes of the golden event moved");
    // Ed25519 is deterministic: signing again gives the golden value.
    assert_eq!(key.sign(&event, "docs-api-2026").expect("signs"), event.signature.clone().expect("signed"));
}

#[test]
fn signed_bytes_leave_out_what_the_producer_cannot_sign() {
    let event = golden("event");
    let text = String::from_utf8(signed_bytes(&event).expect("bytes")).expect("utf-8");
    for absent in ["received_at", "signature", "leaf_index", "verified"] {
        assert!(!text.contains(&format!("\"{absent}\"")), "{absent} is not signed: {text}");
    }
    assert!(text.starts_with(r#"{"action":"document.delete","actor":{"#), "members sorted, no whitespace: {text}");
    assert!(text.contains(r#""occurred_at":"2026-11-20T09:15:30.123456Z""#));
    assert!(text.contains(r#""tenant_id":"acme""#));
    // Gateway-side changes do not move the bytes; the tenant and content do.
    let mut other = event.clone();
    other.received_at = datetime!(2030-01-01 00:00 UTC);
    other.signature = None;
    assert_eq!(signed_bytes(&other), signed_bytes(&event));
    other.tenant_id = "globex".into();
    assert_ne!(signed_bytes(&other), signed_bytes(&event));
}

#[test]
fn defaults_are_signed_and_occurred_at_has_exactly_six_digits() {
    let mut event = golden("unsigned");
    event.targets.clear();
    event.source = None;
    event.context = None;
    event.description = None;
    event.metadata = None;
    event.occurred_at = datetime!(2026-11-20 11:15:30.1234567 +02:00);
    let text = String::from_utf8(signed_bytes(&event).expect("bytes")).expect("utf-8");
    assert!(text.contains(r#""occurred_at":"2026-11-20T09:15:30.123456Z""#), "{text}");
    assert!(text.contains(r#""targets":[]"#) && text.contains(r#""type":"user""#), "{text}");
    for absent in ["source", "context", "description", "metadata"] {
        assert!(!text.contains(absent), "{absent} absent when unset: {text}");
    }
    event.occurred_at = datetime!(2026-11-20 09:15:30 UTC);
    assert!(String::from_utf8(signed_bytes(&event).expect("bytes")).expect("utf-8").contains("09:15:30.000000Z"));
}

#[test]
fn both_algorithms_sign_and_verify() {
    for alg in SignatureAlg::ALL {
        let key = ProducerKey::generate(alg);
        let event = signed(&key);
        let signature = event.signature.as_ref().expect("signed");
        assert_eq!((signature.alg, signature.value.len()), (alg, 64));
        verify(&event, &window(&key)).unwrap_or_else(|e| panic!("{alg}: {e}"));
        // Through its PKCS#8 PEM and back, the key signs the same.
        let pem = key.to_pkcs8_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let again = ProducerKey::from_pkcs8_pem(&pem).expect("reads back");
        assert_eq!(again.public_key(), key.public_key());
        verify(&signed(&again), &window(&key)).expect("same key");
    }
    // A P-256 key registered compressed verifies too.
    let key = ProducerKey::generate(SignatureAlg::EcdsaP256Sha256);
    let ProducerKey::EcdsaP256(inner) = &key else { panic!("p256") };
    let compressed = inner.verifying_key().to_sec1_point(true).as_bytes().to_vec();
    assert_eq!(compressed.len(), 33);
    verify(&signed(&key), &KeyWindow { public_key: compressed, ..window(&key) }).expect("compressed point");
    assert!(ProducerKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
}

#[test]
fn an_unsigned_event_is_missing_its_signature() {
    let key = golden_key();
    assert_eq!(verify(&golden("unsigned"), &window(&key)), Err(SignatureProblem::Missing));
}

#[test]
fn wrong_key_flipped_byte_and_other_content_are_invalid() {
    for alg in SignatureAlg::ALL {
        let key = ProducerKey::generate(alg);
        let event = signed(&key);
        let other_key = ProducerKey::generate(alg);
        assert_eq!(verify(&event, &window(&other_key)), Err(SignatureProblem::Invalid), "{alg}: wrong key");
        for byte in [0, 31, 32, 63] {
            let mut flipped = event.clone();
            flipped.signature.as_mut().expect("signed").value[byte] ^= 0x01;
            let got = verify(&flipped, &window(&key));
            // A flipped ECDSA r or s may leave the scalar range: malformed rather than invalid.
            assert!(matches!(got, Err(SignatureProblem::Invalid | SignatureProblem::Malformed(_))), "{alg}: byte {byte}: {got:?}");
            assert!(got.is_err());
        }
        // The signature of other content, moved onto this event.
        let mut other = golden("unsigned");
        other.action = "document.read".into();
        let mut moved = other.clone();
        moved.signature = key.sign(&golden("event"), "k1").ok();
        assert_eq!(verify(&moved, &window(&key)), Err(SignatureProblem::Invalid), "{alg}: other content");
        // Any signed field changed after signing: metadata, targets, tenant.
        let mut edited = event.clone();
        edited.metadata.as_mut().expect("metadata").insert("reason".into(), "edited".into());
        assert_eq!(verify(&edited, &window(&key)), Err(SignatureProblem::Invalid));
        let mut edited = event.clone();
        edited.targets.pop();
        assert_eq!(verify(&edited, &window(&key)), Err(SignatureProblem::Invalid));
        let mut edited = event.clone();
        edited.tenant_id = "globex".into();
        assert_eq!(verify(&edited, &window(&key)), Err(SignatureProblem::Invalid));
        // Unsigned fields may change: received_at, the key id (the registry picks the key).
        let mut moved = event.clone();
        moved.received_at = OffsetDateTime::now_utc();
        verify(&moved, &window(&key)).expect("received_at is not signed");
    }
}

#[test]
fn the_key_window_is_checked_at_occurred_at() {
    let key = golden_key();
    let event = golden("event");
    let at = event.occurred_at;
    let ok = |w: KeyWindow| verify(&event, &w);
    let base = window(&key);
    assert_eq!(ok(KeyWindow { not_before: at, ..base.clone() }), Ok(()), "not_before is inclusive");
    assert_eq!(
        ok(KeyWindow { not_before: at + time::Duration::microseconds(1), ..base.clone() }),
        Err(SignatureProblem::NotYetValid { not_before: at + time::Duration::microseconds(1), occurred_at: at })
    );
    assert_eq!(ok(KeyWindow { not_after: Some(at + time::Duration::microseconds(1)), ..base.clone() }), Ok(()));
    assert_eq!(ok(KeyWindow { not_after: Some(at), ..base.clone() }), Err(SignatureProblem::Expired { not_after: at, occurred_at: at }));
    // Revocation: events from the revocation on are refused, earlier ones stay valid.
    assert_eq!(ok(KeyWindow { revoked_at: Some(at + time::Duration::seconds(1)), ..base.clone() }), Ok(()));
    assert_eq!(ok(KeyWindow { revoked_at: Some(at), ..base.clone() }), Err(SignatureProblem::Revoked { revoked_at: at, occurred_at: at }));
    assert!(matches!(
        ok(KeyWindow { revoked_at: Some(at - time::Duration::days(1)), ..base }),
        Err(SignatureProblem::Revoked { .. })
    ));
}

#[test]
fn algorithm_confusion_is_refused() {
    let ed = ProducerKey::generate(SignatureAlg::Ed25519);
    let ec = ProducerKey::generate(SignatureAlg::EcdsaP256Sha256);
    // An Ed25519 signature claimed as ECDSA, checked against the Ed25519 key: refused on the
    // claim, and against an ECDSA key: it does not verify.
    let mut claimed = signed(&ed);
    claimed.signature.as_mut().expect("signed").alg = SignatureAlg::EcdsaP256Sha256;
    assert_eq!(
        verify(&claimed, &window(&ed)),
        Err(SignatureProblem::AlgorithmMismatch { claimed: SignatureAlg::EcdsaP256Sha256, key: SignatureAlg::Ed25519 })
    );
    assert!(matches!(verify(&claimed, &window(&ec)), Err(SignatureProblem::Invalid | SignatureProblem::Malformed(_))));
    // And the other way round.
    let mut claimed = signed(&ec);
    claimed.signature.as_mut().expect("signed").alg = SignatureAlg::Ed25519;
    assert_eq!(
        verify(&claimed, &window(&ec)),
        Err(SignatureProblem::AlgorithmMismatch { claimed: SignatureAlg::Ed25519, key: SignatureAlg::EcdsaP256Sha256 })
    );
    assert_eq!(verify(&claimed, &window(&ed)), Err(SignatureProblem::Invalid));
    // A key registered under the wrong algorithm: its bytes are not a key of that algorithm.
    let wrong = KeyWindow { alg: SignatureAlg::EcdsaP256Sha256, ..window(&ed) };
    let mut as_ec = signed(&ed);
    as_ec.signature.as_mut().expect("signed").alg = SignatureAlg::EcdsaP256Sha256;
    assert!(matches!(verify(&as_ec, &wrong), Err(SignatureProblem::Malformed(_))));
}

#[test]
fn malformed_values_and_keys_are_named() {
    let key = golden_key();
    let mut short = golden("event");
    short.signature.as_mut().expect("signed").value.pop();
    let Err(SignatureProblem::Malformed(reason)) = verify(&short, &window(&key)) else { panic!("63 bytes is malformed") };
    assert!(reason.contains("63 bytes"), "{reason}");
    let bad_key = KeyWindow { public_key: vec![1; 31], ..window(&key) };
    assert!(matches!(verify(&golden("event"), &bad_key), Err(SignatureProblem::Malformed(_))));
    // ECDSA with r = 0 is not a signature.
    let ec = ProducerKey::generate(SignatureAlg::EcdsaP256Sha256);
    let mut zero = signed(&ec);
    zero.signature = Some(Signature { key_id: "k1".into(), alg: SignatureAlg::EcdsaP256Sha256, value: vec![0; 64] });
    assert!(matches!(verify(&zero, &window(&ec)), Err(SignatureProblem::Malformed(_))));
}

#[test]
fn every_problem_has_its_own_message() {
    let at = datetime!(2026-11-20 09:15:30.123456 UTC);
    let problems = [
        SignatureProblem::Missing,
        SignatureProblem::AlgorithmMismatch { claimed: SignatureAlg::Ed25519, key: SignatureAlg::EcdsaP256Sha256 },
        SignatureProblem::NotYetValid { not_before: at, occurred_at: at },
        SignatureProblem::Expired { not_after: at, occurred_at: at },
        SignatureProblem::Revoked { revoked_at: at, occurred_at: at },
        SignatureProblem::Invalid,
        SignatureProblem::Malformed("the signature is 3 bytes, not 64".into()),
    ];
    let messages: std::collections::HashSet<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), problems.len(), "{messages:?}");
    assert!(problems[4].to_string().contains("revoked at 2026-11-20T09:15:30.123456Z"), "{}", problems[4]);
    assert!(problems[1].to_string().contains("ed25519") && problems[1].to_string().contains("ecdsa-p256-sha256"));
}

#[test]
fn public_keys_are_checked_at_registration() {
    let ed = ProducerKey::generate(SignatureAlg::Ed25519);
    let ec = ProducerKey::generate(SignatureAlg::EcdsaP256Sha256);
    assert_eq!(public_key_problem(SignatureAlg::Ed25519, &ed.public_key()), None);
    assert_eq!(public_key_problem(SignatureAlg::EcdsaP256Sha256, &ec.public_key()), None);
    assert_eq!(ec.public_key().len(), 65);
    assert!(public_key_problem(SignatureAlg::Ed25519, &ec.public_key()).expect("65 bytes").contains("32 bytes"));
    assert!(public_key_problem(SignatureAlg::EcdsaP256Sha256, &ed.public_key()).expect("32 bytes").contains("33"));
    let mut off_curve = ec.public_key();
    off_curve[64] ^= 1;
    assert!(public_key_problem(SignatureAlg::EcdsaP256Sha256, &off_curve).is_some(), "not on the curve");
    assert!(public_key_problem(SignatureAlg::EcdsaP256Sha256, &[4; 65]).is_some());
    assert!(public_key_problem(SignatureAlg::Ed25519, &[]).is_some());
    // Standard base64, what the registry stores.
    assert_eq!(STANDARD.decode(ed.public_key_base64()).expect("base64"), ed.public_key());
}

#[test]
fn signature_json_is_base64_and_names_the_alg() {
    let event = golden("event");
    let json = serde_json::to_value(&event).expect("json");
    assert_eq!(json["signature"]["alg"], "ed25519");
    assert_eq!(json["signature"]["key_id"], "docs-api-2026");
    let value = json["signature"]["value"].as_str().expect("string");
    assert_eq!(STANDARD.decode(value).expect("standard base64").len(), 64);
    assert!(value.ends_with("=="), "padded");
    let unsigned = serde_json::to_value(golden("unsigned")).expect("json");
    assert!(unsigned.get("signature").is_none(), "absent, not null, when unsigned");
    let ecdsa: Signature = serde_json::from_str(&format!(r#"{{"key_id": "k", "alg": "ecdsa-p256-sha256", "value": "{value}"}}"#)).expect("parses");
    assert_eq!(ecdsa.alg, SignatureAlg::EcdsaP256Sha256);
    assert!(serde_json::from_str::<Signature>(r#"{"key_id": "k", "alg": "rsa", "value": ""}"#).is_err());
}

/// The golden key as Python's `cryptography` (and `openssl genpkey`) write it: PKCS#8 v1.
const GOLDEN_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n-----END PRIVATE KEY-----\n";

#[test]
fn keys_written_by_other_tools_are_read_and_ours_are_pkcs8_v1() {
    let key = ProducerKey::from_pkcs8_pem(GOLDEN_KEY_PEM).expect("reads a PKCS#8 v1 Ed25519 key");
    assert_eq!(key.public_key(), golden_key().public_key());
    assert_eq!(golden_key().to_pkcs8_pem().expect("pem"), GOLDEN_KEY_PEM, "the same PKCS#8 v1 document");
}
