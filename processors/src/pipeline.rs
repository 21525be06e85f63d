//! The processor loop: consume → decode → batch → write → dead-letter → commit.
//!
//! One task owns the consumer, so records are handled in log order and a batch is written
//! before the next one is gathered; while a batch is written nothing is read (the
//! backpressure is the consumer's own). Offsets are committed only after the sink
//! acknowledged the batch ([`crate::write`]), so a crash at any point redelivers at most the
//! batch in flight, which the idempotent sinks absorb.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlog_schemas::{AuditEvent, WireCodec};
use auditlog_seams::{EventLog, LogConsumer, LogError, LogRecord, StoredEvent, Watermarks};
use metrics::{counter, gauge};
use tokio::sync::watch;

use crate::batch::Batch;
use crate::config::ProcessorConfig;
use crate::dlq::{self, Reason};
use crate::metrics::{CONSUMER_LAG, DLQ_TOTAL, EVENTS_TOTAL, RETRIES_TOTAL};
use crate::sink::Sink;
use crate::write::Writer;

/// How often consumer lag is sampled into [`CONSUMER_LAG`].
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested; the last batch was written and committed (or abandoned
    /// uncommitted after the grace period).
    Shutdown,
    /// A bounded run (replay) read every partition up to its end.
    CaughtUp,
}

/// Errors that end the loop.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The log refused to open a consumer (bad topic pattern, misconfiguration).
    #[error("cannot consume the event log: {0}")]
    Consume(#[from] LogError),
}

/// Which events a bounded run keeps (replay of one tenant, or from a time).
pub type Keep = Arc<dyn Fn(&AuditEvent) -> bool + Send + Sync>;
pub use crate::write::Progress;

/// A processor: its settings, the log it reads, the codec and the sink it writes.
pub struct Pipeline {
    config: ProcessorConfig,
    /// The dead-letter topic, computed once: every record is compared with it.
    dlq_topic: String,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    sink: Arc<dyn Sink>,
    keep: Option<Keep>,
    until: Option<HashMap<(String, i32), i64>>,
    progress: Option<Progress>,
}

/// Runs a processor until `shutdown` resolves: the `auditlog processor` role.
pub async fn run(
    config: ProcessorConfig,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    sink: Arc<dyn Sink>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Stopped, PipelineError> {
    Pipeline::new(config, log, codec, sink).run(shutdown).await
}

/// One step of the loop, decided by whichever source was ready first.
enum Step {
    Stop,
    Record(Result<LogRecord, LogError>),
    Cut,
    SampleLag,
}

impl Pipeline {
    /// A processor over these backends.
    pub fn new(config: ProcessorConfig, log: Arc<dyn EventLog>, codec: Arc<WireCodec>, sink: Arc<dyn Sink>) -> Self {
        let dlq_topic = config.dlq_topic();
        Self { config, dlq_topic, log, codec, sink, keep: None, until: None, progress: None }
    }

    /// Writes only the events `keep` accepts; the others are passed over (and committed).
    pub fn keep(mut self, keep: Keep) -> Self {
        self.keep = Some(keep);
        self
    }

    /// Stops once every partition was read up to its `high` watermark here.
    pub fn until(mut self, ends: &[Watermarks]) -> Self {
        self.until = Some(ends.iter().filter(|w| w.high > w.low).map(|w| ((w.topic.clone(), w.partition), w.high)).collect());
        self
    }

    /// Reports progress after each batch.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Runs until `shutdown` resolves (or, when bounded, until caught up).
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<Stopped, PipelineError> {
        let (stop_tx, stop) = watch::channel(false);
        let watcher = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            std::future::pending::<()>().await;
        };
        tokio::select! {
            result = self.run_inner(stop) => result,
            () = watcher => unreachable!("the shutdown watcher never completes"),
        }
    }

    async fn run_inner(&mut self, mut stop: watch::Receiver<bool>) -> Result<Stopped, PipelineError> {
        let mut consumer = self.log.consume(&self.config.group, self.config.topics()).await?;
        // A bounded run (replay) re-reads conflicts the live processor dead-lettered already.
        let writer = Writer::new(&self.config, Arc::clone(&self.log), Arc::clone(&self.sink)).dead_letter_conflicts(self.until.is_none());
        let mut batch = Batch::default();
        let mut lag_timer = tokio::time::interval(LAG_INTERVAL);
        loop {
            if self.until.as_ref().is_some_and(HashMap::is_empty) {
                writer.flush(consumer.as_mut(), &mut batch, self.progress.as_ref(), &stop).await;
                return Ok(Stopped::CaughtUp);
            }
            let deadline = batch.deadline(&self.config.batch);
            let step = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => Step::Stop,
                () = sleep_until(deadline) => Step::Cut,
                _ = lag_timer.tick() => Step::SampleLag,
                record = consumer.next() => Step::Record(record),
            };
            match step {
                Step::Stop => break,
                Step::Cut => writer.flush(consumer.as_mut(), &mut batch, self.progress.as_ref(), &stop).await,
                Step::SampleLag => self.sample_lag(consumer.as_mut()).await,
                Step::Record(Ok(record)) => {
                    self.accept(record, &mut batch, &stop).await;
                    if batch.is_full(&self.config.batch) {
                        writer.flush(consumer.as_mut(), &mut batch, self.progress.as_ref(), &stop).await;
                    }
                }
                Step::Record(Err(err)) => {
                    tracing::warn!(sink = self.sink.name(), error = %err, "reading the event log failed; retrying");
                    tokio::time::sleep(self.config.retry_min_backoff).await;
                }
            }
        }
        // Graceful shutdown: finish the batch in flight and commit it, within the grace.
        writer.flush(consumer.as_mut(), &mut batch, self.progress.as_ref(), &stop).await;
        Ok(Stopped::Shutdown)
    }

    /// Decodes one record into the batch, or marks it done (skipped or dead-lettered).
    async fn accept(&mut self, record: LogRecord, batch: &mut Batch, stop: &watch::Receiver<bool>) {
        let sink = self.sink.name();
        let position = record.position.clone();
        if let Some(until) = &mut self.until {
            let key = (position.topic.clone(), position.partition);
            match until.get(&key).copied() {
                // A partition already read to its end, or one that was empty at the start.
                None => return,
                Some(end) if position.offset >= end => {
                    until.remove(&key);
                    return;
                }
                Some(end) if position.offset + 1 == end => {
                    until.remove(&key);
                }
                Some(_) => {}
            }
        }
        if position.topic == self.dlq_topic {
            counter!(EVENTS_TOTAL, "sink" => sink, "outcome" => "skipped").increment(1);
            batch.push_done(position);
            return;
        }
        let event = match self.decode(&record, stop).await {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                tracing::warn!(sink, topic = %position.topic, partition = position.partition, offset = position.offset, %error, "undecodable record");
                // A bounded run (replay) re-reads records the live processor dead-lettered
                // already; it only reports them.
                if self.until.is_none() {
                    self.dead_letter(&record, Reason::Decode, &error).await;
                }
                batch.push_done(position);
                return;
            }
            // Shutdown while the registry was unreachable: leave the record uncommitted.
            None => return,
        };
        if self.keep.as_ref().is_some_and(|keep| !keep(&event)) {
            batch.push_done(position);
            return;
        }
        batch.push(record, StoredEvent { event, position });
    }

    /// Decodes a record; `Some(Err)` for a poison record, `None` when shutdown interrupted
    /// the wait for an unreachable registry.
    async fn decode(&self, record: &LogRecord, stop: &watch::Receiver<bool>) -> Option<Result<AuditEvent, String>> {
        let mut backoff = self.config.retry_min_backoff;
        loop {
            match self.codec.decode(&record.payload).await {
                Ok(event) => return Some(Ok(event)),
                Err(err) if err.is_transient() => {
                    counter!(RETRIES_TOTAL, "sink" => self.sink.name(), "reason" => "registry").increment(1);
                    tracing::warn!(error = %err, "schema registry unreachable; retrying the decode");
                    if *stop.borrow() {
                        return None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.retry_max_backoff);
                }
                Err(err) => return Some(Err(err.to_string())),
            }
        }
    }

    /// Appends the dead-letter copy of `record`, retrying until the log acknowledged it.
    async fn dead_letter(&self, record: &LogRecord, reason: Reason, error: &str) {
        let sink = self.sink.name();
        let letter = dlq::letter(record, &self.dlq_topic, sink, reason, error);
        crate::write::append_until_acked(self.log.as_ref(), letter, &self.config, sink).await;
        counter!(DLQ_TOTAL, "sink" => sink, "reason" => reason.as_str()).increment(1);
        counter!(EVENTS_TOTAL, "sink" => sink, "outcome" => "dead_lettered").increment(1);
    }

    async fn sample_lag(&self, consumer: &mut dyn LogConsumer) {
        match consumer.lag().await {
            Ok(lags) => {
                for lag in lags {
                    let labels = [
                        ("sink", self.sink.name().to_owned()),
                        ("topic", lag.topic),
                        ("partition", lag.partition.to_string()),
                    ];
                    #[allow(clippy::cast_precision_loss)]
                    gauge!(CONSUMER_LAG, &labels).set((lag.high - lag.position).max(0) as f64);
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot sample consumer lag"),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
