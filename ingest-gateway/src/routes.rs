//! The ingest routes: `POST /v1/events` and `POST /v1/events/batch`, from HTTP request to
//! pipeline input (content type, body limits, JSON or NDJSON) and back to the answer.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use auditlog_schemas::FieldError;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::Writer;
use crate::ingest::{ItemOutcome, Malformed, ParsedItem, ingest};
use crate::metrics;
use crate::problem::GatewayError;
use crate::state::GatewayState;

/// Media type of a single event and of a JSON-array batch.
pub const JSON: &str = "application/json";
/// Media type of a newline-delimited batch.
pub const NDJSON: &str = "application/x-ndjson";

/// Answer to an accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedEvent {
    /// Event id (the producer's, or a generated UUIDv7).
    pub id: String,
    /// When the gateway received the event (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
}

/// Answer to a batch: per-item results in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// Events accepted.
    pub accepted: usize,
    /// Events rejected.
    pub rejected: usize,
    /// One entry per event, by index.
    pub results: Vec<BatchItem>,
}

/// The fate of one event of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BatchItem {
    /// Durable in the log.
    Accepted {
        /// Position in the batch (0-based; NDJSON counts non-blank lines).
        index: usize,
        /// Event id.
        id: String,
    },
    /// Refused.
    Rejected {
        /// Position in the batch.
        index: usize,
        /// Every problem, by field path.
        #[schema(value_type = Vec<Object>)]
        errors: Vec<FieldError>,
    },
    /// Valid, but not acknowledged by the event log (only in a 503 answer): not durable; send
    /// this item again (with the same `id`, if it has one), not the whole batch.
    Unavailable {
        /// Position in the batch.
        index: usize,
    },
}

/// `POST /v1/events`: one JSON event; 202 once the log acknowledged it.
#[utoipa::path(post, path = "/v1/events", tag = "ingest",
    request_body(content = Object, content_type = "application/json", description = "one AuditEvent"),
    responses(
        (status = 202, description = "durable in Kafka", body = AcceptedEvent),
        (status = 400, description = "malformed JSON"), (status = 401, description = "missing or invalid credentials"),
        (status = 403, description = "wrong role or tenant mismatch"), (status = 413, description = "body too large"),
        (status = 415, description = "not application/json"), (status = 422, description = "invalid event"), (status = 409, description = "the producer id is taken by an event with different content"),
        (status = 429, description = "tenant rate limit"), (status = 503, description = "event log unavailable"),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn post_event(
    State(state): State<GatewayState>,
    writer: Writer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    require_media_type(&headers, &[JSON], JSON)?;
    rate_limit(&state, &writer.tenant_id, 1)?;
    let bytes = read_body(body, state.config().limits.event_body_max_bytes).await?;
    let received_at = receive_time();
    let ingested = ingest(&state, &writer.tenant_id, vec![Ok(&bytes)], Malformed::FailsRequest, received_at).await?;
    if let Some(failure) = ingested.failure {
        return Err(failure);
    }
    match ingested.outcomes.into_iter().next() {
        Some(ItemOutcome::Accepted(first)) => {
            let body = AcceptedEvent { id: first.id, received_at: first.received_at };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Some(ItemOutcome::Rejected(errors)) => Err(GatewayError::Validation(errors)),
        Some(ItemOutcome::Conflict(id)) => Err(GatewayError::Conflict(id)),
        Some(ItemOutcome::Unavailable) | None => Err(GatewayError::Internal("pipeline returned no outcome".into())),
    }
}

/// `POST /v1/events/batch`: a JSON array or NDJSON; 202 all accepted, 207 some, 422 none.
#[utoipa::path(post, path = "/v1/events/batch", tag = "ingest",
    request_body(content = Vec<Object>, description = "a JSON array of AuditEvents, or NDJSON (application/x-ndjson)"),
    responses(
        (status = 202, description = "all accepted", body = BatchAnswer),
        (status = 207, description = "some rejected", body = BatchAnswer),
        (status = 422, description = "none accepted, or empty / more than 1,000 events", body = BatchAnswer),
        (status = 400, description = "malformed JSON array"), (status = 401, description = "missing or invalid credentials"),
        (status = 403, description = "wrong role or a tenant mismatch in any event"), (status = 413, description = "body over 4 MiB"),
        (status = 415, description = "not JSON or NDJSON"), (status = 429, description = "tenant rate limit"),
        (status = 503, description = "event log unavailable: problem+json that also lists accepted, rejected, unavailable and results, so the items already durable are known; resend only the unavailable ones"),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn post_batch(
    State(state): State<GatewayState>,
    writer: Writer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let media = require_media_type(&headers, &[JSON, NDJSON], "application/json or application/x-ndjson")?;
    let bytes = read_body(body, state.config().limits.batch_body_max_bytes).await?;
    let (items, malformed) = if media == NDJSON {
        (parse_ndjson(&bytes), Malformed::RejectsItem)
    } else {
        (parse_array(&bytes)?, Malformed::FailsRequest)
    };
    let max = state.config().limits.batch_max_events;
    if items.is_empty() {
        return Err(GatewayError::field("batch", "must contain at least one event"));
    }
    if items.len() > max {
        return Err(GatewayError::field("batch", format!("has {} events, more than the {max} allowed", items.len())));
    }
    metrics::batch_size(items.len());
    rate_limit(&state, &writer.tenant_id, items.len())?;
    let received_at = receive_time();
    let ingested = ingest(&state, &writer.tenant_id, items, malformed, received_at).await?;
    let results: Vec<BatchItem> = ingested
        .outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            ItemOutcome::Accepted(first) => BatchItem::Accepted { index, id: first.id },
            ItemOutcome::Rejected(errors) => BatchItem::Rejected { index, errors },
            ItemOutcome::Conflict(id) => BatchItem::Rejected { index, errors: ItemOutcome::conflict_errors(&id) },
            ItemOutcome::Unavailable => BatchItem::Unavailable { index },
        })
        .collect();
    let accepted = results.iter().filter(|r| matches!(r, BatchItem::Accepted { .. })).count();
    let unavailable = results.iter().filter(|r| matches!(r, BatchItem::Unavailable { .. })).count();
    let rejected = results.len() - accepted - unavailable;
    if let Some(failure) = ingested.failure {
        // 503, and still which items are durable: a client resends only the unavailable ones,
        // so a retry without producer ids cannot double the accepted ones.
        let mut problem = failure.into_problem();
        problem.extensions.insert("accepted".into(), accepted.into());
        problem.extensions.insert("rejected".into(), rejected.into());
        problem.extensions.insert("unavailable".into(), unavailable.into());
        problem.extensions.insert("results".into(), serde_json::to_value(&results).unwrap_or_default());
        return Ok(problem.into_response());
    }
    let status = match (accepted, rejected) {
        (_, 0) => StatusCode::ACCEPTED,
        (0, _) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::MULTI_STATUS,
    };
    Ok((status, Json(BatchAnswer { accepted, rejected, results })).into_response())
}

/// Now, at the microsecond precision of the Avro `timestamp-micros` the event is stored with,
/// so the answer's `received_at` equals what every consumer reads back.
fn receive_time() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}

/// The request's media type (lowercase, parameters dropped) when it is one of `allowed`.
fn require_media_type(headers: &HeaderMap, allowed: &[&'static str], expected: &'static str) -> Result<&'static str, GatewayError> {
    let found = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = found.map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    allowed
        .iter()
        .find(|a| essence.as_deref() == Some(**a))
        .copied()
        .ok_or_else(|| GatewayError::UnsupportedMediaType { found: found.map(str::to_owned), expected })
}

fn rate_limit(state: &GatewayState, tenant: &str, cost: usize) -> Result<(), GatewayError> {
    state.rate_limiter().try_acquire(tenant, state.rate_limit_for(tenant), cost).map_err(|wait| {
        metrics::events_rejected("rate_limited", cost);
        GatewayError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
    })
}

/// Reads the whole body, refusing more than `limit` bytes without buffering them.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(GatewayError::BodyTooLarge { limit }),
        Err(err) => Err(GatewayError::MalformedJson(format!("could not read the body: {err}"))),
    }
}

/// The items of a JSON array, each as its text: the array's syntax is checked here, each
/// item is parsed by the pipeline.
fn parse_array(bytes: &[u8]) -> Result<Vec<ParsedItem<'_>>, GatewayError> {
    match serde_json::from_slice::<Vec<&RawValue>>(bytes) {
        Ok(items) => Ok(items.into_iter().map(|item| Ok(item.get().as_bytes())).collect()),
        // Not an array of JSON values: tell JSON that is not an array from text that is not JSON.
        Err(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(GatewayError::field("batch", "must be a JSON array of events")),
            Err(e) => Err(GatewayError::MalformedJson(e.to_string())),
        },
    }
}

/// One item per non-blank line; a line that is not JSON is a rejected item, not a failed
/// batch (the pipeline parses each line).
fn parse_ndjson(bytes: &[u8]) -> Vec<ParsedItem<'_>> {
    bytes.split(|b| *b == b'\n').filter(|line| !line.trim_ascii().is_empty()).map(Ok).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_every_other_line_as_an_item() {
        let items = parse_ndjson(b"{\"a\":1}\r\n\n  \nnot json\n{\"b\":2}");
        let lines: Vec<&[u8]> = items.into_iter().map(|item| item.expect("a line")).collect();
        assert_eq!(lines, [&b"{\"a\":1}\r"[..], b"not json", b"{\"b\":2}"]);
    }

    #[test]
    fn an_array_is_split_into_items_and_anything_else_refused() {
        let items = parse_array(br#"[{"a": [1, {"b": "]"}]}, 2 , "x"]"#).expect("an array");
        let texts: Vec<&[u8]> = items.into_iter().map(|item| item.expect("an item")).collect();
        assert_eq!(texts, [&br#"{"a": [1, {"b": "]"}]}"#[..], b"2", br#""x""#]);
        assert!(matches!(parse_array(br#"{"action": "a"}"#), Err(GatewayError::Validation(_))), "an object is not a batch");
        assert!(matches!(parse_array(b"[{"), Err(GatewayError::MalformedJson(_))));
        assert!(matches!(parse_array(b"[1] 2"), Err(GatewayError::MalformedJson(_))));
    }

    #[test]
    fn media_type_ignores_parameters_and_case() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().expect("valid header"));
        assert_eq!(require_media_type(&headers, &[JSON], JSON).ok(), Some(JSON));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("valid header"));
        assert!(require_media_type(&headers, &[JSON], JSON).is_err());
        assert!(require_media_type(&HeaderMap::new(), &[JSON], JSON).is_err());
    }
}
