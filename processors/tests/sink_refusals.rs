//! What the search index refuses, and why, decides between waiting and dead-lettering:
//! a write block (403 `cluster_block_exception` per item), 401 and 5xx answers make the
//! processor wait, commit nothing and dead-letter nothing, then write everything once the
//! cluster takes writes again; a bulk too large for the cluster (413) is split in halves
//! until it fits, and only an event too large on its own goes to the dead-letter topic.
#![cfg(feature = "real-services")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use auditlog_processors::sink::IndexSink;
use auditlog_processors::{SinkKind, dlq};
use auditlog_schemas::AuditEvent;
use auditlog_seams::search_index::opensearch::{OpenSearchConfig, OpenSearchIndex};
use auditlog_seams::{EventLog, IndexError, LogPosition, SearchIndex, StoredEvent, TopicSelector};
use common::{Running, Stack, dead_letter_count, event, eventually, http, indexed_in, opensearch_url, unique, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy in front of the local OpenSearch: answers 413 to a request body over `limit`
/// bytes (as OpenSearch does past `http.max_content_length`, or a proxy past its body
/// limit), and `refuse` (when not 0) to every `_bulk` request, as a cluster with expired
/// credentials (401) or in trouble (503) does.
struct Proxy {
    url: String,
    refuse: Arc<AtomicU16>,
    /// Requests answered 413 so far.
    too_large: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(limit: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let upstream = opensearch_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
        let (refuse, too_large) = (Arc::new(AtomicU16::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, t) = (refuse.clone(), too_large.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream.clone(), limit, r.clone(), t.clone()));
            }
        });
        Self { url, refuse, too_large }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Serves one request of one connection, then closes it.
async fn serve(mut client: TcpStream, upstream: String, limit: usize, refuse: Arc<AtomicU16>, too_large: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let status = refuse.load(Ordering::SeqCst);
    let answer = if length > limit {
        too_large.fetch_add(1, Ordering::SeqCst);
        b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
    } else if status != 0 && head.contains("_bulk") {
        let body = format!(r#"{{"error":{{"type":"refused_by_test_proxy","reason":"status {status}"}},"status":{status}}}"#);
        format!("HTTP/1.1 {status} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).into_bytes()
    } else {
        let mut forwarded: String = head.lines().filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:")).map(|l| format!("{l}\r\n")).collect();
        forwarded.push_str("Connection: close\r\n\r\n");
        let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
        if up.write_all(forwarded.as_bytes()).await.is_err() || up.write_all(&buf[head_end..head_end + length]).await.is_err() {
            return;
        }
        let mut answer = Vec::new();
        if up.read_to_end(&mut answer).await.is_err() {
            return;
        }
        // The client must not reuse the connection: say it closes.
        if let Some(i) = find(&answer, b"\r\n") {
            answer.splice(i + 2..i + 2, b"connection: close\r\n".iter().copied());
        }
        answer
    };
    let _ = client.write_all(&answer).await;
    let _ = client.shutdown().await;
}

fn waiting() -> bool {
    auditlog_processors::metrics::handle().render().lines().any(|l| l == "auditlog_processor_sink_waiting{sink=\"opensearch\"} 1")
}

async fn set_write_block(stack: &Stack, on: bool) {
    let body = if on { r#"{"index.blocks.write": true}"# } else { r#"{"index.blocks.write": null}"# };
    let (status, answer) = http(&opensearch_url(), "PUT", &format!("/{}/_settings", stack.alias), body).await;
    assert_eq!(status, 200, "setting the write block: {answer}");
}

/// Appends `n` events of `tenant` named `<tenant>-<tag><i>`.
async fn append(stack: &Stack, tenant: &str, tag: &str, n: usize) {
    for i in 0..n {
        stack.append(&event(tenant, &format!("{tenant}-{tag}{i}"), i)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_credentials_and_server_errors_are_waited_out_never_dead_lettered() {
    let stack = Stack::new().await;
    let tenant = unique("tw");

    // A write block on the index (what an operator or a full disk sets): 403 per item.
    let processor = Running::start(&stack, stack.config(SinkKind::OpenSearch));
    append(&stack, &tenant, "first", 1).await;
    eventually(60, "the first event is indexed (its monthly index exists)", || async { stack.indexed(&tenant).await.len() == 1 }).await;
    set_write_block(&stack, true).await;
    append(&stack, &tenant, "blocked", 10).await;
    eventually(60, "the processor waits for the blocked index", || async { waiting() }).await;
    assert_eq!(dead_letter_count(&stack).await, 0, "a write block dead-letters nothing");
    set_write_block(&stack, false).await;
    eventually(90, "every event is indexed once the block is lifted", || async { stack.indexed(&tenant).await.len() == 11 }).await;
    eventually(30, "the processor stops waiting", || async { !waiting() }).await;
    processor.stop().await;
    assert_eq!(dead_letter_count(&stack).await, 0, "nothing was dead-lettered");

    // 401 (expired credentials) and 503 answers to the whole bulk, through a proxy.
    let proxy = Proxy::start(usize::MAX).await;
    let proxied = Arc::new(within(60, "opensearch through the proxy", OpenSearchIndex::connect(OpenSearchConfig::new(&proxy.url, unique("proc-refused-")))).await.expect("connect"));
    for (round, status) in [401u16, 403, 503].into_iter().enumerate() {
        let other = unique("tr");
        proxy.refuse.store(status, Ordering::SeqCst);
        let config = stack.config(SinkKind::OpenSearch);
        let processor = Running::start_with(&stack, config, Arc::new(IndexSink(proxied.clone())));
        append(&stack, &other, "refused", 5).await;
        eventually(60, &format!("HTTP {status}: the processor waits"), || async { waiting() }).await;
        assert_eq!(dead_letter_count(&stack).await, 0, "HTTP {status} dead-letters nothing");
        proxy.refuse.store(0, Ordering::SeqCst);
        // Each round's fresh group reads the whole topic: every tenant so far is indexed.
        eventually(90, &format!("HTTP {status}: everything is indexed once the cluster answers"), || async {
            indexed_in(&proxied, &other).await.len() == 5
        })
        .await;
        eventually(30, "the processor stops waiting", || async { !waiting() }).await;
        processor.stop().await;
        assert_eq!(dead_letter_count(&stack).await, 0, "round {round}: nothing was dead-lettered");
    }
}

/// An event whose document is larger than `bytes` on its own.
fn oversized(tenant: &str, id: &str, bytes: usize) -> AuditEvent {
    let mut e = event(tenant, id, 0);
    e.description = Some("x".repeat(8_000));
    let blob = serde_json::json!({"blob": "y".repeat(bytes.saturating_sub(8_000).min(15_000))});
    e.metadata = blob.as_object().cloned();
    e
}

fn stored(events: &[AuditEvent]) -> Vec<StoredEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent { event: e.clone(), position: LogPosition { topic: "t".into(), partition: 0, offset: i as i64 } })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_too_large_is_split_and_only_an_event_too_large_alone_is_dead_lettered() {
    const LIMIT: usize = 16 * 1024;
    let stack = Stack::new().await;
    let proxy = Proxy::start(LIMIT).await;
    let proxied = Arc::new(within(60, "opensearch through the proxy", OpenSearchIndex::connect(OpenSearchConfig::new(&proxy.url, unique("proc-split-")))).await.expect("connect"));

    // The seam: 40 events (~40 KiB of bulk) behind a 16 KiB limit are indexed, in parts.
    let tenant = unique("ts");
    let events: Vec<AuditEvent> = (0..40).map(|n| event(&tenant, &format!("{tenant}-e{n}"), n)).collect();
    within(60, "indexing through the proxy", proxied.index(&stored(&events))).await.expect("a bulk too large is split until it fits");
    assert!(proxy.too_large.load(Ordering::SeqCst) > 0, "the whole bulk was refused as too large first");
    assert_eq!(indexed_in(&proxied, &tenant).await.len(), 40);

    // An event too large on its own is rejected by id, with a reason that says so.
    let big = oversized(&tenant, &format!("{tenant}-big"), LIMIT + 2_000);
    let mut with_big = events[..5].to_vec();
    with_big.push(big.clone());
    match within(60, "indexing an oversized event", proxied.index(&stored(&with_big))).await {
        Err(IndexError::Rejected { ids, reason }) => {
            assert_eq!(ids, vec![big.id.clone()]);
            assert!(reason.contains("413") && reason.contains("larger"), "{reason}");
        }
        other => panic!("the oversized event must be rejected alone: {other:?}"),
    }

    // The processor: the others are indexed, the oversized one dead-lettered once, with why.
    let other = unique("tp");
    append(&stack, &other, "before", 20).await;
    let big = oversized(&other, &format!("{other}-big"), LIMIT + 2_000);
    let big_at = stack.append(&big).await;
    append(&stack, &other, "after", 5).await;
    let processor = Running::start_with(&stack, stack.config(SinkKind::OpenSearch), Arc::new(IndexSink(proxied.clone())));
    eventually(120, "every other event is indexed", || async { indexed_in(&proxied, &other).await.len() == 25 }).await;
    eventually(60, "the oversized event is dead-lettered", || async { dead_letter_count(&stack).await == 1 }).await;
    processor.stop().await;
    let mut dead = stack.log.consume(&unique("dlq-reader-"), TopicSelector::Topics(vec![format!("{}.dlq", stack.topic)])).await.expect("consume the dlq");
    let letter = within(30, "the dead letter", dead.next()).await.expect("a dead letter");
    let header = |name: &str| String::from_utf8_lossy(letter.header(name).unwrap_or_default()).into_owned();
    assert_eq!(header(dlq::REASON), "rejected");
    assert_eq!(header(dlq::SINK), "opensearch");
    assert_eq!(header(dlq::ORIGIN_OFFSET), big_at.offset.to_string());
    assert!(header(dlq::ERROR).contains("larger than the search index accepts"), "{}", header(dlq::ERROR));
    assert_eq!(dead_letter_count(&stack).await, 1, "only the oversized event");
}
