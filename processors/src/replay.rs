//! `auditlog replay`: rebuilds a view from the log. A throw-away consumer group reads every
//! partition from its start up to the end it had when the replay began, through the same
//! pipeline as the live processor, without committing and without dead-lettering again.
//! The sinks' writes are idempotent, so replaying into a view that already holds events
//! leaves one copy of each.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use auditlog_schemas::WireCodec;
use auditlog_seams::EventLog;
use time::OffsetDateTime;

use crate::config::ProcessorConfig;
use crate::pipeline::{Keep, Pipeline, PipelineError, Progress, Stopped};
use crate::sink::Sink;

/// Which events to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Only this tenant's events.
    pub tenant: Option<String>,
    /// Only events that occurred at or after this time.
    pub from: Option<OffsetDateTime>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayReport {
    /// Records read (all tenants, skipped ones included).
    pub records: u64,
    /// Whether every partition was read to its end (false: interrupted by shutdown).
    pub complete: bool,
    /// Seconds taken.
    pub seconds: f64,
}

/// Replays the log into `sink`. `progress` receives the total once (as `Err(total)`) and then
/// the records covered by each batch (as `Ok(n)`).
pub async fn replay(
    config: &ProcessorConfig,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    sink: Arc<dyn Sink>,
    options: ReplayOptions,
    progress: impl Fn(Result<u64, u64>) + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ReplayReport, PipelineError> {
    let started = Instant::now();
    let dlq = config.dlq_topic();
    let ends: Vec<_> = log.watermarks(&config.topics()).await?.into_iter().filter(|w| w.topic != dlq).collect();
    let total: u64 = ends.iter().map(|w| u64::try_from(w.high - w.low).unwrap_or(0)).sum();
    progress(Err(total));
    let mut config = config.clone();
    config.group = format!("{}-replay-{}", config.group, OffsetDateTime::now_utc().unix_timestamp_nanos());
    config.commit = false;
    let records = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&records);
    let progress = Arc::new(progress);
    let on_batch: Progress = Arc::new(move |n| {
        counted.fetch_add(n, Ordering::Relaxed);
        progress(Ok(n));
    });
    let keep: Keep = Arc::new(move |event| {
        options.tenant.as_ref().is_none_or(|t| *t == event.tenant_id) && options.from.is_none_or(|f| event.occurred_at >= f)
    });
    let stopped = Pipeline::new(config, log, codec, sink).keep(keep).until(&ends).progress(on_batch).run(shutdown).await?;
    Ok(ReplayReport {
        records: records.load(Ordering::Relaxed),
        complete: stopped == Stopped::CaughtUp,
        seconds: started.elapsed().as_secs_f64(),
    })
}
