//! The batch being gathered: decoded events with the records they came from, plus the
//! positions of records that need no write (skipped, or dead-lettered when read).

use std::time::Instant;

use auditlog_seams::{LogPosition, LogRecord, StoredEvent};

use crate::config::BatchLimits;

/// Events waiting to be written, and positions waiting to be committed with them.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events to write, with their log positions.
    pub events: Vec<StoredEvent>,
    /// The record of each event, same order (kept to dead-letter it if the sink refuses it).
    pub records: Vec<LogRecord>,
    /// Positions that need no write but must be committed with this batch.
    pub done: Vec<LogPosition>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    /// Adds a decoded event and the record it came from.
    pub fn push(&mut self, record: LogRecord, stored: StoredEvent) {
        self.bytes += record.payload.len();
        self.started.get_or_insert_with(Instant::now);
        self.records.push(record);
        self.events.push(stored);
    }

    /// Adds a position to commit with the batch (a skipped or dead-lettered record).
    pub fn push_done(&mut self, position: LogPosition) {
        self.started.get_or_insert_with(Instant::now);
        self.done.push(position);
    }

    /// True when nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.done.is_empty()
    }

    /// True when the count or bytes limit is reached: write now.
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.events.len() + self.done.len() >= limits.max_events || self.bytes >= limits.max_bytes
    }

    /// When the age limit cuts this batch, if it holds anything.
    pub fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.started.map(|s| s + limits.max_age)
    }

    /// Every position of the batch (written, skipped and dead-lettered), to commit.
    pub fn positions(&self) -> Vec<LogPosition> {
        self.events.iter().map(|e| e.position.clone()).chain(self.done.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn position(offset: i64) -> LogPosition {
        LogPosition { topic: "t".into(), partition: 0, offset }
    }

    #[test]
    fn full_by_count_or_bytes_and_aged_from_the_first_entry() {
        let limits = BatchLimits { max_events: 3, max_bytes: 1 << 20, max_age: Duration::from_millis(50) };
        let mut batch = Batch::default();
        assert!(batch.is_empty());
        assert_eq!(batch.deadline(&limits), None);
        batch.push_done(position(1));
        let deadline = batch.deadline(&limits).expect("a deadline once non-empty");
        batch.push_done(position(2));
        assert_eq!(batch.deadline(&limits), Some(deadline), "the first entry starts the clock");
        assert!(!batch.is_full(&limits));
        batch.push_done(position(3));
        assert!(batch.is_full(&limits));
        assert_eq!(batch.positions().len(), 3);
    }
}
