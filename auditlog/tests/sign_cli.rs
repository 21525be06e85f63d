//! `auditlog signing-key generate` and `auditlog sign`, run as a producer would: the signed
//! event validates as the gateway validates it and verifies with the printed public key.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use auditlog_schemas::signing::{KeyWindow, SignatureProblem, verify};
use auditlog_schemas::validate::IngestContext;
use auditlog_schemas::{AuditEvent, SignatureAlg, validate_event};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

fn auditlog(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("auditlog runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin written");
    }
    drop(input);
    child.wait_with_output().expect("auditlog exits")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure, got {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Generates a key of `alg` in `dir`; returns its path and public key bytes.
fn generate(dir: &Path, alg: &str) -> (String, Vec<u8>) {
    let path = dir.join(format!("{alg}.pem")).to_string_lossy().into_owned();
    let public = stdout(&auditlog(&["signing-key", "generate", "--out", &path, "--alg", alg], None));
    (path, STANDARD.decode(public.trim()).expect("the public key is standard base64"))
}

fn event() -> Value {
    json!({
        "id": "evt-signed-1",
        "occurred_at": "2026-11-20T11:15:30.1234567+02:00",
        "action": "document.delete",
        "actor": {"id": "user-42", "name": "Zoë \u{1F600}"},
        "targets": [{"type": "document", "id": "doc-9001"}],
        "metadata": {"reason": "retention", "n": 3, "nested": {"b": [1, 2.5, null]}}
    })
}

/// The signed event as the gateway would take it, and the key window of `public`.
fn accept(signed: &str, alg: SignatureAlg, public: Vec<u8>) -> (AuditEvent, KeyWindow) {
    let value: Value = serde_json::from_str(signed.trim()).expect("one JSON line");
    let ctx = IngestContext { tenant_id: "acme", received_at: time::macros::datetime!(2026-11-20 09:20 UTC) };
    let event = validate_event(value, &ctx).expect("the signed event validates");
    let window = KeyWindow { alg, public_key: public, not_before: time::macros::datetime!(2026-01-01 0:00 UTC), not_after: None, revoked_at: None };
    (event, window)
}

#[test]
fn generate_writes_a_private_pem_and_prints_the_public_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (alg, len) in [("ed25519", 32), ("ecdsa-p256-sha256", 65)] {
        let (path, public) = generate(dir.path(), alg);
        assert_eq!(public.len(), len, "{alg}");
        let pem = std::fs::read_to_string(&path).expect("key written");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8 PEM: {pem}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{alg}: private key mode");
        }
        // Never overwritten.
        let again = auditlog(&["signing-key", "generate", "--out", &path, "--alg", alg], None);
        assert!(stderr(&again).contains("--out"));
        assert_eq!(std::fs::read_to_string(&path).expect("still there"), pem);
    }
    let default = dir.path().join("default.pem");
    let public = stdout(&auditlog(&["signing-key", "generate", "--out", default.to_str().expect("path")], None));
    assert_eq!(STANDARD.decode(public.trim()).expect("base64").len(), 32, "the default algorithm is ed25519");
}

#[test]
fn a_signed_event_verifies_with_the_registered_public_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("event.json");
    std::fs::write(&input, serde_json::to_string_pretty(&event()).expect("json")).expect("event written");
    for (alg_name, alg) in [("ed25519", SignatureAlg::Ed25519), ("ecdsa-p256-sha256", SignatureAlg::EcdsaP256Sha256)] {
        let (key, public) = generate(dir.path(), alg_name);
        let args = ["sign", "--key", &key, "--key-id", "docs-api-2026", "--tenant", "acme", "--alg", alg_name];
        let from_file = stdout(&auditlog(&[&args[..], &[input.to_str().expect("path")]].concat(), None));
        let (signed, window) = accept(&from_file, alg, public.clone());
        let signature = signed.signature.as_ref().expect("signed");
        assert_eq!((signature.key_id.as_str(), signature.alg), ("docs-api-2026", alg));
        verify(&signed, &window).unwrap_or_else(|e| panic!("{alg_name}: {e}"));
        // The rest of the event is printed as given: the producer sends exactly this.
        let mut printed: Value = serde_json::from_str(&from_file).expect("json");
        printed.as_object_mut().expect("object").remove("signature");
        assert_eq!(printed, event());
        // From stdin, the same (Ed25519 is deterministic; ECDSA verifies all the same).
        let from_stdin = stdout(&auditlog(&[&args[..], &["-"]].concat(), Some(&event().to_string())));
        let (again, window) = accept(&from_stdin, alg, public.clone());
        verify(&again, &window).expect("signed from stdin");
        if alg == SignatureAlg::Ed25519 {
            assert_eq!(from_stdin, from_file);
        }
        // Edited after signing: refused.
        let mut edited = signed.clone();
        edited.action = "document.read".into();
        assert_eq!(verify(&edited, &window), Err(SignatureProblem::Invalid));
        // Signed for another tenant: the tenant is in the signed bytes.
        let other = stdout(&auditlog(&["sign", "--key", &key, "--key-id", "k", "--tenant", "globex", "-"], Some(&event().to_string())));
        let value: Value = serde_json::from_str(&other).expect("json");
        let ctx = IngestContext { tenant_id: "acme", received_at: time::macros::datetime!(2026-11-20 09:20 UTC) };
        let as_acme = validate_event(value, &ctx).expect("valid json");
        assert_eq!(verify(&as_acme, &window), Err(SignatureProblem::Invalid), "{alg_name}: another tenant's signature");
    }
}

#[test]
fn sign_refuses_what_the_gateway_would_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = generate(dir.path(), "ed25519");
    let sign = |args: &[&str], event: &Value| auditlog(&[&["sign", "--key", &key][..], args, &["-"]].concat(), Some(&event.to_string()));
    let base = ["--key-id", "k1", "--tenant", "acme"];
    for missing in ["id", "occurred_at"] {
        let mut event = event();
        event.as_object_mut().expect("object").remove(missing);
        let message = stderr(&sign(&base, &event));
        assert!(message.contains(&format!("no {missing}")), "{missing}: {message}");
    }
    let message = stderr(&sign(&["--key-id", "k/1", "--tenant", "acme"], &event()));
    assert!(message.contains("signature.key_id"), "{message}");
    let message = stderr(&sign(&["--key-id", "k1", "--tenant", "acme", "--alg", "ecdsa-p256-sha256"], &event()));
    assert!(message.contains("--alg ecdsa-p256-sha256") && message.contains("ed25519"), "{message}");
    let mut other_tenant = event();
    other_tenant["tenant_id"] = json!("globex");
    assert!(stderr(&sign(&base, &other_tenant)).contains("tenant_id"));
    let mut bad = event();
    bad["action"] = json!("Not An Action");
    assert!(stderr(&sign(&base, &bad)).contains("action"));
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").expect("written");
    let output = auditlog(&["sign", "--key", not_a_key.to_str().expect("path"), "--key-id", "k", "--tenant", "acme", "-"], Some(&event().to_string()));
    assert!(stderr(&output).contains("PKCS#8"));
    assert_eq!(output.status.code(), Some(2));
}
