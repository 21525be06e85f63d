//! The group-commit writer of the file event log: one thread takes every append waiting in
//! its queue, writes each partition's records with one `write`, fsyncs each touched file once,
//! publishes the new durable ends to readers, and only then answers the appends.
//!
//! Batching needs no timer: while one batch is being fsynced the next one queues up, so under
//! load a batch holds everything that arrived during the previous fsync (many appends, one
//! fsync), and a lone append waits for just its own fsync.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::partition::{Partition, Segment};
use super::{Shared, segment};
use crate::{LogError, LogPosition, OutgoingRecord};

/// Most appends written by one batch: bounds the latency a batch adds to the appends behind it.
pub(super) const MAX_BATCH_RECORDS: usize = 16_384;
/// Most payload bytes written by one batch, for the same reason.
pub(super) const MAX_BATCH_BYTES: usize = 32 << 20;

/// A request to the writer.
pub(super) enum Command {
    /// Append a record to a partition and answer with its position once it is durable.
    Append {
        partition: Arc<Partition>,
        record: OutgoingRecord,
        timestamp_ms: i64,
        reply: oneshot::Sender<Result<LogPosition, LogError>>,
    },
    /// Answer once every append queued before it was answered.
    Flush(oneshot::Sender<()>),
}

type Reply = (oneshot::Sender<Result<LogPosition, LogError>>, LogPosition);

/// The segment of a partition being appended to.
struct Active {
    partition: Arc<Partition>,
    file: File,
    base: i64,
    /// Durable length of the file.
    len: u64,
    next: i64,
    last_indexed: Option<u64>,
    buf: Vec<u8>,
    index: Vec<(i64, u64)>,
    replies: Vec<Reply>,
}

/// The writer thread's state.
pub(super) struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    active: HashMap<(String, i32), Active>,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, rx: mpsc::Receiver<Command>) -> Self {
        Self { shared, rx, active: HashMap::new() }
    }

    /// Runs until every sender is gone.
    pub(super) fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut batch = vec![first];
            let mut bytes = 0;
            while batch.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(command) => {
                        if let Command::Append { record, .. } = &command {
                            bytes += record.payload.len();
                        }
                        batch.push(command);
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
    }

    fn process(&mut self, batch: Vec<Command>) {
        let mut flushes = Vec::new();
        for command in batch {
            match command {
                Command::Flush(done) => flushes.push(done),
                Command::Append { partition, record, timestamp_ms, reply } => {
                    if let Some(reason) = self.shared.failure() {
                        let _ = reply.send(Err(LogError::Unavailable(reason)));
                        continue;
                    }
                    match self.active_for(&partition) {
                        Ok(active) => active.stage(&record, timestamp_ms, reply),
                        Err(err) => {
                            let _ = reply.send(Err(err));
                        }
                    }
                }
            }
        }
        let mut published = false;
        for active in self.active.values_mut().filter(|a| !a.replies.is_empty()) {
            match active.commit() {
                Ok(()) => published = true,
                Err(err) => {
                    let reason = format!("writing {}: {err}", active.partition.dir.display());
                    tracing::error!(error = %reason, "event log write failed; refusing further appends");
                    self.shared.fail(&reason);
                    for (reply, _) in active.replies.drain(..) {
                        let _ = reply.send(Err(LogError::Unavailable(reason.clone())));
                    }
                }
            }
        }
        if published {
            self.shared.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.changes.send_modify(|generation| *generation += 1);
        }
        for active in self.active.values_mut() {
            for (reply, position) in active.replies.drain(..) {
                let _ = reply.send(Ok(position));
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }

    /// The active segment of `partition`, opened on first use and rolled when full.
    fn active_for(&mut self, partition: &Arc<Partition>) -> Result<&mut Active, LogError> {
        let key = (partition.topic.clone(), partition.id);
        let segment_bytes = self.shared.config.segment_bytes;
        if !self.active.contains_key(&key) {
            let segment = partition
                .active()
                .ok_or_else(|| LogError::Unavailable(format!("partition {} has no segment", partition.dir.display())))?;
            let active = Active::open(Arc::clone(partition), &segment)?;
            self.active.insert(key.clone(), active);
        }
        let active = self.active.get_mut(&key).ok_or_else(|| LogError::Unavailable("active segment vanished".into()))?;
        if active.len >= segment_bytes && active.replies.is_empty() && active.next > active.base {
            active.roll()?;
        }
        Ok(active)
    }
}

fn io_error(path: &std::path::Path, err: std::io::Error) -> LogError {
    LogError::Unavailable(format!("segment {}: {err}", path.display()))
}

impl Active {
    fn open(partition: Arc<Partition>, segment: &Segment) -> Result<Self, LogError> {
        let mut file = File::options().write(true).open(&segment.path).map_err(|e| io_error(&segment.path, e))?;
        file.seek(SeekFrom::Start(segment.len)).map_err(|e| io_error(&segment.path, e))?;
        Ok(Self {
            partition,
            file,
            base: segment.base,
            len: segment.len,
            next: segment.next,
            last_indexed: segment.index.last().map(|(_, pos)| *pos),
            buf: Vec::new(),
            index: Vec::new(),
            replies: Vec::new(),
        })
    }

    /// Encodes one record into this batch's buffer.
    fn stage(&mut self, record: &OutgoingRecord, timestamp_ms: i64, reply: oneshot::Sender<Result<LogPosition, LogError>>) {
        let pos = self.len + self.buf.len() as u64;
        if self.last_indexed.is_none_or(|at| pos - at >= segment::INDEX_INTERVAL_BYTES) {
            self.index.push((self.next, pos));
            self.last_indexed = Some(pos);
        }
        segment::encode(&mut self.buf, self.next, timestamp_ms, record);
        let position = LogPosition { topic: self.partition.topic.clone(), partition: self.partition.id, offset: self.next };
        self.replies.push((reply, position));
        self.next += 1;
    }

    /// Writes and fsyncs the batch, then publishes it to readers.
    fn commit(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        self.partition.publish(self.len, self.next, &self.index, None);
        self.index.clear();
        Ok(())
    }

    /// Starts a new segment at the next offset.
    fn roll(&mut self) -> Result<(), LogError> {
        let dir = self.partition.dir.clone();
        let path = segment::create(&dir, self.next).map_err(|e| io_error(&dir, e))?;
        let segment = Segment { base: self.next, path, len: segment::HEADER_LEN, next: self.next, index: Vec::new() };
        let mut next = Self::open(Arc::clone(&self.partition), &segment)?;
        self.partition.publish(self.len, self.next, &[], Some(segment));
        next.last_indexed = None;
        *self = next;
        Ok(())
    }
}
