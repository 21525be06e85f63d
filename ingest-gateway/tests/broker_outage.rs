//! With the real broker stopped, the gateway answers 503 within a bounded time and never 2xx;
//! once the broker is back, it accepts again and every accepted event is on the topic.
//!
//! This stops and restarts the local stack's Kafka (`deploy/local/stack`), so it is the only
//! test of its binary: cargo runs test binaries one after another, so no other test sees the
//! outage.
#![cfg(feature = "real-services")]

mod common;
mod kafka;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{event, gateway, post_json, send, writer_token};
use kafka::{count_records, create_topic, read_records};

fn stack(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/stack");
    let status = Command::new(&script).args(args).status().unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "deploy/local/stack {} failed: {status}", args.join(" "));
}

/// Restarts Kafka (and anything else that died with it) even when an assertion fails.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        stack(&["up"]);
    }
}

fn accepted_id(answer: &common::Answer) -> String {
    answer.body["id"].as_str().expect("202 carries the id").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_gives_503_never_2xx_and_the_gateway_recovers() {
    let gw = gateway();
    create_topic(&gw.topic, 1).await;
    let token = writer_token("acme");
    let mut accepted = HashSet::new();

    let before = send(&gw, post_json("/v1/events", &token, &event("outage.before"))).await;
    assert_eq!(before.status, StatusCode::ACCEPTED, "{:?}", before.body);
    accepted.insert(accepted_id(&before));

    let restart = RestartOnDrop;
    stack(&["down", "kafka"]);
    for i in 0..3 {
        let started = Instant::now();
        let answer = send(&gw, post_json("/v1/events", &token, &event("outage.during"))).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "attempt {i} with the broker down: {:?}", answer.body);
        assert!(started.elapsed() < Duration::from_secs(10), "attempt {i} took {:?}", started.elapsed());
        assert!(answer.headers.contains_key("retry-after"), "503 without Retry-After");
    }
    let batch = serde_json::json!([event("outage.batch"), event("outage.batch")]);
    let answer = send(&gw, post_json("/v1/events/batch", &token, &batch)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "batch with the broker down: {:?}", answer.body);

    stack(&["up", "kafka"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answer = send(&gw, post_json("/v1/events", &token, &event("outage.after"))).await;
        match answer.status {
            StatusCode::ACCEPTED => {
                accepted.insert(accepted_id(&answer));
                break;
            }
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("while the broker comes back the gateway answered {other}: {:?}", answer.body),
        }
        assert!(Instant::now() < deadline, "the gateway did not recover within 90 s of the broker's return");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(restart);

    // Every acknowledged event is on the topic. (A 503'd one may be too: an unacknowledged
    // append may still land, and the producer's retry with the same id is deduplicated.)
    let total = usize::try_from(count_records(&gw.topic).await).expect("count is not negative");
    assert!(total >= accepted.len(), "{total} records for {} acknowledged events", accepted.len());
    let records = read_records(&gw.topic, total).await;
    let on_topic: HashSet<String> = records
        .iter()
        .map(|r| String::from_utf8(r.header("event_id").expect("event_id header").to_vec()).expect("utf-8"))
        .collect();
    assert!(accepted.is_subset(&on_topic), "acknowledged {accepted:?}, on the topic {on_topic:?}");
}
