//! `auditlog verify export`: an export taken with `proofs=true`, in either format.
//!
//! - ndjson: line 1 `{"checkpoint": "<signed note>"}`, then one event per line with
//!   `leaf_index` and `proof` (blank lines are skipped; lines are numbered as in the file).
//! - json: `{"checkpoint": "<signed note>", "events": [...]}`.
//!
//! Every event must be leaf `leaf_index` of the checkpoint's tree (its own inclusion proof), no
//! leaf index or event id may appear twice, and with `--complete` every index `0..size` must
//! be present and the root recomputed from the leaves must be the checkpoint's. The order of
//! the events in the file does not matter: each carries its own index and proof, so moving a
//! line is harmless, while moving an event to another index (its `leaf_index` changed, or
//! swapped with another's) breaks its proof.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context as _;
use auditlog_ledger::note::OpenedNote;
use auditlog_ledger::{Checkpoint, Hash, Verifier, root_of, verify_inclusion};
use auditlog_schemas::AuditEvent;
use serde_json::Value;

use super::entry::{Entry, NoDuplicateMembers, json_problem};
use super::{Failure, Report, Stop, open_checkpoint, read_file};

/// Longest line read: an event is at most a few tens of KiB, its proof 64 hashes.
const MAX_LINE_BYTES: u64 = 8 << 20;

/// Where an event sits in the file: a line (ndjson) or a position in `events` (json).
#[derive(Clone, Copy)]
enum Layout {
    Lines,
    Array,
}

impl Layout {
    fn place(self, n: u64) -> String {
        match self {
            Self::Lines => format!("line {n}"),
            Self::Array => format!("events[{n}]"),
        }
    }
}

/// The checks across events.
struct Checker {
    checkpoint: Checkpoint,
    layout: Layout,
    /// leaf index → where it was seen and its leaf hash.
    seen: HashMap<u64, (u64, Hash)>,
    /// event id → where it was seen.
    ids: HashMap<String, u64>,
    /// With `--signing-keys`: the producers' keys, and how many signatures verified.
    signing: Option<(SigningKeys, u64)>,
}

/// Producers' public keys (`GET /v1/tenants/{id}/signing-keys`), by key id.
pub(super) struct SigningKeys(HashMap<String, auditlog_tenant_registry::SigningKeyRecord>);

impl SigningKeys {
    /// Reads the `{keys: [...]}` answer (or a bare array of key records).
    pub(super) fn read(path: &Path) -> Result<Self, Stop> {
        let bytes = std::fs::read(path).with_context(|| format!("--signing-keys: cannot read {}", path.display()))?;
        let value: Value = serde_json::from_slice(&bytes).with_context(|| format!("--signing-keys {}: not JSON", path.display()))?;
        let list = match value {
            Value::Object(mut members) => members.remove("keys").unwrap_or(Value::Null),
            other => other,
        };
        let records: Vec<auditlog_tenant_registry::SigningKeyRecord> =
            serde_json::from_value(list).with_context(|| format!("--signing-keys {}: not a list of signing keys (the signing-keys API's answer)", path.display()))?;
        Ok(Self(records.into_iter().map(|r| (r.key_id.clone(), r)).collect()))
    }

    /// `Ok(true)` when the event's signature verifies, `Ok(false)` when it carries none.
    fn check(&self, event: &AuditEvent) -> Result<bool, String> {
        let Some(signature) = &event.signature else { return Ok(false) };
        let record = self.0.get(&signature.key_id).filter(|r| r.tenant_id == event.tenant_id);
        let record = record.ok_or_else(|| format!("signature: key {:?} is not in the signing-key list of tenant {:?}", signature.key_id, event.tenant_id))?;
        let window = auditlog_api_common::signatures::key_window(record).ok_or_else(|| format!("signature: key {:?} does not parse", signature.key_id))?;
        auditlog_schemas::signing::verify(event, &window).map(|()| true).map_err(|problem| format!("signature: key {:?}: {problem}", signature.key_id))
    }
}

impl Checker {
    fn check(&mut self, entry: Result<Entry, Failure>, at: u64) -> Result<(), Failure> {
        let place = self.layout.place(at);
        let entry = entry.map_err(|f| f.at(&place))?;
        let (Some(index), Some(proof)) = (entry.leaf_index, entry.proof.as_ref()) else {
            return Err(Failure::new("has no leaf_index or proof").at(place));
        };
        let fail = |reason: String| Failure { location: Some(place.clone()), event_id: Some(entry.shown_id()), leaf_index: Some(index), reason };
        let size = self.checkpoint.size;
        if index >= size {
            return Err(fail(format!("leaf_index {index} is beyond the checkpoint's tree size {size}")));
        }
        entry.check_tenant(&self.checkpoint.origin).map_err(&fail)?;
        verify_inclusion(proof, index, size, &entry.leaf, &self.checkpoint.root).map_err(|e| {
            fail(format!("leaf does not match its inclusion proof for leaf_index {index} (event edited, leaf_index changed or proof altered): {e}"))
        })?;
        match self.seen.entry(index) {
            Slot::Occupied(first) => {
                let first = self.layout.place(first.get().0);
                return Err(fail(format!("leaf_index {index} appears twice, first at {first} (duplicated event?)")));
            }
            Slot::Vacant(slot) => {
                slot.insert((at, entry.leaf));
            }
        }
        if let Some(first) = self.ids.insert(entry.id.clone(), at) {
            return Err(fail(format!("event id appears twice, first at {}", self.layout.place(first))));
        }
        if let Some((keys, verified)) = self.signing.as_mut() {
            *verified += u64::from(keys.check(&entry.event).map_err(&fail)?);
        }
        Ok(())
    }

    /// With `--complete`: every leaf present, and the root recomputed from them.
    fn check_complete(&self) -> Result<(), Failure> {
        let size = self.checkpoint.size;
        let present = self.seen.len() as u64;
        if present < size {
            let missing = (0..size).find(|i| !self.seen.contains_key(i)).unwrap_or_default();
            return Err(Failure {
                leaf_index: Some(missing),
                reason: format!(
                    "leaf {missing} is missing: the export holds {present} of the {size} leaves (an event deleted, or the file cut at a line boundary?)"
                ),
                ..Failure::default()
            });
        }
        // Every index is below `size` and none repeats, so `seen` holds exactly 0..size.
        let leaves: Vec<Hash> = (0..size).filter_map(|i| self.seen.get(&i).map(|(_, h)| *h)).collect();
        if root_of(&leaves) != self.checkpoint.root {
            return Err(Failure::new("the root recomputed from all leaves differs from the checkpoint's"));
        }
        Ok(())
    }
}

/// The export's first meaningful content.
enum Head {
    /// ndjson: the checkpoint line.
    Checkpoint(String),
    /// ndjson without a checkpoint line: line `n` is already an event.
    Event(Vec<u8>),
    /// The json format's whole document.
    Document(Value),
}

pub(super) fn check_export(file: &Path, given: Option<&Path>, complete: bool, signing_keys: Option<&Path>, keys: &[Verifier], report: &mut Report) -> Result<(), Stop> {
    report.command = "export";
    let signing = signing_keys.map(SigningKeys::read).transpose()?.map(|k| (k, 0));
    let given = given.map(read_file).transpose()?;
    let given = given.map(|bytes| open_checkpoint(&bytes, keys, "--checkpoint")).transpose()?;
    let handle = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut reader = BufReader::new(handle);
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    // The first non-blank line.
    loop {
        line_no += 1;
        if !read_line(&mut reader, &mut buf, line_no)? {
            return Err(Failure::new("the export is empty: no checkpoint line").at("line 1").into());
        }
        if !buf.trim_ascii().is_empty() {
            break;
        }
    }
    let head = classify_head(&mut reader, &buf, line_no)?;
    let (embedded, layout) = match &head {
        Head::Checkpoint(text) => (Some(text.as_str()), Layout::Lines),
        Head::Event(_) => (None, Layout::Lines),
        Head::Document(doc) => (doc.get("checkpoint").and_then(Value::as_str), Layout::Array),
    };
    let (checkpoint, opened) = settle_checkpoint(embedded, given, keys, layout, line_no)?;
    super::describe_checkpoint(report, &checkpoint, &opened);
    let mut checker = Checker { checkpoint, layout, seen: HashMap::new(), ids: HashMap::new(), signing };
    let counted = |checker: &Checker, report: &mut Report| report.events = Some(checker.seen.len() as u64);
    match head {
        Head::Document(doc) => {
            let Some(Value::Array(events)) = doc.get("events") else {
                return Err(Failure::new("\"events\" is not an array").into());
            };
            for (i, event) in events.iter().enumerate() {
                counted(&checker, report);
                checker.check(Entry::from_value(event.clone(), true), i as u64)?;
            }
        }
        Head::Event(first) => {
            counted(&checker, report);
            checker.check(Entry::parse(&first, true), line_no)?;
            check_lines(&mut reader, &mut buf, &mut line_no, &mut checker, report)?;
        }
        Head::Checkpoint(_) => check_lines(&mut reader, &mut buf, &mut line_no, &mut checker, report)?,
    }
    counted(&checker, report);
    if complete {
        checker.check_complete()?;
    }
    report.complete = Some(complete);
    let (n, cp) = (checker.seen.len(), &checker.checkpoint);
    report.summary = format!(
        "export {} verified: {n} events of {}, each a leaf of the checkpoint at tree size {} (root {}, signed by {}); {}",
        file.display(),
        cp.origin,
        cp.size,
        cp.root,
        report.signed_by.join(", "),
        if complete { format!("complete: all {} leaves present once, root recomputed from them", cp.size) } else { format!("{n} of {} leaves, completeness not checked (--complete)", cp.size) }
    );
    if let Some((_, verified)) = &checker.signing {
        report.summary.push_str(&format!("; {verified} producer signatures verified, {} events unsigned", n as u64 - verified));
    }
    Ok(())
}

fn check_lines(reader: &mut impl BufRead, buf: &mut Vec<u8>, line_no: &mut u64, checker: &mut Checker, report: &mut Report) -> Result<(), Stop> {
    loop {
        *line_no += 1;
        if !read_line(reader, buf, *line_no)? {
            return Ok(());
        }
        if buf.trim_ascii().is_empty() {
            continue;
        }
        report.events = Some(checker.seen.len() as u64);
        checker.check(Entry::parse(buf, true), *line_no)?;
    }
}

/// Reads line `line_no` into `buf` (without its newline); false at the end of the file.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, line_no: u64) -> Result<bool, Stop> {
    buf.clear();
    let read = reader.by_ref().take(MAX_LINE_BYTES + 1).read_until(b'\n', buf).context("cannot read the export")?;
    if read as u64 > MAX_LINE_BYTES {
        return Err(Failure::new(format!("line is longer than {MAX_LINE_BYTES} bytes")).at(format!("line {line_no}")).into());
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    Ok(read > 0)
}

/// What the first non-blank line (`first`, line `line_no`) starts: the checkpoint line, an
/// event, or a json-format document (on this line, or spanning the file).
fn classify_head(reader: &mut impl BufRead, first: &[u8], line_no: u64) -> Result<Head, Stop> {
    let at = format!("line {line_no}");
    match parse_strict(first) {
        Ok(Value::Object(members)) if members.contains_key("events") => {
            let mut rest = Vec::new();
            reader.take(MAX_LINE_BYTES).read_to_end(&mut rest).context("cannot read the export")?;
            if !rest.trim_ascii().is_empty() {
                return Err(Failure::new("unexpected content after the export's JSON document").at(format!("after {at}")).into());
            }
            check_document_members(&members)?;
            Ok(Head::Document(Value::Object(members)))
        }
        Ok(Value::Object(members)) if members.contains_key("checkpoint") => {
            let text = match members.get("checkpoint") {
                Some(Value::String(text)) if members.len() == 1 => text.clone(),
                _ => return Err(Failure::new("the checkpoint line must be {\"checkpoint\": \"<signed note>\"} and nothing else").at(at).into()),
            };
            Ok(Head::Checkpoint(text))
        }
        Ok(_) => Ok(Head::Event(first.to_vec())),
        Err(line_problem) => {
            // Perhaps the json format, spread over several lines.
            let mut whole = first.to_vec();
            whole.push(b'\n');
            reader.read_to_end(&mut whole).context("cannot read the export")?;
            match parse_strict(&whole) {
                Ok(Value::Object(members)) if members.contains_key("events") => {
                    check_document_members(&members)?;
                    Ok(Head::Document(Value::Object(members)))
                }
                _ => Err(Failure::new(line_problem).at(at).into()),
            }
        }
    }
}

fn check_document_members(members: &serde_json::Map<String, Value>) -> Result<(), Failure> {
    if let Some(extra) = members.keys().find(|k| *k != "checkpoint" && *k != "events") {
        return Err(Failure::new(format!("unexpected member {extra:?} in the export document")));
    }
    if !matches!(members.get("checkpoint"), Some(Value::String(_)) | None) {
        return Err(Failure::new("\"checkpoint\" is not a string"));
    }
    Ok(())
}

/// JSON with no member named twice.
fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<NoDuplicateMembers>(bytes).map_err(|e| json_problem(&e))?;
    serde_json::from_slice(bytes).map_err(|e| json_problem(&e))
}

/// The checkpoint to check against: the export's own, verified; `--checkpoint`, verified,
/// must be the same tree head when both are there.
fn settle_checkpoint(
    embedded: Option<&str>,
    given: Option<(Checkpoint, OpenedNote)>,
    keys: &[Verifier],
    layout: Layout,
    line_no: u64,
) -> Result<(Checkpoint, OpenedNote), Failure> {
    let place = match layout {
        Layout::Lines => format!("line {line_no}: checkpoint"),
        Layout::Array => "checkpoint".to_string(),
    };
    let embedded = embedded.map(|text| open_checkpoint(text.as_bytes(), keys, &place)).transpose()?;
    match (embedded, given) {
        (Some((own, _)), Some((given, opened))) => {
            if own != given {
                return Err(Failure::new(format!(
                    "the export was taken at tree size {} (root {}), but --checkpoint is tree size {} (root {}) of {}",
                    own.size, own.root, given.size, given.root, given.origin
                ))
                .at(place));
            }
            Ok((given, opened))
        }
        (Some(own), None) => Ok(own),
        (None, Some(given)) => Ok(given),
        (None, None) => Err(Failure::new("expected the checkpoint {\"checkpoint\": \"<signed note>\"} (export with proofs=true), or pass --checkpoint").at(place)),
    }
}
