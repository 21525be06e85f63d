//! The command-line tools: produce, tail and validate.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context as _;
use auditlog_schemas::{AuditEvent, IngestContext, Rejection, WireCodec, validate_event};
use auditlog_seams::{OutgoingRecord, resolve};
use futures::future::join_all;
use serde_json::json;
use time::OffsetDateTime;

/// Appends are issued in chunks of this many, all in flight together; a larger chunk fills
/// producer batches better, a smaller one bounds memory and reports progress sooner.
const PRODUCE_CHUNK: usize = 500;

/// Registry calls (schema registration, lookup by id) give up after this long.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates one stdin line; prints and counts what is wrong with it.
fn parse_line(line: &str, number: usize, tenant: &str) -> Option<AuditEvent> {
    let ctx = IngestContext { tenant_id: tenant, received_at: OffsetDateTime::now_utc() };
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(err) => {
            println!("{}", json!({"line": number, "status": "rejected", "errors": [{"field": "", "message": format!("malformed json: {err}")}]}));
            return None;
        }
    };
    match validate_event(value, &ctx) {
        Ok(event) => Some(event),
        Err(Rejection::Invalid(errors)) => {
            println!("{}", json!({"line": number, "status": "rejected", "errors": errors}));
            None
        }
        Err(Rejection::TenantMismatch) => {
            println!("{}", json!({"line": number, "status": "rejected", "errors": [{"field": "tenant_id", "message": "does not match --tenant"}]}));
            None
        }
    }
}

fn stdin_lines() -> impl Iterator<Item = (usize, String)> {
    std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// `auditlog validate`: true when every event was valid.
pub fn validate(tenant: &str) -> anyhow::Result<bool> {
    let mut all_valid = true;
    for (number, line) in stdin_lines() {
        match parse_line(&line, number, tenant) {
            Some(event) => println!("{}", serde_json::to_string(&event)?),
            None => all_valid = false,
        }
    }
    Ok(all_valid)
}

/// `auditlog produce`: true when every event was valid and acknowledged.
pub async fn produce(tenant: &str, topic: &str, event_log: &str, registry: &str) -> anyhow::Result<bool> {
    let log = resolve::event_log(event_log)?;
    let codec = WireCodec::new(registry, REGISTRY_TIMEOUT)?;
    let mut all_ok = true;
    let lines: Vec<(usize, String)> = stdin_lines().collect();
    for chunk in lines.chunks(PRODUCE_CHUNK) {
        let mut pending = Vec::with_capacity(chunk.len());
        for (number, line) in chunk {
            let Some(event) = parse_line(line, *number, tenant) else {
                all_ok = false;
                continue;
            };
            let payload = codec.encode(topic, &event).await.context("encoding through the schema registry")?;
            let record = OutgoingRecord::for_event(topic, &event, payload);
            pending.push((*number, event.id, log.append(record)));
        }
        let (meta, futures): (Vec<_>, Vec<_>) = pending.into_iter().map(|(n, id, f)| ((n, id), f)).unzip();
        for ((number, id), result) in meta.into_iter().zip(join_all(futures).await) {
            match result {
                Ok(p) => println!("{}", json!({"line": number, "status": "accepted", "id": id, "topic": p.topic, "partition": p.partition, "offset": p.offset})),
                Err(err) => {
                    all_ok = false;
                    println!("{}", json!({"line": number, "status": "failed", "id": id, "error": err.to_string()}));
                }
            }
        }
    }
    log.flush(Duration::from_secs(10)).await?;
    Ok(all_ok)
}

/// `auditlog tail`: prints events until `count` were seen (or forever).
pub async fn tail(topics: &[String], count: Option<u64>, event_log: &str, registry: &str) -> anyhow::Result<bool> {
    let log = resolve::event_log(event_log)?;
    let codec = WireCodec::new(registry, REGISTRY_TIMEOUT)?;
    let mut tail = log.tail(topics).await?;
    eprintln!("following {} from its end; ctrl-c to stop", topics.join(", "));
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        let record = tail.next().await?;
        match codec.decode(&record.payload).await {
            Ok(event) => println!("{}", serde_json::to_string(&event)?),
            Err(err) => eprintln!(
                "skipping undecodable record at {}/{}/{}: {err}",
                record.position.topic, record.position.partition, record.position.offset
            ),
        }
        seen += 1;
    }
    Ok(true)
}
