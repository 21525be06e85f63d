//! Avro events through the real broker, with the schema registered in the real registry:
//! what a producer writes is what a consumer reads, byte for byte, and a registry client that
//! has never seen the schema decodes it by id.
#![cfg(feature = "real-services")]

mod common;

use std::time::Duration;

use auditlog_schemas::{AuditEvent, WireCodec, wire};
use auditlog_seams::event_log::kafka::{KafkaConfig, KafkaEventLog};
use auditlog_seams::{EventLog, OutgoingRecord, TopicSelector};
use common::{create_topic, kafka_bootstrap, registry_url, unique, within};
use futures::future::join_all;

fn golden() -> AuditEvent {
    let text = include_str!("../../schemas/golden/v1/event.json");
    serde_json::from_str(text).expect("golden event parses")
}

fn events() -> Vec<AuditEvent> {
    (0..40)
        .map(|i| {
            let mut e = golden();
            e.id = format!("evt-{i}");
            e.tenant_id = if i % 2 == 0 { "acme".into() } else { "globex".into() };
            e.description = (i % 3 != 0).then(|| format!("event number {i}"));
            e.metadata = (i % 4 == 0).then(|| serde_json::json!({"i": i, "nested": {"ok": true}}).as_object().cloned()).flatten();
            e
        })
        .collect()
}

#[tokio::test]
async fn avro_events_round_trip_byte_exact_through_kafka_and_the_registry() {
    let topic = unique("audit_events_wire");
    create_topic(&topic, 3).await;
    let codec = WireCodec::new(&registry_url(), Duration::from_secs(10)).expect("registry url is valid");
    let log = KafkaEventLog::new(KafkaConfig::new(kafka_bootstrap())).expect("kafka config is valid");

    let events = events();
    let mut payloads = Vec::new();
    for e in &events {
        let bytes = within(20, "schema registry answers", codec.encode(&topic, e))
            .await
            .unwrap_or_else(|err| panic!("encoding through the registry at {} failed: {err}", registry_url()));
        payloads.push(bytes);
    }
    let ids: std::collections::HashSet<u32> = payloads.iter().map(|p| wire::schema_id(p).expect("framed")).collect();
    assert_eq!(ids.len(), 1, "one schema id for every event");
    let schema_id = *ids.iter().next().expect("one id");

    // The subject is <topic>-value and holds that id.
    let latest: serde_json::Value = reqwest::get(format!("{}/subjects/{topic}-value/versions/latest", registry_url()))
        .await
        .expect("registry reachable")
        .error_for_status()
        .expect("subject <topic>-value exists")
        .json()
        .await
        .expect("registry answers json");
    assert_eq!(latest["id"].as_u64(), Some(u64::from(schema_id)), "registered id: {latest}");

    let records: Vec<OutgoingRecord> = events
        .iter()
        .zip(&payloads)
        .map(|(e, p)| OutgoingRecord {
            topic: topic.clone(),
            key: e.tenant_id.clone(),
            payload: p.clone(),
            headers: vec![("event_id".into(), e.id.clone().into_bytes())],
        })
        .collect();
    for result in within(30, "appends acknowledged", join_all(records.into_iter().map(|r| log.append(r)))).await {
        result.expect("append acknowledged");
    }

    // A fresh codec has an empty cache: decoding must fetch the writer schema by id.
    let reader = WireCodec::new(&registry_url(), Duration::from_secs(10)).expect("registry url is valid");
    let mut consumer = log.consume(&unique("group"), TopicSelector::Topics(vec![topic.clone()])).await.expect("consumer opens");
    let mut seen = std::collections::HashMap::new();
    for _ in 0..events.len() {
        let record = within(30, "record consumed", consumer.next()).await.expect("record read");
        let id = String::from_utf8(record.header("event_id").expect("event_id header").to_vec()).expect("utf-8");
        let index: usize = id.trim_start_matches("evt-").parse().expect("numeric suffix");
        assert_eq!(record.payload, payloads[index], "{id} changed on the way");
        assert_eq!(record.key.as_deref(), Some(events[index].tenant_id.as_bytes()), "{id} key is the tenant");
        let decoded = reader.decode(&record.payload).await.expect("decodes with the registered schema");
        assert_eq!(decoded, events[index], "{id} decodes to what was sent");
        assert!(seen.insert(id, ()).is_none(), "duplicate delivery");
    }
}

#[tokio::test]
async fn an_unreachable_registry_is_an_error() {
    let codec = WireCodec::new("http://127.0.0.1:1/apis/ccompat/v7", Duration::from_secs(2)).expect("url is valid");
    let result = within(20, "encode answers", codec.encode("any-topic", &golden())).await;
    assert!(result.is_err(), "encoding without a registry succeeded");
}
