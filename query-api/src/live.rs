//! The live-tail hub: one tail of the event log per process, fanned out to every subscriber.
//!
//! A single task follows the shared topic and every dedicated topic (re-checked every
//! [`TOPIC_RECHECK`]), decodes each record once — only when its tenant (the record's key)
//! has a subscriber, so an unwatched log costs next to nothing — and hands it to the
//! subscribers of its tenant whose filters it passes. Each subscriber has a bounded buffer; when it is full the
//! event is counted as skipped for that subscriber (never for another tenant's), and the
//! client is told `skipped n` instead of memory growing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use auditlog_schemas::{AuditEvent, WireCodec};
use auditlog_seams::{EventFilter, EventLog, LogPosition, LogRecord, LogTail};
use auditlog_tenant_registry::TenantAdmin;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::QueryConfig;
use crate::error::QueryError;
use crate::matching::matches;

/// How often the hub looks for tenants newly pinned to a dedicated topic.
const TOPIC_RECHECK: Duration = Duration::from_secs(30);
/// Pause before reopening a tail that failed.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);
/// Log positions of the most recent events delivered, kept so that a client resuming after
/// one of them (SSE `Last-Event-ID`) is resumed from the log even before the event store has
/// that event.
const RECENT_POSITIONS: usize = 100_000;

/// Where recently delivered events are in the log, by `(tenant, id)`; oldest evicted first.
#[derive(Default)]
struct Recent {
    positions: HashMap<(String, String), LogPosition>,
    order: VecDeque<(String, String)>,
}

struct Subscriber {
    id: u64,
    filter: EventFilter,
    tx: mpsc::Sender<Arc<AuditEvent>>,
    /// Matching events dropped because the buffer was full, not yet reported.
    skipped: AtomicU64,
}

type Subscribers = Mutex<HashMap<String, Vec<Arc<Subscriber>>>>;

struct HubInner {
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    tenants: Arc<dyn TenantAdmin>,
    shared_topic: String,
    buffer: usize,
    subscribers: Subscribers,
    recent: Mutex<Recent>,
    next_id: AtomicU64,
    /// The tail task; started by the first subscriber or by `run`.
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Cheap-to-clone handle on the hub.
#[derive(Clone)]
pub struct LiveHub(Arc<HubInner>);

/// One client's feed; unsubscribes on drop.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<AuditEvent>>,
    me: Arc<Subscriber>,
    hub: Arc<HubInner>,
}

impl LiveHub {
    /// A hub for `config`'s topics; nothing is read until [`LiveHub::ensure_started`].
    pub fn new(config: &QueryConfig, log: Arc<dyn EventLog>, codec: Arc<WireCodec>, tenants: Arc<dyn TenantAdmin>) -> Self {
        Self(Arc::new(HubInner {
            log,
            codec,
            tenants,
            shared_topic: config.topic(),
            buffer: config.limits.stream_buffer,
            subscribers: Mutex::default(),
            recent: Mutex::default(),
            next_id: AtomicU64::new(0),
            task: tokio::sync::Mutex::new(None),
        }))
    }

    /// Opens the tail unless it runs; resolves once it is positioned at the end of the log,
    /// so every event appended afterwards reaches the subscribers.
    pub async fn ensure_started(&self) -> Result<(), QueryError> {
        let mut task = self.0.task.lock().await;
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let topics = self.0.topics();
        let tail = self.0.log.tail(&topics).await?;
        let hub = Arc::clone(&self.0);
        *task = Some(tokio::spawn(async move { hub.follow(tail, topics).await }));
        Ok(())
    }

    /// Stops the tail and ends every subscriber's feed (shutdown).
    pub async fn stop(&self) {
        if let Some(task) = self.0.task.lock().await.take() {
            task.abort();
        }
        // Dropping the senders ends each feed; the subscriptions' own drops find nothing.
        self.0.subscribers.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Where event `id` of `tenant` is in the log, if the hub delivered it recently.
    pub fn position_of(&self, tenant: &str, id: &str) -> Option<LogPosition> {
        let recent = self.0.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.positions.get(&(tenant.to_owned(), id.to_owned())).cloned()
    }

    /// A feed of the events passing `filter` (of `filter.tenant_id` only).
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        let (tx, rx) = mpsc::channel(self.0.buffer);
        let me = Arc::new(Subscriber { id: self.0.next_id.fetch_add(1, Ordering::Relaxed), filter, tx, skipped: AtomicU64::new(0) });
        let mut subscribers = self.0.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers.entry(me.filter.tenant_id.clone()).or_default().push(Arc::clone(&me));
        crate::metrics::live_subscribers(1.0);
        Subscription { rx, me, hub: Arc::clone(&self.0) }
    }
}

impl HubInner {
    fn topics(&self) -> Vec<String> {
        let mut topics = vec![self.shared_topic.clone()];
        let mut dedicated: Vec<String> = self
            .tenants
            .list_tenants()
            .into_iter()
            .filter(|t| t.dedicated_topic)
            .map(|t| auditlog_seams::topics::dedicated(&self.shared_topic, &t.id))
            .collect();
        dedicated.sort();
        topics.extend(dedicated);
        topics
    }

    /// Reads the tail until the task is aborted, reopening it after errors and when the set
    /// of topics changed.
    async fn follow(self: Arc<Self>, mut tail: Box<dyn LogTail>, mut topics: Vec<String>) {
        let mut recheck = tokio::time::interval(TOPIC_RECHECK);
        recheck.tick().await;
        loop {
            tokio::select! {
                record = tail.next() => match record {
                    Ok(record) if !self.watched(&record) => {}
                    Ok(record) => match self.codec.decode(&record.payload).await {
                        Ok(event) => self.dispatch(Arc::new(event), record.position),
                        Err(err) => tracing::warn!(topic = %record.position.topic, offset = record.position.offset, error = %err, "live tail skipped an undecodable record"),
                    },
                    Err(err) => {
                        tracing::warn!(error = %err, "live tail failed; reopening");
                        tokio::time::sleep(REOPEN_BACKOFF).await;
                        if let Some(reopened) = self.reopen(&topics).await { tail = reopened; }
                    }
                },
                _ = recheck.tick() => {
                    let now = self.topics();
                    if now != topics
                        && let Some(reopened) = self.reopen(&now).await
                    {
                        tail = reopened;
                        topics = now;
                    }
                }
            }
        }
    }

    async fn reopen(&self, topics: &[String]) -> Option<Box<dyn LogTail>> {
        match self.log.tail(topics).await {
            Ok(tail) => Some(tail),
            Err(err) => {
                tracing::warn!(error = %err, "live tail could not be reopened");
                None
            }
        }
    }

    /// Whether a subscriber may want `record`: its tenant, from the record's key (or its
    /// `tenant_id` header), has one. A record naming no tenant is decoded to find out.
    fn watched(&self, record: &LogRecord) -> bool {
        let subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        if subscribers.is_empty() {
            return false;
        }
        let tenant = record.key.as_deref().or_else(|| record.header("tenant_id")).and_then(|t| std::str::from_utf8(t).ok());
        tenant.is_none_or(|t| subscribers.contains_key(t))
    }

    fn dispatch(&self, event: Arc<AuditEvent>, position: LogPosition) {
        self.remember(&event, position);
        let subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = subscribers.get(&event.tenant_id) else { return };
        for subscriber in list.iter().filter(|s| matches(&event, &s.filter)) {
            if let Err(mpsc::error::TrySendError::Full(_)) = subscriber.tx.try_send(Arc::clone(&event)) {
                subscriber.skipped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::live_skipped(1);
            }
        }
    }
}

impl HubInner {
    fn remember(&self, event: &AuditEvent, position: LogPosition) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (event.tenant_id.clone(), event.id.clone());
        if recent.positions.insert(key.clone(), position).is_none() {
            recent.order.push_back(key);
        }
        while recent.order.len() > RECENT_POSITIONS {
            if let Some(oldest) = recent.order.pop_front() {
                recent.positions.remove(&oldest);
            }
        }
    }
}

impl Subscription {
    /// The next event; `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<Arc<AuditEvent>> {
        self.rx.recv().await
    }

    /// Events dropped since the last call because this client fell behind.
    pub fn take_skipped(&self) -> u64 {
        self.me.skipped.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subscribers = self.hub.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = subscribers.get_mut(&self.me.filter.tenant_id) {
            list.retain(|s| s.id != self.me.id);
            if list.is_empty() {
                subscribers.remove(&self.me.filter.tenant_id);
            }
        }
        crate::metrics::live_subscribers(-1.0);
    }
}
