//! C2SP `signed-note` with Ed25519 keys, compatible with Go's `golang.org/x/mod/sumdb/note`.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one line per signature:
//! `— <key name> <base64(key id (4 bytes, big-endian) || signature)>`. The key id is the first
//! four bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`. Keys travel as text:
//! verifier keys as `<name>+<hex key id>+<base64(0x01 || public key)>`, signer keys as
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::LedgerError;

const ALG_ED25519: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";
/// Most signature lines a note may carry (Go's limit), so parsing is bounded.
const MAX_SIGNATURES: usize = 100;

/// A key id: the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A key name: non-empty, no whitespace, no `+` (Go's `isValidName`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('+')
}

/// A public key that checks signatures made under one name.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// The verifier for `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, LedgerError> {
        if !is_valid_name(name) {
            return Err(LedgerError::Malformed("key name must be non-empty without spaces or +"));
        }
        Ok(Self { name: name.to_string(), id: key_id(name, key.as_bytes()), key })
    }

    /// Parses the verifier-key text form `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let bad = LedgerError::Malformed("verifier key must be <name>+<8 hex digits>+<base64(0x01||key)>");
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad) };
        let id = parse_key_id(id_hex).ok_or(bad)?;
        let key = decode_typed_key(key64)?;
        let verifier = Self::new(name, VerifyingKey::from_bytes(&key).map_err(|_| LedgerError::Malformed("not an Ed25519 public key"))?)?;
        if verifier.id != id {
            return Err(LedgerError::Malformed("verifier key id does not match its name and key"));
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The same public key under another name (a per-tenant origin, say).
    pub fn renamed(&self, name: &str) -> Result<Self, LedgerError> {
        Self::new(name, self.key)
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The verifier of a stored Ed25519 public key under `name`.
    pub fn from_public_key(name: &str, public_key: &[u8]) -> Result<Self, LedgerError> {
        let bytes: [u8; 32] = public_key.try_into().map_err(|_| LedgerError::Malformed("an Ed25519 public key is 32 bytes"))?;
        Self::new(name, VerifyingKey::from_bytes(&bytes).map_err(|_| LedgerError::Malformed("not an Ed25519 public key"))?)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|sig| self.key.verify_strict(message, &sig).is_ok())
    }
}

impl fmt::Display for Verifier {
    /// The verifier-key text form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:08x}+{}", self.name, self.id, typed_key(self.key.as_bytes()))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

/// A private key that signs notes under one name. `Debug` never shows the seed.
#[derive(Clone)]
pub struct Signer {
    name: String,
    id: u32,
    key: SigningKey,
}

impl Signer {
    /// The signer for the Ed25519 `seed` under `name`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, LedgerError> {
        if !is_valid_name(name) {
            return Err(LedgerError::Malformed("key name must be non-empty without spaces or +"));
        }
        let key = SigningKey::from_bytes(seed);
        Ok(Self { name: name.to_string(), id: key_id(name, key.verifying_key().as_bytes()), key })
    }

    /// A new random key under `name`.
    pub fn generate(name: &str) -> Result<Self, LedgerError> {
        Self::from_seed(name, &rand::random::<[u8; 32]>())
    }

    /// Parses the signer-key file form `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`
    /// (surrounding whitespace, such as a file's final newline, is ignored).
    pub fn parse(text: &str) -> Result<Self, LedgerError> {
        let bad = LedgerError::Malformed("signer key must be PRIVATE+KEY+<name>+<8 hex digits>+<base64(0x01||seed)>");
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(LedgerError::Malformed("signer key must start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad) };
        let id = parse_key_id(id_hex).ok_or(bad)?;
        let signer = Self::from_seed(name, &decode_typed_key(key64)?)?;
        if signer.id != id {
            return Err(LedgerError::Malformed("signer key id does not match its name and key"));
        }
        Ok(signer)
    }

    /// The signer-key file form (secret: store it like a password).
    pub fn to_key_text(&self) -> String {
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.id, typed_key(self.key.as_bytes()))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The same private key under another name: one deployment key signs each tenant's
    /// checkpoints under that tenant's origin.
    pub fn renamed(&self, name: &str) -> Result<Self, LedgerError> {
        Self::from_seed(name, self.key.as_bytes())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({}+{:08x}, seed redacted)", self.name, self.id)
    }
}

/// One signature line of a note.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id.
    pub key_id: u32,
    /// `base64(key id || signature)`, as on the line.
    pub base64: String,
}

/// A note whose signatures were checked against a set of known keys.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpenedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Signatures by known keys, each verified.
    pub verified: Vec<NoteSignature>,
    /// Signatures by keys not in the set, kept as they were (witness cosignatures, say).
    pub unverified: Vec<NoteSignature>,
}

/// Signs `text` (which must end in a newline) with every signer, in order: with two signers
/// a note carries both signatures while keys overlap during a rotation.
pub fn sign(text: &str, signers: &[&Signer]) -> Result<String, LedgerError> {
    if !text.ends_with('\n') || !valid_note_text(text) {
        return Err(LedgerError::Malformed("note text must be UTF-8 without control characters and end in a newline"));
    }
    let mut note = format!("{text}\n");
    for signer in signers {
        let signature = signer.key.sign(text.as_bytes());
        let mut raw = signer.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&signature.to_bytes());
        note.push_str(&format!("{SIG_PREFIX}{} {}\n", signer.name, STANDARD.encode(raw)));
    }
    Ok(note)
}

/// Parses a signed note and checks its signatures against `known`.
///
/// It opens when at least one known key signed it. Signatures by unknown keys are kept in
/// [`OpenedNote::unverified`]; a signature that names a known key but does not verify fails
/// the whole note ([`LedgerError::InvalidSignature`]), as in Go's `note.Open`.
pub fn open(note: &str, known: &[Verifier]) -> Result<OpenedNote, LedgerError> {
    let malformed = LedgerError::Malformed("signed note");
    if !valid_note_text(note) {
        return Err(malformed);
    }
    let split = note.rfind("\n\n").ok_or(LedgerError::Malformed("signed note has no signature block"))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(malformed);
    }
    let mut opened = OpenedNote { text: text.to_string(), verified: Vec::new(), unverified: Vec::new() };
    for (count, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(LedgerError::Malformed("signed note has too many signatures"));
        }
        let signature = parse_signature_line(line)?;
        let matching: Vec<&Verifier> = known.iter().filter(|v| v.name == signature.name && v.id == signature.key_id).collect();
        let Some(verifier) = matching.first() else {
            if !opened.unverified.contains(&signature) {
                opened.unverified.push(signature);
            }
            continue;
        };
        if opened.verified.iter().any(|s| s.name == signature.name && s.key_id == signature.key_id) {
            continue;
        }
        let raw = STANDARD.decode(&signature.base64).map_err(|_| LedgerError::Malformed("signature is not base64"))?;
        if !verifier.verify(text.as_bytes(), &raw[4..]) {
            return Err(LedgerError::InvalidSignature(format!("{}+{:08x}", signature.name, signature.key_id)));
        }
        opened.verified.push(signature);
    }
    if opened.verified.is_empty() {
        return Err(LedgerError::Unverified);
    }
    Ok(opened)
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, LedgerError> {
    let bad = LedgerError::Malformed("signature line must be '\u{2014} <name> <base64>'");
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(LedgerError::Malformed("signature line must start with an em dash"))?;
    let (name, b64) = rest.split_once(' ').ok_or(bad)?;
    let raw = STANDARD.decode(b64).map_err(|_| LedgerError::Malformed("signature is not base64"))?;
    if !is_valid_name(name) || raw.len() < 5 {
        return Err(LedgerError::Malformed("signature line"));
    }
    Ok(NoteSignature { name: name.to_string(), key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]), base64: b64.to_string() })
}

/// UTF-8 (guaranteed by `&str`) without ASCII control characters other than newline.
fn valid_note_text(text: &str) -> bool {
    !text.chars().any(|c| c < '\u{20}' && c != '\n')
}

fn parse_key_id(hex: &str) -> Option<u32> {
    (hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u32::from_str_radix(hex, 16).ok())?
}

fn typed_key(key: &[u8; 32]) -> String {
    let mut typed = vec![ALG_ED25519];
    typed.extend_from_slice(key);
    STANDARD.encode(typed)
}

fn decode_typed_key(text: &str) -> Result<[u8; 32], LedgerError> {
    let raw = STANDARD.decode(text).map_err(|_| LedgerError::Malformed("key is not standard base64"))?;
    match raw.split_first() {
        Some((&ALG_ED25519, key)) => key.try_into().map_err(|_| LedgerError::Malformed("Ed25519 key must be 32 bytes")),
        Some(_) => Err(LedgerError::Malformed("unknown key algorithm (only Ed25519, 0x01)")),
        None => Err(LedgerError::Malformed("key is empty")),
    }
}
