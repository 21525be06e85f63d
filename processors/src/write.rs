//! Writing one batch: the sink until it acknowledged every event (waiting out outages,
//! isolating and dead-lettering refused events after bounded attempts), then the commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlog_seams::{EventLog, LogConsumer, LogRecord, OutgoingRecord, StoredEvent};
use metrics::{counter, gauge, histogram};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::batch::Batch;
use crate::config::ProcessorConfig;
use crate::dlq::{self, Reason};
use crate::metrics::{
    BATCH_SIZE_EVENTS, COMMIT_FAILURES_TOTAL, DLQ_TOTAL, EVENTS_TOTAL, FRESHNESS_DURATION_SECONDS, RETRIES_TOTAL,
    SINK_WAITING, WRITE_DURATION_SECONDS,
};
use crate::pipeline::Progress;
use crate::sink::{Sink, SinkError};

/// Writes batches to one sink and commits them.
pub struct Writer {
    config: ProcessorConfig,
    log: Arc<dyn EventLog>,
    sink: Arc<dyn Sink>,
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
        Self { config: config.clone(), log, sink }
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
                Ok(()) => {
                    written += events.len();
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
                    Ok(()) => {
                        out.written += 1;
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
