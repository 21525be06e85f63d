//! The wire contract: the Rust record derives exactly the bundled `.avsc`, and every
//! published version's golden sample still decodes with the current reader schema.

use std::path::PathBuf;

use apache_avro::{AvroSchema, Schema};
use auditlog_schemas::AuditEvent;
use auditlog_schemas::avro::{AuditEventRecord, SCHEMA_VERSIONS, current_schema};

fn golden_dir(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("golden/v{version}"))
}

fn golden_event(version: u32) -> AuditEvent {
    let text = std::fs::read_to_string(golden_dir(version).join("event.json")).expect("golden event.json exists");
    serde_json::from_str(&text).expect("golden event.json is a valid AuditEvent")
}

#[test]
fn rust_record_derives_the_current_avsc_exactly() {
    let derived = serde_json::to_value(AuditEventRecord::get_schema()).expect("derived schema serializes");
    let bundled = serde_json::to_value(current_schema()).expect("bundled schema serializes");
    assert_eq!(derived, bundled, "schemas/avro differs from the Rust record: add a new .avsc version");
}

#[test]
fn every_version_parses_and_has_the_same_record_name() {
    for (version, text) in SCHEMA_VERSIONS {
        let schema = Schema::parse_str(text).unwrap_or_else(|e| panic!("v{version} does not parse: {e}"));
        let Schema::Record(record) = schema else { panic!("v{version} is not a record") };
        assert_eq!(record.name.fullname(None), auditlog_schemas::avro::RECORD_NAME);
    }
}

#[test]
fn current_encoding_matches_the_golden_bytes() {
    let (version, _) = SCHEMA_VERSIONS[SCHEMA_VERSIONS.len() - 1];
    let event = golden_event(version);
    let bytes = event.to_avro_datum().expect("golden event encodes");
    let path = golden_dir(version).join("event.avro");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &bytes).expect("golden bytes written");
    }
    let golden = std::fs::read(&path).expect("golden event.avro exists (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(bytes, golden, "the Avro encoding of the golden event changed");
}

#[test]
fn every_golden_sample_decodes_with_the_current_reader_schema() {
    for (version, text) in SCHEMA_VERSIONS {
        let writer = Schema::parse_str(text).expect("writer schema parses");
        let bytes = std::fs::read(golden_dir(*version).join("event.avro")).expect("golden event.avro exists");
        let decoded = AuditEvent::from_avro_datum(&writer, &bytes)
            .unwrap_or_else(|e| panic!("v{version} golden sample no longer decodes: {e}"));
        assert_eq!(decoded, golden_event(*version), "v{version} golden sample decodes differently");
    }
}

/// Datums of the current schema decode straight into the record, others through schema
/// resolution: both give the same event, and a registry's copy of the current schema is
/// recognised as the current one.
#[test]
fn the_direct_and_the_resolving_decoder_agree() {
    let (version, text) = SCHEMA_VERSIONS[SCHEMA_VERSIONS.len() - 1];
    let copy = Schema::parse_str(text).expect("parses");
    assert!(auditlog_schemas::avro::writes_as_current(&copy), "a parsed copy writes as the current schema");
    let bytes = std::fs::read(golden_dir(version).join("event.avro")).expect("golden event.avro exists");
    let direct = AuditEvent::from_avro_datum(current_schema(), &bytes).expect("direct decode");
    let resolved = AuditEvent::from_avro_datum(&copy, &bytes).expect("resolving decode");
    assert_eq!(direct, resolved);
    assert_eq!(direct, golden_event(version));
    let older = Schema::parse_str(r#"{"type": "record", "name": "dev.auditlog.AuditEvent", "fields": [{"name": "id", "type": "string"}]}"#).expect("parses");
    assert!(!auditlog_schemas::avro::writes_as_current(&older), "another layout is not the current one");
}

#[test]
fn a_truncated_datum_is_an_error_not_a_panic() {
    let bytes = golden_event(1).to_avro_datum().expect("encodes");
    for cut in 0..bytes.len() {
        assert!(AuditEvent::from_avro_datum(current_schema(), &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(AuditEvent::from_avro_datum(current_schema(), &longer).is_err(), "trailing byte accepted");
}
