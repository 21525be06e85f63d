//! Consumers and tails of the file event log, and the durable committed positions of
//! consumer groups.
//!
//! A consumer reads every partition of its topics from the group's committed positions (or
//! from offset 0), in batches on a blocking thread, and waits on the log's change signal when
//! it has read everything durable. A pattern consumer also picks up topics created later.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::partition::Partition;
use super::{Shared, blocking, files};
use crate::{LogConsumer, LogError, LogPosition, LogRecord, LogTail, PartitionLag, TopicSelector};

/// Records read from one partition per fetch: larger means fewer thread hops, more memory.
const FETCH_RECORDS: usize = 1_000;
/// Bytes read from one partition per fetch, for the same trade-off.
const FETCH_BYTES: u64 = 1 << 20;

/// Next offset to read per `(topic, partition)`.
type Committed = BTreeMap<(String, i32), i64>;

/// The committed positions of every consumer group, loaded on first use.
pub(super) struct Groups {
    dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Mutex<Committed>>>>,
}

#[derive(Serialize, Deserialize)]
struct GroupFile {
    group: String,
    positions: Vec<GroupPosition>,
}

#[derive(Serialize, Deserialize)]
struct GroupPosition {
    topic: String,
    partition: i32,
    next: i64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Groups {
    pub(super) fn new(dir: PathBuf) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { dir, loaded: Mutex::new(HashMap::new()) })
    }

    fn path(&self, group: &str) -> PathBuf {
        let mut name = String::with_capacity(group.len() * 2 + 5);
        for b in group.bytes() {
            let _ = write!(name, "{b:02x}");
        }
        self.dir.join(name + ".json")
    }

    /// The group's committed positions (blocking on first use: reads its file).
    fn get(&self, group: &str) -> Result<Arc<Mutex<Committed>>, LogError> {
        let mut loaded = lock(&self.loaded);
        if let Some(committed) = loaded.get(group) {
            return Ok(Arc::clone(committed));
        }
        let path = self.path(group);
        let committed = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: GroupFile = serde_json::from_slice(&bytes)
                    .map_err(|e| LogError::Config(format!("committed positions {} are unreadable: {e}", path.display())))?;
                file.positions.into_iter().map(|p| ((p.topic, p.partition), p.next)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Committed::new(),
            Err(e) => return Err(LogError::Unavailable(format!("{}: {e}", path.display()))),
        };
        let committed = Arc::new(Mutex::new(committed));
        loaded.insert(group.to_owned(), Arc::clone(&committed));
        Ok(committed)
    }

    /// Records and durably persists new positions of a group (blocking).
    fn commit(&self, group: &str, committed: &Mutex<Committed>, next: Vec<((String, i32), i64)>) -> Result<(), LogError> {
        let mut positions = lock(committed);
        positions.extend(next);
        let file = GroupFile {
            group: group.to_owned(),
            positions: positions.iter().map(|((topic, partition), next)| GroupPosition { topic: topic.clone(), partition: *partition, next: *next }).collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| LogError::Unavailable(e.to_string()))?;
        let path = self.path(group);
        files::write_atomic(&path, &bytes).map_err(|e| LogError::Unavailable(format!("committing to {}: {e}", path.display())))
    }
}

/// Which topics a reader follows.
enum Selector {
    Topics(Vec<String>),
    Pattern(regex::Regex),
    /// A tail: the topics given at open, nothing else.
    Fixed,
}

/// A topic pattern as Kafka applies it: a regular expression anchored at the start.
pub(super) fn topic_pattern(pattern: &str) -> Result<regex::Regex, LogError> {
    let anchored = if pattern.starts_with('^') { pattern.to_owned() } else { format!("^{pattern}") };
    regex::Regex::new(&anchored).map_err(|e| LogError::Config(format!("topic pattern {pattern:?}: {e}")))
}

/// A consumer-group member or a tail.
pub(super) struct FileConsumer {
    shared: Arc<Shared>,
    group: Option<(String, Arc<Mutex<Committed>>)>,
    selector: Selector,
    assigned: BTreeMap<(String, i32), (Arc<Partition>, i64)>,
    buffer: VecDeque<LogRecord>,
    changes: watch::Receiver<u64>,
}

impl FileConsumer {
    /// A member of `group` reading `topics` from the group's committed positions (blocking).
    pub(super) fn for_group(shared: Arc<Shared>, group: &str, topics: TopicSelector) -> Result<Self, LogError> {
        let selector = match topics {
            TopicSelector::Topics(names) => Selector::Topics(names),
            TopicSelector::Pattern(p) => Selector::Pattern(topic_pattern(&p)?),
        };
        let committed = shared.groups.get(group)?;
        let changes = shared.changes.subscribe();
        let mut consumer = Self {
            shared,
            group: Some((group.to_owned(), committed)),
            selector,
            assigned: BTreeMap::new(),
            buffer: VecDeque::new(),
            changes,
        };
        consumer.assign();
        Ok(consumer)
    }

    /// A reader of `topics` from their current durable end.
    pub(super) fn tail(shared: Arc<Shared>, topics: &[String]) -> Result<Self, LogError> {
        let changes = shared.changes.subscribe();
        let mut assigned = BTreeMap::new();
        for topic in topics {
            let partitions = shared.topic(topic).ok_or_else(|| LogError::Rejected(format!("unknown topic {topic}")))?;
            for p in partitions.iter() {
                assigned.insert((topic.clone(), p.id), (Arc::clone(p), p.end()));
            }
        }
        Ok(Self { shared, group: None, selector: Selector::Fixed, assigned, buffer: VecDeque::new(), changes })
    }

    /// A reader of the partition of `from`, from `from.offset` (or its oldest record) on.
    pub(super) fn tail_from(shared: Arc<Shared>, from: &LogPosition) -> Result<Self, LogError> {
        let changes = shared.changes.subscribe();
        let partitions = shared.topic(&from.topic).ok_or_else(|| LogError::Rejected(format!("unknown topic {}", from.topic)))?;
        let partition = partitions
            .iter()
            .find(|p| p.id == from.partition)
            .ok_or_else(|| LogError::Rejected(format!("topic {} has no partition {}", from.topic, from.partition)))?;
        let assigned = BTreeMap::from([((from.topic.clone(), from.partition), (Arc::clone(partition), from.offset.max(partition.start())))]);
        Ok(Self { shared, group: None, selector: Selector::Fixed, assigned, buffer: VecDeque::new(), changes })
    }

    /// Adds the partitions of topics that appeared since the last look.
    fn assign(&mut self) {
        let names = match &self.selector {
            Selector::Fixed => return,
            Selector::Topics(names) => names.clone(),
            Selector::Pattern(re) => self.shared.topic_names().into_iter().filter(|t| re.is_match(t)).collect(),
        };
        for topic in names {
            if self.assigned.keys().any(|(t, _)| *t == topic) {
                continue;
            }
            let Some(partitions) = self.shared.topic(&topic) else { continue };
            let committed = self.group.as_ref().map(|(_, c)| lock(c).clone()).unwrap_or_default();
            for p in partitions.iter() {
                let key = (topic.clone(), p.id);
                let from = committed.get(&key).copied().unwrap_or(0);
                self.assigned.insert(key, (Arc::clone(p), from));
            }
        }
    }

    /// Reads what is durable past the current positions into the buffer; how many records.
    async fn fetch(&mut self) -> Result<usize, LogError> {
        let due: Vec<(Arc<Partition>, i64)> =
            self.assigned.values().filter(|(p, from)| p.end() > *from).map(|(p, from)| (Arc::clone(p), *from)).collect();
        if due.is_empty() {
            return Ok(0);
        }
        let batches = blocking(move || {
            due.iter().map(|(p, from)| p.read(*from, FETCH_RECORDS, FETCH_BYTES)).collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let mut count = 0;
        for record in batches.into_iter().flatten() {
            let key = (record.position.topic.clone(), record.position.partition);
            if let Some((_, next)) = self.assigned.get_mut(&key) {
                *next = record.position.offset + 1;
            }
            self.buffer.push_back(record);
            count += 1;
        }
        Ok(count)
    }

    async fn next_record(&mut self) -> Result<LogRecord, LogError> {
        loop {
            if let Some(record) = self.buffer.pop_front() {
                return Ok(record);
            }
            self.changes.borrow_and_update();
            self.assign();
            if self.fetch().await? == 0 {
                self.changes.changed().await.map_err(|_| LogError::Unavailable("the event log was closed".into()))?;
            }
        }
    }
}

#[async_trait]
impl LogConsumer for FileConsumer {
    async fn next(&mut self) -> Result<LogRecord, LogError> {
        self.next_record().await
    }

    async fn commit(&mut self, positions: &[LogPosition]) -> Result<(), LogError> {
        let Some((group, committed)) = self.group.clone() else { return Ok(()) };
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        for p in positions {
            let slot = next.entry((p.topic.clone(), p.partition)).or_insert(p.offset + 1);
            *slot = (*slot).max(p.offset + 1);
        }
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.groups.commit(&group, &committed, next.into_iter().collect())).await
    }

    async fn lag(&mut self) -> Result<Vec<PartitionLag>, LogError> {
        let mut buffered: HashMap<(&str, i32), i64> = HashMap::new();
        for r in &self.buffer {
            buffered.entry((r.position.topic.as_str(), r.position.partition)).or_insert(r.position.offset);
        }
        Ok(self
            .assigned
            .iter()
            .map(|((topic, partition), (p, next))| PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                position: buffered.get(&(topic.as_str(), *partition)).copied().unwrap_or(*next),
                high: p.end(),
            })
            .collect())
    }
}

#[async_trait]
impl LogTail for FileConsumer {
    async fn next(&mut self) -> Result<LogRecord, LogError> {
        self.next_record().await
    }
}
