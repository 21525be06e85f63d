//! The canonical form is language-neutral: `examples/sign_event.py` (Python with the
//! `cryptography` package, following docs/signing.md) computes the same bytes as
//! [`signed_bytes`] for varied events, and its signatures verify here.
//!
//! Needs `python3` with `cryptography` (scripts/install-deps.sh installs it); the test fails,
//! never skips, without them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use auditlog_schemas::signing::{KeyWindow, ProducerKey, SignatureProblem, signed_bytes, verify};
use auditlog_schemas::validate::IngestContext;
use auditlog_schemas::{AuditEvent, SignatureAlg, validate_event};
use serde_json::{Value, json};
use time::macros::datetime;

const TENANT: &str = "acme";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/sign_event.py")
}

fn python(args: &[&str], stdin: &str) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg(script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is required for this test (scripts/install-deps.sh): {e}"));
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin written");
    let output = child.wait_with_output().expect("python3 exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "examples/sign_event.py failed (python3 with the cryptography package is required: scripts/install-deps.sh): {stderr}"
    );
    output.stdout
}

fn ctx() -> IngestContext<'static> {
    IngestContext { tenant_id: TENANT, received_at: datetime!(2026-11-20 12:00 UTC) }
}

/// The event as the gateway completes it.
fn accepted(event: &Value) -> AuditEvent {
    validate_event(event.clone(), &ctx()).unwrap_or_else(|e| panic!("valid event {event}: {e}"))
}

fn events() -> Vec<Value> {
    vec![
        // Minimal: every default filled in on both sides.
        json!({"id": "e1", "occurred_at": "2026-11-20T09:00:00Z", "action": "user.login", "actor": {"id": "u1"}}),
        // Unicode everywhere, names outside the BMP (UTF-16 member order differs from code
        // point order), escapes, control characters, an offset and nanoseconds.
        json!({
            "id": "e2", "tenant_id": TENANT, "occurred_at": "2026-11-20T11:15:30.123456789+02:00",
            "action": "document.share", "actor": {"id": "ü-42", "type": "service", "name": "Zoë \u{1F600} \u{4E2D}\u{6587}", "email": "zoe@exämple.com"},
            "description": "line\nbreak\ttab \"quoted\" back\\slash \u{0001}\u{001F}\u{007F}\u{2028} é",
            "metadata": {"\u{1F600}": 1, "\u{E000}": 2, "a": 3, "Z": 4, "é": 5, "": 6},
            "outcome": "failure", "severity": "critical"
        }),
        // Nested metadata with every JSON type, numbers in ECMAScript's forms.
        json!({
            "id": "e3", "occurred_at": "2026-11-20T09:00:00.5-01:30", "action": "billing.charge", "actor": {"id": "svc", "type": "api_key"},
            "metadata": {
                "ints": [0, -1, 9_007_199_254_740_991_i64, -9_007_199_254_740_991_i64, 1_000_000],
                "floats": [2.5, -0.125, 1e21, 1e20, 1.5e300, 1e-7, 0.000001, 123.456, 0.1, 333_333_333.333_333_3],
                "nested": {"deep": {"deeper": [true, false, null, {"k": "v"}, []]}, "empty": {}},
                "text": "\u{10FFFF} \u{FFFF}"
            }
        }),
        // Targets, source and context, nulls that mean absent.
        json!({
            "id": "e4", "occurred_at": "2026-11-20T09:00:00.000001Z", "action": "document.delete",
            "actor": {"id": "u2", "name": null, "email": null},
            "targets": [{"type": "document", "id": "d1", "name": "Q3 minutes.pdf"}, {"type": "folder", "id": "f7", "name": null}],
            "source": {"service": "docs-api", "version": null}, "context": {"ip": "2001:db8::1", "request_id": "r-1"},
            "description": "", "metadata": null, "received_at": null
        }),
        // Empty objects are kept as sent.
        json!({"id": "e5", "occurred_at": "2026-11-20T09:00:00Z", "action": "a", "actor": {"id": "u"}, "source": {}, "context": {}, "metadata": {}, "targets": []}),
    ]
}

#[test]
fn python_computes_the_same_canonical_bytes() {
    for event in events() {
        let from_python = python(&["--canonical", "--tenant", TENANT, "-"], &event.to_string());
        let from_rust = signed_bytes(&accepted(&event)).expect("signed bytes");
        assert_eq!(
            String::from_utf8_lossy(&from_python),
            String::from_utf8_lossy(&from_rust),
            "canonical bytes differ for {event}"
        );
        assert_eq!(from_python, from_rust);
    }
}

#[test]
fn events_signed_in_python_verify_in_auditlog() {
    let dir = tempfile::tempdir().expect("tempdir");
    for alg in SignatureAlg::ALL {
        // The PEM auditlog writes is the one Python reads (PKCS#8, as openssl writes it).
        let key = ProducerKey::generate(alg);
        let pem = dir.path().join(format!("{alg}.pem"));
        std::fs::write(&pem, key.to_pkcs8_pem().expect("pem")).expect("key written");
        let window = KeyWindow {
            alg,
            public_key: key.public_key(),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: None,
            revoked_at: None,
        };
        for event in events() {
            let args = ["--key", pem.to_str().expect("path"), "--key-id", "py-producer-1", "--tenant", TENANT, "-"];
            let printed = python(&args, &event.to_string());
            let signed: Value = serde_json::from_slice(&printed).expect("python prints the signed event as JSON");
            assert_eq!(signed["signature"]["alg"], alg.as_str());
            let signed = accepted(&signed);
            verify(&signed, &window).unwrap_or_else(|e| panic!("{alg}: a Python signature of {event} does not verify: {e}"));
            let mut edited = signed.clone();
            edited.id.push('x');
            assert_eq!(verify(&edited, &window), Err(SignatureProblem::Invalid));
        }
    }
}

#[test]
fn python_refuses_an_event_without_its_id() {
    let output = Command::new("python3")
        .arg(script())
        .args(["--canonical", "--tenant", TENANT, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(br#"{"action": "a", "actor": {"id": "u"}, "occurred_at": "2026-11-20T09:00:00Z"}"#)?;
            child.wait_with_output()
        })
        .expect("python3 runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("carries its own id"));
}
