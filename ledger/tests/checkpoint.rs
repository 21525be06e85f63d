//! Signed checkpoints: rotation with two signatures, unknown and wrong keys, origins.

use auditlog_ledger::{Checkpoint, LedgerError, Signer, leaf_hash, origin};

fn checkpoint() -> Checkpoint {
    Checkpoint { origin: origin("auditlog.example.com", "acme").expect("origin"), size: 42, root: leaf_hash(b"r"), extensions: vec![] }
}

#[test]
fn rotation_overlap_verifies_with_either_key() {
    let old = Signer::generate("auditlog.example.com").expect("key");
    let new = Signer::generate("auditlog.example.com").expect("key");
    let note = checkpoint().sign(&[old.clone(), new.clone()]).expect("sign");
    assert_eq!(note.matches("\n\u{2014} auditlog.example.com/acme ").count(), 2, "{note}");
    for keys in [vec![old.verifier()], vec![new.verifier()], vec![old.verifier(), new.verifier()]] {
        let (opened, note) = Checkpoint::open(&note, &keys, Some("auditlog.example.com/acme")).expect("opens");
        assert_eq!(opened, checkpoint());
        assert_eq!(note.verified.len(), keys.len());
    }
    // A verifier key already named after the origin (the tenant's listed key) works too.
    let tenant_key = new.verifier().renamed("auditlog.example.com/acme").expect("renamed");
    assert!(Checkpoint::open(&note, &[tenant_key], None).is_ok());
}

#[test]
fn unknown_key_wrong_origin_and_tampering_fail() {
    let key = Signer::generate("auditlog.example.com").expect("key");
    let stranger = Signer::generate("auditlog.example.com").expect("key");
    let note = checkpoint().sign(std::slice::from_ref(&key)).expect("sign");
    assert!(matches!(Checkpoint::open(&note, &[stranger.verifier()], None), Err(LedgerError::Unverified)));
    assert!(matches!(Checkpoint::open(&note, &[key.verifier()], Some("auditlog.example.com/other")), Err(LedgerError::WrongOrigin { .. })));
    let tampered = note.replacen("\n42\n", "\n43\n", 1);
    assert!(matches!(Checkpoint::open(&tampered, &[key.verifier()], None), Err(LedgerError::InvalidSignature(_))));
    assert!(Checkpoint::open("garbage", &[key.verifier()], None).is_err());
}

#[test]
fn origin_and_text_rules() {
    assert!(origin("auditlog.example.com", "").is_err());
    assert!(origin("", "acme").is_err());
    assert!(origin("auditlog example", "acme").is_err());
    assert!(origin("auditlog.example.com", "a/b").is_err());
    assert!(origin("auditlog.example.com", "a+b").is_err());
    let mut with_ext = checkpoint();
    with_ext.extensions = vec!["ext line".into()];
    assert_eq!(Checkpoint::parse(&with_ext.to_text()).ok(), Some(with_ext));
    for bad in ["o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "o\n1\nAAAA\n", "o\n1\n", "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
    let key = Signer::generate("k").expect("key");
    let parsed = Signer::parse(&format!("{}\n", key.to_key_text())).expect("file form with newline");
    assert_eq!(parsed.verifier(), key.verifier());
}
