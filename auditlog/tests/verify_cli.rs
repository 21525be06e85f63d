//! `auditlog verify`, run as the built binary on files this test writes: a tenant tree of 300
//! events (two level-0 tiles) built with the ledger crate, a signed checkpoint, the export with
//! proofs in the contract's format. An untouched export verifies; every tamper is caught and
//! named; garbage never panics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use auditlog_ledger::proof::{consistency_tiles, inclusion_tiles};
use auditlog_ledger::{Checkpoint, Hash, Signer, Tile, TileHashReader, TreeState, event_leaf_hash, origin, prove_consistency, prove_inclusion, root_of};
use auditlog_schemas::AuditEvent;
use serde_json::{Value, json};
use tempfile::TempDir;

const SIZE: u64 = 300;

/// A tenant's ledger of [`SIZE`] events and the files a verifier would download.
struct Fixture {
    dir: TempDir,
    origin: String,
    signer: Signer,
    /// Each event as the API returns it (no read-time fields).
    events: Vec<Value>,
    leaves: Vec<Hash>,
    tiles: HashMap<Tile, Vec<u8>>,
}

impl Fixture {
    fn new() -> Self {
        let origin = origin("auditlog.test", "acme").expect("origin");
        let signer = Signer::generate("auditlog.test").expect("key");
        let events: Vec<Value> = (0..SIZE).map(event).collect();
        let leaves: Vec<Hash> = events.iter().map(|e| event_leaf_hash(&parse_event(e)).expect("leaf")).collect();
        // Appended in uneven batches, as the ledger processor would.
        let (mut state, mut tiles) = (TreeState::empty(), HashMap::new());
        for batch in leaves.chunks(97) {
            let appended = state.append(batch);
            tiles.extend(appended.tiles);
            state = appended.state;
        }
        assert_eq!(state.root(), root_of(&leaves));
        let fixture = Self { dir: TempDir::new().expect("tempdir"), origin, signer, events, leaves, tiles };
        let keys = json!({"keys": [{
            "key_id": format!("{:08x}", fixture.verifier().key_id()),
            "verifier_key": fixture.verifier().to_string(),
            "not_before": "2026-01-01T00:00:00Z", "not_after": null,
        }]});
        fixture.write("keys.json", keys.to_string().as_bytes());
        fixture.write("checkpoint", fixture.checkpoint(SIZE, std::slice::from_ref(&fixture.signer)).as_bytes());
        fixture.write("export.ndjson", fixture.export_lines().join("\n").as_bytes());
        fixture
    }

    fn verifier(&self) -> auditlog_ledger::Verifier {
        self.signer.verifier().renamed(&self.origin).expect("renamed")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write");
        path.display().to_string()
    }

    fn checkpoint(&self, size: u64, signers: &[Signer]) -> String {
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root: root_of(&self.leaves[..size as usize]), extensions: vec![] };
        checkpoint.sign(signers).expect("sign")
    }

    fn reader(&self, wanted: &[Tile]) -> TileHashReader {
        let mut reader = TileHashReader::new(SIZE);
        for tile in wanted {
            reader.insert(*tile, self.tiles[tile].clone()).expect("tile");
        }
        reader
    }

    fn inclusion(&self, index: u64) -> Vec<String> {
        let reader = self.reader(&inclusion_tiles(index, SIZE, SIZE).expect("tiles"));
        prove_inclusion(index, SIZE, &reader).expect("proof").iter().map(Hash::to_base64).collect()
    }

    fn consistency(&self, old: u64) -> Value {
        let reader = self.reader(&consistency_tiles(old, SIZE, SIZE).expect("tiles"));
        let hashes: Vec<String> = prove_consistency(old, SIZE, &reader).expect("proof").iter().map(Hash::to_base64).collect();
        json!({"from": old, "to": SIZE, "hashes": hashes})
    }

    /// The export event of leaf `index`: the event JSON plus `leaf_index` and `proof`.
    fn export_event(&self, index: u64) -> Value {
        let mut event = self.events[index as usize].clone();
        event["leaf_index"] = json!(index);
        event["proof"] = json!(self.inclusion(index));
        event
    }

    /// The ndjson export: the checkpoint line, then one line per event (in index order).
    fn export_lines(&self) -> Vec<String> {
        let checkpoint = std::fs::read_to_string(self.path("checkpoint")).expect("checkpoint");
        let mut lines = vec![json!({"checkpoint": checkpoint}).to_string()];
        lines.extend((0..SIZE).map(|i| self.export_event(i).to_string()));
        lines
    }

    /// `auditlog verify <args> --key @keys.json`: exit code, stdout, stderr.
    fn verify(&self, args: &[&str]) -> (i32, String, String) {
        let keys = format!("@{}", self.path("keys.json").display());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--key", &keys]);
        run(&all)
    }

    /// Writes `lines` as an export and verifies it; `extra` are more flags.
    fn verify_lines(&self, lines: &[String], extra: &[&str]) -> (i32, String, String) {
        let path = self.write("tampered.ndjson", (lines.join("\n") + "\n").as_bytes());
        let mut args = vec!["export", path.as_str()];
        args.extend(extra);
        self.verify(&args)
    }
}

fn event(i: u64) -> Value {
    let event: AuditEvent = serde_json::from_value(json!({
        "id": format!("0193e000-0000-7000-8000-{i:012}"),
        "tenant_id": "acme",
        "occurred_at": "2026-03-01T12:00:00.123456Z",
        "received_at": "2026-03-01T12:00:01Z",
        "action": if i.is_multiple_of(3) { "document.read" } else { "user.login" },
        "actor": {"id": format!("u{}", i % 7), "type": "user"},
        "targets": [{"type": "document", "id": format!("d{i}")}],
        "outcome": "success",
        "severity": "info",
        "metadata": {"n": i, "note": "é\"x"}
    }))
    .expect("event");
    // The API's JSON form of the stored event.
    serde_json::to_value(&event).expect("json")
}

fn parse_event(value: &Value) -> AuditEvent {
    serde_json::from_value(value.clone()).expect("event")
}

fn event_id(i: u64) -> String {
    format!("0193e000-0000-7000-8000-{i:012}")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_auditlog")).arg("verify").args(args).env("RUST_LOG", "off").output().expect("run auditlog");
    let code = out.status.code().expect("exit code, not a signal");
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Line number (1-based, the checkpoint is line 1) of leaf `index` in the untouched export.
fn line_of(index: u64) -> u64 {
    index + 2
}

#[track_caller]
fn assert_fails(result: &(i32, String, String), needles: &[&str]) {
    let (code, stdout, stderr) = result;
    assert_eq!(*code, 1, "expected a failed check\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("verification FAILED"), "no summary line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr does not name {needle:?}: {stderr}");
    }
}

#[track_caller]
fn assert_ok(result: &(i32, String, String)) {
    let (code, stdout, stderr) = result;
    assert_eq!(*code, 0, "expected success\nstdout: {stdout}\nstderr: {stderr}");
}

#[test]
fn untouched_export_verifies_with_and_without_complete() {
    let f = Fixture::new();
    let export = f.path("export.ndjson").display().to_string();
    let plain = f.verify(&["export", &export]);
    assert_ok(&plain);
    assert!(plain.1.contains("300 events of auditlog.test/acme") && plain.1.contains("tree size 300"), "{}", plain.1);
    let complete = f.verify(&["export", &export, "--complete"]);
    assert_ok(&complete);
    assert!(complete.1.contains("complete"), "{}", complete.1);

    // The same tree head given separately, and the machine-readable report.
    let checkpoint = f.path("checkpoint").display().to_string();
    let (code, stdout, _) = f.verify(&["export", &export, "--checkpoint", &checkpoint, "--complete", "--json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(stdout.trim()).expect("json report");
    assert_eq!(report["ok"], true);
    assert_eq!(report["events"], 300);
    assert_eq!(report["tree_size"], 300);
    assert_eq!(report["complete"], true);
    assert_eq!(report["origin"], "auditlog.test/acme");
    assert_eq!(report["root"], root_of(&f.leaves).to_base64());

    // The json format: {"checkpoint": ..., "events": [...]}, compact and pretty.
    let note = std::fs::read_to_string(f.path("checkpoint")).expect("checkpoint");
    let doc = json!({"checkpoint": note, "events": (0..SIZE).map(|i| f.export_event(i)).collect::<Vec<_>>()});
    let compact = f.write("export.json", doc.to_string().as_bytes());
    assert_ok(&f.verify(&["export", &compact, "--complete"]));
    let pretty = f.write("export.pretty.json", serde_json::to_string_pretty(&doc).expect("json").as_bytes());
    assert_ok(&f.verify(&["export", &pretty, "--complete"]));

    // A range export (not the whole tenant) verifies, but is not complete.
    let lines = f.export_lines();
    let range: Vec<String> = lines[..1].iter().chain(&lines[101..151]).cloned().collect();
    assert_ok(&f.verify_lines(&range, &[]));
    assert_fails(&f.verify_lines(&range, &["--complete"]), &["leaf 0 is missing", "50 of the 300"]);
}

#[test]
fn an_edited_field_is_caught_and_named() {
    let f = Fixture::new();
    for (index, field, value) in [(17, "action", json!("document.delete")), (255, "metadata", json!({"n": 255, "note": "changed"})), (299, "outcome", json!("failure"))] {
        let mut lines = f.export_lines();
        let mut edited = f.export_event(index);
        edited[field] = value;
        lines[line_of(index) as usize - 1] = edited.to_string();
        let line = format!("line {}", line_of(index));
        assert_fails(&f.verify_lines(&lines, &[]), &[&line, &event_id(index), "inclusion proof"]);
        // The machine-readable report names the same failure.
        let (code, stdout, _) = f.verify_lines(&lines, &["--json"]);
        assert_eq!(code, 1);
        let report: Value = serde_json::from_str(stdout.trim()).expect("json report");
        assert_eq!(report["ok"], false);
        assert_eq!(report["failure"]["location"], line);
        assert_eq!(report["failure"]["event_id"], event_id(index));
        assert_eq!(report["failure"]["leaf_index"], index);
    }
}

#[test]
fn added_or_doubled_members_are_refused() {
    let f = Fixture::new();
    let index = 40;
    let line = format!("line {}", line_of(index));
    // An extra top-level member, and one inside the actor.
    for pointer in ["", "/actor"] {
        let mut lines = f.export_lines();
        let mut edited = f.export_event(index);
        edited.pointer_mut(pointer).expect("member").as_object_mut().expect("object").insert("approved_by".into(), json!("mallory"));
        lines[line_of(index) as usize - 1] = edited.to_string();
        assert_fails(&f.verify_lines(&lines, &[]), &[&line, "unknown field `approved_by`"]);
    }
    // A metadata member given twice (serde_json alone would keep the last one silently).
    let mut lines = f.export_lines();
    let text = f.export_event(index).to_string().replacen("\"metadata\":{", "\"metadata\":{\"n\":999,", 1);
    assert!(text.contains("\"n\":999,"), "{text}");
    lines[line_of(index) as usize - 1] = text;
    assert_fails(&f.verify_lines(&lines, &[]), &[&line, "appears twice"]);
}

#[test]
fn a_deleted_event_is_caught_by_complete() {
    let f = Fixture::new();
    let mut lines = f.export_lines();
    lines.remove(line_of(123) as usize - 1);
    assert_ok(&f.verify_lines(&lines, &[]));
    assert_fails(&f.verify_lines(&lines, &["--complete"]), &["leaf 123 is missing", "299 of the 300"]);
    // Cut at a line boundary: the same.
    let mut cut = f.export_lines();
    cut.truncate(cut.len() - 5);
    assert_ok(&f.verify_lines(&cut, &[]));
    assert_fails(&f.verify_lines(&cut, &["--complete"]), &["leaf 295 is missing"]);
}

#[test]
fn swapping_lines_is_harmless_but_swapping_leaf_indexes_is_caught() {
    let f = Fixture::new();
    // Decision: each line carries its own index and proof, so the file's order does not matter.
    let mut lines = f.export_lines();
    lines.swap(line_of(10) as usize - 1, line_of(200) as usize - 1);
    assert_ok(&f.verify_lines(&lines, &["--complete"]));

    // Swapping the leaf_index values of two events (proofs kept) breaks both.
    let mut lines = f.export_lines();
    let (mut a, mut b) = (f.export_event(10), f.export_event(200));
    a["leaf_index"] = json!(200);
    b["leaf_index"] = json!(10);
    lines[line_of(10) as usize - 1] = a.to_string();
    lines[line_of(200) as usize - 1] = b.to_string();
    let line = format!("line {}", line_of(10));
    assert_fails(&f.verify_lines(&lines, &[]), &[&line, &event_id(10), "leaf_index 200"]);

    // Swapping index and proof together moves the event to another leaf: still caught.
    let mut lines = f.export_lines();
    let mut a = f.export_event(10);
    a["leaf_index"] = json!(200);
    a["proof"] = json!(f.inclusion(200));
    lines[line_of(10) as usize - 1] = a.to_string();
    assert_fails(&f.verify_lines(&lines, &[]), &[&line, &event_id(10)]);
}

#[test]
fn forged_and_duplicated_events_are_caught() {
    let f = Fixture::new();
    // A forged event claiming an existing leaf, with that leaf's real proof.
    let mut forged = f.export_event(77);
    forged["id"] = json!("forged-1");
    forged["action"] = json!("admin.grant");
    let mut lines = f.export_lines();
    lines.insert(5, forged.to_string());
    assert_fails(&f.verify_lines(&lines, &[]), &["line 6", "forged-1", "inclusion proof"]);
    // ... or a leaf past the tree.
    forged["leaf_index"] = json!(SIZE);
    let mut lines = f.export_lines();
    lines.push(forged.to_string());
    assert_fails(&f.verify_lines(&lines, &[]), &["line 302", "forged-1", "beyond the checkpoint's tree size 300"]);
    // A huge index.
    forged["leaf_index"] = json!(u64::MAX);
    lines.pop();
    lines.push(forged.to_string());
    assert_fails(&f.verify_lines(&lines, &[]), &["line 302", "beyond"]);

    // A line given twice.
    let mut lines = f.export_lines();
    let dup = lines[line_of(50) as usize - 1].clone();
    lines.push(dup);
    assert_fails(&f.verify_lines(&lines, &[]), &["line 302", &event_id(50), "leaf_index 50 appears twice, first at line 52"]);
}

#[test]
fn a_flipped_proof_hash_is_caught() {
    let f = Fixture::new();
    let mut lines = f.export_lines();
    let mut event = f.export_event(260);
    let mut first = Hash::from_base64(event["proof"][0].as_str().expect("hash")).expect("hash");
    first.0[31] ^= 1;
    event["proof"][0] = json!(first.to_base64());
    lines[line_of(260) as usize - 1] = event.to_string();
    assert_fails(&f.verify_lines(&lines, &[]), &["line 262", &event_id(260), "inclusion proof"]);
    // A proof hash that is not one.
    event["proof"][1] = json!("AAAA");
    lines[line_of(260) as usize - 1] = event.to_string();
    assert_fails(&f.verify_lines(&lines, &[]), &["line 262", "proof[1] is not a base64 SHA-256 hash"]);
}

#[test]
fn an_edited_or_foreign_checkpoint_is_caught() {
    let f = Fixture::new();
    let note = std::fs::read_to_string(f.path("checkpoint")).expect("checkpoint");
    let root = root_of(&f.leaves).to_base64();
    let other_root = root_of(&f.leaves[..299]).to_base64();
    let mut lines = f.export_lines();
    lines[0] = json!({"checkpoint": note.replacen(&root, &other_root, 1)}).to_string();
    assert_fails(&f.verify_lines(&lines, &[]), &["line 1: checkpoint", "does not verify"]);

    // Signed by a key the verifier does not know.
    let stranger = Signer::generate("auditlog.test").expect("key");
    let mut lines = f.export_lines();
    lines[0] = json!({"checkpoint": f.checkpoint(SIZE, &[stranger])}).to_string();
    assert_fails(&f.verify_lines(&lines, &[]), &["line 1: checkpoint", "not signed by any given key"]);

    // --checkpoint naming another tree head than the export's.
    let older = f.write("older", f.checkpoint(299, std::slice::from_ref(&f.signer)).as_bytes());
    assert_fails(&f.verify_lines(&f.export_lines(), &["--checkpoint", &older]), &["tree size 300", "--checkpoint is tree size 299"]);

    // No checkpoint line at all.
    let headless: Vec<String> = f.export_lines().split_off(1);
    assert_fails(&f.verify_lines(&headless, &[]), &["line 1", "pass --checkpoint"]);
    let checkpoint = f.path("checkpoint").display().to_string();
    assert_ok(&f.verify_lines(&headless, &["--checkpoint", &checkpoint, "--complete"]));
}

#[test]
fn a_truncated_export_is_caught() {
    let f = Fixture::new();
    let text = f.export_lines().join("\n");
    let path = f.write("cut.ndjson", &text.as_bytes()[..text.len() - 40]);
    assert_fails(&f.verify(&["export", &path]), &["line 301", "truncated"]);
    // Cut inside the checkpoint line.
    let path = f.write("cut1.ndjson", &text.as_bytes()[..30]);
    assert_fails(&f.verify(&["export", &path]), &["line 1", "truncated"]);
    let path = f.write("empty.ndjson", b"");
    assert_fails(&f.verify(&["export", &path]), &["empty"]);
}

#[test]
fn checkpoint_with_right_wrong_and_rotated_keys() {
    let f = Fixture::new();
    let checkpoint = f.path("checkpoint").display().to_string();
    let (code, stdout, _) = f.verify(&["checkpoint", &checkpoint]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("auditlog.test/acme") && stdout.contains("tree size 300"), "{stdout}");

    let stranger = Signer::generate("auditlog.test").expect("key").verifier().renamed(&f.origin).expect("renamed").to_string();
    assert_fails(&run(&["checkpoint", &checkpoint, "--key", &stranger]), &["checkpoint", "not signed by any given key", "auditlog.test/acme"]);

    // Rotation: the note carries both signatures; either key alone verifies it.
    let old = f.signer.clone();
    let new = Signer::generate("auditlog.test").expect("key");
    let both = f.write("rotated", f.checkpoint(SIZE, &[old.clone(), new.clone()]).as_bytes());
    assert_eq!(std::fs::read_to_string(&both).expect("note").matches("\u{2014} auditlog.test/acme ").count(), 2);
    for key in [&old, &new] {
        let text = key.verifier().renamed(&f.origin).expect("renamed").to_string();
        assert_ok(&run(&["checkpoint", &both, "--key", &text]));
        // A key file with one key per line works too.
        let file = f.write("key.txt", format!("# the tenant's key\n{text}\n").as_bytes());
        assert_ok(&run(&["checkpoint", &both, "--key", &format!("@{file}")]));
    }
    assert_fails(&run(&["checkpoint", &both, "--key", &stranger]), &["not signed by any given key"]);
    // An edited size is a bad signature by a known key.
    let edited = f.write("edited", std::fs::read_to_string(&both).expect("note").replacen("\n300\n", "\n301\n", 1).as_bytes());
    assert_fails(&f.verify(&["checkpoint", &edited]), &["does not verify"]);
}

#[test]
fn inclusion_proof_happy_and_failing() {
    let f = Fixture::new();
    let checkpoint = f.path("checkpoint").display().to_string();
    let index = 131;
    // The event as GET /v1/events/{id} returns it (with leaf_index), and the proof answer.
    let mut event = f.events[index as usize].clone();
    event["leaf_index"] = json!(index);
    let event_file = f.write("event.json", event.to_string().as_bytes());
    let proof = json!({"leaf_index": index, "tree_size": SIZE, "hashes": f.inclusion(index)});
    let proof_file = f.write("proof.json", proof.to_string().as_bytes());
    let (code, stdout, stderr) = f.verify(&["inclusion", "--checkpoint", &checkpoint, "--event", &event_file, "--proof", &proof_file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&event_id(index)) && stdout.contains("leaf 131"), "{stdout}");
    // Inline JSON works as well.
    assert_ok(&f.verify(&["inclusion", "--checkpoint", &checkpoint, "--event", &event.to_string(), "--proof", &proof.to_string()]));

    let mut edited = event.clone();
    edited["severity"] = json!("critical");
    assert_fails(&f.verify(&["inclusion", "--checkpoint", &checkpoint, "--event", &edited.to_string(), "--proof", &proof_file]), &[&event_id(index), "not leaf 131"]);
    let other = json!({"leaf_index": index, "tree_size": 299, "hashes": f.inclusion(index)});
    assert_fails(&f.verify(&["inclusion", "--checkpoint", &checkpoint, "--event", &event_file, "--proof", &other.to_string()]), &["tree size 299"]);
    let wrong_index = json!({"leaf_index": index + 1, "tree_size": SIZE, "hashes": f.inclusion(index + 1)});
    assert_fails(&f.verify(&["inclusion", "--checkpoint", &checkpoint, "--event", &event_file, "--proof", &wrong_index.to_string()]), &["leaf_index 131, the proof 132"]);
}

#[test]
fn consistency_happy_and_failing() {
    let f = Fixture::new();
    let new = f.path("checkpoint").display().to_string();
    let old = f.write("old", f.checkpoint(200, std::slice::from_ref(&f.signer)).as_bytes());
    let proof = f.write("consistency.json", f.consistency(200).to_string().as_bytes());
    let (code, stdout, stderr) = f.verify(&["consistency", "--old", &old, "--new", &new, "--proof", &proof]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("tree size 300") && stdout.contains("tree size 200"), "{stdout}");
    // Same checkpoint twice: no proof needed.
    assert_ok(&f.verify(&["consistency", "--old", &new, "--new", &new]));

    let mut tampered = f.consistency(200);
    let mut h = Hash::from_base64(tampered["hashes"][0].as_str().expect("hash")).expect("hash");
    h.0[0] ^= 0x80;
    tampered["hashes"][0] = json!(h.to_base64());
    assert_fails(&f.verify(&["consistency", "--old", &old, "--new", &new, "--proof", &tampered.to_string()]), &["proof", "does not extend"]);
    // Reversed: the log would have shrunk.
    assert_fails(&f.verify(&["consistency", "--old", &new, "--new", &old, "--proof", &proof]), &["smaller"]);
    // A proof for other sizes.
    let other = f.consistency(199).to_string();
    assert_fails(&f.verify(&["consistency", "--old", &old, "--new", &new, "--proof", &other]), &["from 199 to 300"]);
    // Same size, another root: a fork.
    let fork = Checkpoint { origin: f.origin.clone(), size: SIZE, root: root_of(&f.leaves[1..]), extensions: vec![] };
    let fork = f.write("fork", fork.sign(std::slice::from_ref(&f.signer)).expect("sign").as_bytes());
    assert_fails(&f.verify(&["consistency", "--old", &fork, "--new", &new]), &["forked"]);
    // Another tenant's log, signed by the same deployment key.
    let foreign = Checkpoint { origin: origin("auditlog.test", "globex").expect("origin"), size: 200, root: root_of(&f.leaves[..200]), extensions: vec![] };
    let foreign = f.write("foreign", foreign.sign(std::slice::from_ref(&f.signer)).expect("sign").as_bytes());
    let keys = f.write("both-keys.txt", format!("{}\n{}\n", f.verifier(), f.signer.verifier().renamed("auditlog.test/globex").expect("renamed")).as_bytes());
    let (code, _, stderr) = run(&["consistency", "--old", &foreign, "--new", &new, "--proof", &proof, "--key", &format!("@{keys}")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("different logs"), "{stderr}");
    // Sizes differ and no proof: a usage error.
    assert_eq!(f.verify(&["consistency", "--old", &old, "--new", &new]).0, 2);
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::new();
    let checkpoint = f.path("checkpoint").display().to_string();
    assert_eq!(run(&["checkpoint", &checkpoint]).0, 2, "no --key");
    assert_eq!(run(&["checkpoint", &checkpoint, "--key", "not-a-key"]).0, 2);
    assert_eq!(run(&["checkpoint", &checkpoint, "--key", "@/nonexistent/keys.json"]).0, 2);
    assert_eq!(f.verify(&["checkpoint", "/nonexistent/checkpoint"]).0, 2);
    assert_eq!(f.verify(&["export", "/nonexistent/export.ndjson"]).0, 2);
    assert_eq!(f.verify(&["frobnicate"]).0, 2);
    assert_eq!(f.verify(&["inclusion", "--checkpoint", &checkpoint]).0, 2, "missing --event/--proof");
}

#[test]
fn garbage_never_panics() {
    let f = Fixture::new();
    let lines = f.export_lines();
    let good = lines.join("\n");
    let note = std::fs::read_to_string(f.path("checkpoint")).expect("checkpoint");
    let garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n\n\n".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"{\"checkpoint\": 5}".to_vec(),
        b"{\"checkpoint\": \"\"}\n{}".to_vec(),
        b"{\"events\": 3}".to_vec(),
        b"{\"checkpoint\": \"x\", \"events\": [1, \"a\", null]}".to_vec(),
        vec![0xff, 0xfe, 0x00, b'\n', 0x80],
        "\u{2014} \u{2014}\n\n\u{2014} x AAAA\n".as_bytes().to_vec(),
        format!("{}\n{{\"leaf_index\": 1e400}}", lines[0]).into_bytes(),
        format!("{}\n{{\"leaf_index\": -1, \"proof\": []}}", lines[0]).into_bytes(),
        format!("{}\n{}", lines[0], "[".repeat(100_000)).into_bytes(),
        format!("{}\n{}", lines[0], lines[2].replace("\"proof\":[", "\"proof\":[\"=\",")).into_bytes(),
        format!("{}\n{}", lines[0], lines[2].replace("2026-03-01T12:00:00.123456Z", "99999-03-01T12:00:00Z")).into_bytes(),
        note.replace("\n300\n", "\n18446744073709551616\n").into_bytes(),
        note.replace("\n300\n", "\n18446744073709551615\n").into_bytes(),
        note.replace("\n\n", "\n").into_bytes(),
        note.replacen('=', "!", 1).into_bytes(),
        good.as_bytes()[..good.len() / 2].to_vec(),
        good.replace('"', "").into_bytes(),
    ];
    let checkpoint = f.path("checkpoint").display().to_string();
    for (i, bytes) in garbage.iter().enumerate() {
        let path = f.write(&format!("garbage-{i}"), bytes);
        let proof = format!("@{path}");
        for args in [
            vec!["export", path.as_str(), "--complete"],
            vec!["checkpoint", path.as_str()],
            vec!["inclusion", "--checkpoint", &checkpoint, "--event", &proof, "--proof", &proof],
            vec!["inclusion", "--checkpoint", path.as_str(), "--event", &proof, "--proof", &proof],
            vec!["consistency", "--old", path.as_str(), "--new", &checkpoint, "--proof", &proof],
            vec!["consistency", "--old", &checkpoint, "--new", &checkpoint, "--proof", &proof],
        ] {
            let (code, stdout, stderr) = f.verify(&args);
            assert!(code == 1 || code == 2, "garbage {i} with {args:?}: exit {code}\n{stdout}\n{stderr}");
            assert!(!stderr.contains("panicked"), "garbage {i} with {args:?} panicked: {stderr}");
        }
        // As a key file: a usage error, never a panic.
        let (code, _, stderr) = run(&["checkpoint", &checkpoint, "--key", &proof]);
        assert_eq!(code, 2, "garbage {i} as keys: {stderr}");
    }
    assert!(Path::new(&checkpoint).exists());
}
