//! Tamper evidence for auditlog: each tenant's events form an append-only Merkle tree whose
//! signed checkpoints let anyone prove, offline, that an event is in the log and that the log
//! only ever grew.
//!
//! Pure and synchronous; storage is the `LedgerStore` seam in `auditlog-seams`. Components:
//! [`leaf`] (what an event's leaf is), [`hash`] (RFC 6962 hashing), [`proof`] (inclusion and
//! consistency proofs), [`tile`] (C2SP `tlog-tiles` paths and reads), [`builder`] (the
//! incremental tile builder), [`note`] (C2SP `signed-note`, Ed25519), [`checkpoint`]
//! (C2SP `tlog-checkpoint`) and [`keys`] (reading a verifier's key list).
//!
//! # Leaf encoding
//!
//! One leaf per distinct event, in the tenant's log order. The leaf data is the event's JSON
//! form (`auditlog_schemas::AuditEvent`, as the API returns it) canonicalized with RFC 8785, the
//! JSON Canonicalization Scheme ([`leaf_bytes`]), by the `serde_json_canonicalizer` crate:
//! object members sorted by their UTF-16 code units, no insignificant whitespace, strings with
//! JCS's minimal escaping, numbers as IEEE 754 doubles in ECMAScript's shortest form. Any RFC
//! 8785 implementation reproduces the bytes. On top of JCS, `occurred_at` and `received_at` are
//! written in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (six fractional digits, the stored
//! precision; nine only for a value with nanoseconds), so the offset a producer sent and the
//! `time` crate's RFC 3339 printer do not matter.
//!
//! Known limit, from RFC 8785 itself: numbers are doubles, so metadata integers beyond ±2^53
//! are rounded (`9007199254740993` encodes as `9007199254740992`) and two events differing
//! only there share a leaf. Rejecting such integers at ingest (I-JSON, RFC 7493) closes it.
//!
//! Fields that are absent are omitted (never `null`); read-time fields ([`leaf::DERIVED_FIELDS`],
//! e.g. `leaf_index`) are removed. **Why this is stable across schema versions:** a later
//! schema version may only add optional fields (AuditEvent's evolution rule); an optional field
//! is omitted when absent (`skip_serializing_if = "Option::is_none"`), so an event written
//! before the field existed encodes to the same bytes under the new schema, and its leaf does
//! not move. Member order comes from the names, not the struct, so reordering fields in Rust
//! or Avro changes nothing. The pinned golden leaf in this crate's tests fails if any of that
//! drifts.
//!
//! # Hashing
//!
//! RFC 6962 / RFC 9162: leaf hash `SHA-256(0x00 || leaf data)`, node hash
//! `SHA-256(0x01 || left || right)`, split at the largest power of two below the size, empty
//! tree `SHA-256("")`. Proof hashes are bottom-up, as RFC 9162 and Go's `sumdb/tlog` order them.
//!
//! # Tile layout
//!
//! C2SP `tlog-tiles` with tile height 8: the tile at level `L`, index `N` holds up to 256
//! consecutive hashes of tree level `8·L`, concatenated (32 bytes each), at path
//! `tile/<L>/<N>`, `N` written in groups of three digits with an `x` before all but the last
//! (`1234067` → `x001/x234/067`). A tile with fewer than 256 hashes is a partial tile at
//! `tile/<L>/<N>.p/<W>`. Every path is written once and never changes (put-if-absent). Only
//! hash tiles are stored: the leaf data lives in the event store (the events themselves), so
//! `tile/entries/...` is not served. [`TreeState`] holds the right edge's partial tiles, which
//! is all it takes to append and to compute the root; it is serialized next to the log
//! position it covers, and can also be rebuilt from the stored partial tiles.
//!
//! # Checkpoints
//!
//! A checkpoint is a C2SP `signed-note` whose text is `<origin>\n<tree size>\n<base64 root>\n`
//! (plus optional extension lines, none today), followed by a blank line and one line per
//! signature, `— <key name> <base64(4-byte key id || Ed25519 signature)>`. The key id is the
//! first four bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`. Keys use Go's text
//! forms: verifier `<name>+<hex key id>+<base64(0x01 || public key)>`, signer
//! `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`. Go's
//! `golang.org/x/mod/sumdb/note` and `sumdb/tlog` verify what this crate produces (see
//! `tests/interop.rs`).
//!
//! # Origin naming
//!
//! Each tenant has its own log, named `<deployment>/<tenant>` ([`checkpoint::origin`]), e.g.
//! `auditlog.example.com/acme`, where the deployment name is configuration. The key name on a
//! checkpoint's signature is its origin: one deployment key (whatever name its file carries)
//! signs every tenant's checkpoint under that tenant's origin ([`Signer::renamed`]), so a
//! tenant's verifier key is `<deployment>/<tenant>+<key id>+<public key>` and witnesses see the
//! usual origin = key name pairing.
//!
//! # Key rotation
//!
//! [`Checkpoint::sign`] takes several signers: while an old and a new key overlap, every
//! checkpoint carries both signatures. A verifier opens a note when at least one known key
//! signed it; signatures by unknown keys are ignored (kept as unverified), and a signature
//! that names a known key but does not verify fails the note. Retired public keys stay listed
//! (with their validity window) so checkpoints signed before the rotation still verify.

pub mod builder;
pub mod checkpoint;
pub mod hash;
pub mod keys;
pub mod leaf;
pub mod note;
pub mod proof;
pub mod tile;

pub use builder::{Appended, TreeState};
pub use checkpoint::{Checkpoint, origin};
pub use hash::{HASH_SIZE, Hash, empty_root, leaf_hash, node_hash, root_of};
pub use keys::parse_verifier_keys;
pub use leaf::{event_leaf_hash, leaf_bytes};
pub use note::{OpenedNote, Signer, Verifier};
pub use proof::{HashReader, prove_consistency, prove_inclusion, tree_root, verify_consistency, verify_inclusion};
pub use tile::{TILE_HEIGHT, Tile, TileHashReader};

/// Everything that can go wrong in the ledger library.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Input that does not parse: a path, key, note, checkpoint, hash or state.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// An index or size outside the tree (`from > to`, a size beyond the stored tree, ...).
    #[error("out of range: {0}")]
    OutOfRange(&'static str),
    /// A proof that does not check out.
    #[error("proof does not verify: {0}")]
    ProofMismatch(&'static str),
    /// A tile a computation needs was not supplied.
    #[error("missing tile {0}")]
    MissingTile(String),
    /// `tile/entries/...`: auditlog does not store entry bundles.
    #[error("entry tiles are not stored: leaf data lives in the event store")]
    EntriesNotStored,
    /// A signature by a known key that does not verify.
    #[error("invalid signature for key {0}")]
    InvalidSignature(String),
    /// A note with no signature by any known key.
    #[error("note has no signature by a known key")]
    Unverified,
    /// A checkpoint for another log.
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// The origin the caller expected.
        expected: String,
        /// The origin line of the checkpoint.
        found: String,
    },
    /// A verifier key in a key list that does not parse, or a list without keys.
    #[error("{at}: {reason}")]
    BadKey {
        /// Which key: `keys[2]` in a JSON listing, `line 3` in a text list.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An event that cannot be encoded canonically.
    #[error("cannot encode event: {0}")]
    Encoding(String),
}
