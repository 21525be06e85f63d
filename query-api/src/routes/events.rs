//! `GET /v1/events` (a page of the caller's events, newest first, with an opaque cursor) and
//! `GET /v1/events/{id}` (one event; another tenant's id is as missing as an unknown one).
//! Events carry `leaf_index` once the tenant's latest ledger checkpoint covers them.

use auditlog_seams::PageRequest;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Reader;
use crate::error::QueryError;
use crate::ledger::{self, EventView};
use crate::params::{FILTER_PARAMS, Params};
use crate::state::QueryState;
use crate::{reads, retention};

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events, newest first; each with `leaf_index` once the tenant's latest ledger checkpoint covers it.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/events`.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("actor_id" = Option<String>, Query), ("action" = Option<String>, Query, description = "exact, or a prefix ending in `*` (user.*)"),
        ("target_type" = Option<String>, Query), ("target_id" = Option<String>, Query),
        ("outcome" = Option<String>, Query), ("severity" = Option<String>, Query), ("q" = Option<String>, Query, description = "full text"),
        ("limit" = Option<usize>, Query, description = "1..=1000, default 100"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = EventPage), (status = 400, description = "a bad parameter, named"), (status = 401), (status = 403),
        (status = 429, description = "the tenant is past its request rate (Retry-After)"), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery) -> Result<Json<EventPage>, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    let params = Params::parse(raw.as_deref(), &[FILTER_PARAMS, &["limit", "cursor"]])?;
    let limits = &state.config().limits;
    let limit = params.limit(limits.default_page_size, limits.max_page_size)?;
    let mut filter = params.filter(&reader.tenant_id)?;
    let query = params.canonical_query();
    let backend = reads::choose(&filter);
    let after = match params.get("cursor") {
        None => None,
        Some(cursor) => {
            let (made_by, inner) = state.cursors().open(cursor, &reader.tenant_id, &query)?;
            if made_by != backend {
                return Err(QueryError::param("cursor", "is not a cursor this API issued for this query"));
            }
            Some(inner)
        }
    };
    retention::bound(&state, &mut filter);
    let page = reads::page(&state, backend, &filter, &PageRequest { limit, after }).await?;
    let next_cursor = page.next.map(|inner| state.cursors().seal(backend, &reader.tenant_id, &query, &inner));
    let indexes = ledger::covered_indexes(&state, &reader.tenant_id, page.events.iter().map(|s| &s.event)).await?;
    Ok(Json(EventPage { events: page.events.into_iter().map(|s| EventView::new(&state, s.event, &indexes)).collect(), next_cursor }))
}

/// `GET /v1/events/{id}`.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, description = "the event, with `leaf_index` once the tenant's latest ledger checkpoint covers it", body = Object), (status = 404, description = "no such event for this tenant"), (status = 401), (status = 403),
        (status = 429, description = "the tenant is past its request rate (Retry-After)"), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get(State(state): State<QueryState>, reader: Reader, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Result<Json<EventView>, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    Params::parse(raw.as_deref(), &[])?;
    if id.is_empty() || id.len() > 256 {
        return Err(QueryError::NotFound);
    }
    let lookup = state.backends().store.get(&reader.tenant_id, &id);
    let found = tokio::time::timeout(state.config().backend_timeout(), lookup)
        .await
        .map_err(|_| QueryError::Unavailable("event store read timed out".into()))??;
    match found {
        Some(stored) if stored.event.tenant_id == reader.tenant_id && stored.event.occurred_at >= retention::cutoff(&state, &reader.tenant_id) => {
            let indexes = ledger::covered_indexes(&state, &reader.tenant_id, [&stored.event]).await?;
            Ok(Json(EventView::new(&state, stored.event, &indexes)))
        }
        _ => Err(QueryError::NotFound),
    }
}
