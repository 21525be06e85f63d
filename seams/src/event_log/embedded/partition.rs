//! Partitions of the file event log: their segments, the durable end readers may see, and
//! reads of a range of records.
//!
//! Readers only ever see records that were fsynced: the writer publishes a partition's new
//! end after its batch is durable, so a record a consumer processed can never disappear in a
//! crash and its offset never be given to another record.

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::segment::{self, Frame};
use crate::{LogError, LogPosition, LogRecord};

/// One segment as readers see it.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub base: i64,
    pub path: PathBuf,
    /// Durable bytes (header included).
    pub len: u64,
    /// Offset after the segment's last durable record.
    pub next: i64,
    /// Sparse `(offset, byte position)` index.
    pub index: Vec<(i64, u64)>,
}

/// One partition of a topic.
#[derive(Debug)]
pub(super) struct Partition {
    pub topic: String,
    pub id: i32,
    pub dir: PathBuf,
    /// Segments oldest first; the last one is written to. Updated by the writer only.
    segments: Mutex<Vec<Segment>>,
}

impl Partition {
    /// Opens the partition in `dir`, recovering its last segment; creates the first segment
    /// of a new partition.
    pub fn open(topic: &str, id: i32, dir: PathBuf) -> Result<Self, LogError> {
        let ctx = |e: std::io::Error| LogError::Config(format!("partition directory {}: {e}", dir.display()));
        fs::create_dir_all(&dir).map_err(ctx)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ctx)? {
            let name = entry.map_err(ctx)?.file_name();
            let name = name.to_string_lossy();
            match segment::parse_file_name(&name) {
                Some(base) => bases.push(base),
                None if name.ends_with(".tmp") => {}
                None => return Err(LogError::Config(format!("unexpected file {} in the event log", dir.join(&*name).display()))),
            }
        }
        bases.sort_unstable();
        if bases.is_empty() {
            segment::create(&dir, 0).map_err(ctx)?;
            bases.push(0);
        }
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        for (i, base) in bases.iter().enumerate() {
            let path = dir.join(segment::file_name(*base));
            let scanned = segment::scan(&path, *base, i + 1 == bases.len()).map_err(LogError::Config)?;
            if let Some(prev) = segments.last()
                && prev.next != *base
            {
                return Err(LogError::Config(format!(
                    "segment {} starts at offset {base} but the previous one ends at {}",
                    path.display(),
                    prev.next
                )));
            }
            segments.push(Segment { base: *base, path, len: scanned.len, next: scanned.next, index: scanned.index });
        }
        Ok(Self { topic: topic.to_owned(), id, dir, segments: Mutex::new(segments) })
    }

    fn view(&self) -> MutexGuard<'_, Vec<Segment>> {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The offset the next record will get, as far as readers know (the durable end).
    pub fn end(&self) -> i64 {
        self.view().last().map_or(0, |s| s.next)
    }

    /// The offset of the oldest record kept (segments are never deleted today: 0 or the
    /// first segment's base).
    pub fn start(&self) -> i64 {
        self.view().first().map_or(0, |s| s.base)
    }

    /// The active segment (the writer opens it for appending).
    pub fn active(&self) -> Option<Segment> {
        self.view().last().cloned()
    }

    /// Publishes what the writer made durable: the active segment's new end and index
    /// entries, then any segment it rolled to.
    pub fn publish(&self, len: u64, next: i64, index: &[(i64, u64)], rolled: Option<Segment>) {
        let mut view = self.view();
        if let Some(active) = view.last_mut() {
            active.len = len;
            active.next = next;
            active.index.extend_from_slice(index);
        }
        view.extend(rolled);
    }

    /// Up to `max_records` durable records from offset `from` (or the first kept one), within
    /// about `max_bytes`. Blocking: call from a blocking thread.
    pub fn read(&self, from: i64, max_records: usize, max_bytes: u64) -> Result<Vec<LogRecord>, LogError> {
        let Some(segment) = self.locate(from) else { return Ok(Vec::new()) };
        let start = segment.index.iter().rev().find(|(offset, _)| *offset <= from).map_or(segment::HEADER_LEN, |(_, pos)| *pos);
        let ctx = |e: std::io::Error| LogError::Unavailable(format!("reading segment {}: {e}", segment.path.display()));
        let mut file = File::open(&segment.path).map_err(ctx)?;
        file.seek(SeekFrom::Start(start)).map_err(ctx)?;
        let mut reader = BufReader::with_capacity(64 * 1024, file.take(segment.len.saturating_sub(start)));
        let (mut records, mut bytes) = (Vec::new(), 0u64);
        while records.len() < max_records && bytes < max_bytes {
            match segment::read_frame(&mut reader).map_err(ctx)? {
                Frame::End => break,
                Frame::Record(body, size) if body.offset >= from => {
                    bytes += size;
                    records.push(self.to_record(body));
                }
                Frame::Record(..) => {}
                Frame::Torn | Frame::Bad(_) => {
                    return Err(LogError::Unavailable(format!("segment {} is damaged below offset {}", segment.path.display(), segment.next)));
                }
            }
        }
        Ok(records)
    }

    /// The segment holding `from`, or the next record after it; `None` at the end.
    fn locate(&self, from: i64) -> Option<Segment> {
        let view = self.view();
        view.iter().find(|s| s.next > from && s.next > s.base).cloned()
    }

    fn to_record(&self, body: segment::Body) -> LogRecord {
        LogRecord {
            position: LogPosition { topic: self.topic.clone(), partition: self.id, offset: body.offset },
            key: Some(body.key),
            payload: body.payload,
            headers: body.headers,
            timestamp_ms: Some(body.timestamp_ms),
        }
    }
}

/// Whether `name` is a legal topic name (Kafka's rule: 1..=249 of `[a-zA-Z0-9._-]`, not `.`
/// or `..`), which also makes it a safe directory name.
pub(super) fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The directory of partition `id` of a topic.
pub(super) fn partition_dir(topic_dir: &Path, id: i32) -> PathBuf {
    topic_dir.join(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(valid_topic("audit.events.v1"));
        assert!(valid_topic("audit.events.v1.tenant-a_b"));
        assert!(!valid_topic(""));
        assert!(!valid_topic(".."));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic(&"x".repeat(250)));
    }
}
