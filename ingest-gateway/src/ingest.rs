//! The ingest pipeline shared by the single and batch routes: validate every event (and its
//! producer signature, by the tenant's `signatures` policy), answer
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

use crate::idempotency::{ContentDigest, FirstAnswer};
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
    /// Its producer id is taken by an event with other content (this id).
    Conflict(String),
    /// Valid, but the log did not acknowledge it: not durable; send it again (with the same
    /// id, if it has one).
    Unavailable,
}

/// What the pipeline made of a request: one outcome per item, and, when the log did not take
/// every event, why (the items it did not take are [`ItemOutcome::Unavailable`]; the others
/// are durable).
#[derive(Debug)]
pub(crate) struct Ingested {
    /// One per item, in request order.
    pub(crate) outcomes: Vec<ItemOutcome>,
    /// The first append failure, when any.
    pub(crate) failure: Option<GatewayError>,
}

impl ItemOutcome {
    /// The per-field errors of a refused item, as a batch answer lists them.
    pub(crate) fn conflict_errors(id: &str) -> Vec<FieldError> {
        vec![FieldError { field: "id".into(), message: format!("{id:?} is already taken by an event with different content") }]
    }
}

/// A validated event this request appends.
struct Appending {
    event: AuditEvent,
    /// Its content's digest (producer ids only; zero otherwise).
    digest: ContentDigest,
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
/// request (403) before anything is written; events the log does not acknowledge are marked
/// unavailable, with the failure, while those it did acknowledge stay accepted.
pub(crate) async fn ingest(
    state: &GatewayState,
    tenant: &str,
    items: Vec<ParsedItem<'_>>,
    malformed: Malformed,
    received_at: OffsetDateTime,
) -> Result<Ingested, GatewayError> {
    let ctx = IngestContext { tenant_id: tenant, received_at };
    let count = items.len();
    let mut plans = Vec::with_capacity(count);
    let mut to_append: Vec<Appending> = Vec::new();
    let mut first_index_of: HashMap<String, (usize, ContentDigest)> = HashMap::new();
    let (mut rejected, mut deduplicated, mut conflicts) = (0, 0, 0);
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
        if let Err(reason) = auditlog_api_common::signatures::check_ingest(state.tenants(), tenant, &event) {
            rejected += 1;
            plans.push(Plan::Done(ItemOutcome::Rejected(vec![FieldError { field: "signature".into(), message: reason }])));
            continue;
        }
        let mut digest = [0; 32];
        if producer_id {
            digest = auditlog_schemas::content_digest(&event);
            let earlier = state.idempotency().get(tenant, &event.id).map(|first| (Plan::Done(ItemOutcome::Accepted(first.clone())), first.digest));
            let earlier = earlier.or_else(|| first_index_of.get(&event.id).map(|&(i, d)| (Plan::SameAs(i), d)));
            if let Some((plan, earlier_digest)) = earlier {
                if earlier_digest == digest {
                    deduplicated += 1;
                    plans.push(plan);
                } else {
                    conflicts += 1;
                    plans.push(Plan::Done(ItemOutcome::Conflict(event.id)));
                }
                continue;
            }
            first_index_of.insert(event.id.clone(), (index, digest));
        }
        plans.push(Plan::Append(to_append.len()));
        to_append.push(Appending { event, digest, producer_id });
    }
    metrics::events_rejected("validation", rejected);
    metrics::events_rejected("conflict", conflicts);

    let (acknowledged, failure) = append_all(state, tenant, &to_append).await;
    let appended = acknowledged.iter().filter(|a| **a).count();
    metrics::events_rejected("unavailable", to_append.len() - appended);
    metrics::events_accepted(appended, deduplicated);

    let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(plans.len());
    for plan in plans {
        let outcome = match plan {
            Plan::Done(outcome) => outcome,
            Plan::Append(i) if acknowledged[i] => ItemOutcome::Accepted(answer(&to_append[i])),
            Plan::Append(_) => ItemOutcome::Unavailable,
            Plan::SameAs(earlier) => outcomes[earlier].clone(),
        };
        outcomes.push(outcome);
    }
    Ok(Ingested { outcomes, failure })
}

fn answer(appending: &Appending) -> FirstAnswer {
    FirstAnswer { id: appending.event.id.clone(), received_at: appending.event.received_at, digest: appending.digest }
}

/// Encodes and appends every event concurrently, within the append time budget; answers which
/// ones the log acknowledged, and the first failure. Acknowledged events are remembered by
/// producer id even when others failed, so a retry of the whole request appends only what is
/// missing. The gateway gives the Kafka producer a delivery timeout (`message.timeout.ms`)
/// within this budget, so when the budget is spent every append has its answer: an event
/// reported unavailable was not delivered and will not land later.
async fn append_all(state: &GatewayState, tenant: &str, events: &[Appending]) -> (Vec<bool>, Option<GatewayError>) {
    if events.is_empty() {
        return (Vec::new(), None);
    }
    let none = || vec![false; events.len()];
    let topic = state.topic_for(tenant);
    let budget = state.config().limits.append_timeout();
    let deadline = tokio::time::Instant::now() + budget;
    let timed_out = || {
        metrics::append_failure("timeout");
        GatewayError::Unavailable(format!("no acknowledgement within {} ms", budget.as_millis()))
    };
    let encoding = join_all(events.iter().map(|a| state.codec().encode(&topic, &a.event)));
    let Ok(encoded) = tokio::time::timeout_at(deadline, encoding).await else {
        return (none(), Some(timed_out()));
    };
    let mut records = Vec::with_capacity(events.len());
    for (appending, payload) in events.iter().zip(encoded) {
        match payload {
            Ok(payload) => records.push(OutgoingRecord::for_event(&topic, &appending.event, payload)),
            Err(err) => return (none(), Some(encode_error(err))),
        }
    }
    let appends = records.into_iter().map(|r| tokio::time::timeout_at(deadline, state.event_log().append(r)));
    let results = join_all(appends).await;
    let mut acknowledged = Vec::with_capacity(events.len());
    let mut failure = None;
    for (appending, result) in events.iter().zip(results) {
        match result {
            Ok(Ok(_)) => {
                if appending.producer_id {
                    state.idempotency().insert(tenant, answer(appending));
                }
                acknowledged.push(true);
            }
            Ok(Err(err)) => {
                failure.get_or_insert_with(|| log_error(err));
                acknowledged.push(false);
            }
            Err(_) => {
                failure.get_or_insert_with(timed_out);
                acknowledged.push(false);
            }
        }
    }
    (acknowledged, failure)
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
