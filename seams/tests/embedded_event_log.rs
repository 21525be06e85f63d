//! The EventLog conformance scenarios against the file event log, plus its crash-safety and
//! durability specifics: torn tails, corruption, newer formats, reopen, group commit.

mod common;
mod scenarios;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditlog_seams::event_log::embedded::{FileEventLog, FileLogConfig};
use auditlog_seams::{EventLog, OutgoingRecord, TopicSelector};
use common::{unique, within};
use futures::future::join_all;
use tempfile::TempDir;

fn open(dir: &Path) -> FileEventLog {
    FileEventLog::open_dir(dir).expect("log opens")
}

async fn log_with_topic(partitions: i32) -> (TempDir, Arc<dyn EventLog>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let topic = unique("conformance");
    log.ensure_topic(&topic, partitions).await.expect("topic created");
    (dir, Arc::new(log), topic)
}

fn record(topic: &str, key: &str, i: usize) -> OutgoingRecord {
    OutgoingRecord { topic: topic.into(), key: key.into(), payload: format!("payload-{i}").into_bytes(), headers: vec![("h".into(), vec![1, 2])] }
}

/// The single segment file of partition `p` of `topic`.
fn segment(dir: &Path, topic: &str, p: i32) -> PathBuf {
    dir.join("topics").join(topic).join(p.to_string()).join(format!("{:020}.seg", 0))
}

async fn append_n(log: &dyn EventLog, topic: &str, n: usize) {
    for r in join_all((0..n).map(|i| log.append(record(topic, "k", i)))).await {
        r.expect("append acknowledged");
    }
}

async fn read_n(log: &dyn EventLog, group: &str, topic: &str, n: usize) -> Vec<Vec<u8>> {
    let mut consumer = log.consume(group, TopicSelector::Topics(vec![topic.into()])).await.expect("consumer opens");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(within(10, "record read", consumer.next()).await.expect("record").payload);
    }
    out
}

#[tokio::test]
async fn append_then_consume_in_order() {
    let (_dir, log, topic) = log_with_topic(3).await;
    scenarios::event_log::append_then_consume_in_order(log, &topic).await;
}

#[tokio::test]
async fn per_key_ordering_across_keys() {
    let (_dir, log, topic) = log_with_topic(4).await;
    scenarios::event_log::per_key_ordering_across_keys(log, &topic).await;
}

#[tokio::test]
async fn commit_then_resume() {
    let (_dir, log, topic) = log_with_topic(1).await;
    scenarios::event_log::commit_then_resume(log, &topic).await;
}

#[tokio::test]
async fn tail_starts_at_the_end() {
    let (_dir, log, topic) = log_with_topic(3).await;
    scenarios::event_log::tail_starts_at_the_end(log, &topic).await;
}

#[tokio::test]
async fn tail_from_a_position() {
    let (_dir, log, topic) = log_with_topic(3).await;
    scenarios::event_log::tail_from_a_position(log, &topic).await;
}

#[tokio::test]
async fn append_to_missing_topic_fails() {
    let (_dir, log, _) = log_with_topic(1).await;
    scenarios::event_log::append_to_missing_topic_fails(log).await;
}

#[tokio::test]
async fn ensure_topic_is_idempotent() {
    let (_dir, log, _) = log_with_topic(1).await;
    scenarios::event_log::ensure_topic_is_idempotent(log).await;
}

#[tokio::test]
async fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.ensure_topic("t", 1).await.expect("topic");
    append_n(&log, "t", 10).await;
    drop(log);
    // A crash in the middle of writing an eleventh record: its frame claims more bytes than
    // the file holds.
    let path = segment(dir.path(), "t", 0);
    let mut bytes = std::fs::read(&path).expect("read segment");
    let len_before = bytes.len();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
    std::fs::write(&path, &bytes).expect("write torn tail");

    let log = open(dir.path());
    assert_eq!(std::fs::metadata(&path).expect("stat").len() as usize, len_before, "torn tail truncated");
    let position = log.append(record("t", "k", 10)).await.expect("append after recovery");
    assert_eq!(position.offset, 10, "offsets continue after the last whole record");
    let read = read_n(&log, "g", "t", 11).await;
    assert_eq!(read[10], b"payload-10".to_vec());
}

#[tokio::test]
async fn zeroed_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.ensure_topic("t", 1).await.expect("topic");
    append_n(&log, "t", 3).await;
    drop(log);
    let path = segment(dir.path(), "t", 0);
    let mut bytes = std::fs::read(&path).expect("read segment");
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&path, &bytes).expect("write zero tail");
    let log = open(dir.path());
    assert_eq!(log.append(record("t", "k", 3)).await.expect("append").offset, 3);
}

#[tokio::test]
async fn corruption_in_the_middle_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.ensure_topic("t", 1).await.expect("topic");
    append_n(&log, "t", 20).await;
    drop(log);
    let path = segment(dir.path(), "t", 0);
    let mut bytes = std::fs::read(&path).expect("read segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write corrupt segment");
    let err = FileEventLog::open_dir(dir.path()).expect_err("a corrupt segment is refused").to_string();
    assert!(err.contains(&path.display().to_string()), "error names the file: {err}");
    assert!(err.contains("corrupt"), "{err}");
}

#[tokio::test]
async fn newer_formats_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.ensure_topic("t", 1).await.expect("topic");
    append_n(&log, "t", 2).await;
    drop(log);
    let path = segment(dir.path(), "t", 0);
    let mut bytes = std::fs::read(&path).expect("read segment");
    bytes[8] = 99;
    std::fs::write(&path, &bytes).expect("write newer segment");
    let err = FileEventLog::open_dir(dir.path()).expect_err("a newer segment is refused").to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains("newer"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("FORMAT"), "auditlog-event-log 2\n").expect("write format");
    let err = FileEventLog::open_dir(dir.path()).expect_err("a newer directory is refused").to_string();
    assert!(err.contains("FORMAT") && err.contains("newer"), "{err}");
}

#[tokio::test]
async fn committed_positions_and_offsets_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.ensure_topic("t", 2).await.expect("topic");
    append_n(&log, "t", 5).await;
    let mut consumer = log.consume("g", TopicSelector::Topics(vec!["t".into()])).await.expect("consumer");
    let third = {
        let mut last = None;
        for _ in 0..3 {
            last = Some(within(10, "read", consumer.next()).await.expect("record"));
        }
        last.expect("three records")
    };
    consumer.commit(std::slice::from_ref(&third.position)).await.expect("commit");
    drop(consumer);
    drop(log);

    let log = open(dir.path());
    let position = log.append(record("t", "k", 5)).await.expect("append after reopen");
    assert_eq!(position.offset, 5, "offsets keep increasing across reopen");
    let mut consumer = log.consume("g", TopicSelector::Topics(vec!["t".into()])).await.expect("consumer");
    let next = within(10, "read", consumer.next()).await.expect("record");
    assert_eq!(next.position.offset, third.position.offset + 1, "resumes after the durable commit");
    let lag = consumer.lag().await.expect("lag");
    assert!(lag.iter().any(|l| l.high == 6), "{lag:?}");
    assert!(FileEventLog::open_dir(dir.path()).is_err(), "a second open of a live directory is refused");
}

#[tokio::test]
async fn group_commit_shares_fsyncs_between_concurrent_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(open(dir.path()));
    log.ensure_topic("t", 4).await.expect("topic");
    let appends = 20_000;
    let tasks: Vec<_> = (0..appends)
        .map(|i| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(record("t", &format!("tenant-{}", i % 50), i)).await })
        })
        .collect();
    let mut per_partition: std::collections::HashMap<i32, Vec<i64>> = std::collections::HashMap::new();
    for task in tasks {
        let p = task.await.expect("task").expect("append acknowledged");
        per_partition.entry(p.partition).or_default().push(p.offset);
    }
    for offsets in per_partition.values_mut() {
        offsets.sort_unstable();
        assert!(offsets.iter().enumerate().all(|(i, o)| *o == i as i64), "offsets are dense from 0 per partition");
    }
    let batches = log.batches_written();
    assert!(batches * 20 < appends as u64, "{batches} batches for {appends} appends: group commit is not batching");
    let marks = log.watermarks(&TopicSelector::Pattern("^t$".into())).await.expect("watermarks");
    assert_eq!(marks.iter().map(|m| m.high).sum::<i64>(), appends as i64);
}

#[tokio::test]
async fn pattern_consumers_pick_up_topics_created_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.ensure_topic("audit.events.v1", 2).await.expect("topic");
    let mut consumer = log.consume("g", TopicSelector::Pattern(r"^audit\.events\.v1(\..+)?$".into())).await.expect("consumer");
    log.ensure_topic("audit.events.v1.acme", 1).await.expect("dedicated topic");
    log.append(record("audit.events.v1.acme", "acme", 0)).await.expect("append");
    let got = within(10, "record from the new topic", consumer.next()).await.expect("record");
    assert_eq!(got.position.topic, "audit.events.v1.acme");
}

#[tokio::test]
async fn segments_roll_and_read_back_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FileLogConfig { segment_bytes: 4096, ..FileLogConfig::new(dir.path()) };
    let log = FileEventLog::open(config.clone()).expect("log opens");
    log.ensure_topic("t", 1).await.expect("topic");
    for chunk in 0..20 {
        for r in join_all((0..25).map(|i| log.append(record("t", "k", chunk * 25 + i)))).await {
            r.expect("append");
        }
    }
    drop(log);
    let files = std::fs::read_dir(dir.path().join("topics/t/0")).expect("dir").count();
    assert!(files > 3, "segments rolled: {files} files");
    let log = FileEventLog::open(config).expect("log reopens");
    let read = read_n(&log, "g", "t", 500).await;
    assert!(read.iter().enumerate().all(|(i, p)| *p == format!("payload-{i}").into_bytes()), "every record in order");
    assert_eq!(log.append(record("t", "k", 500)).await.expect("append").offset, 500);
}
