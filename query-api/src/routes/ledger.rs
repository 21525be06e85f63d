//! The ledger's read side, confined to the caller's tenant like every read: the latest signed
//! checkpoint, the verifier keys, inclusion proofs (`/v1/events/{id}/proof`), consistency
//! proofs, and the `tlog-tiles` hash tiles themselves (immutable, cacheable for a year).
//!
//! Another tenant's event id is as unknown as an id that never existed (404 naming `id`);
//! every bad parameter is a 400 naming it.

use auditlog_ledger::{LedgerError, Tile, Verifier, origin};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::auth::Reader;
use crate::error::QueryError;
use crate::ledger::{self, TileCache, base64_hashes};
use crate::params::Params;
use crate::state::QueryState;

/// `Cache-Control` of a tile: its path names its content forever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    /// The event's leaf.
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// Base64 SHA-256 hashes, bottom-up (RFC 9162).
    pub hashes: Vec<String>,
}

/// A consistency proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub from: u64,
    /// The newer tree size.
    pub to: u64,
    /// Base64 SHA-256 hashes (RFC 9162).
    pub hashes: Vec<String>,
}

/// One checkpoint signing key, under the caller's origin.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerKey {
    /// The key id (hex, 8 digits), as in the verifier key and the signature lines.
    pub key_id: String,
    /// `<deployment>/<tenant>+<key id>+<base64(0x01 || public key)>` (signed-note verifier key).
    pub verifier_key: String,
    /// When the ledger first signed with it (RFC 3339).
    pub not_before: String,
    /// When it was retired (RFC 3339); `null` while current.
    pub not_after: Option<String>,
}

/// Every key that signs or signed the caller's checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerKeys {
    /// Oldest first; retired keys stay listed so old checkpoints still verify.
    pub keys: Vec<LedgerKey>,
}

/// The tenant's latest checkpoint, or 404 naming `what` before the first leaf.
async fn checkpoint_of(state: &QueryState, tenant: &str) -> Result<auditlog_seams::ledger_store::StoredCheckpoint, QueryError> {
    ledger::latest(state, tenant).await?.ok_or_else(|| QueryError::Missing { field: "checkpoint", message: "does not exist yet: the tenant's ledger has no leaf".into() })
}

/// A tree size parameter: a decimal `u64`, or 400 naming it.
fn size_param(params: &Params, name: &'static str) -> Result<Option<u64>, QueryError> {
    params.get(name).map(|raw| raw.parse::<u64>().map_err(|_| QueryError::param(name, "must be a non-negative integer"))).transpose()
}

/// `GET /v1/ledger/checkpoint`.
#[utoipa::path(get, path = "/v1/ledger/checkpoint", tag = "ledger",
    responses((status = 200, description = "the tenant's latest checkpoint, a C2SP signed note (tlog-checkpoint)", content_type = "text/plain"),
        (status = 404, description = "no leaf yet, or no ledger on this deployment"), (status = 401), (status = 403), (status = 429), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn checkpoint(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery) -> Result<Response, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    Params::parse(raw.as_deref(), &[])?;
    let checkpoint = checkpoint_of(&state, &reader.tenant_id).await?;
    let mut response = checkpoint.note.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `GET /v1/ledger/keys`.
#[utoipa::path(get, path = "/v1/ledger/keys", tag = "ledger",
    responses((status = 200, body = LedgerKeys), (status = 404, description = "no ledger on this deployment"), (status = 401), (status = 403), (status = 429), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn keys(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery) -> Result<Json<LedgerKeys>, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    Params::parse(raw.as_deref(), &[])?;
    let backend = ledger::backend(&state)?;
    let name = origin(&backend.deployment, &reader.tenant_id).map_err(|e| QueryError::Internal(format!("origin of {}: {e}", reader.tenant_id)))?;
    let stored = tokio::time::timeout(state.config().backend_timeout(), backend.store.keys())
        .await
        .map_err(|_| QueryError::Unavailable("ledger store read timed out".into()))??;
    let time = |t: time::OffsetDateTime| t.format(&Rfc3339).map_err(|e| QueryError::Internal(format!("formatting a key time: {e}")));
    let mut keys = Vec::with_capacity(stored.len());
    for record in stored {
        let verifier = Verifier::from_public_key(&name, &record.public_key).map_err(|e| QueryError::Internal(format!("stored key {}: {e}", record.name)))?;
        keys.push(LedgerKey {
            key_id: format!("{:08x}", verifier.key_id()),
            verifier_key: verifier.to_string(),
            not_before: time(record.not_before)?,
            not_after: record.not_after.map(time).transpose()?,
        });
    }
    Ok(Json(LedgerKeys { keys }))
}

/// `GET /v1/events/{id}/proof`.
#[utoipa::path(get, path = "/v1/events/{id}/proof", tag = "ledger",
    params(("id" = String, Path, description = "event id"),
        ("tree_size" = Option<u64>, Query, description = "1..=the latest checkpoint's size, above the event's leaf index; default the latest checkpoint's size")),
    responses((status = 200, body = InclusionProof), (status = 400, description = "a bad tree_size, named"),
        (status = 404, description = "no such event in the tenant's ledger (yet), named `id`; or no ledger on this deployment"),
        (status = 401), (status = 403), (status = 429), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn proof(State(state): State<QueryState>, reader: Reader, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Result<Json<InclusionProof>, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    let params = Params::parse(raw.as_deref(), &[&["tree_size"]])?;
    let requested = size_param(&params, "tree_size")?;
    ledger::backend(&state)?;
    let unknown = || QueryError::Missing { field: "id", message: "is not an event in this tenant's ledger (or not covered by its latest checkpoint yet)".into() };
    if id.is_empty() || id.len() > 256 {
        return Err(unknown());
    }
    let latest = ledger::latest(&state, &reader.tenant_id).await?.ok_or_else(unknown)?;
    let indexes = ledger::indexes_below(&state, &reader.tenant_id, std::slice::from_ref(&id), latest.size).await?;
    let leaf_index = *indexes.get(&id).ok_or_else(unknown)?;
    let tree_size = requested.unwrap_or(latest.size);
    if tree_size == 0 || tree_size > latest.size {
        return Err(QueryError::param("tree_size", format!("must be within 1..={} (the latest checkpoint's size)", latest.size)));
    }
    if tree_size <= leaf_index {
        return Err(QueryError::param("tree_size", format!("must be above the event's leaf index {leaf_index}")));
    }
    let mut tiles = TileCache::new(&reader.tenant_id, latest.size);
    let mut proofs = tiles.inclusion_proofs(&state, &[leaf_index], tree_size).await?;
    let hashes = base64_hashes(&proofs.pop().unwrap_or_default());
    Ok(Json(InclusionProof { leaf_index, tree_size, hashes }))
}

/// `GET /v1/ledger/consistency`.
#[utoipa::path(get, path = "/v1/ledger/consistency", tag = "ledger",
    params(("from" = u64, Query, description = "the older tree size, 1..=to"), ("to" = u64, Query, description = "the newer tree size, at most the latest checkpoint's")),
    responses((status = 200, body = ConsistencyProof), (status = 400, description = "a missing or bad from/to, named"),
        (status = 404, description = "no leaf yet, or no ledger on this deployment"), (status = 401), (status = 403), (status = 429), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn consistency(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery) -> Result<Json<ConsistencyProof>, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    let params = Params::parse(raw.as_deref(), &[&["from", "to"]])?;
    let (from, to) = (size_param(&params, "from"), size_param(&params, "to"));
    let (from, to) = match (from, to) {
        (Ok(Some(from)), Ok(Some(to))) => (from, to),
        (from, to) => {
            let mut problems = Vec::new();
            for (name, value) in [("from", from), ("to", to)] {
                match value {
                    Ok(Some(_)) => {}
                    Ok(None) => problems.push(("is required (a tree size)".to_string(), name)),
                    Err(_) => problems.push(("must be a non-negative integer".to_string(), name)),
                }
            }
            let problems = problems.into_iter().map(|(message, field)| crate::error::FieldProblem { field: field.into(), message }).collect();
            return Err(QueryError::InvalidParameter(problems));
        }
    };
    if from == 0 {
        return Err(QueryError::param("from", "must be at least 1"));
    }
    if from > to {
        return Err(QueryError::param("from", format!("must not exceed to ({to})")));
    }
    ledger::backend(&state)?;
    let latest = checkpoint_of(&state, &reader.tenant_id).await?;
    if to > latest.size {
        return Err(QueryError::param("to", format!("must not exceed the latest checkpoint's size {}", latest.size)));
    }
    let hashes = TileCache::new(&reader.tenant_id, latest.size).consistency_proof(&state, from, to).await?;
    Ok(Json(ConsistencyProof { from, to, hashes: base64_hashes(&hashes) }))
}

/// `GET /v1/ledger/tile/{path}`.
#[utoipa::path(get, path = "/v1/ledger/tile/{path}", tag = "ledger",
    params(("path" = String, Path, description = "a C2SP tlog-tiles hash tile path after `tile/`: `<L>/<N>` or `<L>/<N>.p/<W>`, N in x-prefixed groups of three digits (e.g. `0/x001/234.p/7`)")),
    responses((status = 200, description = "the tile: concatenated 32-byte hashes; immutable", content_type = "application/octet-stream"),
        (status = 400, description = "a malformed path, named"), (status = 404, description = "no such tile, entry tiles (not stored), or no ledger"),
        (status = 401), (status = 403), (status = 429), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn tile(State(state): State<QueryState>, reader: Reader, Path(path): Path<String>, RawQuery(raw): RawQuery) -> Result<Response, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    Params::parse(raw.as_deref(), &[])?;
    let full = format!("tile/{path}");
    let tile = match Tile::parse_path(&full) {
        Ok(tile) => tile,
        Err(LedgerError::EntriesNotStored) => {
            return Err(QueryError::Missing { field: "path", message: "names an entry tile: leaf data lives in the event store, only hash tiles are served".into() });
        }
        Err(err) => return Err(QueryError::param("path", format!("is not a tlog-tiles hash tile path: {err}"))),
    };
    let backend = ledger::backend(&state)?;
    let data = tokio::time::timeout(state.config().backend_timeout(), backend.store.get_tile(&reader.tenant_id, &tile.path()))
        .await
        .map_err(|_| QueryError::Unavailable("ledger store read timed out".into()))??;
    let data = data.ok_or_else(|| QueryError::Missing { field: "path", message: "names no tile of this tenant's ledger".into() })?;
    let mut response = data.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    Ok(response)
}
