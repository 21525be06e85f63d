//! External test vectors: Go's `sumdb/tlog` and `sumdb/note` tests (golang.org/x/mod) and the
//! RFC 6962 reference tree used by Certificate Transparency implementations.

use auditlog_ledger::note::{self, Signer, Verifier};
use auditlog_ledger::{Checkpoint, Hash, LedgerError, Tile, leaf_hash, root_of};

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn hex(h: &Hash) -> String {
    h.0.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn go_record_hash_and_tree_format() {
    // sumdb/tlog/note_test.go: TestFormatTree.
    let h = leaf_hash(b"hello world");
    assert_eq!(h.to_base64(), "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=");
    let checkpoint = Checkpoint { origin: "go.sum database tree".into(), size: 123_456_789_012, root: h, extensions: vec![] };
    let golden = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n";
    assert_eq!(checkpoint.to_text(), golden);
    assert_eq!(Checkpoint::parse(golden).ok(), Some(checkpoint));
    // TestParseTree's bad trees.
    assert!(Checkpoint::parse("go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n").is_err());
    assert!(Checkpoint::parse("go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n").is_err());
}

#[test]
fn go_empty_tree_is_sha256_of_nothing() {
    assert_eq!(hex(&root_of(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

#[test]
fn go_tile_paths_without_the_height_component() {
    // sumdb/tlog/tlog_test.go tilePaths, in C2SP form (Go's paths add the height: tile/H/L/N).
    let cases = [
        ("tile/4/0/001", "tile/0/001", 0, 1, 256),
        ("tile/4/0/001.p/5", "tile/0/001.p/5", 0, 1, 5),
        ("tile/3/5/x123/x456/078", "tile/5/x123/x456/078", 5, 123_456_078, 256),
        ("tile/3/5/x123/x456/078.p/2", "tile/5/x123/x456/078.p/2", 5, 123_456_078, 2),
        ("tile/1/0/x003/x057/500", "tile/0/x003/x057/500", 0, 3_057_500, 256),
    ];
    for (go_path, path, level, index, width) in cases {
        let tile = Tile::parse_path(path).unwrap_or_else(|e| panic!("{path} ({go_path}): {e}"));
        assert_eq!((tile.level, tile.index, tile.width), (level, index, width), "{path}");
        assert_eq!(tile.path(), path);
    }
    for bad in ["tile/3/5/123/456/078", "tile/3/-1/123/456/078", "tile/5/123/456/078"] {
        assert!(Tile::parse_path(bad).is_err(), "{bad}");
    }
}

/// The RFC 6962 reference tree: eight leaves and their roots for every size, as in the
/// Certificate Transparency and Trillian test suites.
#[test]
fn rfc6962_reference_roots() {
    let leaves: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    for (size, want) in roots.iter().enumerate() {
        assert_eq!(hex(&root_of(&hashes[..=size])), *want, "root of size {}", size + 1);
    }
}

#[test]
fn go_verifier_and_signer_keys() {
    let peter = Verifier::parse(PETER_VKEY).expect("Go's verifier key");
    assert_eq!((peter.name(), peter.key_id()), ("PeterNeumann", 0xc74f20a3));
    assert_eq!(peter.to_string(), PETER_VKEY);
    let signer = Signer::parse(PETER_SKEY).expect("Go's signer key");
    assert_eq!(signer.verifier(), peter);
    assert_eq!(signer.to_key_text(), PETER_SKEY);
    assert!(!format!("{signer:?}").contains("AYEKFALV"), "Debug must not show the seed");

    // TestNewVerifier / TestNewSigner: every substring and every one-byte change is refused.
    for (key, parse) in [(PETER_VKEY, (|k: &str| Verifier::parse(k).is_ok()) as fn(&str) -> bool), (PETER_SKEY, |k: &str| Signer::parse(k).is_ok())] {
        let bytes = key.as_bytes();
        for i in 0..=bytes.len() {
            for j in i + 1..=bytes.len() {
                if (i, j) != (0, bytes.len()) {
                    let sub = String::from_utf8_lossy(&bytes[i..j]);
                    // A trimmed signer key is the same key: file forms end in a newline.
                    if sub.trim() != key {
                        assert!(!parse(&sub), "accepted substring {sub:?}");
                    }
                }
            }
        }
        for i in 0..bytes.len() {
            let mut mangled = bytes.to_vec();
            mangled[i] = mangled[i].wrapping_add(1);
            assert!(!parse(&String::from_utf8_lossy(&mangled)), "accepted mangled byte {i}");
        }
    }
    // Wrong key length and unknown algorithm, each with its key hash adjusted.
    assert!(Verifier::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==").is_err());
    assert!(Verifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
}

#[test]
fn go_sign_gives_the_same_bytes() {
    // TestSign: Ed25519 is deterministic, so the note is byte-identical to Go's.
    let signer = Signer::parse(PETER_SKEY).expect("signer");
    let signed = note::sign(TEXT, &[&signer]).expect("sign");
    assert_eq!(signed, format!("{TEXT}\n{PETER_SIG}"));
    assert!(note::sign("abc", &[&signer]).is_err(), "text without a final newline");
}

#[test]
fn go_open_known_unknown_and_invalid_signatures() {
    let peter = Verifier::parse(PETER_VKEY).expect("peter");
    let enoch = Verifier::parse(ENOCH_VKEY).expect("enoch");
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");

    let opened = note::open(&both, std::slice::from_ref(&peter)).expect("one known key");
    assert_eq!(opened.text, TEXT);
    assert_eq!(opened.verified.len(), 1);
    assert_eq!(opened.verified[0].name, "PeterNeumann");
    assert_eq!(opened.unverified.len(), 1);
    assert_eq!(opened.unverified[0].key_id, 0xaf0cfe78);

    let opened = note::open(&both, &[peter.clone(), enoch.clone()]).expect("both known");
    assert_eq!((opened.verified.len(), opened.unverified.len()), (2, 0));

    assert!(matches!(note::open(&both, &[]), Err(LedgerError::Unverified)));

    let too_many = format!("{TEXT}\n{}", PETER_SIG.repeat(101));
    assert!(matches!(note::open(&too_many, std::slice::from_ref(&peter)), Err(LedgerError::Malformed(_))));

    let bad_sig = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert!(matches!(note::open(&bad_sig, std::slice::from_ref(&peter)), Err(LedgerError::InvalidSignature(_))));
    // The same corrupted signature by an unknown key is ignored, as long as a known one holds.
    let bad_enoch = format!("{TEXT}\n{PETER_SIG}{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
    assert!(note::open(&bad_enoch, std::slice::from_ref(&peter)).is_ok());

    let bad_messages = [
        TEXT.to_string(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
    ];
    for bad in bad_messages {
        assert!(matches!(note::open(&bad, std::slice::from_ref(&peter)), Err(LedgerError::Malformed(_))), "accepted {bad:?}");
    }
}
