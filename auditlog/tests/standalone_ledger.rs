//! The ledger end to end in standalone mode: the real binary builds each tenant's tree, the
//! API serves its checkpoint, keys and an export with proofs, and the built binary's offline
//! `auditlog verify` accepts the untouched export and names the line of an edited or a
//! deleted event; after a restart the tree resumes where it was and grows consistently.

mod standalone_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use standalone_support::{BIN, Server};

/// Longest wait for ingested events to be covered by a checkpoint.
const CHECKPOINTED: Duration = Duration::from_secs(30);

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

async fn fetch(http: &reqwest::Client, url: &str, token: &str) -> (StatusCode, String) {
    let response = http.get(url).bearer_auth(token).send().await.expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let response = http.post(url).bearer_auth(token).json(body).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the tenant's checkpoint covers `size` leaves; answers its text.
async fn checkpoint_of_size(http: &reqwest::Client, base: &str, token: &str, size: u64) -> String {
    let deadline = Instant::now() + CHECKPOINTED;
    loop {
        let (status, text) = fetch(http, &format!("{base}/v1/ledger/checkpoint"), token).await;
        if status == StatusCode::OK && text.lines().nth(1).and_then(|l| l.parse::<u64>().ok()) == Some(size) {
            return text;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}: last answer {status} {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn verify(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("verify").args(args).current_dir(dir).env("RUST_LOG", "off").output().expect("auditlog verify runs")
}

fn shown(out: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn exports_with_proofs_verify_offline_and_the_tree_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir for downloads");
    let server = Server::start(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("ledger-key")).expect("the ledger key exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (http, base) = (client(), server.url.clone());
    let admin = server.credentials()["admin_token"].as_str().expect("admin token").to_owned();
    let (status, body) = post(&http, &format!("{base}/v1/tenants"), &admin, &json!({"id": "ledgerco"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, issued) = post(&http, &format!("{base}/v1/tenants/ledgerco/api-keys"), &admin, &json!({"name": "e2e", "roles": ["writer", "reader"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"].as_str().expect("key").to_owned();

    // 300 events: more than one full tile of 256 leaves.
    for batch in 0..3 {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"action": "document.read", "actor": {"id": format!("user-{}", i % 7), "type": "user"}, "outcome": "success",
                            "description": format!("event {batch}-{i}"), "metadata": {"n": batch * 100 + i}}))
            .collect();
        let (status, body) = post(&http, &format!("{base}/v1/events/batch"), &key, &json!(events)).await;
        assert!(status.is_success(), "{status} {body}");
    }
    let checkpoint = checkpoint_of_size(&http, &base, &key, 300).await;
    assert!(checkpoint.starts_with("auditlog/ledgerco\n300\n"), "{checkpoint}");
    let (status, keys) = fetch(&http, &format!("{base}/v1/ledger/keys"), &key).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let (status, export) = fetch(&http, &format!("{base}/v1/events/export?format=ndjson&proofs=true"), &key).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export.lines().count(), 301, "the checkpoint line and 300 events");
    std::fs::write(files.path().join("keys.json"), &keys).expect("write");
    std::fs::write(files.path().join("checkpoint"), &checkpoint).expect("write");
    std::fs::write(files.path().join("export.ndjson"), &export).expect("write");
    // Events read back carry their leaf.
    let listed: Value = serde_json::from_str(&fetch(&http, &format!("{base}/v1/events?limit=5"), &key).await.1).expect("json");
    assert!(listed["events"].as_array().expect("events").iter().all(|e| e["leaf_index"].as_u64().is_some_and(|i| i < 300)), "{listed}");

    let here = files.path();
    let out = verify(here, &["--key", "@keys.json", "checkpoint", "checkpoint"]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let out = verify(here, &["--key", "@keys.json", "export", "export.ndjson", "--checkpoint", "checkpoint", "--complete"]);
    assert_eq!(out.status.code(), Some(0), "the untouched export verifies: {}", shown(&out));

    // An edited event (line 43) and a deleted one (line 7) are each named.
    let lines: Vec<&str> = export.lines().collect();
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let mut victim: Value = serde_json::from_str(lines[42]).expect("json line");
    victim["description"] = json!("nothing happened here");
    edited[42] = victim.to_string();
    std::fs::write(here.join("edited.ndjson"), edited.join("\n") + "\n").expect("write");
    let out = verify(here, &["--key", "@keys.json", "export", "edited.ndjson", "--complete"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 43"), "names the edited line: {}", shown(&out));
    let deleted_index = serde_json::from_str::<Value>(lines[6]).expect("json line")["leaf_index"].as_u64().expect("leaf_index");
    let mut deleted: Vec<&str> = lines.clone();
    deleted.remove(6);
    std::fs::write(here.join("deleted.ndjson"), deleted.join("\n") + "\n").expect("write");
    let out = verify(here, &["--key", "@keys.json", "export", "deleted.ndjson", "--complete"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("leaf {deleted_index} is missing")), "names the missing leaf {deleted_index}: {}", shown(&out));

    // Restart: the tree resumes at its size and root, then grows consistently.
    assert!(server.terminate().success(), "a graceful stop exits 0");
    let server = Server::start(dir.path());
    let base = server.url.clone();
    let again = checkpoint_of_size(&http, &base, &key, 300).await;
    assert_eq!(again.lines().take(3).collect::<Vec<_>>(), checkpoint.lines().take(3).collect::<Vec<_>>(), "same size and root");
    assert_eq!(fetch(&http, &format!("{base}/v1/ledger/keys"), &key).await.1, keys, "the same key");
    let (status, body) = post(&http, &format!("{base}/v1/events"), &key, &json!({"action": "user.logout", "actor": {"id": "zoe", "type": "user"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let grown = checkpoint_of_size(&http, &base, &key, 301).await;
    let (status, consistency) = fetch(&http, &format!("{base}/v1/ledger/consistency?from=300&to=301"), &key).await;
    assert_eq!(status, StatusCode::OK, "{consistency}");
    std::fs::write(here.join("grown"), &grown).expect("write");
    std::fs::write(here.join("consistency.json"), &consistency).expect("write");
    let out = verify(here, &["--key", "@keys.json", "consistency", "--old", "checkpoint", "--new", "grown", "--proof", "consistency.json"]);
    assert_eq!(out.status.code(), Some(0), "the grown tree extends the old one: {}", shown(&out));
    let id = body["id"].as_str().expect("id");
    let (status, proof) = fetch(&http, &format!("{base}/v1/events/{id}/proof"), &key).await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    let (_, event) = fetch(&http, &format!("{base}/v1/events/{id}"), &key).await;
    std::fs::write(here.join("proof.json"), &proof).expect("write");
    std::fs::write(here.join("event.json"), &event).expect("write");
    let out = verify(here, &["--key", "@keys.json", "inclusion", "--checkpoint", "grown", "--event", "@event.json", "--proof", "@proof.json"]);
    assert_eq!(out.status.code(), Some(0), "the new event is leaf 300: {}", shown(&out));
    assert!(server.terminate().success(), "a graceful stop exits 0");
}

/// The root line of a checkpoint.
fn root_of(checkpoint: &str) -> String {
    checkpoint.lines().nth(2).expect("root line").to_owned()
}

/// Go's checksum-database code (`golang.org/x/mod/sumdb/note`, `sumdb/tlog`, the program in
/// `ledger/tests/interop/`) accepts what the standalone API serves: the checkpoint with the
/// listed key, the tiles (it recomputes the root from them), inclusion proofs from
/// `/v1/events/{id}/proof` (at the latest and at an older size) and the consistency proof from
/// `/v1/ledger/consistency`, and regenerates the same proofs from the served tiles. Go is
/// required: without it this test fails.
#[tokio::test]
async fn go_sumdb_accepts_the_checkpoint_keys_tiles_and_proofs_the_api_serves() {
    let go = ["/usr/local/go/bin/go"].into_iter().map(std::path::PathBuf::from).find(|p| p.is_file()).unwrap_or_else(|| "go".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir for the case");
    let server = Server::start(dir.path());
    let (http, base, key) = (client(), server.url.clone(), server.key());
    let events: Vec<Value> = (0..300).map(|i| json!({"action": "user.login", "actor": {"id": format!("u{i}"), "type": "user"}})).collect();
    let (status, body) = post(&http, &format!("{base}/v1/events/batch"), &key, &json!(events)).await;
    assert!(status.is_success(), "{status} {body}");
    let old = checkpoint_of_size(&http, &base, &key, 300).await;
    let (status, last) = post(&http, &format!("{base}/v1/events"), &key, &json!({"action": "user.logout", "actor": {"id": "z", "type": "user"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{last}");
    let new = checkpoint_of_size(&http, &base, &key, 301).await;
    let origin = new.lines().next().expect("origin").to_owned();
    assert_eq!(origin, "auditlog/default");

    let keys: Value = serde_json::from_str(&fetch(&http, &format!("{base}/v1/ledger/keys"), &key).await.1).expect("keys json");
    let verifier_keys: Vec<String> = keys["keys"].as_array().expect("keys").iter().map(|k| k["verifier_key"].as_str().expect("key").to_owned()).collect();
    let signer = auditlog_ledger::Signer::parse(std::fs::read_to_string(dir.path().join("ledger-key")).expect("key file").trim()).expect("signer");
    let signer_key = signer.renamed(&origin).expect("renamed").to_key_text();

    let tile_dir = work.path().join("tiles");
    for path in ["0/000", "0/001.p/45", "1/000.p/1"] {
        let response = http.get(format!("{base}/v1/ledger/tile/{path}")).bearer_auth(&key).send().await.expect("tile");
        assert_eq!(response.status(), StatusCode::OK, "tile {path}");
        let file = tile_dir.join("tile").join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, response.bytes().await.expect("tile bytes")).expect("write tile");
    }

    // Inclusion proofs of events spread over the tree, by id, as the API answers them.
    let (_, export) = fetch(&http, &format!("{base}/v1/events/export?format=ndjson"), &key).await;
    let mut by_index: Vec<(u64, Value)> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .map(|e| (e["leaf_index"].as_u64().expect("every event is covered"), e))
        .collect();
    by_index.sort_by_key(|(i, _)| *i);
    assert_eq!(by_index.len(), 301);
    let mut inclusions = Vec::new();
    for index in [0usize, 7, 255, 256, 299, 300] {
        let (leaf_index, event) = &by_index[index];
        let mut stored = event.clone();
        stored.as_object_mut().expect("object").remove("leaf_index");
        let stored: auditlog_schemas::AuditEvent = serde_json::from_value(stored).expect("an event");
        let leaf = auditlog_ledger::event_leaf_hash(&stored).expect("leaf").to_base64();
        let id = event["id"].as_str().expect("id");
        for (size, checkpoint) in [(301u64, &new), (300, &old)] {
            if *leaf_index >= size {
                continue;
            }
            let (status, proof) = fetch(&http, &format!("{base}/v1/events/{id}/proof?tree_size={size}"), &key).await;
            assert_eq!(status, StatusCode::OK, "{proof}");
            let proof: Value = serde_json::from_str(&proof).expect("proof json");
            inclusions.push(json!({"index": leaf_index, "size": size, "root": root_of(checkpoint), "leaf": leaf, "proof": proof["hashes"]}));
        }
    }
    let (status, consistency) = fetch(&http, &format!("{base}/v1/ledger/consistency?from=300&to=301"), &key).await;
    assert_eq!(status, StatusCode::OK, "{consistency}");
    let consistency: Value = serde_json::from_str(&consistency).expect("consistency json");
    let case = json!({
        "verifier_keys": verifier_keys, "signer_key": signer_key, "note": new, "origin": origin,
        "tile_dir": tile_dir, "size": 301, "root": root_of(&new), "inclusions": inclusions,
        "consistency": [{"old": 300, "old_root": root_of(&old), "new": 301, "new_root": root_of(&new), "proof": consistency["hashes"]}],
    });
    let case_path = work.path().join("case.json");
    std::fs::write(&case_path, serde_json::to_vec(&case).expect("json")).expect("write case");
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ledger/tests/interop");
    let output = Command::new(&go).args(["run", "."]).arg(&case_path).current_dir(interop).output().expect("go runs (install Go: this test does not skip)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.contains("interop ok"), "Go rejected the API's output:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(server.terminate().success(), "a graceful stop exits 0");
}

fn audit_views(data_dir: &Path) -> Output {
    Command::new(BIN).args(["audit-views", "--tenant", "default", "--data-dir"]).arg(data_dir).env("RUST_LOG", "off").output().expect("auditlog audit-views runs")
}

/// A `by_time` row of the embedded store, as `FjallEventStore` writes it: the event and its
/// log position.
fn rows(by_time: &fjall::Keyspace) -> Vec<(Vec<u8>, Value)> {
    by_time
        .iter()
        .map(|guard| {
            let (key, value) = guard.into_inner().expect("read a row");
            (key.to_vec(), serde_json::from_slice::<Value>(&value).expect("a JSON row"))
        })
        .collect()
}

/// Someone with write access to a stopped standalone's data directory edits, deletes, swaps
/// and forges events in the embedded store (fjall, directly); `auditlog audit-views
/// --data-dir` names each against the ledger, after an untouched directory audited clean.
#[tokio::test]
async fn audit_views_names_every_event_tampered_with_in_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (http, base, key) = (client(), server.url.clone(), server.key());
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"id": format!("ev-{i:03}"), "action": "document.read", "actor": {"id": format!("u{}", i % 4), "type": "user"},
                        "outcome": "success", "occurred_at": format!("2026-12-01T10:00:{i:02}Z"), "description": format!("event {i}")}))
        .collect();
    let (status, body) = post(&http, &format!("{base}/v1/events/batch"), &key, &json!(events)).await;
    assert!(status.is_success(), "{status} {body}");
    checkpoint_of_size(&http, &base, &key, 30).await;
    // Both views hold every event before the process stops (the index may trail the ledger).
    let deadline = Instant::now() + CHECKPOINTED;
    while serde_json::from_str::<Value>(&fetch(&http, &format!("{base}/v1/events?q=event&limit=100"), &key).await.1).expect("json")["events"]
        .as_array()
        .map_or(0, Vec::len)
        < 30
    {
        assert!(Instant::now() < deadline, "the search index did not reach 30 events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.terminate().success(), "a graceful stop exits 0");

    let out = audit_views(dir.path());
    assert_eq!(out.status.code(), Some(0), "an untouched data directory audits clean: {}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tree size 30"), "{}", shown(&out));

    {
        let db = fjall::Database::builder(dir.path().join("store").join("fjall")).open().expect("open the store's fjall database");
        let by_time = db.keyspace("by_time", fjall::KeyspaceCreateOptions::default).expect("by_time");
        let events = db.keyspace("events", fjall::KeyspaceCreateOptions::default).expect("events");
        let all = rows(&by_time);
        let find = |id: &str| all.iter().find(|(_, row)| row["event"]["id"] == id).cloned().unwrap_or_else(|| panic!("{id} is stored"));
        // 1. one field of one event changed
        let (k, mut row) = find("ev-003");
        row["event"]["outcome"] = json!("failure");
        by_time.insert(k, serde_json::to_vec(&row).expect("json")).expect("edit");
        // 2. one event deleted (its row and its id entry)
        let (k, _) = find("ev-007");
        by_time.remove(k).expect("delete the row");
        let id_key = events.iter().map(|g| g.key().expect("key").to_vec()).find(|k| k.ends_with(b"ev-007")).expect("the id entry");
        events.remove(id_key).expect("delete the id entry");
        // 3. two events swapped: each row holds the other's event, the positions stay
        let ((k15, mut r15), (k16, mut r16)) = (find("ev-015"), find("ev-016"));
        std::mem::swap(&mut r15["event"], &mut r16["event"]);
        by_time.insert(k15, serde_json::to_vec(&r15).expect("json")).expect("swap");
        by_time.insert(k16, serde_json::to_vec(&r16).expect("json")).expect("swap");
        // 4. a forged event inserted beside a real one
        let (mut k, mut row) = find("ev-020");
        row["event"]["id"] = json!("ev-forged");
        k.truncate(k.len() - "ev-020".len());
        k.extend_from_slice(b"ev-forged");
        by_time.insert(k, serde_json::to_vec(&row).expect("json")).expect("forge");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }

    let out = audit_views(dir.path());
    assert_eq!(out.status.code(), Some(1), "tampering is a failed audit: {}", shown(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "store: event ev-003 was edited",
        "store: event ev-007 (leaf 7) is missing",
        "store-by-id: event ev-007 (leaf 7) is missing",
        "store: event ev-forged is not in the ledger",
        "out of log order",
    ] {
        assert!(report.contains(needle), "{needle:?} is reported:\n{report}");
    }
    for line in report.lines() {
        assert!(["ev-003", "ev-007", "ev-015", "ev-016", "ev-forged"].iter().any(|id| line.contains(id)), "a clean event was named: {line}");
    }
}
