//! The ledger's read side over the embedded backends (plain `cargo test`): the ledger is
//! filled by the real `LedgerSink` over a `FileLedgerStore`, and every answer is checked with
//! `auditlog-ledger`'s verifiers: the checkpoint opens with the listed key, each inclusion
//! proof leads to its root, consistency holds between two checkpoints, tiles are the stored
//! bytes, events read back carry `leaf_index`, exports with proofs verify line by line, tenant
//! B reaches nothing of A's, and every bad parameter is a 4xx naming it.

mod common;

use std::collections::HashMap;

use auditlog_ledger::{Checkpoint, Hash, Verifier, event_leaf_hash, verify_consistency, verify_inclusion};
use auditlog_processors::Sink as _;
use auditlog_processors::ledger::LedgerSink;
use auditlog_schemas::AuditEvent;
use auditlog_seams::{LogPosition, StoredEvent};
use common::*;
use serde_json::Value;

const DEPLOYMENT: &str = "ledger-tests";

/// The API with a ledger and the sink that fills it; offsets grow across calls, as a log's do.
struct Fixture {
    api: TestApi,
    sink: LedgerSink,
    next_offset: std::sync::atomic::AtomicI64,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(test_config()).await
    }

    async fn with(config: auditlog_query_api::QueryConfig) -> Self {
        let api = embedded_api_with_ledger(config, DEPLOYMENT).await;
        let store = api.ledger.clone().expect("ledger");
        let signer = auditlog_ledger::Signer::generate("deployment-key").expect("key");
        let sink = LedgerSink::new(store, vec![signer], DEPLOYMENT, None);
        sink.register_keys().await.expect("keys listed");
        Self { api, sink, next_offset: std::sync::atomic::AtomicI64::new(0) }
    }

    /// Stores and indexes `events`, then appends them to the ledger in this order.
    async fn ingest(&self, events: &[AuditEvent]) {
        seed(&self.api, events).await;
        let stored: Vec<StoredEvent> = events
            .iter()
            .map(|e| {
                let offset = self.next_offset.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                StoredEvent { event: e.clone(), position: LogPosition { topic: "ledger-test".into(), partition: 0, offset } }
            })
            .collect();
        self.sink.write(&stored).await.expect("ledger sink writes");
    }
}

/// The tenant's verifier keys, from `/v1/ledger/keys`.
async fn keys_of(api: &TestApi, token: &str) -> Vec<Verifier> {
    let answer = get(api, "/v1/ledger/keys", token).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let body = answer.json();
    body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            assert!(k["not_after"].is_null(), "a current key: {k}");
            time::OffsetDateTime::parse(k["not_before"].as_str().expect("not_before"), &time::format_description::well_known::Rfc3339).expect("rfc 3339");
            let key = Verifier::parse(k["verifier_key"].as_str().expect("verifier_key")).expect("verifier key text");
            assert_eq!(k["key_id"].as_str(), Some(format!("{:08x}", key.key_id()).as_str()));
            key
        })
        .collect()
}

/// The tenant's latest checkpoint, opened with `keys` under the tenant's origin.
async fn checkpoint_of(api: &TestApi, token: &str, tenant: &str, keys: &[Verifier]) -> (Checkpoint, String) {
    let answer = get(api, "/v1/ledger/checkpoint", token).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");
    let text = String::from_utf8(answer.body).expect("utf-8");
    let (checkpoint, _) = Checkpoint::open(&text, keys, Some(&format!("{DEPLOYMENT}/{tenant}"))).expect("checkpoint verifies with the listed key");
    (checkpoint, text)
}

fn hashes(value: &Value) -> Vec<Hash> {
    value.as_array().expect("hash array").iter().map(|h| Hash::from_base64(h.as_str().expect("string")).expect("base64 hash")).collect()
}

/// The event as stored, from an answer carrying `leaf_index` (and `proof`).
fn event_of(value: &Value) -> AuditEvent {
    let mut value = value.clone();
    let object = value.as_object_mut().expect("object");
    object.remove("leaf_index");
    object.remove("proof");
    serde_json::from_value(value).expect("an AuditEvent")
}

#[tokio::test]
async fn proofs_checkpoints_and_tiles_verify() {
    let f = Fixture::new().await;
    let (a, b) = (f.api.tenant("lga"), f.api.tenant("lgb"));
    let a_events: Vec<AuditEvent> = (0..300).map(|n| event(&a, n)).collect();
    let (token_a, token_b) = (reader(&a), reader(&b));
    // 280 leaves, then 20 more: two checkpoints, the second past the first full tile.
    f.ingest(&a_events[..280]).await;
    let keys = keys_of(&f.api, &token_a).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name(), format!("{DEPLOYMENT}/{a}"));
    let (old, _) = checkpoint_of(&f.api, &token_a, &a, &keys).await;
    assert_eq!(old.size, 280);
    f.ingest(&a_events[280..]).await;
    f.ingest(&[event(&b, 0), event(&b, 1), event(&b, 2)]).await;
    let (new, new_text) = checkpoint_of(&f.api, &token_a, &a, &keys).await;
    assert_eq!(new.size, 300);

    // Inclusion: each sampled event against the latest root, and against the older size.
    let by_index: HashMap<u64, &AuditEvent> = a_events.iter().enumerate().map(|(i, e)| (i as u64, e)).collect();
    for index in [0u64, 1, 100, 255, 256, 279, 299] {
        let e = by_index[&index];
        let leaf = event_leaf_hash(e).expect("leaf");
        let proof = get(&f.api, &format!("/v1/events/{}/proof", e.id), &token_a).await;
        assert_eq!(proof.status, 200, "{}", String::from_utf8_lossy(&proof.body));
        let proof = proof.json();
        assert_eq!((proof["leaf_index"].as_u64(), proof["tree_size"].as_u64()), (Some(index), Some(300)));
        verify_inclusion(&hashes(&proof["hashes"]), index, 300, &leaf, &new.root).unwrap_or_else(|err| panic!("leaf {index}: {err}"));
        if index < 280 {
            let proof = get(&f.api, &format!("/v1/events/{}/proof?tree_size=280", e.id), &token_a).await.json();
            verify_inclusion(&hashes(&proof["hashes"]), index, 280, &leaf, &old.root).unwrap_or_else(|err| panic!("leaf {index} at 280: {err}"));
        }
    }

    // Consistency between the two checkpoints, and the trivial one.
    let consistency = get(&f.api, "/v1/ledger/consistency?from=280&to=300", &token_a).await;
    assert_eq!(consistency.status, 200, "{}", String::from_utf8_lossy(&consistency.body));
    let consistency = consistency.json();
    assert_eq!((consistency["from"].as_u64(), consistency["to"].as_u64()), (Some(280), Some(300)));
    verify_consistency(&hashes(&consistency["hashes"]), 280, &old.root, 300, &new.root).expect("consistent");
    let same = get(&f.api, "/v1/ledger/consistency?from=300&to=300", &token_a).await.json();
    assert_eq!(same["hashes"], serde_json::json!([]));

    // Tiles: the stored bytes, immutable.
    let store = f.api.ledger.clone().expect("ledger");
    for path in ["0/000", "0/001.p/44", "1/000.p/1"] {
        let answer = get(&f.api, &format!("/v1/ledger/tile/{path}"), &token_a).await;
        assert_eq!(answer.status, 200, "tile {path}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.headers["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(answer.headers["content-type"], "application/octet-stream");
        let stored = store.get_tile(&a, &format!("tile/{path}")).await.expect("read").expect("stored");
        assert_eq!(answer.body, stored, "tile {path}");
    }

    // B: its own tree, none of A's.
    let b_keys = keys_of(&f.api, &token_b).await;
    let (b_checkpoint, b_text) = checkpoint_of(&f.api, &token_b, &b, &b_keys).await;
    assert_eq!(b_checkpoint.size, 3);
    assert_ne!(b_text, new_text);
    assert!(Checkpoint::open(&new_text, &b_keys, Some(&format!("{DEPLOYMENT}/{b}"))).is_err(), "A's checkpoint is not B's");
    let stolen = get(&f.api, &format!("/v1/events/{}/proof", a_events[0].id), &token_b).await;
    stolen.assert_problem(404, Some("id"));
    let unknown = get(&f.api, "/v1/events/no-such-event/proof", &token_b).await;
    unknown.assert_problem(404, Some("id"));
    assert_eq!(stolen.json()["detail"], unknown.json()["detail"], "another tenant's id looks unknown");
    get(&f.api, "/v1/ledger/tile/0/000", &token_b).await.assert_problem(404, Some("path"));
    get(&f.api, "/v1/ledger/consistency?from=1&to=300", &token_b).await.assert_problem(400, Some("to"));
}

#[tokio::test]
async fn events_read_back_carry_their_leaf_index() {
    // Exports of 5 events a page: proofs and separators across pages, a page with an event
    // the checkpoint does not cover.
    let mut config = test_config();
    config.limits.export_page_size = 5;
    let f = Fixture::with(config).await;
    let a = f.api.tenant("lgi");
    let token = reader(&a);
    let events: Vec<AuditEvent> = (0..12).map(|n| event(&a, n)).collect();
    f.ingest(&events).await;
    // Stored but not (yet) ledgered: no leaf_index, and no place in a proofs export.
    let pending = event(&a, 12);
    seed(&f.api, std::slice::from_ref(&pending)).await;
    let expected: HashMap<String, u64> = events.iter().enumerate().map(|(i, e)| (e.id.clone(), i as u64)).collect();

    let one = get(&f.api, &format!("/v1/events/{}", events[5].id), &token).await.json();
    assert_eq!(one["leaf_index"].as_u64(), Some(5));
    let missing = get(&f.api, &format!("/v1/events/{}", pending.id), &token).await.json();
    assert!(missing.get("leaf_index").is_none(), "{missing}");

    let page = get(&f.api, "/v1/events?limit=1000", &token).await.json();
    let listed = page["events"].as_array().expect("events");
    assert_eq!(listed.len(), 13);
    for e in listed {
        let id = e["id"].as_str().expect("id");
        assert_eq!(e["leaf_index"].as_u64(), expected.get(id).copied(), "{id}");
    }

    let export = get(&f.api, "/v1/events/export?format=ndjson", &token).await;
    assert_eq!(export.status, 200);
    let lines: Vec<Value> = String::from_utf8(export.body).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 13);
    for e in &lines {
        assert_eq!(e["leaf_index"].as_u64(), expected.get(e["id"].as_str().expect("id")).copied());
    }

    // proofs=true: the checkpoint line, then the covered events only, each verifying.
    let keys = keys_of(&f.api, &token).await;
    for format in ["ndjson", "json"] {
        let answer = get(&f.api, &format!("/v1/events/export?format={format}&proofs=true"), &token).await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        let (note, lines): (String, Vec<Value>) = if format == "ndjson" {
            let text = String::from_utf8(answer.body).expect("utf-8");
            let mut lines = text.lines().map(|l| serde_json::from_str::<Value>(l).expect("json line"));
            let head = lines.next().expect("checkpoint line");
            (head["checkpoint"].as_str().expect("checkpoint").to_owned(), lines.collect())
        } else {
            let body = answer.json();
            (body["checkpoint"].as_str().expect("checkpoint").to_owned(), body["events"].as_array().expect("events").clone())
        };
        let (checkpoint, _) = Checkpoint::open(&note, &keys, Some(&format!("{DEPLOYMENT}/{a}"))).expect("export checkpoint verifies");
        assert_eq!(checkpoint.size, 12);
        assert_eq!(lines.len(), 12, "{format}: only the covered events");
        let mut seen = std::collections::BTreeSet::new();
        for line in &lines {
            let index = line["leaf_index"].as_u64().expect("leaf_index");
            let leaf = event_leaf_hash(&event_of(line)).expect("leaf");
            verify_inclusion(&hashes(&line["proof"]), index, checkpoint.size, &leaf, &checkpoint.root).unwrap_or_else(|e| panic!("{format} leaf {index}: {e}"));
            seen.insert(index);
        }
        assert_eq!(seen, (0..12).collect(), "{format}: every leaf once");
    }
    // Bounded tile cache: a filtered export still verifies (a subset of leaves).
    let filtered = get(&f.api, "/v1/events/export?format=ndjson&proofs=true&action=user.login", &token).await;
    assert_eq!(filtered.status, 200);
    assert_eq!(String::from_utf8(filtered.body).expect("utf-8").lines().count(), 1 + 3);
}

#[tokio::test]
async fn every_bad_ledger_parameter_is_a_4xx_naming_it() {
    let f = Fixture::new().await;
    let a = f.api.tenant("lgp");
    let token = reader(&a);
    // Before the first leaf: no checkpoint.
    get(&f.api, "/v1/ledger/checkpoint", &token).await.assert_problem(404, None);
    get(&f.api, "/v1/events/export?format=ndjson&proofs=true", &token).await.assert_problem(404, Some("proofs"));
    get(&f.api, "/v1/ledger/consistency?from=1&to=1", &token).await.assert_problem(404, None);
    let events: Vec<AuditEvent> = (0..10).map(|n| event(&a, n)).collect();
    f.ingest(&events).await;
    let id = &events[7].id;
    for (uri, status, field) in [
        ("/v1/events/unknown-id/proof".to_string(), 404, "id"),
        (format!("/v1/events/{id}/proof?tree_size=0"), 400, "tree_size"),
        (format!("/v1/events/{id}/proof?tree_size=11"), 400, "tree_size"),
        (format!("/v1/events/{id}/proof?tree_size=7"), 400, "tree_size"),
        (format!("/v1/events/{id}/proof?tree_size=abc"), 400, "tree_size"),
        (format!("/v1/events/{id}/proof?tree_size=-1"), 400, "tree_size"),
        (format!("/v1/events/{id}/proof?tree_size=99999999999999999999999"), 400, "tree_size"),
        (format!("/v1/events/{id}/proof?size=3"), 400, "size"),
        ("/v1/ledger/consistency?from=5&to=3".into(), 400, "from"),
        ("/v1/ledger/consistency?from=0&to=3".into(), 400, "from"),
        ("/v1/ledger/consistency?from=3&to=11".into(), 400, "to"),
        ("/v1/ledger/consistency?to=3".into(), 400, "from"),
        ("/v1/ledger/consistency?from=3".into(), 400, "to"),
        ("/v1/ledger/consistency?from=x&to=3".into(), 400, "from"),
        ("/v1/ledger/tile/0/1".into(), 400, "path"),
        ("/v1/ledger/tile/0/000.p/0".into(), 400, "path"),
        ("/v1/ledger/tile/99/000".into(), 400, "path"),
        ("/v1/ledger/tile/0/..%2F..%2Fstate.json".into(), 400, "path"),
        ("/v1/ledger/tile/entries/000".into(), 404, "path"),
        ("/v1/ledger/tile/0/001".into(), 404, "path"),
        ("/v1/events/export?format=csv&proofs=true".into(), 400, "proofs"),
        ("/v1/events/export?format=ndjson&proofs=yes".into(), 400, "proofs"),
    ] {
        let answer = get(&f.api, &uri, &token).await;
        assert!(answer.status.is_client_error(), "{uri}: {}", answer.status);
        answer.assert_problem(status, Some(field));
    }
    // The right answers next to them.
    assert_eq!(get(&f.api, &format!("/v1/events/{id}/proof?tree_size=8"), &token).await.status, 200);
    assert_eq!(get(&f.api, "/v1/ledger/tile/0/000.p/10", &token).await.status, 200);
    // No credential, no ledger.
    assert_eq!(call(&f.api, "GET", "/v1/ledger/checkpoint", None, None).await.status, 401);
}

#[tokio::test]
async fn without_a_ledger_the_routes_say_so_and_events_carry_no_index() {
    let api = embedded_api_with(test_config()).await;
    let a = api.tenant("lgn");
    let token = reader(&a);
    let e = event(&a, 0);
    seed(&api, std::slice::from_ref(&e)).await;
    for uri in ["/v1/ledger/checkpoint".to_string(), "/v1/ledger/keys".into(), format!("/v1/events/{}/proof", e.id), "/v1/ledger/consistency?from=1&to=1".into(), "/v1/ledger/tile/0/000".into(), "/v1/events/export?proofs=true".into()] {
        let answer = get(&api, &uri, &token).await;
        answer.assert_problem(404, None);
        assert_eq!(answer.json()["type"], "https://auditlog.dev/problems/ledger-not-configured", "{uri}");
    }
    let one = get(&api, &format!("/v1/events/{}", e.id), &token).await.json();
    assert!(one.get("leaf_index").is_none());
    assert_eq!(one["id"], e.id.as_str());
}

#[tokio::test]
async fn openapi_documents_the_ledger() {
    let api = embedded_api_with(test_config()).await;
    let doc = call(&api, "GET", "/openapi.json", None, None).await.json();
    for path in ["/v1/ledger/checkpoint", "/v1/ledger/keys", "/v1/events/{id}/proof", "/v1/ledger/consistency", "/v1/ledger/tile/{path}"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} undocumented");
    }
    let export = doc["paths"]["/v1/events/export"]["get"]["parameters"].as_array().expect("params").clone();
    assert!(export.iter().any(|p| p["name"] == "proofs"), "proofs undocumented");
}
