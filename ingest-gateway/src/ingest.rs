//! The ingest pipeline shared by the single and batch routes: validate every event, answer
//! retried producer ids from the idempotency cache, encode the rest in the Confluent wire
//! format and append them all concurrently, waiting for the broker's acknowledgement of each.
//!
//! # Kafka records
//! - topic: `<prefix>.v1`, or `<prefix>.v1.<tenant>` for tenants with a dedicated topic;
//! - key: the tenant id (each tenant's events stay ordered within one partition);
//! - value: Avro, Confluent wire format, subject `<topic>-value`;
//! - headers: `event_id`, `tenant_id` (as the `auditlog produce` command writes them) and
//!   `action`, so downstream consumers can route or filter without decoding.

use std::collections::HashMap;

use auditlog_schemas::validate::{Accepted, JsonRejection, validate_json};
use auditlog_schemas::{AuditEvent, FieldError, IngestContext, Rejection, SchemaError};
use auditlog_seams::{LogError, OutgoingRecord};
use futures::future::join_all;
use time::OffsetDateTime;

use crate::idempotency::FirstAnswer;
use crate::metrics;
use crate::problem::GatewayError;
use crate::state::GatewayState;

/// One event as read from a request: its JSON text, or why it could not be read.
pub(crate) type ParsedItem<'a> = Result<&'a [u8], FieldError>;

/// What text that is not JSON means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The whole request is malformed (a single event, an item of a JSON array): 400.
    FailsRequest,
    /// Only this item is (a line of NDJSON): the item is rejected.
    RejectsItem,
}

/// What happened to one event of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    /// Durable in the log (now, or for an earlier request with the same id).
    Accepted(FirstAnswer),
    /// Refused; every problem named.
    Rejected(Vec<FieldError>),
}

/// A validated event this request appends.
struct Appending {
    event: AuditEvent,
    /// Whether the producer chose the id: only such an id can come again in a retry, so only
    /// such an event is remembered by the idempotency cache (a generated id is new by
    /// construction).
    producer_id: bool,
}

/// Where each validated event's answer comes from.
enum Plan {
    Done(ItemOutcome),
    /// Appended by this request, at this position of the append list.
    Append(usize),
    /// Same producer id as an earlier event of this request.
    SameAs(usize),
}

/// Runs the pipeline for `items` of `tenant`. A body tenant mismatch anywhere refuses the whole
/// request (403) before anything is written; an unavailable backend fails it (503).
pub(crate) async fn ingest(
    state: &GatewayState,
    tenant: &str,
    items: Vec<ParsedItem<'_>>,
    malformed: Malformed,
    received_at: OffsetDateTime,
) -> Result<Vec<ItemOutcome>, GatewayError> {
    let ctx = IngestContext { tenant_id: tenant, received_at };
    let count = items.len();
    let mut plans = Vec::with_capacity(count);
    let mut to_append: Vec<Appending> = Vec::new();
    let mut first_index_of: HashMap<String, usize> = HashMap::new();
    let (mut rejected, mut deduplicated) = (0, 0);
    for (index, item) in items.into_iter().enumerate() {
        let validated = match item {
            Ok(json) => validate_json(json, &ctx),
            Err(error) => {
                rejected += 1;
                plans.push(Plan::Done(ItemOutcome::Rejected(vec![error])));
                continue;
            }
        };
        let Accepted { event, producer_id } = match validated {
            Ok(accepted) => accepted,
            Err(JsonRejection::Event(Rejection::Invalid(errors))) => {
                rejected += 1;
                plans.push(Plan::Done(ItemOutcome::Rejected(errors)));
                continue;
            }
            Err(JsonRejection::Event(Rejection::TenantMismatch)) => {
                metrics::events_rejected("tenant_mismatch", count);
                return Err(GatewayError::TenantMismatch);
            }
            Err(JsonRejection::Malformed(err)) if malformed == Malformed::FailsRequest => {
                return Err(GatewayError::MalformedJson(err.to_string()));
            }
            Err(JsonRejection::Malformed(err)) => {
                rejected += 1;
                let error = FieldError { field: String::new(), message: format!("malformed json: {err}") };
                plans.push(Plan::Done(ItemOutcome::Rejected(vec![error])));
                continue;
            }
        };
        if producer_id {
            if let Some(first) = state.idempotency().get(tenant, &event.id) {
                deduplicated += 1;
                plans.push(Plan::Done(ItemOutcome::Accepted(first)));
                continue;
            }
            if let Some(&earlier) = first_index_of.get(&event.id) {
                deduplicated += 1;
                plans.push(Plan::SameAs(earlier));
                continue;
            }
            first_index_of.insert(event.id.clone(), index);
        }
        plans.push(Plan::Append(to_append.len()));
        to_append.push(Appending { event, producer_id });
    }
    metrics::events_rejected("validation", rejected);

    let appended = append_all(state, tenant, &to_append).await;
    let appended = match appended {
        Ok(()) => to_append.len(),
        Err(err) => {
            metrics::events_rejected("unavailable", to_append.len());
            return Err(err);
        }
    };
    metrics::events_accepted(appended, deduplicated);

    let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(plans.len());
    for plan in plans {
        let outcome = match plan {
            Plan::Done(outcome) => outcome,
            Plan::Append(i) => ItemOutcome::Accepted(answer(&to_append[i].event)),
            Plan::SameAs(earlier) => outcomes[earlier].clone(),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn answer(event: &AuditEvent) -> FirstAnswer {
    FirstAnswer { id: event.id.clone(), received_at: event.received_at }
}

/// Encodes and appends every event concurrently, within the append time budget. Events the
/// log acknowledged are remembered by producer id even when others failed, so a retry of the
/// whole request appends only what is missing.
async fn append_all(state: &GatewayState, tenant: &str, events: &[Appending]) -> Result<(), GatewayError> {
    if events.is_empty() {
        return Ok(());
    }
    let topic = state.topic_for(tenant);
    let budget = state.config().limits.append_timeout();
    let work = async {
        let encoded = join_all(events.iter().map(|a| state.codec().encode(&topic, &a.event))).await;
        let mut records = Vec::with_capacity(events.len());
        for (appending, payload) in events.iter().zip(encoded) {
            records.push(OutgoingRecord::for_event(&topic, &appending.event, payload.map_err(encode_error)?));
        }
        let results = join_all(records.into_iter().map(|r| state.event_log().append(r))).await;
        let mut failure = None;
        for (appending, result) in events.iter().zip(results) {
            match result {
                Ok(_) if appending.producer_id => state.idempotency().insert(tenant, answer(&appending.event)),
                Ok(_) => {}
                Err(err) => failure = Some(err),
            }
        }
        match failure {
            None => Ok(()),
            Some(err) => Err(log_error(err)),
        }
    };
    match tokio::time::timeout(budget, work).await {
        Ok(result) => result,
        Err(_) => {
            metrics::append_failure("timeout");
            Err(GatewayError::Unavailable(format!("no acknowledgement within {} ms", budget.as_millis())))
        }
    }
}

fn encode_error(err: SchemaError) -> GatewayError {
    metrics::append_failure("encode");
    match err {
        SchemaError::Registry(detail) => GatewayError::Unavailable(format!("schema registry: {detail}")),
        other => GatewayError::Internal(format!("encoding a validated event failed: {other}")),
    }
}

fn log_error(err: LogError) -> GatewayError {
    match err {
        LogError::Unavailable(detail) => {
            metrics::append_failure("unavailable");
            GatewayError::Unavailable(detail)
        }
        LogError::Rejected(detail) | LogError::Config(detail) => {
            metrics::append_failure("rejected");
            GatewayError::Internal(format!("event log refused a validated event: {detail}"))
        }
    }
}
