//! Schema v2 against the real registry (Apicurio's Confluent-compatible API): a subject that
//! holds v1 takes v2 under FULL compatibility, through the same registration the gateway does
//! (`WireCodec::schema_id`), and a mixed topic of v1 and v2 messages decodes with either
//! reader schema.
#![cfg(feature = "real-services")]

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use auditlog_schemas::avro::SCHEMA_VERSIONS;
use auditlog_schemas::wire::{HEADER_LEN, MAGIC_BYTE};
use auditlog_schemas::{AuditEvent, WireCodec};
use serde_json::{Value, json};

fn registry_url() -> String {
    std::env::var("AUDITLOG_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_owned())
}

fn golden(version: u32, name: &str) -> (AuditEvent, Vec<u8>) {
    let dir = format!("{}/golden/v{version}", env!("CARGO_MANIFEST_DIR"));
    let event = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{name}.json")).expect("json")).expect("event");
    (event, std::fs::read(format!("{dir}/{name}.avro")).expect("avro"))
}

struct Registry {
    http: reqwest::Client,
    base: String,
}

impl Registry {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.header("content-type", "application/vnd.schemaregistry.v1+json").body(body.to_string());
        }
        let response = request.send().await.expect("the registry answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn compatible(&self, subject: &str, schema: &str) -> bool {
        let (status, body) = self
            .call(reqwest::Method::POST, &format!("/compatibility/subjects/{subject}/versions/latest"), Some(json!({"schema": schema})))
            .await;
        assert_eq!(status, 200, "compatibility check: {body}");
        body["is_compatible"].as_bool().unwrap_or_else(|| panic!("is_compatible in {body}"))
    }
}

#[tokio::test]
async fn a_v1_subject_upgrades_to_v2_and_both_versions_read_a_mixed_topic() {
    let registry = Registry { http: reqwest::Client::new(), base: registry_url() };
    let topic = format!("audit.evolution.{}", uuid::Uuid::new_v4().simple());
    let subject = format!("{topic}-value");
    let (v1_text, v2_text) = (SCHEMA_VERSIONS[0].1, SCHEMA_VERSIONS[1].1);

    // A deployment from before: the subject holds v1, with the strictest usual level.
    let (status, body) = registry.call(reqwest::Method::PUT, &format!("/config/{subject}"), Some(json!({"compatibility": "FULL"}))).await;
    assert_eq!(status, 200, "set FULL: {body}");
    let (status, body) = registry.call(reqwest::Method::POST, &format!("/subjects/{subject}/versions"), Some(json!({"schema": v1_text}))).await;
    assert_eq!(status, 200, "register v1: {body}");
    let v1_id = u32::try_from(body["id"].as_u64().expect("id")).expect("u32");

    // The registry's own check: v2 is FULL (backward and forward) compatible with v1, and the
    // check is real: a signature without a default is not.
    assert!(registry.compatible(&subject, v2_text).await, "v2 is FULL compatible with v1");
    let mut strict: Value = serde_json::from_str(v2_text).expect("json");
    let fields = strict["fields"].as_array_mut().expect("fields");
    fields.last_mut().expect("signature").as_object_mut().expect("field").remove("default");
    assert!(!registry.compatible(&subject, &strict.to_string()).await, "a new field without a default is refused");

    // The gateway's registration (as `auditlog init` and the first send do it) adds v2.
    let codec = WireCodec::new(&registry.base, Duration::from_secs(10)).expect("codec");
    let v2_id = codec.schema_id(&topic).await.expect("v2 registers under the v1 subject");
    assert_ne!(v2_id, v1_id);
    let (status, versions) = registry.call(reqwest::Method::GET, &format!("/subjects/{subject}/versions"), None).await;
    assert_eq!((status, versions), (200, json!([1, 2])), "v1 then v2 under one subject");

    // A mixed topic: a v1 message written before the upgrade, a signed and an unsigned v2 one.
    let (v1_event, v1_datum) = golden(1, "event");
    let mut v1_message = vec![MAGIC_BYTE];
    v1_message.extend_from_slice(&v1_id.to_be_bytes());
    v1_message.extend_from_slice(&v1_datum);
    let (signed, _) = golden(2, "event");
    let (unsigned, _) = golden(2, "unsigned");
    let messages = [
        v1_message,
        codec.encode(&topic, &signed).await.expect("encodes"),
        codec.encode(&topic, &unsigned).await.expect("encodes"),
    ];

    // A v2 consumer (a fresh codec: schemas by id from the registry) reads all three.
    let consumer = WireCodec::new(&registry.base, Duration::from_secs(10)).expect("codec");
    let decoded = [
        consumer.decode(&messages[0]).await.expect("v1 message"),
        consumer.decode(&messages[1]).await.expect("signed v2 message"),
        consumer.decode(&messages[2]).await.expect("unsigned v2 message"),
    ];
    assert_eq!(decoded, [v1_event.clone(), signed.clone(), unsigned]);
    assert_eq!(decoded[0].signature, None);

    // A v1 consumer: the stock apache-avro reader with the v1 reader schema, the writer schema
    // fetched from the registry by the id in each message.
    let v1_reader = Schema::parse_str(v1_text).expect("v1");
    let mut v1_values = Vec::new();
    for message in &messages {
        let id = auditlog_schemas::wire::schema_id(message).expect("framed");
        let (status, body) = registry.call(reqwest::Method::GET, &format!("/schemas/ids/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
        let writer = Schema::parse_str(body["schema"].as_str().expect("schema text")).expect("writer schema parses");
        let value = GenericDatumReader::builder(&writer)
            .reader_schema(&v1_reader)
            .build()
            .expect("reader")
            .read_value(&mut &message[HEADER_LEN..])
            .expect("a v1 consumer reads the message");
        let apache_avro::types::Value::Record(fields) = &value else { panic!("a record") };
        assert_eq!(fields.len(), 13);
        v1_values.push(value);
    }
    assert_eq!(v1_values[0], v1_values[1], "the signed v2 event reads as the v1 event");
    assert_eq!(v1_values[1], v1_values[2]);

    // Clean up the test subject (soft, then permanent delete).
    registry.call(reqwest::Method::DELETE, &format!("/subjects/{subject}"), None).await;
    registry.call(reqwest::Method::DELETE, &format!("/subjects/{subject}?permanent=true"), None).await;
}
