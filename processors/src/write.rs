//! Writing one batch: the sink until it acknowledged every event (waiting out outages,
//! isolating and dead-lettering refused events after bounded attempts, dead-lettering the
//! conflicts it reports), then the commit.
//!
//! The loop ([`crate::pipeline`]) uses this module, never the other way round.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlog_schemas::digest::hex;
use auditlog_seams::{Conflict, EventLog, LogConsumer, LogRecord, OutgoingRecord, StoredEvent};
use metrics::{counter, gauge, histogram};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::batch::Batch;
use crate::config::ProcessorConfig;
use crate::dlq::{self, Reason};
use crate::metrics::{
    BATCH_SIZE_EVENTS, COMMIT_FAILURES_TOTAL, CONFLICTS_TOTAL, DLQ_TOTAL, EVENTS_TOTAL, FRESHNESS_DURATION_SECONDS,
    RETRIES_TOTAL, SINK_WAITING, WRITE_DURATION_SECONDS,
};
use crate::sink::{Sink, SinkError};

/// Called after each written batch with the number of records it covered (progress bars).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Writes batches to one sink and commits them.
pub struct Writer {
    config: ProcessorConfig,
    log: Arc<dyn EventLog>,
    sink: Arc<dyn Sink>,
    /// Whether conflicts the sink reports are dead-lettered (the live processor) or only
    /// logged (a replay, re-reading what the live processor dead-lettered already).
    dead_letter_conflicts: bool,
}

/// A retry delay that doubles up to the configured maximum.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(config: &ProcessorConfig) -> Self {
        Self { next: config.retry_min_backoff, max: config.retry_max_backoff }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

impl Writer {
    /// A writer for `sink`, dead-lettering through `log`.
    pub fn new(config: &ProcessorConfig, log: Arc<dyn EventLog>, sink: Arc<dyn Sink>) -> Self {
        Self { config: config.clone(), log, sink, dead_letter_conflicts: true }
    }

    /// Whether the conflicts the sink reports are dead-lettered (the default) or only logged.
    pub fn dead_letter_conflicts(mut self, yes: bool) -> Self {
        self.dead_letter_conflicts = yes;
        self
    }

    fn sink_name(&self) -> &'static str {
        self.sink.name()
    }

    /// Writes `batch` and commits its positions; leaves it empty. When shutdown is requested
    /// and the batch cannot be finished within the grace period (a sink still down), it is
    /// abandoned uncommitted: the next owner of its partitions reads it again.
    pub async fn flush(&self, consumer: &mut dyn LogConsumer, batch: &mut Batch, progress: Option<&Progress>, stop: &watch::Receiver<bool>) {
        if batch.is_empty() {
            return;
        }
        let batch = std::mem::take(batch);
        let records = (batch.events.len() + batch.done.len()) as u64;
        let positions = batch.positions();
        let mut stopped = stop.clone();
        let grace = self.config.shutdown_grace;
        let abandon = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = self.write_all(batch.events, batch.records) => {}
            () = abandon => {
                tracing::warn!(sink = self.sink_name(), records, "shutdown grace passed with the batch unwritten; leaving it uncommitted");
                return;
            }
        }
        if self.config.commit
            && let Err(error) = consumer.commit(&positions).await
        {
            // Not fatal: the batch is redelivered and the sink absorbs it.
            counter!(COMMIT_FAILURES_TOTAL, "sink" => self.sink_name()).increment(1);
            tracing::warn!(sink = self.sink_name(), %error, "commit failed; the batch will be redelivered");
        }
        histogram!(BATCH_SIZE_EVENTS, "sink" => self.sink_name()).record(records as f64);
        if let Some(progress) = progress {
            progress(records);
        }
    }

    /// Writes every event, or dead-letters the ones the sink refuses after bounded attempts.
    async fn write_all(&self, mut events: Vec<StoredEvent>, mut records: Vec<LogRecord>) {
        let started = Instant::now();
        let sink = self.sink_name();
        let mut backoff = Backoff::new(&self.config);
        let mut rejections = 0;
        let mut waiting = false;
        let mut written = 0usize;
        while !events.is_empty() {
            match self.sink.write(&events).await {
                Ok(conflicts) => {
                    written += events.len() - conflicts.len();
                    self.refuse_conflicts(&events, &records, &conflicts).await;
                    record_freshness(sink, &events);
                    break;
                }
                Err(SinkError::Unavailable(error)) => {
                    counter!(RETRIES_TOTAL, "sink" => sink, "reason" => "unavailable").increment(1);
                    if !waiting {
                        waiting = true;
                        gauge!(SINK_WAITING, "sink" => sink).set(1.0);
                        tracing::warn!(sink, %error, "sink unavailable; waiting for it, committing nothing meanwhile");
                    }
                    backoff.wait().await;
                }
                Err(SinkError::Rejected { ids, reason }) => {
                    counter!(RETRIES_TOTAL, "sink" => sink, "reason" => "rejected").increment(1);
                    rejections += 1;
                    if rejections < self.config.max_rejected_attempts {
                        backoff.wait().await;
                        continue;
                    }
                    rejections = 0;
                    let ids: HashSet<String> = ids.into_iter().collect();
                    let (keep_events, keep_records) = self.dead_letter_where(events, records, &reason, |e| ids.contains(&e.event.id)).await;
                    (events, records) = (keep_events, keep_records);
                }
                Err(SinkError::Refused(reason)) => {
                    counter!(RETRIES_TOTAL, "sink" => sink, "reason" => "refused").increment(1);
                    tracing::warn!(sink, %reason, events = events.len(), "sink refused the batch; writing its events one by one");
                    let isolated = self.isolate(events, records).await;
                    written += isolated.written;
                    (events, records) = (isolated.events, isolated.records);
                    if !events.is_empty() {
                        backoff.wait().await;
                    }
                }
            }
        }
        if waiting {
            gauge!(SINK_WAITING, "sink" => sink).set(0.0);
            tracing::info!(sink, "sink available again");
        }
        counter!(EVENTS_TOTAL, "sink" => sink, "outcome" => "written").increment(written as u64);
        histogram!(WRITE_DURATION_SECONDS, "sink" => sink).record(started.elapsed().as_secs_f64());
    }

    /// Writes the events one at a time: those refused `max_rejected_attempts` times are
    /// dead-lettered; from the first that finds the sink unavailable on, the rest is
    /// returned for the caller to retry as a batch.
    async fn isolate(&self, events: Vec<StoredEvent>, records: Vec<LogRecord>) -> Isolated {
        let mut out = Isolated { written: 0, events: Vec::new(), records: Vec::new() };
        let mut pairs = events.into_iter().zip(records);
        while let Some((event, record)) = pairs.next() {
            let mut attempts = 0;
            loop {
                match self.sink.write(std::slice::from_ref(&event)).await {
                    Ok(conflicts) => {
                        out.written += 1 - conflicts.len().min(1);
                        self.refuse_conflicts(std::slice::from_ref(&event), std::slice::from_ref(&record), &conflicts).await;
                        break;
                    }
                    Err(SinkError::Unavailable(_)) => {
                        out.events.push(event);
                        out.records.push(record);
                        for (e, r) in pairs.by_ref() {
                            out.events.push(e);
                            out.records.push(r);
                        }
                        return out;
                    }
                    Err(SinkError::Rejected { reason, .. } | SinkError::Refused(reason)) => {
                        attempts += 1;
                        if attempts >= self.config.max_rejected_attempts {
                            self.dead_letter(&record, &reason).await;
                            break;
                        }
                        tokio::time::sleep(self.config.retry_min_backoff).await;
                    }
                }
            }
        }
        out
    }

    /// Dead-letters the events `refused` selects; returns the others.
    async fn dead_letter_where(
        &self,
        events: Vec<StoredEvent>,
        records: Vec<LogRecord>,
        reason: &str,
        refused: impl Fn(&StoredEvent) -> bool,
    ) -> (Vec<StoredEvent>, Vec<LogRecord>) {
        let (mut keep_events, mut keep_records) = (Vec::new(), Vec::new());
        for (event, record) in events.into_iter().zip(records) {
            if refused(&event) {
                self.dead_letter(&record, reason).await;
            } else {
                keep_events.push(event);
                keep_records.push(record);
            }
        }
        (keep_events, keep_records)
    }

    /// Logs, counts and (live) dead-letters the copies the sink refused as conflicts: their
    /// id is stored with other content, and the stored first copy stays.
    async fn refuse_conflicts(&self, events: &[StoredEvent], records: &[LogRecord], conflicts: &[Conflict]) {
        if conflicts.is_empty() {
            return;
        }
        let sink = self.sink_name();
        for conflict in conflicts {
            let (Some(stored), Some(record)) = (events.get(conflict.index), records.get(conflict.index)) else { continue };
            let (e, at) = (&stored.event, &record.position);
            let (first, refused) = (hex(&conflict.stored), hex(&conflict.refused));
            let error = format!("event id {:?} is already stored with different content (stored digest {first}, this copy {refused})", e.id);
            if !self.dead_letter_conflicts {
                tracing::info!(sink, tenant = %e.tenant_id, id = %e.id, topic = %at.topic, partition = at.partition, offset = at.offset, "conflicting copy of a stored id (dead-lettered by the live processor); the first copy stays");
                continue;
            }
            tracing::warn!(sink, tenant = %e.tenant_id, id = %e.id, topic = %at.topic, partition = at.partition, offset = at.offset, stored_digest = %first, digest = %refused, "event id already stored with different content; the first copy stays, dead-lettering this one");
            let letter = dlq::letter(record, &self.config.dlq_topic(), sink, Reason::Conflict, &error);
            append_until_acked(self.log.as_ref(), letter, &self.config, sink).await;
        }
        if self.dead_letter_conflicts {
            let n = conflicts.len() as u64;
            counter!(CONFLICTS_TOTAL, "sink" => sink).increment(n);
            counter!(DLQ_TOTAL, "sink" => sink, "reason" => Reason::Conflict.as_str()).increment(n);
            counter!(EVENTS_TOTAL, "sink" => sink, "outcome" => "dead_lettered").increment(n);
        }
    }

    async fn dead_letter(&self, record: &LogRecord, reason: &str) {
        let sink = self.sink_name();
        tracing::warn!(sink, topic = %record.position.topic, partition = record.position.partition, offset = record.position.offset, reason, "sink refused the event; dead-lettering it");
        let letter = dlq::letter(record, &self.config.dlq_topic(), sink, Reason::Rejected, reason);
        append_until_acked(self.log.as_ref(), letter, &self.config, sink).await;
        counter!(DLQ_TOTAL, "sink" => sink, "reason" => Reason::Rejected.as_str()).increment(1);
        counter!(EVENTS_TOTAL, "sink" => sink, "outcome" => "dead_lettered").increment(1);
    }
}

/// What [`Writer::isolate`] leaves to retry.
struct Isolated {
    written: usize,
    events: Vec<StoredEvent>,
    records: Vec<LogRecord>,
}

/// Appends `letter`, retrying until the log acknowledged it: a dead letter is never dropped.
pub async fn append_until_acked(log: &dyn EventLog, letter: OutgoingRecord, config: &ProcessorConfig, sink: &'static str) {
    let mut backoff = Backoff::new(config);
    while let Err(error) = log.append(letter.clone()).await {
        counter!(RETRIES_TOTAL, "sink" => sink, "reason" => "dlq").increment(1);
        tracing::warn!(sink, %error, topic = %letter.topic, "appending a dead letter failed; retrying");
        backoff.wait().await;
    }
}

/// Records, per event, the time from the gateway's `received_at` to now (the sink's
/// acknowledgement): the freshness distribution needs every event, not one per batch.
fn record_freshness(sink: &'static str, events: &[StoredEvent]) {
    let now = OffsetDateTime::now_utc();
    let freshness = histogram!(FRESHNESS_DURATION_SECONDS, "sink" => sink);
    for stored in events {
        freshness.record((now - stored.event.received_at).as_seconds_f64().max(0.0));
    }
}
