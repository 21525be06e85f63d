//! The `LedgerStore` seam: where each tenant's Merkle tree (C2SP `tlog-tiles` hash tiles), its
//! builder state and its latest signed checkpoint are kept.
//!
//! - **Tiles are immutable.** [`LedgerStore::put_tile`] writes a path once (put-if-absent);
//!   writing the same bytes again is a no-op, so a ledger builder that crashed and replays a
//!   batch succeeds; writing other bytes under an existing path is
//!   [`LedgerStoreError::Conflict`] and nothing changes (a replay that diverged from the tree is
//!   a fault, never silently "fixed").
//! - **State and position move together.** [`LedgerState`] (tree size, the builder's
//!   serialized state, the log position the tree covers) is saved in one atomic write, after
//!   the tiles it needs are durable; a crash leaves the old state or the new one. On restart
//!   the builder resumes from the loaded state and consumes from its position.
//! - **The checkpoint** is the latest signed note per tenant; the last save wins (one ledger
//!   writer per tenant saves them in order).
//! - **Leaves.** Each leaf's event id is kept both ways (id → index, index → id), so a retried
//!   duplicate id never becomes a second leaf and a read can name an event's leaf. Leaf rows
//!   are written before the state that covers them; a row whose index is not below the saved
//!   size is provisional (a crash between the two) and is rewritten by the replay.
//! - **Keys.** The public halves of the deployment's checkpoint signing keys, with the time
//!   each was first used and, once retired, last valid: old keys stay listed so checkpoints
//!   they signed still verify.
//! - **Errors.** [`LedgerStoreError::Unavailable`] is transient: retry, commit nothing
//!   meanwhile. [`LedgerStoreError::Invalid`] is the caller's mistake (a bad tenant or path).
//!
//! Implementations: [`embedded::FileLedgerStore`] (files under a directory, standalone) and
//! [`scylla::ScyllaLedgerStore`] (ScyllaDB/Cassandra).

pub mod embedded;
pub mod scylla;

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::LogPosition;

/// Why a ledger store call failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerStoreError {
    /// Transient: retry later.
    #[error("ledger store unavailable: {0}")]
    Unavailable(String),
    /// A tile path already holds other bytes: tiles never change.
    #[error("tile {path} of tenant {tenant} already holds different bytes")]
    Conflict {
        /// Tenant of the tile.
        tenant: String,
        /// The tile's path.
        path: String,
    },
    /// The request cannot be served as asked (a bad tenant id or tile path).
    #[error("invalid ledger store request: {0}")]
    Invalid(String),
    /// A stored value cannot be read back.
    #[error("corrupt ledger store data: {0}")]
    Corrupt(String),
}

/// A tenant's tree as of one log position, saved atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerState {
    /// Leaves in the tree.
    pub size: u64,
    /// The tile builder's serialized state (`auditlog_ledger::TreeState::to_bytes`).
    pub builder: Vec<u8>,
    /// The log position the tree covers: the first record not yet in it, where consuming
    /// resumes.
    pub position: LogPosition,
}

/// A tenant's latest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size the checkpoint commits to.
    pub size: u64,
    /// The signed note, C2SP `tlog-checkpoint` text.
    pub note: String,
}

/// One leaf: the index it holds in its tenant's tree and the event it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafEntry {
    /// Position in the tree, from 0.
    pub index: u64,
    /// The event id.
    pub id: String,
}

/// The public half of a checkpoint signing key of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The Ed25519 public key (32 bytes); the record's identity.
    pub public_key: Vec<u8>,
    /// The key's name in its signer file.
    pub name: String,
    /// When a ledger writer first signed with it.
    pub not_before: OffsetDateTime,
    /// When it was retired; `None` while current.
    pub not_after: Option<OffsetDateTime>,
}

/// Storage of every tenant's ledger.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Writes a tile at its `tlog-tiles` path unless it exists; the same bytes again succeed,
    /// other bytes are [`LedgerStoreError::Conflict`]. Durable when it returns.
    async fn put_tile(&self, tenant: &str, path: &str, data: &[u8]) -> Result<(), LedgerStoreError>;

    /// [`LedgerStore::put_tile`] for each tile; fails with the first error. The tiles are
    /// independent, so an implementation may write them concurrently (the CQL store does):
    /// on error some may be written and others not, which the caller's retry absorbs.
    async fn put_tiles(&self, tenant: &str, tiles: &[(String, Vec<u8>)]) -> Result<(), LedgerStoreError> {
        for (path, data) in tiles {
            self.put_tile(tenant, path, data).await?;
        }
        Ok(())
    }

    /// The tile at `path`, `None` when it was never written.
    async fn get_tile(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, LedgerStoreError>;

    /// Saves the tenant's tree state (size, builder state and log position in one write).
    async fn save_state(&self, tenant: &str, state: &LedgerState) -> Result<(), LedgerStoreError>;

    /// The tenant's saved tree state, `None` before the first save.
    async fn load_state(&self, tenant: &str) -> Result<Option<LedgerState>, LedgerStoreError>;

    /// Saves the tenant's latest checkpoint.
    async fn save_checkpoint(&self, tenant: &str, checkpoint: &StoredCheckpoint) -> Result<(), LedgerStoreError>;

    /// The tenant's latest checkpoint, `None` before the first.
    async fn load_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>, LedgerStoreError>;

    /// Records each leaf both ways (id → index and index → id), overwriting provisional rows.
    /// Durable when it returns.
    async fn put_leaves(&self, tenant: &str, leaves: &[LeafEntry]) -> Result<(), LedgerStoreError>;

    /// The leaf index of each of `ids` that has a leaf row (provisional ones included: compare
    /// with the saved size).
    async fn leaf_indexes(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, u64>, LedgerStoreError>;

    /// Up to `limit` leaves from index `from` on, in index order.
    async fn leaves(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<LeafEntry>, LedgerStoreError>;

    /// Lists a signing key unless its public key is listed already (the first `not_before`
    /// stays).
    async fn put_key(&self, key: &SigningKeyRecord) -> Result<(), LedgerStoreError>;

    /// Marks a listed key retired at `at`; unknown keys are ignored.
    async fn retire_key(&self, public_key: &[u8], at: OffsetDateTime) -> Result<(), LedgerStoreError>;

    /// Every signing key ever listed, oldest first.
    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, LedgerStoreError>;
}

/// A tenant id usable as a key and a directory name: non-empty, ASCII letters, digits, `-`,
/// `_` and `.` (but not `.` or `..`).
pub(crate) fn check_tenant(tenant: &str) -> Result<(), LedgerStoreError> {
    let ok = !tenant.is_empty()
        && tenant != "."
        && tenant != ".."
        && tenant.len() <= 255
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    ok.then_some(()).ok_or_else(|| LedgerStoreError::Invalid(format!("tenant id {tenant:?} is not usable")))
}

/// A hash-tile path as `tlog-tiles` writes it: `tile/` then components of digits, `x`, `p`
/// and `.` (no `.`/`..` component).
pub(crate) fn check_tile_path(path: &str) -> Result<(), LedgerStoreError> {
    let ok = path.len() <= 128
        && path.strip_prefix("tile/").is_some_and(|rest| {
            rest.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && c.bytes().all(|b| b.is_ascii_digit() || b"xp.".contains(&b)))
        });
    ok.then_some(()).ok_or_else(|| LedgerStoreError::Invalid(format!("{path:?} is not a tile path")))
}
