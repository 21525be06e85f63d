//! `auditlog audit-views`: checks what the read models hold against a tenant's ledger.
//!
//! The ledger first checks itself: the latest checkpoint must carry a valid signature by a
//! listed key, and the root recomputed from the stored leaf hashes (level-0 tiles) must equal
//! the checkpoint's. Then each view (the event store, by time and by id, and the search index)
//! is read whole and every leaf `i` with event id `x` is compared with the view's copy of `x`:
//! - **edited**: the copy's leaf hash (`auditlog_ledger::event_leaf_hash`) is not leaf `i`'s;
//! - **missing**: the view has no `x` (after a retention purge, events older than the
//!   tenant's retention are expected to be missing: the report says so, it does not judge);
//! - **extra**: the view holds an event no leaf covers (and that is not waiting for the next
//!   checkpoint: its leaf row, if any, is at or beyond the checkpoint's size);
//! - **out of order**: walking the leaves in order, the copies' log positions go backwards
//!   within one topic partition (a row moved or swapped with its position).

use std::collections::HashMap;

use auditlog_ledger::tile::tile_hashes;
use auditlog_ledger::{Checkpoint, Hash, LedgerError, Tile, TreeState, Verifier, event_leaf_hash};
use auditlog_seams::ledger_store::{LedgerStore, LedgerStoreError};
use auditlog_seams::{EventFilter, EventStore, PageRequest, SearchIndex, StoredEvent};

/// Events per page read from a view or the ledger.
const PAGE: usize = 1_000;

/// Why an audit could not run (not a finding: the audit did not reach a verdict).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The ledger store failed.
    #[error("ledger store: {0}")]
    Ledger(#[from] LedgerStoreError),
    /// A view failed.
    #[error("{view}: {error}")]
    View {
        /// Which.
        view: &'static str,
        /// Why.
        error: String,
    },
}

/// What the audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The ledger itself does not hold together (signature, root, tiles).
    Ledger(String),
    /// One event of one view is wrong.
    Event(EventFinding),
}

/// What is wrong with one event in one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFinding {
    /// The view (`scylla`, `scylla-by-id`, `opensearch`; embedded: `store`, `store-by-id`, `index`).
    pub view: &'static str,
    /// The event id.
    pub id: String,
    /// Its leaf, when the ledger has one.
    pub leaf: Option<u64>,
    /// What.
    pub problem: Problem,
}

/// The kinds of [`EventFinding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The view's copy no longer hashes to its leaf.
    Edited,
    /// The view lacks a ledgered event.
    Missing,
    /// The view holds an event the ledger does not.
    Extra,
    /// The view's copies go backwards in log order at this leaf.
    OutOfOrder,
}

impl Finding {
    fn event(view: &'static str, id: &str, leaf: Option<u64>, problem: Problem) -> Self {
        Self::Event(EventFinding { view, id: id.to_owned(), leaf, problem })
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ledger(why) => write!(f, "ledger: {why}"),
            Self::Event(EventFinding { view, id, leaf, problem }) => {
                let leaf = leaf.map_or_else(|| "-".to_owned(), |l| l.to_string());
                match problem {
                    Problem::Edited => write!(f, "{view}: event {id} was edited (it no longer hashes to leaf {leaf})"),
                    Problem::Missing => write!(f, "{view}: event {id} (leaf {leaf}) is missing"),
                    Problem::Extra => write!(f, "{view}: event {id} is not in the ledger (inserted?)"),
                    Problem::OutOfOrder => write!(f, "{view}: event {id} (leaf {leaf}) is out of log order"),
                }
            }
        }
    }
}

/// The audit of one tenant.
#[derive(Debug, Default)]
pub struct TenantAudit {
    /// The checkpoint's tree size (0 without one).
    pub tree_size: u64,
    /// Events compared per view.
    pub compared: Vec<(&'static str, u64)>,
    /// Everything found, in leaf order per view.
    pub findings: Vec<Finding>,
}

/// The views to compare; each is optional.
pub struct Views<'a> {
    /// The event store.
    pub store: Option<&'a dyn EventStore>,
    /// The search index.
    pub index: Option<&'a dyn SearchIndex>,
    /// Whether they are the embedded ones (standalone's fjall store and tantivy index):
    /// findings then name the views `store`, `store-by-id` and `index` instead of `scylla`,
    /// `scylla-by-id` and `opensearch`.
    pub embedded: bool,
}

impl Views<'_> {
    fn names(&self) -> [&'static str; 3] {
        if self.embedded { ["store", "store-by-id", "index"] } else { ["scylla", "scylla-by-id", "opensearch"] }
    }
}

/// Audits `tenant`'s views against its ledger; `keys` are the verifier keys checkpoints must
/// be signed by (none: the keys the ledger store lists).
pub async fn audit_tenant(ledger: &dyn LedgerStore, views: &Views<'_>, tenant: &str, deployment: &str, keys: &[Verifier]) -> Result<TenantAudit, AuditError> {
    let mut audit = TenantAudit::default();
    let Some(stored) = ledger.load_checkpoint(tenant).await? else {
        audit.findings.push(Finding::Ledger(format!("tenant {tenant} has no checkpoint")));
        return Ok(audit);
    };
    let keys = if keys.is_empty() {
        ledger.keys().await?.iter().filter_map(|k| Verifier::from_public_key(&k.name, &k.public_key).ok()).collect()
    } else {
        keys.to_vec()
    };
    let origin = auditlog_ledger::origin(deployment, tenant).map_err(|e| AuditError::View { view: "ledger", error: e.to_string() })?;
    let checkpoint = match Checkpoint::open(&stored.note, &keys, Some(&origin)) {
        Ok((checkpoint, _)) => checkpoint,
        Err(e) => {
            audit.findings.push(Finding::Ledger(format!("the latest checkpoint does not verify: {e}")));
            return Ok(audit);
        }
    };
    audit.tree_size = checkpoint.size;
    let leaf_hashes = match read_leaf_hashes(ledger, tenant, checkpoint.size).await? {
        Ok(hashes) => hashes,
        Err(why) => {
            audit.findings.push(Finding::Ledger(why));
            return Ok(audit);
        }
    };
    let mut tree = TreeState::empty();
    for hash in &leaf_hashes {
        tree.push_leaf(*hash);
    }
    if tree.root() != checkpoint.root {
        audit.findings.push(Finding::Ledger("the stored leaf hashes do not make the signed root (tiles edited)".into()));
        return Ok(audit);
    }
    let mut leaves = Vec::with_capacity(leaf_hashes.len());
    while (leaves.len() as u64) < checkpoint.size {
        let page = ledger.leaves(tenant, leaves.len() as u64, PAGE).await?;
        if page.is_empty() {
            audit.findings.push(Finding::Ledger(format!("leaf rows end at {} of {}", leaves.len(), checkpoint.size)));
            return Ok(audit);
        }
        leaves.extend(page.into_iter().take_while(|l| l.index < checkpoint.size).map(|l| l.id));
    }

    let [listed_view, by_id_view, index_view] = views.names();
    if let Some(store) = views.store {
        let listed = list_all(tenant, |filter, page| async move { store.list(&filter, &page).await.map_err(|e| e.to_string()) }, listed_view).await?;
        compare(ledger, tenant, listed_view, &leaves, &leaf_hashes, listed, checkpoint.size, &mut audit).await?;
        // The by-id copies (what `GET /v1/events/{id}` serves) are rows of their own.
        let mut by_id = HashMap::new();
        for id in &leaves {
            if let Some(e) = store.get(tenant, id).await.map_err(|e| AuditError::View { view: by_id_view, error: e.to_string() })? {
                by_id.insert(id.clone(), e);
            }
        }
        compare(ledger, tenant, by_id_view, &leaves, &leaf_hashes, by_id, checkpoint.size, &mut audit).await?;
    }
    if let Some(index) = views.index {
        let listed = list_all(tenant, |filter, page| async move { index.search(&filter, &page).await.map_err(|e| e.to_string()) }, index_view).await?;
        compare(ledger, tenant, index_view, &leaves, &leaf_hashes, listed, checkpoint.size, &mut audit).await?;
    }
    Ok(audit)
}

/// The level-0 hashes of leaves `0..size`, from the tiles; `Err` names what is wrong with them.
async fn read_leaf_hashes(ledger: &dyn LedgerStore, tenant: &str, size: u64) -> Result<Result<Vec<Hash>, String>, AuditError> {
    let mut hashes = Vec::with_capacity(size as usize);
    let mut first = 0;
    while first < size {
        let width = (size - first).min(256);
        let tile = Tile { level: 0, index: first / 256, width: width as u16 };
        let Some(data) = ledger.get_tile(tenant, &tile.path()).await? else {
            return Ok(Err(format!("tile {} is missing", tile.path())));
        };
        match tile_hashes(&data) {
            Ok(h) if h.len() as u64 == width => hashes.extend(h),
            Ok(_) | Err(LedgerError::Malformed(_)) => return Ok(Err(format!("tile {} has the wrong length", tile.path()))),
            Err(e) => return Ok(Err(format!("tile {}: {e}", tile.path()))),
        }
        first += width;
    }
    Ok(Ok(hashes))
}

async fn list_all<F, Fut>(tenant: &str, page_of: F, view: &'static str) -> Result<HashMap<String, StoredEvent>, AuditError>
where
    F: Fn(EventFilter, PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<auditlog_seams::Page, String>>,
{
    let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
    let mut page = PageRequest { limit: PAGE, after: None };
    let mut all = HashMap::new();
    loop {
        let answer = page_of(filter.clone(), page.clone()).await.map_err(|error| AuditError::View { view, error })?;
        for e in answer.events {
            all.insert(e.event.id.clone(), e);
        }
        match answer.next {
            Some(next) => page.after = Some(next),
            None => return Ok(all),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn compare(
    ledger: &dyn LedgerStore,
    tenant: &str,
    view: &'static str,
    leaves: &[String],
    leaf_hashes: &[Hash],
    mut copies: HashMap<String, StoredEvent>,
    size: u64,
    audit: &mut TenantAudit,
) -> Result<(), AuditError> {
    let mut last: HashMap<(String, i32), i64> = HashMap::new();
    let mut compared = 0;
    for (i, id) in leaves.iter().enumerate() {
        let leaf = i as u64;
        let Some(copy) = copies.remove(id) else {
            audit.findings.push(Finding::event(view, id, Some(leaf), Problem::Missing));
            continue;
        };
        compared += 1;
        if event_leaf_hash(&copy.event).ok() != Some(leaf_hashes[i]) {
            audit.findings.push(Finding::event(view, id, Some(leaf), Problem::Edited));
        }
        let partition = (copy.position.topic.clone(), copy.position.partition);
        if let Some(previous) = last.get(&partition)
            && copy.position.offset < *previous
        {
            audit.findings.push(Finding::event(view, id, Some(leaf), Problem::OutOfOrder));
        }
        last.insert(partition, copy.position.offset);
    }
    // What is left has no leaf below the checkpoint: extra, unless its leaf is just newer.
    let rest: Vec<String> = copies.into_keys().collect();
    let newer = ledger.leaf_indexes(tenant, &rest).await?;
    let mut extra: Vec<String> = rest.into_iter().filter(|id| newer.get(id).is_none_or(|&i| i < size)).collect();
    extra.sort();
    audit.findings.extend(extra.iter().map(|id| Finding::event(view, id, None, Problem::Extra)));
    audit.compared.push((view, compared));
    Ok(())
}
