//! `GET /v1/events/stream`: the live tail, over WebSocket or, with `Accept:
//! text/event-stream`, as Server-Sent Events, with the list filters.
//!
//! WebSocket text frames: `{"type":"event","event":{...}}`, `{"type":"skipped","count":n}`,
//! `{"type":"heartbeat"}`. SSE: `event: audit` with `id:` the event id, `event: skipped`
//! with `{"count":n}`, `event: heartbeat` every heartbeat interval; `Last-Event-ID` replays
//! the events after that one, in log order (the order of the live feed, whatever their
//! `occurred_at`), read from the log before going live.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use auditlog_schemas::AuditEvent;
use auditlog_seams::{EventFilter, LogError, LogPosition, TopicSelector};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::json;

use crate::auth::Reader;
use crate::error::QueryError;
use crate::live::Subscription;
use crate::params::{FILTER_PARAMS, Params};
use crate::slots::Slot;
use crate::state::QueryState;
use crate::{matching, retention};

/// Longest a `Last-Event-ID` replay reads the log (never more than the backend time budget):
/// a replay cut short reports every record it did not read as skipped (an upper bound). The
/// events and records one replay may take are `limits.replay_max_events` and
/// `limits.replay_max_scan`.
const REPLAY_TIME: Duration = Duration::from_secs(5);

/// `GET /v1/events/stream`.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("actor_id" = Option<String>, Query),
        ("action" = Option<String>, Query), ("target_type" = Option<String>, Query), ("target_id" = Option<String>, Query),
        ("outcome" = Option<String>, Query), ("severity" = Option<String>, Query), ("q" = Option<String>, Query),
        ("Last-Event-ID" = Option<String>, Header, description = "SSE: resume after this event")),
    responses((status = 101, description = "WebSocket"), (status = 200, description = "text/event-stream"), (status = 400), (status = 401),
        (status = 403), (status = 406, description = "neither WebSocket nor text/event-stream"), (status = 429, description = "the tenant's live tails are at the cap, or it is past its request rate"), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn stream(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery, request: Request) -> Result<Response, QueryError> {
    // Held until the response starts: a `Last-Event-ID` replay counts among the requests
    // being served; the open stream afterwards is capped per tenant by its slot.
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    let params = Params::parse(raw.as_deref(), &[FILTER_PARAMS])?;
    let filter = params.filter(&reader.tenant_id)?;
    let (mut parts, _body) = request.into_parts();
    let websocket = is_websocket(&parts.headers);
    if !websocket && !wants_sse(&parts.headers) {
        return Err(QueryError::NotAcceptable);
    }
    let slot = state.streams().try_acquire(&reader.tenant_id).ok_or(QueryError::TooManyConcurrent("live tails"))?;
    state.live().ensure_started().await?;
    let heartbeat = Duration::from_secs(state.config().limits.heartbeat_secs);
    if websocket {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
            .map_err(|_| QueryError::param("upgrade", "is not a valid WebSocket upgrade request"))?;
        let subscription = state.live().subscribe(filter);
        return Ok(upgrade.on_upgrade(move |socket: WebSocket| async move {
            let (sink, stream) = socket.split();
            feed_websocket(sink, stream, subscription, heartbeat, slot).await;
        }));
    }
    let last_id = parts.headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let subscription = state.live().subscribe(filter.clone());
    let (skipped, replay) = match last_id {
        Some(id) => replay_after(&state, filter, &id).await?,
        None => (0, Vec::new()),
    };
    Ok(sse(subscription, skipped, replay, heartbeat, slot).into_response())
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// Events after `last_id` in log order, oldest first: at most `limits.replay_max_events`
/// (the newest), found among at most `limits.replay_max_scan` records, within the time budget,
/// and how many were left out. Where `last_id` is in the log comes from the live hub (which
/// delivered it) or from the event store; an id found in neither replays nothing. The
/// partition is read up to its end as of now; the subscription, opened before, delivers what
/// comes after, and the feed drops what both deliver.
async fn replay_after(state: &QueryState, mut filter: EventFilter, last_id: &str) -> Result<(u64, Vec<Arc<AuditEvent>>), QueryError> {
    let tenant = filter.tenant_id.clone();
    let limits = &state.config().limits;
    let (max_events, max_scan) = (limits.replay_max_events, limits.replay_max_scan);
    let deadline = tokio::time::Instant::now() + REPLAY_TIME.min(state.config().backend_timeout());
    let timed_out = |_| QueryError::Unavailable("live tail resume timed out".into());
    if last_id.len() > 256 {
        return Ok((0, Vec::new())); // no event has such an id
    }
    let last = match state.live().position_of(&tenant, last_id) {
        Some(position) => position,
        None => match tokio::time::timeout_at(deadline, state.backends().store.get(&tenant, last_id)).await.map_err(timed_out)?? {
            Some(stored) => stored.position,
            None => return Ok((0, Vec::new())),
        },
    };
    let log = &state.backends().log;
    let marks = tokio::time::timeout_at(deadline, log.watermarks(&TopicSelector::Topics(vec![last.topic.clone()]))).await.map_err(timed_out)?;
    let marks = match marks {
        Ok(marks) => marks,
        Err(LogError::Rejected(_)) => return Ok((0, Vec::new())), // the topic is gone
        Err(err) => return Err(err.into()),
    };
    let Some(end) = marks.iter().find(|w| w.partition == last.partition).map(|w| w.high) else { return Ok((0, Vec::new())) };
    if last.offset + 1 >= end {
        return Ok((0, Vec::new()));
    }
    retention::bound(state, &mut filter);
    let mut tail = tokio::time::timeout_at(deadline, log.tail_from(&LogPosition { offset: last.offset + 1, ..last })).await.map_err(timed_out)??;
    let (mut kept, mut skipped, mut scanned) = (VecDeque::new(), 0u64, 0u64);
    let mut next = last.offset + 1;
    while next < end {
        if scanned >= max_scan {
            break;
        }
        let Ok(record) = tokio::time::timeout_at(deadline, tail.next()).await else { break };
        let record = record?;
        scanned += 1;
        next = record.position.offset + 1;
        let key = record.key.as_deref().or_else(|| record.header("tenant_id"));
        if key.is_some_and(|t| t != tenant.as_bytes()) {
            continue;
        }
        let Ok(event) = state.backends().codec.decode(&record.payload).await else { continue };
        if event.tenant_id == tenant && matching::matches(&event, &filter) {
            kept.push_back(Arc::new(event));
            if kept.len() > max_events {
                kept.pop_front();
                skipped += 1;
            }
        }
    }
    if next < end {
        tracing::warn!(tenant = %tenant, unread = end - next, "live tail resume cut short; unread records reported as skipped");
        skipped += u64::try_from(end - next).unwrap_or(0);
    }
    Ok((skipped, kept.into()))
}

fn event_frame(event: &AuditEvent) -> String {
    json!({"type": "event", "event": event}).to_string()
}

/// Feeds one WebSocket: events, `skipped` notices and heartbeats, until the client leaves.
/// Generic over the socket halves, so it runs on any `Sink`/`Stream` pair.
pub async fn feed_websocket<W, R>(mut sink: W, mut incoming: R, mut subscription: Subscription, heartbeat: Duration, _slot: Slot)
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut beats = tokio::time::interval(heartbeat);
    beats.tick().await;
    loop {
        let frame = tokio::select! {
            event = subscription.next() => match event {
                Some(event) => event_frame(&event),
                None => break,
            },
            _ = beats.tick() => json!({"type": "heartbeat"}).to_string(),
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
        };
        let skipped = subscription.take_skipped();
        if skipped > 0 && sink.send(Message::Text(json!({"type": "skipped", "count": skipped}).to_string().into())).await.is_err() {
            break;
        }
        if sink.send(Message::Text(frame.into())).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Where an SSE feed is.
struct SseFeed {
    subscription: Subscription,
    replay: VecDeque<Arc<AuditEvent>>,
    /// Ids replayed, so the live feed does not repeat them.
    replayed: HashSet<String>,
    pending_skipped: u64,
    beats: tokio::time::Interval,
    /// Held for the whole stream; frees the tenant's slot when the client leaves.
    _slot: Slot,
}

fn sse(subscription: Subscription, skipped: u64, replay: Vec<Arc<AuditEvent>>, heartbeat: Duration, slot: Slot) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let mut beats = tokio::time::interval(heartbeat);
    beats.reset();
    let feed = SseFeed {
        subscription,
        replayed: replay.iter().map(|e| e.id.clone()).collect(),
        replay: replay.into(),
        pending_skipped: skipped,
        beats,
        _slot: slot,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((Ok(event), feed))
    });
    Sse::new(events)
}

impl SseFeed {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            let skipped = self.pending_skipped + self.subscription.take_skipped();
            self.pending_skipped = 0;
            if skipped > 0 {
                return Some(Event::default().event("skipped").data(json!({"count": skipped}).to_string()));
            }
            if let Some(event) = self.replay.pop_front() {
                return Some(audit_event(&event));
            }
            tokio::select! {
                event = self.subscription.next() => {
                    let event = event?;
                    if self.replayed.remove(&event.id) {
                        continue;
                    }
                    return Some(audit_event(&event));
                }
                _ = self.beats.tick() => return Some(Event::default().event("heartbeat").data("{}")),
            }
        }
    }
}

fn audit_event(event: &AuditEvent) -> Event {
    let sse = Event::default().event("audit").data(serde_json::to_string(event).unwrap_or_default());
    // `id:` cannot carry line breaks or NUL (the SSE framing would break); ids never do after
    // validation, and an id that did would go without `id:` rather than corrupt the stream.
    if event.id.contains(['\n', '\r', '\0']) { sse } else { sse.id(event.id.clone()) }
}
