//! Signed events end to end in standalone mode, with the built binary: a tenant registers its
//! producers' keys, requires signatures, and the gateway takes an event signed by `auditlog
//! sign` or by the Python example (`examples/sign_event.py`), and refuses every bad variant
//! (unsigned, wrong key, a flipped byte, another event's signature, an unknown key id, a key
//! not yet valid, expired or revoked at `occurred_at`, algorithm confusion) with a 422 naming
//! `signature`, appending nothing. Rotation with overlap takes both keys inside the overlap
//! and only the new one after it. Events read back carry their signature and `verified`; an
//! export with proofs verifies offline with the signing-key list.

mod standalone_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use standalone_support::{BIN, Server};

const TENANT: &str = "signco";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(dir).env("RUST_LOG", "off").output().expect("auditlog runs")
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh producer key in `dir/<name>.pem`; answers its public key (base64).
fn generate(dir: &Path, name: &str, alg: &str) -> String {
    let file = format!("{name}.pem");
    stdout_of(&run(dir, &["signing-key", "generate", "--out", &file, "--alg", alg])).lines().last().expect("public key").trim().to_owned()
}

fn event(id: &str, occurred_at: &str) -> Value {
    json!({"id": id, "occurred_at": occurred_at, "action": "payment.approve", "actor": {"id": "billing-svc", "type": "service"},
           "targets": [{"type": "invoice", "id": format!("inv-{id}")}], "outcome": "success", "metadata": {"amount": 125, "currency": "EUR"}})
}

/// `event` signed by `auditlog sign` with `dir/<key>.pem` under `key_id`.
fn signed(dir: &Path, event: &Value, key: &str, key_id: &str) -> Value {
    let file = dir.join(format!("{}.json", event["id"].as_str().expect("id")));
    std::fs::write(&file, event.to_string()).expect("write the event");
    let pem = format!("{key}.pem");
    let out = run(dir, &["sign", "--key", &pem, "--key-id", key_id, "--tenant", TENANT, file.to_str().expect("path")]);
    serde_json::from_str(&stdout_of(&out)).expect("signed JSON")
}

fn python_signed(dir: &Path, event: &Value, key: &str, key_id: &str) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/sign_event.py");
    let file = dir.join("python-event.json");
    std::fs::write(&file, event.to_string()).expect("write the event");
    let out = Command::new("python3")
        .arg(script)
        .args(["--tenant", TENANT, "--key", &format!("{key}.pem"), "--key-id", key_id])
        .arg(&file)
        .current_dir(dir)
        .output()
        .expect("python3 runs (install it: this test does not skip)");
    serde_json::from_str(&stdout_of(&out)).expect("signed JSON")
}

fn assert_refused(answer: &(StatusCode, Value), why: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {body}");
    assert!(body.to_string().contains("\"signature\""), "{why}: the problem names signature: {body}");
}

#[tokio::test]
async fn signed_events_are_verified_at_ingest_shown_on_read_and_checked_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir for keys");
    let here = work.path();
    let server = Server::start(dir.path());
    let api = Client { http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"), base: server.url.clone() };
    let admin = server.credentials()["admin_token"].as_str().expect("admin token").to_owned();
    let (status, body) = api.post("/v1/tenants", &admin, &json!({"id": TENANT})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, issued) = api.post(&format!("/v1/tenants/{TENANT}/api-keys"), &admin, &json!({"name": "billing", "roles": ["writer", "reader"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"].as_str().expect("key").to_owned();
    let (status, body) = api.send(reqwest::Method::PATCH, &format!("/v1/tenants/{TENANT}"), &admin, Some(&json!({"signatures": "required"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Keys: "old" valid until 2026-06-01, "new" from 2026-05-01 (a month of overlap), a P-256
    // key, and "gone", revoked at 2026-03-01.
    let register = |key_id: &'static str, public_key: String, alg: &'static str, window: (&'static str, Option<&'static str>)| {
        let (api, admin) = (&api, &admin);
        async move {
            let mut body = json!({"key_id": key_id, "producer": "billing-svc", "alg": alg, "public_key": public_key, "not_before": window.0});
            if let Some(end) = window.1 {
                body["not_after"] = json!(end);
            }
            let (status, answer) = api.post(&format!("/v1/tenants/{TENANT}/signing-keys"), admin, &body).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
        }
    };
    register("old", generate(here, "old", "ed25519"), "ed25519", ("2026-01-01T00:00:00Z", Some("2026-06-01T00:00:00Z"))).await;
    register("new", generate(here, "new", "ed25519"), "ed25519", ("2026-05-01T00:00:00Z", None)).await;
    register("p256", generate(here, "p256", "ecdsa-p256-sha256"), "ecdsa-p256-sha256", ("2026-01-01T00:00:00Z", None)).await;
    register("gone", generate(here, "gone", "ed25519"), "ed25519", ("2026-01-01T00:00:00Z", None)).await;
    generate(here, "stranger", "ed25519");
    let (status, body) = api.post(&format!("/v1/tenants/{TENANT}/signing-keys/gone/revoke"), &admin, &json!({"revoked_at": "2026-03-01T00:00:00Z"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Accepted: each key inside its window, both keys inside the overlap, Python's signature.
    let mut accepted = Vec::new();
    for (id, at, key_file, key_id) in [
        ("e-old", "2026-02-01T10:00:00Z", "old", "old"),
        ("e-overlap-old", "2026-05-15T10:00:00.123456Z", "old", "old"),
        ("e-overlap-new", "2026-05-15T11:00:00Z", "new", "new"),
        ("e-new", "2026-07-01T10:00:00Z", "new", "new"),
        ("e-p256", "2026-07-01T11:00:00Z", "p256", "p256"),
        ("e-gone-before", "2026-02-15T10:00:00Z", "gone", "gone"),
    ] {
        let answer = api.post("/v1/events", &key, &signed(here, &event(id, at), key_file, key_id)).await;
        assert_eq!(answer.0, StatusCode::ACCEPTED, "{id}: {}", answer.1);
        accepted.push(id);
    }
    let from_python = python_signed(here, &event("e-python", "2026-07-02T09:30:00Z"), "new", "new");
    let answer = api.post("/v1/events", &key, &from_python).await;
    assert_eq!(answer.0, StatusCode::ACCEPTED, "an event signed in Python: {}", answer.1);
    accepted.push("e-python");

    // Refused, each with 422 naming `signature`.
    assert_refused(&api.post("/v1/events", &key, &event("r-unsigned", "2026-07-01T10:00:00Z")).await, "unsigned under `required`");
    assert_refused(&api.post("/v1/events", &key, &signed(here, &event("r-wrong-key", "2026-07-01T10:00:00Z"), "stranger", "new")).await, "wrong key");
    let mut flipped = signed(here, &event("r-flipped", "2026-07-01T10:00:00Z"), "new", "new");
    let value = flipped["signature"]["value"].as_str().expect("value").to_owned();
    let mut raw = base64_decode(&value);
    raw[10] ^= 1;
    flipped["signature"]["value"] = json!(base64_encode(&raw));
    assert_refused(&api.post("/v1/events", &key, &flipped).await, "a flipped byte");
    let mut other = event("r-other-content", "2026-07-01T10:00:00Z");
    other["signature"] = signed(here, &event("r-source", "2026-07-01T10:00:00Z"), "new", "new")["signature"].clone();
    assert_refused(&api.post("/v1/events", &key, &other).await, "another event's signature");
    let mut edited = signed(here, &event("r-edited", "2026-07-01T10:00:00Z"), "new", "new");
    edited["metadata"]["amount"] = json!(126);
    assert_refused(&api.post("/v1/events", &key, &edited).await, "content changed after signing");
    assert_refused(&api.post("/v1/events", &key, &signed(here, &event("r-unknown", "2026-07-01T10:00:00Z"), "new", "nobody")).await, "unknown key id");
    assert_refused(&api.post("/v1/events", &key, &signed(here, &event("r-early", "2026-04-01T10:00:00Z"), "new", "new")).await, "key not yet valid");
    assert_refused(&api.post("/v1/events", &key, &signed(here, &event("r-expired", "2026-06-02T10:00:00Z"), "old", "old")).await, "key expired");
    assert_refused(&api.post("/v1/events", &key, &signed(here, &event("r-revoked", "2026-03-02T10:00:00Z"), "gone", "gone")).await, "key revoked");
    let mut confused = signed(here, &event("r-confused", "2026-07-01T10:00:00Z"), "new", "new");
    confused["signature"]["alg"] = json!("ecdsa-p256-sha256");
    assert_refused(&api.post("/v1/events", &key, &confused).await, "an Ed25519 signature claimed as ECDSA");
    let mut confused = signed(here, &event("r-confused-2", "2026-07-01T10:00:00Z"), "p256", "p256");
    confused["signature"]["alg"] = json!("ed25519");
    assert_refused(&api.post("/v1/events", &key, &confused).await, "an ECDSA signature claimed as Ed25519");
    // In a batch, the bad item is refused and named, the good one accepted.
    let batch = json!([signed(here, &event("b-good", "2026-07-03T10:00:00Z"), "new", "new"), event("b-unsigned", "2026-07-03T10:00:00Z")]);
    let (status, body) = api.post("/v1/events/batch", &key, &batch).await;
    assert!(status.is_success() || status == StatusCode::MULTI_STATUS || status == StatusCode::UNPROCESSABLE_ENTITY, "{status} {body}");
    assert!(body.to_string().contains("signature"), "the batch answer names signature: {body}");
    accepted.push("b-good");

    // Read back: exactly the accepted events, each with its signature and verified.
    let export = loop {
        let (status, checkpoint) = api.get("/v1/ledger/checkpoint", &key).await;
        if status == StatusCode::OK && checkpoint.as_str().and_then(|t| t.lines().nth(1)).and_then(|l| l.parse::<usize>().ok()) == Some(accepted.len()) {
            break api.http.get(format!("{}/v1/events/export?format=ndjson&proofs=true", api.base)).bearer_auth(&key).send().await.expect("export").text().await.expect("text");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let events: Vec<Value> = export.lines().skip(1).map(|l| serde_json::from_str(l).expect("json line")).collect();
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    let mut expected = accepted.clone();
    expected.sort_unstable();
    assert_eq!(ids, expected, "exactly the accepted events were appended");
    assert!(events.iter().all(|e| e["verified"] == json!(true) && e["signature"]["key_id"].is_string()), "{events:#?}");
    let (_, one) = api.get("/v1/events/e-python", &key).await;
    assert_eq!((one["verified"].clone(), one["signature"]["key_id"].clone()), (json!(true), json!("new")), "{one}");

    // Offline: the export verifies with the ledger keys and the signing-key list.
    let (_, ledger_keys) = api.get("/v1/ledger/keys", &key).await;
    let (status, signing_keys) = api.get(&format!("/v1/tenants/{TENANT}/signing-keys"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{signing_keys}");
    std::fs::write(here.join("ledger-keys.json"), ledger_keys.to_string()).expect("write");
    std::fs::write(here.join("signing-keys.json"), signing_keys.to_string()).expect("write");
    std::fs::write(here.join("export.ndjson"), &export).expect("write");
    let out = run(here, &["verify", "--key", "@ledger-keys.json", "export", "export.ndjson", "--complete", "--signing-keys", "signing-keys.json"]);
    let summary = stdout_of(&out);
    assert!(summary.contains(&format!("{} producer signatures verified", accepted.len())), "{summary}");
    // A signing-key list without the "new" key names the first event it signed.
    let mut fewer = signing_keys.clone();
    fewer["keys"].as_array_mut().expect("keys").retain(|k| k["key_id"] != "new");
    std::fs::write(here.join("fewer.json"), fewer.to_string()).expect("write");
    let out = run(here, &["verify", "--key", "@ledger-keys.json", "export", "export.ndjson", "--signing-keys", "fewer.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key \"new\" is not in the signing-key list"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(server.terminate().success(), "a graceful stop exits 0");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
