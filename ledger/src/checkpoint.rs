//! C2SP `tlog-checkpoint`: the signed tree head of one tenant's ledger, and the keys that sign
//! it.

use crate::LedgerError;
use crate::hash::Hash;
use crate::note::{self, OpenedNote, Signer, Verifier, is_valid_name};

/// A tree head: origin, size, root, and optional extension lines.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// The log's name, `<deployment>/<tenant>` (see [`origin`]).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// The RFC 6962 root of those leaves.
    pub root: Hash,
    /// Extra lines after the root, each non-empty (auditlog writes none today).
    pub extensions: Vec<String>,
}

/// The origin of a tenant's log: `<deployment>/<tenant>`, e.g. `auditlog.example.com/acme`.
///
/// The origin is also the signing key's name on the checkpoint, so it must be a valid note
/// key name (non-empty, no whitespace, no `+`).
pub fn origin(deployment: &str, tenant: &str) -> Result<String, LedgerError> {
    let origin = format!("{deployment}/{tenant}");
    if deployment.is_empty() || tenant.is_empty() || tenant.contains('/') || !is_valid_name(&origin) {
        return Err(LedgerError::Malformed("origin needs a deployment name and a tenant id without spaces, / or +"));
    }
    Ok(origin)
}

impl Checkpoint {
    /// The checkpoint's note text: `<origin>\n<size>\n<base64 root>\n[<extension>\n]...`.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint's note text (strictly: canonical size, 32-byte root, non-empty
    /// lines, final newline).
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let body = text.strip_suffix('\n').ok_or(LedgerError::Malformed("checkpoint must end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(LedgerError::Malformed("checkpoint needs origin, size and root lines"));
        };
        if origin.is_empty() {
            return Err(LedgerError::Malformed("checkpoint origin is empty"));
        }
        let canonical = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) && (size == "0" || !size.starts_with('0'));
        let size = canonical.then(|| size.parse::<u64>().ok()).flatten().ok_or(LedgerError::Malformed("checkpoint size is not a decimal number"))?;
        let root = Hash::from_base64(root)?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(LedgerError::Malformed("checkpoint extension lines must not be empty"));
        }
        Ok(Self { origin: origin.to_string(), size, root, extensions })
    }

    /// The signed note of this checkpoint, one signature per signer. Each signer signs under
    /// the checkpoint's origin ([`Signer::renamed`]), whatever name its key file carries.
    pub fn sign(&self, signers: &[Signer]) -> Result<String, LedgerError> {
        if signers.is_empty() {
            return Err(LedgerError::Malformed("a checkpoint needs at least one signer"));
        }
        let named: Vec<Signer> = signers.iter().map(|s| s.renamed(&self.origin)).collect::<Result<_, _>>()?;
        note::sign(&self.to_text(), &named.iter().collect::<Vec<_>>())
    }

    /// Opens a signed checkpoint: at least one of `keys` (renamed to the note's origin) must
    /// have signed it, and `expected_origin`, when given, must match.
    pub fn open(signed: &str, keys: &[Verifier], expected_origin: Option<&str>) -> Result<(Self, OpenedNote), LedgerError> {
        let origin_line = signed.split('\n').next().unwrap_or_default();
        if let Some(expected) = expected_origin
            && origin_line != expected
        {
            return Err(LedgerError::WrongOrigin { expected: expected.to_string(), found: origin_line.to_string() });
        }
        let named: Vec<Verifier> = if is_valid_name(origin_line) {
            keys.iter().map(|k| k.renamed(origin_line)).collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let opened = note::open(signed, &named)?;
        let checkpoint = Self::parse(&opened.text)?;
        Ok((checkpoint, opened))
    }
}
