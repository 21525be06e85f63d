//! Reading the tamper-evidence ledger (`auditlog-ledger`, written by the ledger processor
//! through the `LedgerStore` seam): a tenant's latest checkpoint, which events it covers
//! (their `leaf_index`), and inclusion and consistency proofs computed from the stored
//! `tlog-tiles`.
//!
//! Everything is read against the tenant's latest checkpoint: an event's `leaf_index` is shown
//! only when that checkpoint covers it (index < its size), and tiles are read at their widths
//! for that size (the ledger processor writes the partial tiles of every size it checkpoints,
//! so they exist). Every store call runs within the backend time budget.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use auditlog_ledger::proof::{consistency_tiles, inclusion_tiles};
use auditlog_ledger::{Hash, LedgerError, Tile, TileHashReader, prove_consistency, prove_inclusion};
use auditlog_schemas::AuditEvent;
use auditlog_seams::ledger_store::{LedgerStore, StoredCheckpoint};
use serde::Serialize;

use crate::error::QueryError;
use crate::state::{LedgerBackend, QueryState};

/// Tiles an export keeps between pages (8 KiB each at most): the upper-level tiles every
/// proof shares and the level-0 tiles of the leaves just exported stay; more saves store
/// reads on a scattered export, each costs 8 KiB per export.
const MAX_CACHED_TILES: usize = 64;
/// Tiles fetched at once for one page.
const TILE_FETCH_CONCURRENCY: usize = 8;

/// An event as the API answers it: its JSON, plus `leaf_index` once the tenant's latest
/// checkpoint covers it, plus `proof` (base64 inclusion-proof hashes) in an export taken
/// with `proofs=true`.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Its leaf in the tenant's ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    /// Its inclusion proof against the export's checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<Vec<String>>,
    /// Whether its producer signature verifies with the tenant's registered key (absent when
    /// the event is unsigned); computed at read time, never part of the ledger's leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

impl EventView {
    /// `event` with `leaf_index` from `indexes` (see [`covered_indexes`]) and its signature's
    /// `verified` status against `state`'s tenant registry.
    pub fn new(state: &QueryState, event: AuditEvent, indexes: &HashMap<String, u64>) -> Self {
        let leaf_index = indexes.get(&event.id).copied();
        Self::plain(state, event, leaf_index, None)
    }

    /// `event` with the given leaf and proof, and its `verified` status.
    pub fn plain(state: &QueryState, event: AuditEvent, leaf_index: Option<u64>, proof: Option<Vec<String>>) -> Self {
        let registry: &dyn auditlog_tenant_registry::TenantRegistry = state.backends().tenants.as_ref();
        let verified = auditlog_api_common::signatures::verified(registry, &event.tenant_id, &event);
        Self { event, leaf_index, proof, verified }
    }
}

/// The ledger, or 404 `ledger-not-configured`.
pub fn backend(state: &QueryState) -> Result<&LedgerBackend, QueryError> {
    state.backends().ledger.as_ref().ok_or(QueryError::LedgerNotConfigured)
}

/// `call` within the backend time budget.
async fn timed<T, E: Into<QueryError>>(state: &QueryState, call: impl Future<Output = Result<T, E>>) -> Result<T, QueryError> {
    match tokio::time::timeout(state.config().backend_timeout(), call).await {
        Ok(answer) => answer.map_err(Into::into),
        Err(_) => Err(QueryError::Unavailable("ledger store read timed out".into())),
    }
}

/// The tenant's latest checkpoint, `None` before its first leaf.
pub async fn latest(state: &QueryState, tenant: &str) -> Result<Option<StoredCheckpoint>, QueryError> {
    let ledger = backend(state)?;
    timed(state, ledger.store.load_checkpoint(tenant)).await
}

/// The leaf index of each of `ids` that a checkpoint of `size` covers (one store call).
pub async fn indexes_below(state: &QueryState, tenant: &str, ids: &[String], size: u64) -> Result<HashMap<String, u64>, QueryError> {
    if ids.is_empty() || size == 0 {
        return Ok(HashMap::new());
    }
    let ledger = backend(state)?;
    let mut found = timed(state, ledger.store.leaf_indexes(tenant, ids)).await?;
    found.retain(|_, index| *index < size);
    Ok(found)
}

/// The `leaf_index` of each event that the tenant's latest checkpoint covers; empty when the
/// deployment has no ledger. Two store calls per page, whatever its length.
pub async fn covered_indexes<'a>(state: &QueryState, tenant: &str, events: impl IntoIterator<Item = &'a AuditEvent>) -> Result<HashMap<String, u64>, QueryError> {
    if state.backends().ledger.is_none() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = events.into_iter().map(|e| e.id.clone()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(checkpoint) = latest(state, tenant).await? else { return Ok(HashMap::new()) };
    indexes_below(state, tenant, &ids, checkpoint.size).await
}

/// Proof generation failed on stored data: a tile is missing or malformed. Input errors are
/// checked before a proof is asked for, so this is the store's fault.
fn stored_tree(err: LedgerError) -> QueryError {
    QueryError::Internal(format!("ledger tiles: {err}"))
}

/// Tiles read from the store for one tenant's tree at one size, kept between calls (bounded
/// by [`MAX_CACHED_TILES`] beyond what a single call needs).
pub struct TileCache {
    tenant: String,
    /// The tree size the tiles are read at (the checkpoint's).
    size: u64,
    tiles: HashMap<Tile, Vec<u8>>,
}

impl TileCache {
    /// An empty cache for `tenant`'s tree of `size` leaves.
    pub fn new(tenant: &str, size: u64) -> Self {
        Self { tenant: tenant.to_owned(), size, tiles: HashMap::new() }
    }

    /// A reader holding `needed`, fetched from the store unless cached. A tile the store does
    /// not have is an internal error: the checkpoint says it was written.
    async fn reader(&mut self, state: &QueryState, needed: &[Tile]) -> Result<TileHashReader, QueryError> {
        let ledger = backend(state)?;
        let missing: Vec<Tile> = needed.iter().filter(|t| !self.tiles.contains_key(t)).copied().collect();
        if self.tiles.len() + missing.len() > MAX_CACHED_TILES {
            self.tiles.retain(|tile, _| needed.contains(tile));
        }
        let budget = state.config().backend_timeout();
        let fetches: Vec<_> = missing.iter().map(|tile| fetch_tile(ledger.store.clone(), self.tenant.clone(), *tile, budget)).collect();
        let fetched: Vec<Result<(Tile, Vec<u8>), QueryError>> =
            futures::StreamExt::collect(futures::StreamExt::buffered(futures::stream::iter(fetches), TILE_FETCH_CONCURRENCY)).await;
        let fetched: Vec<(Tile, Vec<u8>)> = fetched.into_iter().collect::<Result<_, _>>()?;
        self.tiles.extend(fetched);
        let mut reader = TileHashReader::new(self.size);
        for tile in needed {
            let data = self.tiles.get(tile).cloned().unwrap_or_default();
            reader.insert(*tile, data).map_err(stored_tree)?;
        }
        Ok(reader)
    }

    /// The inclusion proof of each of `indexes` in the tree of `tree_size` leaves
    /// (`tree_size` ≤ the cache's size; every index below `tree_size`).
    pub async fn inclusion_proofs(&mut self, state: &QueryState, indexes: &[u64], tree_size: u64) -> Result<Vec<Vec<Hash>>, QueryError> {
        let mut needed = std::collections::BTreeSet::new();
        for &index in indexes {
            needed.extend(inclusion_tiles(index, tree_size, self.size).map_err(stored_tree)?);
        }
        let needed: Vec<Tile> = needed.into_iter().collect();
        let reader = self.reader(state, &needed).await?;
        let indexes = indexes.to_vec();
        // Hashing a page's proofs is CPU work (a few hundred SHA-256 per proof): off the
        // async workers.
        tokio::task::spawn_blocking(move || indexes.iter().map(|&i| prove_inclusion(i, tree_size, &reader)).collect::<Result<Vec<_>, _>>())
            .await
            .map_err(|e| QueryError::Internal(format!("proof task: {e}")))?
            .map_err(stored_tree)
    }

    /// The consistency proof from `from` to `to` leaves (`1 <= from <= to <=` the cache's size).
    pub async fn consistency_proof(&mut self, state: &QueryState, from: u64, to: u64) -> Result<Vec<Hash>, QueryError> {
        let needed = consistency_tiles(from, to, self.size).map_err(stored_tree)?;
        let reader = self.reader(state, &needed).await?;
        prove_consistency(from, to, &reader).map_err(stored_tree)
    }
}

/// One tile from the store; absent is an internal error (a checkpoint covers it).
async fn fetch_tile(store: Arc<dyn LedgerStore>, tenant: String, tile: Tile, budget: Duration) -> Result<(Tile, Vec<u8>), QueryError> {
    let path = tile.path();
    let data = tokio::time::timeout(budget, store.get_tile(&tenant, &path))
        .await
        .map_err(|_| QueryError::Unavailable("ledger store read timed out".into()))??;
    data.map(|d| (tile, d)).ok_or_else(|| QueryError::Internal(format!("ledger tile {path} of {tenant} is missing")))
}

/// Base64 of each hash, as the API and exports write proofs.
pub fn base64_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_base64).collect()
}
