//! The embedded [`EventLog`]: append-only segment files in a data directory, the source of
//! truth in standalone mode.
//!
//! # Layout
//! ```text
//! <dir>/FORMAT                          "auditlog-event-log 1"
//! <dir>/LOCK                            held (flock) by the one process that has the log open
//! <dir>/topics/<topic>/partitions       partition count, written atomically at creation
//! <dir>/topics/<topic>/<p>/<base>.seg   segment files, named by their first offset
//! <dir>/groups/<hex(group)>.json        a consumer group's committed positions
//! ```
//!
//! # Semantics (as the seam's, with these specifics)
//! - **Partitioning.** A record goes to partition `fnv1a32(key) % partitions` of its topic;
//!   offsets count from 0 per partition and the whole partition stays in append order.
//! - **Durability.** [`EventLog::append`] resolves after the record was written and fsynced,
//!   through a group-commit writer ([`writer`]): concurrent appends share one fsync per batch.
//!   After a failed write or fsync the log refuses every further append (the page cache can no
//!   longer be trusted) until it is reopened.
//! - **Visibility.** Consumers and tails see a record only once it is durable.
//! - **Groups.** A group's committed positions are a small file rewritten atomically on each
//!   commit. Every consumer of a group reads every partition (standalone runs one consumer
//!   per group; there is no rebalancing).
//! - **Crash safety.** On open, a torn or zeroed tail of a partition's last segment (an
//!   unacknowledged write cut by a crash) is truncated; any other damage, or a file of a newer
//!   format, fails the open with an error naming the file.

mod consumer;
pub mod files;
mod partition;
mod segment;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use self::consumer::{FileConsumer, Groups};
use self::partition::Partition;
use self::writer::{Command, Writer};
use super::{EventLog, LogConsumer, LogError, LogPosition, LogTail, OutgoingRecord, TopicSelector, Watermarks};

/// Kind written into the log directory's format file.
pub const FORMAT_KIND: &str = "auditlog-event-log";
/// Format version of the log directory.
pub const FORMAT_VERSION: u32 = 1;
/// Largest record accepted, framed (Kafka's default `message.max.bytes` is about 1 MiB).
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// Settings of the file event log.
#[derive(Debug, Clone)]
pub struct FileLogConfig {
    /// Directory holding the log.
    pub dir: PathBuf,
    /// Partitions of topics created by an append when `auto_create_topics` is on.
    pub default_partitions: i32,
    /// Whether appending to a missing topic creates it (like Kafka's
    /// `auto.create.topics.enable`); off by default, so a typo is an error.
    pub auto_create_topics: bool,
    /// Size after which a partition rolls to a new segment file (checked between batches).
    pub segment_bytes: u64,
    /// Appends that may wait for the writer; a full queue makes `append` wait (backpressure).
    pub queue_capacity: usize,
}

impl FileLogConfig {
    /// Defaults for a log in `dir`: 4 partitions, no auto-creation, 128 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), default_partitions: 4, auto_create_topics: false, segment_bytes: 128 << 20, queue_capacity: 65_536 }
    }
}

/// The state shared by the log, its writer and its consumers.
pub(super) struct Shared {
    config: FileLogConfig,
    topics: RwLock<HashMap<String, Arc<Vec<Arc<Partition>>>>>,
    /// Bumped after every published batch and topic creation; consumers wait on it.
    changes: watch::Sender<u64>,
    /// Why the writer stopped accepting appends, if it did.
    failed: Mutex<Option<String>>,
    groups: Groups,
    /// Batches written (each one fsync per touched partition): with `appends`, shows how well
    /// group commit amortizes fsyncs.
    batches: AtomicU64,
}

impl Shared {
    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn fail(&self, reason: &str) {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| reason.to_owned());
    }

    fn topic(&self, name: &str) -> Option<Arc<Vec<Arc<Partition>>>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    fn topic_names(&self) -> Vec<String> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    fn topics_dir(&self) -> PathBuf {
        self.config.dir.join("topics")
    }

    /// Creates a topic unless it exists (blocking). Creation is idempotent on disk: the
    /// partition count file is written last, so a crash midway is finished by the next try.
    fn create_topic(&self, name: &str, partitions: i32) -> Result<(), LogError> {
        if !partition::valid_topic(name) {
            return Err(LogError::Rejected(format!("illegal topic name {name:?}")));
        }
        if !(1..=1024).contains(&partitions) {
            return Err(LogError::Rejected(format!("topic {name}: partitions must be 1..=1024, got {partitions}")));
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if topics.contains_key(name) {
            return Ok(());
        }
        let dir = self.topics_dir().join(name);
        let opened = (0..partitions)
            .map(|p| Partition::open(name, p, partition::partition_dir(&dir, p)).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = |e: std::io::Error| LogError::Unavailable(format!("creating topic {}: {e}", dir.display()));
        files::sync_dir(&dir).map_err(ctx)?;
        files::write_atomic(&dir.join("partitions"), format!("{partitions}\n").as_bytes()).map_err(ctx)?;
        files::sync_dir(&self.topics_dir()).map_err(ctx)?;
        topics.insert(name.to_owned(), Arc::new(opened));
        drop(topics);
        self.changes.send_modify(|generation| *generation += 1);
        Ok(())
    }
}

/// The event log in a local directory.
pub struct FileEventLog {
    shared: Arc<Shared>,
    /// Appends queue here for the writer thread; bounded, so a slow disk pushes back.
    tx: mpsc::Sender<Command>,
    in_flight: Arc<AtomicUsize>,
    /// Held for the log's lifetime: a second process opening the directory is refused.
    _lock: File,
}

impl std::fmt::Debug for FileEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEventLog").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl FileEventLog {
    /// Opens (or creates) the log in `config.dir`, recovering every partition, and starts the
    /// writer thread. Blocking: it reads every segment once (call it before serving).
    pub fn open(config: FileLogConfig) -> Result<Self, LogError> {
        let dir = config.dir.clone();
        files::check_format(&dir, FORMAT_KIND, FORMAT_VERSION).map_err(LogError::Config)?;
        let lock = lock_dir(&dir)?;
        let topics = load_topics(&dir.join("topics"))?;
        let groups = Groups::new(dir.join("groups")).map_err(LogError::Config)?;
        let shared = Arc::new(Shared {
            config,
            topics: RwLock::new(topics),
            changes: watch::channel(0).0,
            failed: Mutex::new(None),
            groups,
            batches: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(shared.config.queue_capacity.max(1));
        let writer = Writer::new(Arc::clone(&shared), rx);
        std::thread::Builder::new()
            .name("auditlog-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::Config(format!("starting the log writer: {e}")))?;
        Ok(Self { shared, tx, in_flight: Arc::new(AtomicUsize::new(0)), _lock: lock })
    }

    /// Opens the log in `dir` with default settings.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self, LogError> {
        Self::open(FileLogConfig::new(dir.as_ref()))
    }

    /// Group-commit batches written so far (each costs one fsync per partition it touched).
    pub fn batches_written(&self) -> u64 {
        self.shared.batches.load(Ordering::Relaxed)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.config.dir
    }

    async fn partition_for(&self, topic: &str, key: &str) -> Result<Arc<Partition>, LogError> {
        let partitions = match self.shared.topic(topic) {
            Some(p) => p,
            None if self.shared.config.auto_create_topics => {
                self.ensure_topic(topic, self.shared.config.default_partitions).await?;
                self.shared.topic(topic).ok_or_else(|| LogError::Unavailable(format!("topic {topic} vanished")))?
            }
            None => return Err(LogError::Rejected(format!("unknown topic {topic}"))),
        };
        let index = fnv1a32(key.as_bytes()) as usize % partitions.len().max(1);
        partitions.get(index).cloned().ok_or_else(|| LogError::Rejected(format!("topic {topic} has no partitions")))
    }
}

/// FNV-1a, 32 bits: a stable hash of the key, the same in every version and process.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::Config(format!("{}: {e}", path.display())))?;
    file.try_lock()
        .map_err(|e| LogError::Config(format!("{} is held by another process ({e}): is auditlog already running on this data dir?", path.display())))?;
    Ok(file)
}

type Topics = HashMap<String, Arc<Vec<Arc<Partition>>>>;

/// Opens every complete topic under `topics_dir`.
fn load_topics(topics_dir: &Path) -> Result<Topics, LogError> {
    let ctx = |e: std::io::Error| LogError::Config(format!("{}: {e}", topics_dir.display()));
    std::fs::create_dir_all(topics_dir).map_err(ctx)?;
    let mut topics = HashMap::new();
    for entry in std::fs::read_dir(topics_dir).map_err(ctx)? {
        let entry = entry.map_err(ctx)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        let count_file = dir.join("partitions");
        let count = match std::fs::read_to_string(&count_file) {
            Ok(text) => text.trim().parse::<i32>().map_err(|e| LogError::Config(format!("{}: {e}", count_file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(topic = %dir.display(), "skipping a topic whose creation never completed");
                continue;
            }
            Err(e) => return Err(LogError::Config(format!("{}: {e}", count_file.display()))),
        };
        if !partition::valid_topic(&name) {
            return Err(LogError::Config(format!("{} is not a topic directory", dir.display())));
        }
        let partitions = (0..count)
            .map(|p| Partition::open(&name, p, partition::partition_dir(&dir, p)).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        topics.insert(name, Arc::new(partitions));
    }
    Ok(topics)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, LogError> + Send + 'static) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LogError::Unavailable(format!("blocking task failed: {e}")))?
}

#[async_trait]
impl EventLog for FileEventLog {
    async fn append(&self, record: OutgoingRecord) -> Result<LogPosition, LogError> {
        let partition = self.partition_for(&record.topic, &record.key).await?;
        let size = segment::frame_len(&record);
        if size > MAX_RECORD_BYTES {
            return Err(LogError::Rejected(format!("record of {size} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")));
        }
        if let Some(reason) = self.shared.failure() {
            return Err(LogError::Unavailable(reason));
        }
        let timestamp_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let (reply, answer) = oneshot::channel();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _pending = DecrementOnDrop(&self.in_flight);
        // Enqueue synchronously while the queue has room: an awaited send may yield (tokio's
        // cooperative budget) and let a later append of the same caller overtake this one.
        let stopped = |_| LogError::Unavailable("the log writer stopped".into());
        match self.tx.try_send(Command::Append { partition, record, timestamp_ms, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(command)) => self.tx.send(command).await.map_err(stopped)?,
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(LogError::Unavailable("the log writer stopped".into())),
        }
        answer.await.map_err(|_| LogError::Unavailable("the log writer stopped before answering".into()))?
    }

    async fn consume(&self, group: &str, topics: TopicSelector) -> Result<Box<dyn LogConsumer>, LogError> {
        let shared = Arc::clone(&self.shared);
        let group = group.to_owned();
        let consumer = blocking(move || FileConsumer::for_group(shared, &group, topics)).await?;
        Ok(Box::new(consumer))
    }

    async fn tail(&self, topics: &[String]) -> Result<Box<dyn LogTail>, LogError> {
        Ok(Box::new(FileConsumer::tail(Arc::clone(&self.shared), topics)?))
    }

    async fn tail_from(&self, from: &LogPosition) -> Result<Box<dyn LogTail>, LogError> {
        Ok(Box::new(FileConsumer::tail_from(Arc::clone(&self.shared), from)?))
    }

    async fn check_ready(&self) -> Result<(), LogError> {
        match self.shared.failure() {
            Some(reason) => Err(LogError::Unavailable(reason)),
            None if self.tx.is_closed() => Err(LogError::Unavailable("the log writer stopped".into())),
            None => Ok(()),
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        let (done, finished) = oneshot::channel();
        let wait = async {
            self.tx.send(Command::Flush(done)).await.map_err(|_| LogError::Unavailable("the log writer stopped".into()))?;
            finished.await.map_err(|_| LogError::Unavailable("the log writer stopped".into()))
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| LogError::Unavailable(format!("appends still pending after {timeout:?}")))?
    }

    async fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(), LogError> {
        let shared = Arc::clone(&self.shared);
        let name = name.to_owned();
        blocking(move || shared.create_topic(&name, partitions)).await
    }

    async fn watermarks(&self, topics: &TopicSelector) -> Result<Vec<Watermarks>, LogError> {
        let names: Vec<String> = match topics {
            TopicSelector::Topics(names) => names.clone(),
            TopicSelector::Pattern(pattern) => {
                let re = consumer::topic_pattern(pattern)?;
                self.shared.topic_names().into_iter().filter(|t| re.is_match(t)).collect()
            }
        };
        let mut out = Vec::new();
        for name in names {
            for p in self.shared.topic(&name).iter().flat_map(|ps| ps.iter()) {
                out.push(Watermarks { topic: name.clone(), partition: p.id, low: p.start(), high: p.end() });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    fn pending(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioning_hash_is_stable() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }
}
