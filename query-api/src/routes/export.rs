//! `GET /v1/events/export?format=csv|ndjson|json`: every event matching the list filters,
//! streamed page by page (newest first) so memory stays bounded by one page whatever the
//! size. CSV has a fixed column order ([`CSV_COLUMNS`]) and `csv`-crate quoting; nested
//! values (targets, metadata) are JSON text in their cell. A cell starting with `= + - @`,
//! TAB or CR gets a leading `'` ([`neutralise`]), so a spreadsheet opening the export shows
//! producer-controlled text instead of evaluating it as a formula (CSV injection).
//!
//! NDJSON and JSON events carry `leaf_index` once the tenant's latest ledger checkpoint covers
//! them. With `proofs=true` (NDJSON and JSON only) the export is taken against that
//! checkpoint: NDJSON starts with a `{"checkpoint": "<signed note>"}` line, JSON is
//! `{"checkpoint": ..., "events": [...]}`, and holds only the events the checkpoint covers,
//! each with `leaf_index` and `proof` (its base64 inclusion-proof hashes against the
//! checkpoint's size), so `auditlog verify export` checks the file offline. Proofs are made
//! page by page from the tiles that page needs ([`TileCache`], bounded).

use auditlog_schemas::AuditEvent;
use auditlog_seams::ledger_store::StoredCheckpoint;
use auditlog_seams::{EventFilter, PageRequest};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Reader;
use crate::cursor::Backend;
use crate::error::QueryError;
use crate::ledger::{self, EventView, TileCache, base64_hashes};
use crate::params::{FILTER_PARAMS, Params};
use crate::slots::Slot;
use crate::state::QueryState;
use crate::{reads, retention};

/// Pages read ahead of the one being sent: more hides backend latency behind the network,
/// each costs one page of memory (`limits.export_page_size` events) per export.
const READ_AHEAD_PAGES: usize = 2;

/// CSV columns, in order; the header row names them.
pub const CSV_COLUMNS: [&str; 22] = [
    "id", "tenant_id", "occurred_at", "received_at", "action", "actor_id", "actor_type", "actor_name", "actor_email",
    "targets", "outcome", "severity", "source_service", "source_version", "source_host", "context_ip",
    "context_user_agent", "context_request_id", "context_trace_id", "context_location", "description", "metadata",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
    Json,
}

impl Format {
    fn parse(raw: Option<&str>) -> Result<Self, QueryError> {
        match raw.unwrap_or("ndjson") {
            "csv" => Ok(Self::Csv),
            "ndjson" => Ok(Self::Ndjson),
            "json" => Ok(Self::Json),
            _ => Err(QueryError::param("format", "must be one of csv, ndjson, json")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Json => "json",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
            Self::Json => "application/json",
        }
    }
}

/// What an export with `proofs=true` is taken against.
struct Proofs {
    /// The tenant's latest checkpoint when the export began.
    checkpoint: StoredCheckpoint,
    /// Tiles of its tree, read as pages need them.
    tiles: TileCache,
}

/// Where an export is: what it reads next.
struct Export {
    state: QueryState,
    backend: Backend,
    filter: EventFilter,
    format: Format,
    /// `Some` with `proofs=true`.
    proofs: Option<Proofs>,
    /// The next page's backend cursor; `None` once the last page was written.
    after: Option<String>,
    /// Whether the CSV header or the JSON `[` was written.
    started: bool,
    /// Events written so far (JSON separators).
    rows: u64,
    done: bool,
}

/// The body after its first chunk. A task of its own reads the pages ahead, so the next page
/// is fetched while this one is sent; the channel bounds what waits ([`READ_AHEAD_PAGES`]).
/// The task stops when the last page was read, a backend failed (the body then ends in an
/// error, never as a complete-looking file), or the client went away. `slot` lives as long
/// as the body: the tenant's export stays counted until its last byte was taken or the
/// connection dropped.
fn read_ahead(mut export: Export, slot: Slot) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    use tracing::Instrument as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<(Bytes, bool), std::io::Error>>(READ_AHEAD_PAGES);
    let finished = export.done;
    if !finished {
        let reader = async move {
            while !export.done {
                let chunk = tokio::select! {
                    chunk = export.next_chunk() => chunk,
                    () = tx.closed() => break,
                };
                let item = chunk.map(|bytes| (bytes, export.done)).map_err(|err| {
                    tracing::warn!(error = %err, "export aborted mid-stream");
                    export.done = true;
                    std::io::Error::other("export aborted: a backend failed")
                });
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        };
        tokio::spawn(reader.in_current_span());
    }
    futures::stream::unfold((rx, slot, finished), |(mut rx, slot, finished)| async move {
        if finished {
            return None;
        }
        match rx.recv().await {
            Some(Ok((bytes, last))) => Some((Ok(bytes), (rx, slot, last))),
            Some(Err(err)) => Some((Err(err), (rx, slot, true))),
            // The reader ended before the last page: it panicked or the runtime is stopping.
            None => Some((Err(std::io::Error::other("export aborted: the reader stopped")), (rx, slot, true))),
        }
    })
}

/// `GET /v1/events/export`.
#[utoipa::path(get, path = "/v1/events/export", tag = "events",
    params(("format" = Option<String>, Query, description = "csv, ndjson (default) or json"),
        ("proofs" = Option<bool>, Query, description = "true: taken against the tenant's latest ledger checkpoint (ndjson: a first `{\"checkpoint\": ...}` line; json: `{checkpoint, events}`), only the events it covers, each with `leaf_index` and `proof` (base64 inclusion-proof hashes); ndjson and json only"),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("actor_id" = Option<String>, Query), ("action" = Option<String>, Query),
        ("target_type" = Option<String>, Query), ("target_id" = Option<String>, Query), ("outcome" = Option<String>, Query),
        ("severity" = Option<String>, Query), ("q" = Option<String>, Query)),
    responses((status = 200, description = "the events, streamed"), (status = 400), (status = 401), (status = 403),
        (status = 429, description = "the tenant's concurrent exports are at the cap, or it is past its request rate"), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn export(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery) -> Result<Response, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    let params = Params::parse(raw.as_deref(), &[FILTER_PARAMS, &["format", "proofs"]])?;
    let format = Format::parse(params.get("format"))?;
    let with_proofs = match params.get("proofs") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(QueryError::param("proofs", "must be true or false")),
    };
    if with_proofs && format == Format::Csv {
        return Err(QueryError::param("proofs", "needs format ndjson or json (a CSV row has no room for a proof)"));
    }
    let mut filter = params.filter(&reader.tenant_id)?;
    let proofs = if with_proofs {
        let checkpoint = ledger::latest(&state, &reader.tenant_id)
            .await?
            .ok_or_else(|| QueryError::Missing { field: "proofs", message: "needs a checkpoint, and the tenant's ledger has no leaf yet".into() })?;
        let tiles = TileCache::new(&reader.tenant_id, checkpoint.size);
        Some(Proofs { checkpoint, tiles })
    } else {
        None
    };
    let slot = state.exports().try_acquire(&reader.tenant_id).ok_or(QueryError::TooManyConcurrent("exports"))?;
    retention::bound(&state, &mut filter);
    let backend = reads::choose(&filter);
    let mut export = Export { state, backend, filter, format, proofs, after: None, started: false, rows: 0, done: false };
    // The first page is read before answering, so an unavailable backend is a 503, not a
    // truncated 200.
    let head = export.next_chunk().await?;
    let body = Body::from_stream(futures::StreamExt::chain(futures::stream::once(async { Ok::<_, std::io::Error>(head) }), read_ahead(export, slot)));
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let filename = format!("attachment; filename=\"auditlog-{}-{stamp}.{}\"", reader.tenant_id, format.name());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

impl Export {
    /// The next piece of the body: one page of events, with the header or closing bracket
    /// where the format needs them.
    async fn next_chunk(&mut self) -> Result<Bytes, QueryError> {
        let limit = self.state.config().limits.export_page_size;
        let request = PageRequest { limit, after: self.after.take() };
        let page = reads::page(&self.state, self.backend, &self.filter, &request).await?;
        let events: Vec<AuditEvent> = page.events.into_iter().map(|s| s.event).collect();
        let views = self.views(events).await?;
        let mut out = Vec::with_capacity(views.len() * 512);
        if !self.started {
            let note = self.proofs.as_ref().map(|p| p.checkpoint.note.as_str());
            match (self.format, note) {
                (Format::Json, None) => out.push(b'['),
                (Format::Json, Some(note)) => {
                    out.extend_from_slice(b"{\"checkpoint\":");
                    serde_json::to_writer(&mut out, note).map_err(|e| internal(&e))?;
                    out.extend_from_slice(b",\"events\":[");
                }
                (Format::Ndjson, Some(note)) => {
                    serde_json::to_writer(&mut out, &serde_json::json!({ "checkpoint": note })).map_err(|e| internal(&e))?;
                    out.push(b'\n');
                }
                (Format::Csv, _) => write_csv_header(&mut out)?,
                (Format::Ndjson, None) => {}
            }
            self.started = true;
        }
        write_events(&mut out, self.format, &views, self.rows == 0)?;
        self.rows += views.len() as u64;
        crate::metrics::export_rows(self.format.name(), views.len());
        self.after = page.next;
        if self.after.is_none() {
            self.done = true;
            if self.format == Format::Json {
                out.push(b']');
                if self.proofs.is_some() {
                    out.push(b'}');
                }
            }
        }
        Ok(Bytes::from(out))
    }

    /// A page's events as written: with `leaf_index` where the latest checkpoint covers them;
    /// with `proofs=true` only those the export's checkpoint covers, each with its proof.
    async fn views(&mut self, events: Vec<AuditEvent>) -> Result<Vec<EventView>, QueryError> {
        let tenant = self.filter.tenant_id.clone();
        let state = &self.state;
        let Some(proofs) = self.proofs.as_mut() else {
            if self.format == Format::Csv {
                return Ok(events.into_iter().map(|event| EventView::plain(state, event, None, None)).collect());
            }
            let indexes = ledger::covered_indexes(state, &tenant, &events).await?;
            return Ok(events.into_iter().map(|e| EventView::new(state, e, &indexes)).collect());
        };
        let size = proofs.checkpoint.size;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let indexes = ledger::indexes_below(state, &tenant, &ids, size).await?;
        let covered: Vec<(AuditEvent, u64)> = events.into_iter().filter_map(|e| indexes.get(&e.id).map(|&i| (e, i))).collect();
        let leaf_indexes: Vec<u64> = covered.iter().map(|(_, i)| *i).collect();
        let hashes = proofs.tiles.inclusion_proofs(state, &leaf_indexes, size).await?;
        Ok(covered
            .into_iter()
            .zip(hashes)
            .map(|((event, index), proof)| EventView::plain(state, event, Some(index), Some(base64_hashes(&proof))))
            .collect())
    }
}

fn internal(err: &dyn std::fmt::Display) -> QueryError {
    QueryError::Internal(format!("serializing an export: {err}"))
}

fn write_csv_header(out: &mut Vec<u8>) -> Result<(), QueryError> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(out);
    writer.write_record(CSV_COLUMNS).map_err(|e| internal(&e))?;
    writer.flush().map_err(|e| internal(&e))
}

/// Appends `events` in `format`; `first` says whether no event was written before (no
/// leading comma in JSON).
fn write_events(out: &mut Vec<u8>, format: Format, events: &[EventView], first: bool) -> Result<(), QueryError> {
    match format {
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(out);
            for stored in events {
                writer.write_record(csv_row(&stored.event).map(neutralise)).map_err(|e| internal(&e))?;
            }
            writer.flush().map_err(|e| internal(&e))?;
        }
        Format::Ndjson => {
            for stored in events {
                serde_json::to_writer(&mut *out, stored).map_err(|e| internal(&e))?;
                out.push(b'\n');
            }
        }
        Format::Json => {
            for (i, stored) in events.iter().enumerate() {
                if !(first && i == 0) {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, stored).map_err(|e| internal(&e))?;
            }
        }
    }
    Ok(())
}

/// `cell` as a spreadsheet shows it as text: prefixed with `'` when it starts with a character
/// that makes spreadsheets read a formula (`= + - @`) or that they strip before doing so (TAB,
/// CR). The NDJSON and JSON exports keep values as they are.
pub fn neutralise(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell }
}

fn csv_row(event: &AuditEvent) -> [String; 22] {
    let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let opt = |v: Option<&String>| v.cloned().unwrap_or_default();
    let source = event.source.as_ref();
    let context = event.context.as_ref();
    [
        event.id.clone(),
        event.tenant_id.clone(),
        time(event.occurred_at),
        time(event.received_at),
        event.action.clone(),
        event.actor.id.clone(),
        event.actor.kind.as_str().to_owned(),
        opt(event.actor.name.as_ref()),
        opt(event.actor.email.as_ref()),
        serde_json::to_string(&event.targets).unwrap_or_default(),
        event.outcome.as_str().to_owned(),
        event.severity.as_str().to_owned(),
        opt(source.and_then(|s| s.service.as_ref())),
        opt(source.and_then(|s| s.version.as_ref())),
        opt(source.and_then(|s| s.host.as_ref())),
        opt(context.and_then(|c| c.ip.as_ref())),
        opt(context.and_then(|c| c.user_agent.as_ref())),
        opt(context.and_then(|c| c.request_id.as_ref())),
        opt(context.and_then(|c| c.trace_id.as_ref())),
        opt(context.and_then(|c| c.location.as_ref())),
        opt(event.description.as_ref()),
        event.metadata.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()).unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for (cell, shown) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("user.login", "user.login"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell.to_owned()), shown, "{cell:?}");
        }
    }
}
