//! Measures durable append throughput of the file event log under concurrency:
//! `cargo run --release -p auditlog-seams --example file_log_append [total] [concurrency] [bytes]`.
//!
//! Every append resolves only after its record was fsynced; group commit lets concurrent
//! appends share fsyncs. The data directory is a temporary one on the default temp filesystem
//! (set `TMPDIR` to measure another disk).

use std::sync::Arc;
use std::time::Instant;

use auditlog_seams::event_log::embedded::FileEventLog;
use auditlog_seams::{EventLog, OutgoingRecord};

fn arg(n: usize, default: usize) -> usize {
    std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (total, concurrency, bytes) = (arg(1, 1_000_000), arg(2, 1_024), arg(3, 300));
    let dir = tempfile::tempdir()?;
    let log = Arc::new(FileEventLog::open_dir(dir.path())?);
    log.ensure_topic("audit.events.v1", 4).await?;
    let payload = vec![7u8; bytes];
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (log, payload) = (Arc::clone(&log), payload.clone());
            tokio::spawn(async move {
                let mut i = w;
                while i < total {
                    let record = OutgoingRecord {
                        topic: "audit.events.v1".into(),
                        key: format!("tenant-{}", i % 100),
                        payload: payload.clone(),
                        headers: vec![("event_id".into(), i.to_string().into_bytes())],
                    };
                    log.append(record).await?;
                    i += concurrency;
                }
                Ok::<_, auditlog_seams::LogError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();
    let batches = log.batches_written();
    println!(
        "{total} durable appends of {bytes} B with {concurrency} in flight: {:.2} s, {:.0} appends/s, {batches} group commits ({:.0} appends per fsync batch)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / batches.max(1) as f64
    );
    Ok(())
}
