//! Redrive against the real local stack: events the search index refused (a bad mapping)
//! are dead-lettered; a dry run prints them and sends nothing; once the mapping is fixed a
//! redrive sends each once, a second redrive sends nothing, and each event ends up in the
//! index exactly once.
#![cfg(feature = "real-services")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use auditlog_processors::SinkKind;
use auditlog_processors::redrive::{Action, RedriveOptions, redrive};
use auditlog_seams::{EventLog, TopicSelector};
use common::{Running, Stack, dead_letter_count, event, eventually, http, opensearch_url, unique, within};
use time::OffsetDateTime;

async fn origin_records(stack: &Stack) -> i64 {
    let topic = TopicSelector::Topics(vec![stack.topic.clone()]);
    stack.log.watermarks(&topic).await.expect("watermarks").iter().map(|w| w.high - w.low).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redrive_after_a_fix_sends_each_letter_once_and_a_dry_run_sends_nothing() {
    let stack = Stack::new().await;
    let tenant = unique("td");
    // A monthly index whose mapping refuses every event (`action` as a number): 400 per item.
    let now = OffsetDateTime::now_utc();
    let month = format!("/{}-{:04}.{:02}", stack.alias, now.year(), u8::from(now.month()));
    let (status, answer) = http(&opensearch_url(), "PUT", &month, r#"{"mappings": {"properties": {"action": {"type": "long"}}}}"#).await;
    assert_eq!(status, 200, "creating the badly mapped index: {answer}");
    for n in 0..3 {
        stack.append(&event(&tenant, &format!("{tenant}-e{n}"), n)).await;
    }
    let processor = Running::start(&stack, stack.config(SinkKind::OpenSearch));
    eventually(90, "the refused events are dead-lettered", || async { dead_letter_count(&stack).await == 3 }).await;

    let mut options = RedriveOptions {
        dlq_topic: format!("{}.dlq", stack.topic),
        group: unique("redrive-"),
        sink: Some("opensearch".into()),
        reason: None,
        limit: None,
        dry_run: true,
        idle: Duration::from_secs(5),
    };
    // Dry run: every letter is shown, nothing is sent or committed.
    let mut shown = BTreeSet::new();
    let report = within(60, "dry run", redrive(stack.log.as_ref(), &options, |letter, action| {
        assert_eq!(action, Action::WouldSend);
        assert_eq!(letter.reason, "rejected");
        assert!(letter.error.contains("mapper_parsing_exception") || letter.error.contains("400"), "{}", letter.error);
        shown.insert(letter.record.as_ref().expect("redrivable").key.clone());
    }))
    .await
    .expect("dry run");
    assert_eq!((report.read, report.sent), (3, 3));
    assert_eq!(shown, BTreeSet::from([tenant.clone()]));
    assert_eq!(origin_records(&stack).await, 3, "a dry run sends nothing");

    // The fix: drop the badly mapped index; the template makes a good one on the next write.
    let (status, answer) = http(&opensearch_url(), "DELETE", &month, "").await;
    assert_eq!(status, 200, "deleting the badly mapped index: {answer}");
    options.dry_run = false;
    let report = within(60, "redrive", redrive(stack.log.as_ref(), &options, |_, action| assert_eq!(action, Action::Sent))).await.expect("redrive");
    assert_eq!((report.read, report.sent), (3, 3), "the dry run committed nothing: every letter is sent");
    assert_eq!(origin_records(&stack).await, 6, "each letter was sent back once");
    eventually(90, "the redriven events are indexed", || async { stack.indexed(&tenant).await.len() == 3 }).await;

    let again = within(60, "second redrive", redrive(stack.log.as_ref(), &options, |letter, action| panic!("sent again: {letter:?} {action:?}"))).await.expect("redrive");
    assert_eq!(again.sent, 0, "a second redrive sends nothing");
    assert_eq!(origin_records(&stack).await, 6);
    processor.stop().await;
    let ids: BTreeSet<String> = stack.indexed(&tenant).await.into_iter().map(|e| e.event.id).collect();
    assert_eq!(ids.len(), 3, "each event once in the index");
    assert_eq!(dead_letter_count(&stack).await, 3, "nothing was dead-lettered again");
}
