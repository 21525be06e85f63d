//! `auditlog verify`: the offline verifier. Checks a signed checkpoint, an export taken with
//! `proofs=true`, an inclusion proof or a consistency proof against the tenant's public
//! verifier keys, with no server and no backend; all cryptography is `auditlog-ledger`'s.
//!
//! Exit codes: 0 when everything holds; 1 when a check fails (the first failing line, event or
//! proof and why on stderr, then a one-line summary); 2 for usage errors and unreadable files
//! (a missing file, a key that does not parse). Untrusted input (checkpoint, export, event,
//! proof) that does not parse is a failed check, exit 1, never a panic.

mod entry;
mod export;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use auditlog_ledger::note::OpenedNote;
use auditlog_ledger::{Checkpoint, Hash, LedgerError, Verifier, empty_root, parse_verifier_keys, verify_consistency, verify_inclusion};
use serde::{Deserialize, Serialize};

/// `auditlog verify` and its checks.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A verifier key, `<origin>+<key id>+<base64 key>` (as `GET /v1/ledger/keys` lists it), or
    /// `@file` holding that listing's JSON or one verifier key per line. Repeatable; a
    /// checkpoint must carry a valid signature by at least one of them.
    #[arg(long = "key", global = true, value_name = "KEY|@FILE")]
    keys: Vec<String>,
    /// Also print the report as one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    check: Check,
}

#[derive(Debug, clap::Subcommand)]
enum Check {
    /// A signed checkpoint (`GET /v1/ledger/checkpoint`): signed by a known key, well formed.
    Checkpoint {
        /// The checkpoint file (the signed note text).
        file: PathBuf,
    },
    /// An export taken with `proofs=true` (ndjson or json): every event's leaf and inclusion
    /// proof against the export's checkpoint, no leaf index twice.
    Export {
        /// The export file.
        file: PathBuf,
        /// A checkpoint to check the export against; the export's own must be the same tree
        /// head.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Also require every leaf 0..size-1 exactly once and recompute the root from them (an
        /// export of the whole tenant).
        #[arg(long)]
        complete: bool,
        /// Also check every event's producer signature with these keys (the
        /// `GET /v1/tenants/{id}/signing-keys` answer), as valid at the event's `occurred_at`.
        #[arg(long = "signing-keys")]
        signing_keys: Option<PathBuf>,
    },
    /// One event's inclusion proof (`GET /v1/events/{id}/proof`) against a checkpoint.
    Inclusion {
        /// The checkpoint file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The event's JSON (as the API returns it): inline when it starts with `{`, else a
        /// file (`@file` or a path).
        #[arg(long)]
        event: String,
        /// The proof answer's JSON `{leaf_index, tree_size, hashes}`: inline or a file.
        #[arg(long)]
        proof: String,
    },
    /// Two checkpoints of one tenant: the newer extends the older (`GET /v1/ledger/consistency`).
    Consistency {
        /// The older checkpoint file.
        #[arg(long)]
        old: PathBuf,
        /// The newer checkpoint file.
        #[arg(long)]
        new: PathBuf,
        /// The consistency proof's JSON `{from, to, hashes}`: inline or a file; needed when
        /// the sizes differ (and the older tree is not empty).
        #[arg(long)]
        proof: Option<String>,
    },
}

/// What was verified; printed as the summary and, with `--json`, as JSON.
#[derive(Debug, Default, Serialize)]
struct Report {
    ok: bool,
    command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tree_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signed_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_tree_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaf_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    complete: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
    summary: String,
}

/// The first check that failed: where, which event, and why.
#[derive(Debug, Default, Serialize)]
struct Failure {
    /// `line 17`, `events[3]`, `old checkpoint`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaf_index: Option<u64>,
    reason: String,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), ..Self::default() }
    }

    fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(id) = &self.event_id {
            write!(f, "event {id}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// Why a check stopped: a failed check (exit 1) or input it cannot use (exit 2).
enum Stop {
    Failed(Failure),
    Unusable(anyhow::Error),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

impl From<anyhow::Error> for Stop {
    fn from(err: anyhow::Error) -> Self {
        Self::Unusable(err)
    }
}

/// Runs `auditlog verify`: `Ok(true)` when everything holds, `Ok(false)` when a check failed
/// (reported on stderr), `Err` for usage errors and unreadable input.
pub fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let keys = load_keys(&args.keys)?;
    let mut report = Report::default();
    let outcome = match &args.check {
        Check::Checkpoint { file } => check_checkpoint(file, &keys, &mut report),
        Check::Export { file, checkpoint, complete, signing_keys } => {
            export::check_export(file, checkpoint.as_deref(), *complete, signing_keys.as_deref(), &keys, &mut report)
        }
        Check::Inclusion { checkpoint, event, proof } => check_inclusion(checkpoint, event, proof, &keys, &mut report),
        Check::Consistency { old, new, proof } => check_consistency(old, new, proof.as_deref(), &keys, &mut report),
    };
    match outcome {
        Ok(()) => {
            report.ok = true;
            println!("{}", if args.json { serde_json::to_string(&report)? } else { format!("ok: {}", report.summary) });
            Ok(true)
        }
        Err(Stop::Failed(failure)) => {
            eprintln!("{failure}");
            eprintln!("verification FAILED: {}", failed_summary(&report));
            report.summary = failed_summary(&report);
            report.failure = Some(failure);
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(false)
        }
        Err(Stop::Unusable(err)) => Err(err),
    }
}

fn failed_summary(report: &Report) -> String {
    let mut summary = format!("{} check failed", report.command);
    if let (Some(origin), Some(size)) = (&report.origin, report.tree_size) {
        summary.push_str(&format!(" for {origin} at tree size {size}"));
    }
    if let Some(events) = report.events {
        summary.push_str(&format!(" ({events} events verified before the failure)"));
    }
    summary
}

/// The verifier keys from every `--key`; none, or one that does not parse, is a usage error.
fn load_keys(args: &[String]) -> anyhow::Result<Vec<Verifier>> {
    if args.is_empty() {
        return Err(anyhow!("no --key given: pass the tenant's verifier key(s), e.g. --key @keys.json saved from GET /v1/ledger/keys"));
    }
    let mut keys = Vec::new();
    for arg in args {
        let (text, source) = match arg.strip_prefix('@') {
            Some(path) => (
                std::fs::read_to_string(path).with_context(|| format!("cannot read key file {path}"))?,
                format!("key file {path}"),
            ),
            None => (arg.clone(), "--key".to_string()),
        };
        keys.extend(parse_verifier_keys(&text).with_context(|| format!("{source} is not a verifier key"))?);
    }
    Ok(keys)
}

/// Reads a file; failing to read it is a usage error (exit 2).
fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A JSON argument: inline when it starts with `{`, else a file (`@path` or `path`).
fn read_json_arg(arg: &str) -> anyhow::Result<Vec<u8>> {
    if arg.trim_start().starts_with('{') {
        return Ok(arg.as_bytes().to_vec());
    }
    read_file(Path::new(arg.strip_prefix('@').unwrap_or(arg)))
}

/// Opens a signed checkpoint with `keys`; any problem is a failed check named by `what`.
fn open_checkpoint(bytes: &[u8], keys: &[Verifier], what: &str) -> Result<(Checkpoint, OpenedNote), Failure> {
    let text = std::str::from_utf8(bytes).map_err(|_| Failure::new("is not UTF-8 text").at(what))?;
    Checkpoint::open(text, keys, None).map_err(|err| {
        let reason = match err {
            LedgerError::Unverified => {
                let signers: Vec<String> = signature_names(text);
                format!("not signed by any given key (signatures by: {})", if signers.is_empty() { "none".to_string() } else { signers.join(", ") })
            }
            LedgerError::InvalidSignature(key) => format!("signature by {key} does not verify: the checkpoint was altered or the signature forged"),
            other => format!("not a valid signed checkpoint: {other}"),
        };
        Failure::new(reason).at(what)
    })
}

/// The key names on a note's signature lines, for an error message (best effort).
fn signature_names(note: &str) -> Vec<String> {
    note.lines().filter_map(|l| l.strip_prefix("\u{2014} ")).filter_map(|l| l.split(' ').next()).map(str::to_string).take(5).collect()
}

fn describe_checkpoint(report: &mut Report, checkpoint: &Checkpoint, opened: &OpenedNote) {
    report.origin = Some(checkpoint.origin.clone());
    report.tree_size = Some(checkpoint.size);
    report.root = Some(checkpoint.root.to_base64());
    report.signed_by = opened.verified.iter().map(|s| format!("{}+{:08x}", s.name, s.key_id)).collect();
}

fn check_checkpoint(file: &Path, keys: &[Verifier], report: &mut Report) -> Result<(), Stop> {
    report.command = "checkpoint";
    let (checkpoint, opened) = open_checkpoint(&read_file(file)?, keys, "checkpoint")?;
    describe_checkpoint(report, &checkpoint, &opened);
    report.summary = format!(
        "checkpoint of {} verified: tree size {}, root {}, signed by {}",
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
        report.signed_by.join(", ")
    );
    Ok(())
}

/// The answer of `GET /v1/events/{id}/proof`.
#[derive(Deserialize)]
struct InclusionAnswer {
    leaf_index: u64,
    tree_size: u64,
    hashes: Vec<String>,
}

/// The answer of `GET /v1/ledger/consistency`.
#[derive(Deserialize)]
struct ConsistencyAnswer {
    from: u64,
    to: u64,
    hashes: Vec<String>,
}

/// Proof hashes from base64; a bad one is a failed check naming its position.
fn decode_hashes(hashes: &[String], what: &str) -> Result<Vec<Hash>, Failure> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| Hash::from_base64(h).map_err(|_| Failure::new(format!("hashes[{i}] is not a base64 SHA-256 hash")).at(what)))
        .collect()
}

fn parse_answer<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| Failure::new(format!("does not parse: {e}")).at(what))
}

fn check_inclusion(checkpoint: &Path, event: &str, proof: &str, keys: &[Verifier], report: &mut Report) -> Result<(), Stop> {
    report.command = "inclusion";
    let (event_bytes, proof_bytes) = (read_json_arg(event)?, read_json_arg(proof)?);
    let (checkpoint, opened) = open_checkpoint(&read_file(checkpoint)?, keys, "checkpoint")?;
    describe_checkpoint(report, &checkpoint, &opened);
    let entry = entry::Entry::parse(&event_bytes, false).map_err(|f| f.at("--event"))?;
    let answer: InclusionAnswer = parse_answer(&proof_bytes, "proof")?;
    let hashes = decode_hashes(&answer.hashes, "proof")?;
    let fail = |reason: String| Failure { location: Some("--event".into()), event_id: Some(entry.shown_id()), leaf_index: Some(answer.leaf_index), reason };
    if answer.tree_size != checkpoint.size {
        return Err(fail(format!(
            "the proof is for tree size {} but the checkpoint's is {}: fetch it with ?tree_size={}",
            answer.tree_size, checkpoint.size, checkpoint.size
        ))
        .into());
    }
    if let Some(index) = entry.leaf_index
        && index != answer.leaf_index
    {
        return Err(fail(format!("the event says leaf_index {index}, the proof {}", answer.leaf_index)).into());
    }
    entry.check_tenant(&checkpoint.origin).map_err(&fail)?;
    verify_inclusion(&hashes, answer.leaf_index, checkpoint.size, &entry.leaf, &checkpoint.root)
        .map_err(|e| fail(format!("the event is not leaf {} of this checkpoint (event edited or proof altered): {e}", answer.leaf_index)))?;
    report.leaf_index = Some(answer.leaf_index);
    report.summary = format!(
        "event {} is leaf {} of {} at tree size {}, root {}, signed by {}",
        entry.shown_id(),
        answer.leaf_index,
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
        report.signed_by.join(", ")
    );
    Ok(())
}

fn check_consistency(old: &Path, new: &Path, proof: Option<&str>, keys: &[Verifier], report: &mut Report) -> Result<(), Stop> {
    report.command = "consistency";
    let (old_bytes, new_bytes) = (read_file(old)?, read_file(new)?);
    let proof_bytes = proof.map(read_json_arg).transpose()?;
    let (old, _) = open_checkpoint(&old_bytes, keys, "old checkpoint")?;
    let (new, opened) = open_checkpoint(&new_bytes, keys, "new checkpoint")?;
    describe_checkpoint(report, &new, &opened);
    report.old_tree_size = Some(old.size);
    report.old_root = Some(old.root.to_base64());
    if old.origin != new.origin {
        return Err(Failure::new(format!("the checkpoints are of different logs: old is {:?}, new is {:?}", old.origin, new.origin)).into());
    }
    if old.size > new.size {
        return Err(Failure::new(format!("the new checkpoint's tree ({}) is smaller than the old one's ({}): the log shrank", new.size, old.size)).into());
    }
    let answer = proof_bytes.map(|b| parse_answer::<ConsistencyAnswer>(&b, "proof")).transpose()?;
    if let Some(answer) = &answer
        && (answer.from, answer.to) != (old.size, new.size)
    {
        return Err(Failure::new(format!("the proof is from {} to {}, the checkpoints are {} and {}", answer.from, answer.to, old.size, new.size)).at("proof").into());
    }
    let hashes = answer.map(|a| decode_hashes(&a.hashes, "proof")).transpose()?;
    if old.size == 0 {
        if old.root != empty_root() {
            return Err(Failure::new("the old checkpoint has size 0 but not the empty tree's root").at("old checkpoint").into());
        }
    } else if old.size == new.size && hashes.is_none() {
        if old.root != new.root {
            return Err(Failure::new(format!("both checkpoints have tree size {} but different roots: the log forked", old.size)).into());
        }
    } else {
        let Some(hashes) = hashes else {
            return Err(Stop::Unusable(anyhow!(
                "--proof is required when the sizes differ: save GET /v1/ledger/consistency?from={}&to={}",
                old.size,
                new.size
            )));
        };
        verify_consistency(&hashes, old.size, &old.root, new.size, &new.root)
            .map_err(|e| Failure::new(format!("the new checkpoint does not extend the old one: {e}")).at("proof"))?;
    }
    report.summary = format!(
        "{}: tree size {} (root {}) extends tree size {} (root {}), both signed",
        new.origin, new.size, new.root, old.size, old.root
    );
    Ok(())
}
