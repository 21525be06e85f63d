//! Redrive: sends dead letters back to the topic they came from, once the cause is fixed
//! (`auditlog dlq redrive`).
//!
//! Each dead letter is re-appended to its `dlq.origin.topic` with its original key, value
//! and headers (the `dlq.*` ones removed), so every sink's processor reads it again like a
//! new record. The sinks' writes are idempotent by `(tenant_id, id)`: a sink that had
//! written the event already keeps its one copy, so a redrive never duplicates an event in a
//! read model. Progress is committed in the redrive's own consumer group: a second run sends
//! only what arrived in the dead-letter topic since. A crash between an append and its
//! commit sends that letter again on the next run, which the sinks absorb the same way. A
//! dry run reads from the same position but sends and commits nothing.

use std::collections::HashMap;
use std::time::Duration;

use auditlog_seams::{EventLog, LogError, LogPosition, LogRecord, OutgoingRecord, TopicSelector};

use crate::dlq;

/// What to redrive, and how.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// The dead-letter topic read.
    pub dlq_topic: String,
    /// Consumer group keeping the redrive's position (one per filter, so that redriving one
    /// sink's letters does not mark the others done).
    pub group: String,
    /// Only letters of this sink (`dlq.sink`).
    pub sink: Option<String>,
    /// Only letters of this reason class (`dlq.reason`: `decode`, `rejected`).
    pub reason: Option<String>,
    /// Stop after sending this many.
    pub limit: Option<u64>,
    /// Print what would be sent; send and commit nothing.
    pub dry_run: bool,
    /// Stop once no letter arrived for this long (partitions redriven earlier send none).
    pub idle: Duration,
}

/// A dead letter, as read back.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Where the letter is in the dead-letter topic.
    pub position: LogPosition,
    /// `dlq.sink`.
    pub sink: String,
    /// `dlq.reason`.
    pub reason: String,
    /// `dlq.error`.
    pub error: String,
    /// `dlq.origin.*`: where the record was first appended.
    pub origin: Option<LogPosition>,
    /// The record to send back: original topic, key, value and headers.
    pub record: Option<OutgoingRecord>,
}

/// What the redrive did with one letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sent back to its origin topic.
    Sent,
    /// Would be sent (dry run).
    WouldSend,
    /// Passed over: another sink or reason than asked.
    Filtered,
    /// Cannot be redriven: no origin topic (or the dead-letter topic itself).
    Unusable,
}

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Letters read.
    pub read: u64,
    /// Letters sent (or, in a dry run, that would be).
    pub sent: u64,
    /// Letters passed over by the filters.
    pub filtered: u64,
    /// Letters without a usable origin.
    pub unusable: u64,
}

/// Commit after this many handled letters (and at the end): a crash re-sends at most these.
const COMMIT_EVERY: usize = 100;

/// Parses a letter read from the dead-letter topic.
pub fn parse(record: &LogRecord, dlq_topic: &str) -> Letter {
    let header = |name: &str| record.header(name).map(|v| String::from_utf8_lossy(v).into_owned());
    let origin = match (header(dlq::ORIGIN_TOPIC), header(dlq::ORIGIN_PARTITION), header(dlq::ORIGIN_OFFSET)) {
        (Some(topic), Some(p), Some(o)) if !topic.is_empty() && topic != dlq_topic => {
            p.parse().ok().zip(o.parse().ok()).map(|(partition, offset)| LogPosition { topic, partition, offset })
        }
        _ => None,
    };
    let resend = origin.as_ref().map(|o| OutgoingRecord {
        topic: o.topic.clone(),
        key: record.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        payload: record.payload.clone(),
        headers: record.headers.iter().filter(|(k, _)| !k.starts_with("dlq.")).cloned().collect(),
    });
    Letter {
        position: record.position.clone(),
        sink: header(dlq::SINK).unwrap_or_default(),
        reason: header(dlq::REASON).unwrap_or_default(),
        error: header(dlq::ERROR).unwrap_or_default(),
        origin,
        record: resend,
    }
}

/// Redrives the letters present when it starts; `each` sees every letter and what was done.
pub async fn redrive(log: &dyn EventLog, options: &RedriveOptions, mut each: impl FnMut(&Letter, Action)) -> Result<RedriveReport, LogError> {
    let mut report = RedriveReport::default();
    let dlq = TopicSelector::Topics(vec![options.dlq_topic.clone()]);
    let mut ends: HashMap<i32, i64> = log.watermarks(&dlq).await?.into_iter().filter(|w| w.high > w.low).map(|w| (w.partition, w.high)).collect();
    if ends.is_empty() || options.limit == Some(0) {
        return Ok(report);
    }
    let mut consumer = log.consume(&options.group, dlq).await?;
    let mut done: Vec<LogPosition> = Vec::new();
    let result = async {
        while !ends.is_empty() && options.limit.is_none_or(|limit| report.sent < limit) {
            let Ok(record) = tokio::time::timeout(options.idle, consumer.next()).await else { break };
            let record = record?;
            let partition = record.position.partition;
            match ends.get(&partition).copied() {
                None => continue,
                Some(end) if record.position.offset >= end => {
                    ends.remove(&partition);
                    continue;
                }
                Some(end) if record.position.offset + 1 >= end => {
                    ends.remove(&partition);
                }
                Some(_) => {}
            }
            let letter = parse(&record, &options.dlq_topic);
            let action = handle(log, options, &letter).await?;
            report.read += 1;
            match action {
                Action::Sent | Action::WouldSend => report.sent += 1,
                Action::Filtered => report.filtered += 1,
                Action::Unusable => report.unusable += 1,
            }
            each(&letter, action);
            done.push(letter.position);
            if !options.dry_run && done.len() >= COMMIT_EVERY {
                consumer.commit(&std::mem::take(&mut done)).await?;
            }
        }
        Ok::<(), LogError>(())
    }
    .await;
    if !options.dry_run && !done.is_empty() {
        consumer.commit(&done).await?;
    }
    result.map(|()| report)
}

async fn handle(log: &dyn EventLog, options: &RedriveOptions, letter: &Letter) -> Result<Action, LogError> {
    if options.sink.as_ref().is_some_and(|s| *s != letter.sink) || options.reason.as_ref().is_some_and(|r| *r != letter.reason) {
        return Ok(Action::Filtered);
    }
    let Some(record) = &letter.record else { return Ok(Action::Unusable) };
    if options.dry_run {
        return Ok(Action::WouldSend);
    }
    log.append(record.clone()).await?;
    Ok(Action::Sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::{Reason, letter};

    #[test]
    fn the_letter_goes_back_as_it_came_without_dlq_headers() {
        let original = LogRecord {
            position: LogPosition { topic: "audit.events.v1.acme".into(), partition: 1, offset: 77 },
            key: Some(b"acme".to_vec()),
            payload: vec![0, 1, 2, 3],
            headers: vec![("event_id".into(), b"e1".to_vec()), ("tenant_id".into(), b"acme".to_vec())],
            timestamp_ms: Some(1_700_000_000_000),
        };
        let sent = letter(&original, "audit.events.v1.dlq", "opensearch", Reason::Rejected, "blocked");
        let read = LogRecord {
            position: LogPosition { topic: sent.topic.clone(), partition: 0, offset: 5 },
            key: Some(sent.key.into_bytes()),
            payload: sent.payload,
            headers: sent.headers,
            timestamp_ms: None,
        };
        let parsed = parse(&read, "audit.events.v1.dlq");
        assert_eq!((parsed.sink.as_str(), parsed.reason.as_str(), parsed.error.as_str()), ("opensearch", "rejected", "blocked"));
        assert_eq!(parsed.origin, Some(original.position.clone()));
        let back = parsed.record.expect("redrivable");
        assert_eq!(back.topic, "audit.events.v1.acme");
        assert_eq!(back.key, "acme");
        assert_eq!(back.payload, original.payload);
        assert_eq!(back.headers, original.headers, "the dlq.* headers are removed, the others kept in order");
    }

    #[test]
    fn a_letter_without_origin_is_unusable() {
        let read = LogRecord {
            position: LogPosition { topic: "audit.events.v1.dlq".into(), partition: 0, offset: 0 },
            key: None,
            payload: vec![],
            headers: vec![(dlq::ORIGIN_TOPIC.into(), b"audit.events.v1.dlq".to_vec())],
            timestamp_ms: None,
        };
        assert!(parse(&read, "audit.events.v1.dlq").record.is_none());
    }
}
