//! Black-box tests of `auditlog standalone`: the real binary on a temporary data directory and
//! a free port, driven over HTTP and WebSocket with stock clients; a kill -9 during ingest
//! loses no acknowledged event; a corrupt or newer data directory is refused by name.

mod standalone_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use standalone_support::{BIN, Server, free_port, list_all, load};

/// Longest wait for an acknowledged event to reach both views.
const CONVERGE: Duration = Duration::from_secs(20);

/// Runs the binary on `dir` expecting it to fail at start; answers its stderr.
fn start_fails(dir: &Path) -> String {
    let output = Command::new(BIN)
        .args(["standalone", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "standalone must refuse this data dir: {stderr}");
    stderr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

fn event(action: &str, actor: &str, description: &str) -> Value {
    json!({"action": action, "actor": {"id": actor, "type": "user"}, "outcome": "success", "description": description,
           "targets": [{"type": "document", "id": "doc-1"}]})
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Value) {
    let response = http.get(url).bearer_auth(token).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let response = http.post(url).bearer_auth(token).json(body).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `check` holds, polling.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + CONVERGE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ingest_list_get_search_stats_and_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (http, base, key) = (client(), server.url.clone(), server.key());

    let (status, single) = post(&http, &format!("{base}/v1/events"), &key, &event("user.login", "alice", "first zebra login")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{single}");
    let single_id = single["id"].as_str().expect("id").to_owned();
    let batch = json!([event("document.read", "bob", "read report"), event("document.delete", "bob", "deleted report")]);
    let (status, answer) = post(&http, &format!("{base}/v1/events/batch"), &key, &batch).await;
    assert_eq!((status, answer["accepted"].as_u64()), (StatusCode::ACCEPTED, Some(2)), "{answer}");
    let ndjson = [event("user.logout", "alice", "bye"), event("user.login", "carol", "hello")].map(|e| e.to_string()).join("\n");
    let response = http
        .post(format!("{base}/v1/events/batch"))
        .bearer_auth(&key)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .expect("ndjson batch");
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    eventually("5 events in the store", || async { list_all(&http, &base, "", &key).await.len() == 5 }).await;
    eventually("5 events in the index", || async { list_all(&http, &base, "&q=login OR report OR bye OR hello", &key).await.len() >= 4 }).await;

    let (status, got) = get_json(&http, &format!("{base}/v1/events/{single_id}"), &key).await;
    assert_eq!((status, got["action"].as_str()), (StatusCode::OK, Some("user.login")), "{got}");
    assert_eq!(got["tenant_id"], "default");
    let bobs = list_all(&http, &base, "&actor_id=bob", &key).await;
    assert_eq!(bobs.len(), 2);
    let logins = list_all(&http, &base, "&action=user.login", &key).await;
    assert_eq!(logins.len(), 2);
    let zebra = list_all(&http, &base, "&q=zebra", &key).await;
    assert_eq!(zebra, vec![single_id.clone()], "full-text search finds the one event");

    // Paging: two at a time, newest first, no duplicates, every event once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/events?limit=2&cursor={c}"),
            None => format!("{base}/v1/events?limit=2"),
        };
        let (status, page) = get_json(&http, &url, &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 2);
        seen.extend(events.iter().map(|e| e["id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5, "no duplicates across pages");
    // The same through the search index (full text), one event per page.
    let (status, first) = get_json(&http, &format!("{base}/v1/events?limit=1&q=report"), &key).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (status, second) = get_json(&http, &format!("{base}/v1/events?limit=1&q=report&cursor={cursor}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(first["events"][0]["id"], second["events"][0]["id"]);
    assert_eq!(second["events"].as_array().map(Vec::len), Some(1));

    let (status, stats) = get_json(&http, &format!("{base}/v1/stats?group_by=action&interval=1h"), &key).await;
    assert_eq!((status, stats["total"].as_u64()), (StatusCode::OK, Some(5)), "{stats}\n{}", server.stderr());
    let login_group = stats["groups"].as_array().expect("groups").iter().find(|g| g["key"] == "user.login").cloned();
    assert_eq!(login_group.map(|g| g["count"].clone()), Some(json!(2)), "{stats}");
    let histogram: u64 = stats["histogram"].as_array().expect("histogram").iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(histogram, 5);

    let ndjson = http.get(format!("{base}/v1/events/export?format=ndjson")).bearer_auth(&key).send().await.expect("export");
    assert_eq!(ndjson.status(), StatusCode::OK);
    let text = ndjson.text().await.expect("body");
    let rows: Vec<Value> = text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().any(|r| r["id"] == single_id.as_str()));
    let csv = http.get(format!("{base}/v1/events/export?format=csv")).bearer_auth(&key).send().await.expect("export");
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.expect("body");
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let id_column = header.iter().position(|h| *h == "id").expect("an id column");
    let csv_ids: HashSet<String> = lines.map(|l| l.split(',').nth(id_column).expect("id cell").trim_matches('"').to_owned()).collect();
    assert_eq!(csv_ids.len(), 5);
    assert!(csv_ids.contains(&single_id));

    // One OpenAPI document for the one port: ingest and queries both.
    let doc: Value = http.get(format!("{base}/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    assert!(doc["paths"]["/v1/events"]["post"].is_object() && doc["paths"]["/v1/events"]["get"].is_object(), "{}", doc["paths"]);
    assert!(doc["paths"]["/v1/events/batch"]["post"].is_object() && doc["paths"]["/v1/stats"]["get"].is_object());
    let docs = http.get(format!("{base}/docs/")).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
}

#[tokio::test]
async fn live_tail_over_websocket_and_sse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (http, base, key) = (client(), server.url.clone(), server.key());

    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("{}/v1/events/stream?action=ws.probe", base.replace("http://", "ws://")).into_client_request().expect("ws url");
    request.headers_mut().insert("authorization", format!("Bearer {key}").parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket upgrade");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, sent) = post(&http, &format!("{base}/v1/events"), &key, &event("ws.probe", "dave", "live")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let received = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(message) = socket.next().await {
            let message = message.expect("frame");
            let Ok(text) = message.to_text() else { continue };
            let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if frame["type"] == "event" {
                return frame;
            }
        }
        Value::Null
    })
    .await
    .expect("the event arrives within a second");
    assert_eq!(received["event"]["id"], sent["id"]);
    let _ = socket.close(None).await;

    let mut sse = http
        .get(format!("{base}/v1/events/stream?action=sse.probe"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, sent) = post(&http, &format!("{base}/v1/events"), &key, &event("sse.probe", "erin", "live")).await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let text = tokio::time::timeout(Duration::from_secs(1), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = sse.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(&format!("id: {id}")) || text.contains(&format!("id:{id}")) {
                break;
            }
        }
        text
    })
    .await
    .expect("the SSE event arrives within a second");
    assert!(text.contains("event: audit") || text.contains("event:audit"), "{text}");
}

#[tokio::test]
async fn tenant_admin_keys_and_cross_tenant_isolation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (http, base) = (client(), server.url.clone());
    let credentials = server.credentials();
    let admin = credentials["admin_token"].as_str().expect("admin token");
    let default_key = server.key();

    let (status, tenant) = post(&http, &format!("{base}/v1/tenants"), admin, &json!({"id": "acme", "name": "Acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let (status, issued) =
        post(&http, &format!("{base}/v1/tenants/acme/api-keys"), admin, &json!({"name": "ci", "roles": ["writer", "reader"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let acme_key = issued["key"].as_str().expect("key").to_owned();
    let key_id = issued["key_id"].as_str().expect("key id").to_owned();

    let (status, sent) = post(&http, &format!("{base}/v1/events"), &acme_key, &event("secret.read", "mallory", "acme only")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_owned();
    eventually("acme's event readable", || async {
        get_json(&http, &format!("{base}/v1/events/{id}"), &acme_key).await.0 == StatusCode::OK
    })
    .await;
    let (status, _) = get_json(&http, &format!("{base}/v1/events/{id}"), &default_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "tenant default cannot read acme's event");
    assert!(!list_all(&http, &base, "", &default_key).await.contains(&id));
    assert!(list_all(&http, &base, "&q=acme", &default_key).await.is_empty());
    let (status, _) = post(&http, &format!("{base}/v1/events"), &acme_key, &json!({"tenant_id": "default", "action": "x.y", "actor": {"id": "m", "type": "user"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a body naming another tenant is refused");

    let response = http.delete(format!("{base}/v1/tenants/acme/api-keys/{key_id}")).bearer_auth(admin).send().await.expect("revoke");
    assert!(response.status().is_success(), "{}", response.status());
    let (status, _) = post(&http, &format!("{base}/v1/events"), &acme_key, &event("after.revoke", "m", "x")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key no longer works");
    let (status, _) = get_json(&http, &format!("{base}/v1/tenants"), &default_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a tenant key cannot administer tenants");
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (http, base, key) = (client(), server.url.clone(), server.key());

    let response = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(&key)
        .json(&json!({"action": "Bad Action!", "actor": {"id": "a", "type": "user"}}))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.expect("json");
    assert!(problem["errors"].as_array().expect("errors").iter().any(|e| e["field"] == "action"), "{problem}");
    let response = http.get(format!("{base}/v1/events?severity=loud")).bearer_auth(&key).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.expect("json");
    assert!(problem.to_string().contains("severity"), "{problem}");
    let (status, _) = get_json(&http, &format!("{base}/v1/events"), "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, ready) = get_json(&http, &format!("{base}/readyz"), "").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    // A valid event sent after the rejected input: once it is listed, everything sent before
    // it has been processed, and it must be the only event.
    let (status, marker) = post(&http, &format!("{base}/v1/events"), &key, &event("marker.sent", "zed", "after the rejected input")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{marker}");
    let marker = marker["id"].as_str().expect("id").to_owned();
    eventually("the marker is listed", || async { list_all(&http, &base, "", &key).await.contains(&marker) }).await;
    assert_eq!(list_all(&http, &base, "", &key).await, [marker], "rejected input wrote nothing");
}

#[tokio::test]
async fn restart_reuses_credentials_and_keeps_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert!(server.stderr().contains("First start"), "{}", server.stderr());
    let (http, base, key) = (client(), server.url.clone(), server.key());
    let first = server.credentials();
    let (status, sent) = post(&http, &format!("{base}/v1/events"), &key, &event("user.login", "alice", "before restart")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(server.terminate().success(), "a graceful stop exits 0");

    let server = Server::start(dir.path());
    assert!(!server.stderr().contains("First start") && server.stderr().contains("credentials.json"), "{}", server.stderr());
    assert_eq!(server.credentials(), first, "credentials are reused");
    let base = server.url.clone();
    let id = sent["id"].as_str().expect("id").to_owned();
    eventually("the event survives the restart", || async {
        get_json(&http, &format!("{base}/v1/events/{id}"), &key).await.0 == StatusCode::OK
    })
    .await;
    let tenant_admin = first["tenant_admin_token"].as_str().expect("tenant admin token");
    let (status, keys) = get_json(&http, &format!("{base}/v1/tenants/default/api-keys"), tenant_admin).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    assert_eq!(keys.as_array().map(Vec::len).or_else(|| keys["api_keys"].as_array().map(Vec::len)), Some(1), "{keys}");
    assert!(server.terminate().success(), "a graceful stop exits 0");

    // Offline, `auditlog reconcile --data-dir` compares the embedded log with both views.
    let out = std::process::Command::new(BIN)
        .args(["reconcile", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("reconcile runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "reconcile finds both views exact: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let reports: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a json report per tenant")).collect();
    let default = reports.iter().find(|r| r["tenant"] == "default").expect("tenant default is reported");
    assert_eq!(default["log"], 1, "{default}");
    assert_eq!((default["scylla"]["count"].clone(), default["opensearch"]["count"].clone()), (json!(1), json!(1)), "{default}");
}

#[tokio::test]
async fn kill_9_during_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = Server::start_on(dir.path(), port);
    let (base, key) = (server.url.clone(), server.key());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4).map(|w| tokio::spawn(load(base.clone(), key.clone(), "crash", w, Arc::clone(&stop)))).collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for worker in workers {
        acked.extend(worker.await.expect("worker"));
    }
    drop(server);
    assert!(acked.len() >= 200, "the load got going before the crash: {} acknowledged", acked.len());
    let acked_set: HashSet<String> = acked.iter().cloned().collect();
    assert_eq!(acked_set.len(), acked.len());

    let server = Server::start_on(dir.path(), port);
    let http = client();
    let deadline = Instant::now() + CONVERGE;
    let (store_ids, index_ids) = loop {
        let store_ids = list_all(&http, &base, "&action=crash.load", &key).await;
        let index_ids = list_all(&http, &base, "&q=crashload", &key).await;
        let (s, i): (HashSet<&String>, HashSet<&String>) = (store_ids.iter().collect(), index_ids.iter().collect());
        if acked.iter().all(|id| s.contains(id) && i.contains(id)) && s == i {
            break (store_ids, index_ids);
        }
        let missing = acked.iter().filter(|id| !s.contains(id) || !i.contains(id)).count();
        assert!(Instant::now() < deadline, "views did not converge: {missing} acknowledged missing, store {} index {}", s.len(), i.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(store_ids.iter().collect::<HashSet<_>>().len(), store_ids.len(), "no duplicates in the store's list");
    assert_eq!(index_ids.iter().collect::<HashSet<_>>().len(), index_ids.len(), "no duplicates in search results");
    // Spot-check reads by id (every 10th, and the last of each worker's run).
    for id in acked.iter().step_by(10).chain(acked.last()) {
        let (status, got) = get_json(&http, &format!("{base}/v1/events/{id}"), &key).await;
        assert_eq!((status, got["id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{got}");
    }
    assert!(server.terminate().success());
}

/// The segment file with the most bytes under the shared topic's partitions.
fn largest_segment(dir: &Path) -> PathBuf {
    let topic = dir.join("log/topics/audit.events.v1");
    let mut best: Option<(u64, PathBuf)> = None;
    for partition in std::fs::read_dir(&topic).expect("topic dir").flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(partition.path()).expect("partition dir").flatten() {
            let len = file.metadata().expect("metadata").len();
            if file.path().extension().is_some_and(|e| e == "seg") && best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, file.path()));
            }
        }
    }
    best.expect("a segment").1
}

#[tokio::test]
async fn a_corrupt_segment_or_a_newer_data_dir_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (http, base, key) = (client(), server.url.clone(), server.key());
    let batch: Vec<Value> = (0..5).map(|i| event("user.login", "alice", &format!("event {i}"))).collect();
    let (status, _) = post(&http, &format!("{base}/v1/events/batch"), &key, &json!(batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(server.terminate().success());

    let segment = largest_segment(dir.path());
    let original = std::fs::read(&segment).expect("segment");
    assert!(original.len() > 200, "the segment holds the events");
    let mut damaged = original.clone();
    damaged[24 + 8 + 16] ^= 0xff; // inside the first record's body: its checksum no longer matches
    std::fs::write(&segment, &damaged).expect("corrupt");
    let stderr = start_fails(dir.path());
    let name = segment.file_name().expect("name").to_string_lossy().into_owned();
    assert!(stderr.contains(&name) && stderr.contains("corrupt"), "{stderr}");
    assert_eq!(std::fs::read(&segment).expect("segment"), damaged, "a refused segment is left as it was");

    std::fs::write(&segment, &original).expect("repair");
    std::fs::write(dir.path().join("FORMAT"), "auditlog-data-dir 99\n").expect("newer format");
    let stderr = start_fails(dir.path());
    assert!(stderr.contains("FORMAT") && stderr.contains("newer"), "{stderr}");

    std::fs::write(dir.path().join("FORMAT"), "auditlog-data-dir 1\n").expect("current format");
    let server = Server::start(dir.path());
    assert_eq!(list_all(&http, &server.url, "", &key).await.len(), 5, "the repaired directory serves every event");
}
