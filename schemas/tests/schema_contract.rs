//! The wire contract: the Rust record derives exactly the bundled `.avsc`, every published
//! version's golden samples still decode with the current reader schema, and the versions are
//! compatible both ways (a consumer still on v1 reads v2 records with a stock Avro reader).

use std::path::PathBuf;

use apache_avro::{AvroSchema, Schema};
use auditlog_schemas::AuditEvent;
use auditlog_schemas::avro::{AuditEventRecord, SCHEMA_VERSIONS, current_schema};

fn golden_dir(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("golden/v{version}"))
}

fn golden_event(version: u32) -> AuditEvent {
    golden_sample(version, "event")
}

fn golden_sample(version: u32, name: &str) -> AuditEvent {
    let text = std::fs::read_to_string(golden_dir(version).join(format!("{name}.json"))).expect("golden json exists");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden v{version}/{name}.json is not a valid AuditEvent: {e}"))
}

/// The golden samples of a version: every `<name>.avro` beside its `<name>.json`.
fn golden_samples(version: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir(version))
        .expect("golden dir exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "avro"))
        .map(|path| path.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "v{version} has golden samples");
    names
}

fn schema(version: u32) -> Schema {
    let (_, text) = SCHEMA_VERSIONS.iter().find(|(v, _)| *v == version).expect("published version");
    Schema::parse_str(text).expect("parses")
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
    for name in ["event", "unsigned"] {
        let event = golden_sample(version, name);
        let bytes = event.to_avro_datum().expect("golden event encodes");
        let path = golden_dir(version).join(format!("{name}.avro"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &bytes).expect("golden bytes written");
        }
        let golden = std::fs::read(&path).expect("golden .avro exists (UPDATE_GOLDEN=1 writes it)");
        assert_eq!(bytes, golden, "the Avro encoding of the golden sample {name} changed");
    }
    assert!(golden_event(version).signature.is_some(), "the current golden event is signed");
    assert!(golden_sample(version, "unsigned").signature.is_none());
}

#[test]
fn every_golden_sample_decodes_with_the_current_reader_schema() {
    let mut decoded_count = 0;
    for (version, text) in SCHEMA_VERSIONS {
        let writer = Schema::parse_str(text).expect("writer schema parses");
        for name in golden_samples(*version) {
            let bytes = std::fs::read(golden_dir(*version).join(format!("{name}.avro"))).expect("golden .avro exists");
            let decoded = AuditEvent::from_avro_datum(&writer, &bytes)
                .unwrap_or_else(|e| panic!("v{version} golden sample {name} no longer decodes: {e}"));
            assert_eq!(decoded, golden_sample(*version, &name), "v{version} golden sample {name} decodes differently");
            decoded_count += 1;
        }
    }
    assert!(decoded_count >= 3, "v1 and both v2 samples decoded");
    // v1 records read by the v2 reader: no signature, the default null.
    let v1 = std::fs::read(golden_dir(1).join("event.avro")).expect("v1 golden");
    assert_eq!(AuditEvent::from_avro_datum(&schema(1), &v1).expect("decodes").signature, None);
}

/// Avro's own compatibility rules (the Java/Confluent ones, as apache-avro implements them):
/// v2 reads v1 (backward) and v1 reads v2 (forward), so the evolution is FULL.
#[test]
fn v2_is_backward_and_forward_compatible_with_v1() {
    use apache_avro::schema_compatibility::SchemaCompatibility;
    let (v1, v2) = (schema(1), schema(2));
    SchemaCompatibility::can_read(&v1, &v2).expect("a v2 reader reads v1 data");
    SchemaCompatibility::can_read(&v2, &v1).expect("a v1 reader reads v2 data");
    // The check is real: a signature without a default would break v1 data for v2 readers.
    let strict = current_schema_text_with(|field| {
        field.as_object_mut().expect("field").remove("default");
    });
    assert!(SchemaCompatibility::can_read(&v1, &strict).is_err(), "a required new field is not backward compatible");
}

/// The v2 text with its `signature` field edited by `edit`.
fn current_schema_text_with(edit: impl FnOnce(&mut serde_json::Value)) -> Schema {
    let mut json: serde_json::Value = serde_json::from_str(SCHEMA_VERSIONS[1].1).expect("v2 json");
    let fields = json["fields"].as_array_mut().expect("fields");
    edit(fields.iter_mut().find(|f| f["name"] == "signature").expect("signature field"));
    Schema::parse_str(&json.to_string()).expect("edited schema parses")
}

/// A consumer still on v1 reads v2 datums (signed and unsigned) with the stock apache-avro
/// generic reader and the v1 reader schema: it sees exactly the v1 fields, the same values.
#[test]
fn a_v1_reader_reads_v2_records() {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;
    let (v1, v2) = (schema(1), schema(2));
    let as_v1 = |writer: &Schema, bytes: &[u8]| -> Value {
        GenericDatumReader::builder(writer)
            .reader_schema(&v1)
            .build()
            .expect("reader")
            .read_value(&mut &bytes[..])
            .expect("a v1 reader decodes the datum")
    };
    let v1_bytes = std::fs::read(golden_dir(1).join("event.avro")).expect("v1 golden");
    let expected = as_v1(&v1, &v1_bytes);
    for name in ["event", "unsigned"] {
        let bytes = std::fs::read(golden_dir(2).join(format!("{name}.avro"))).expect("v2 golden");
        let value = as_v1(&v2, &bytes);
        let Value::Record(fields) = &value else { panic!("a record") };
        assert_eq!(fields.len(), 13, "v1 has 13 fields");
        assert!(fields.iter().all(|(name, _)| name != "signature"), "v1 readers do not see the signature");
        assert_eq!(value, expected, "v2 sample {name} reads as the v1 sample under the v1 schema");
    }
}

/// The same with an Avro object container file written by the v2 writer and opened by a
/// stock reader given the v1 schema, and the other way round: a mixed history of v1 and v2
/// files reads with either schema.
#[test]
fn container_files_cross_both_ways() {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::{Reader, Writer};
    let (v1, v2) = (schema(1), schema(2));
    let datum = |schema: &Schema, version: u32| {
        let bytes = std::fs::read(golden_dir(version).join("event.avro")).expect("golden");
        GenericDatumReader::builder(schema).build().expect("reader").read_value(&mut &bytes[..]).expect("datum")
    };
    let signed = golden_event(2);
    let mut writer = Writer::new(&v2, Vec::new()).expect("v2 writer");
    writer.append_value(datum(&v2, 2)).expect("append");
    let v2_file = writer.into_inner().expect("v2 file");
    let mut read = 0;
    for value in Reader::builder(&v2_file[..]).reader_schema(&v1).build().expect("reader") {
        let value = value.expect("v1 reads a v2 file");
        let apache_avro::types::Value::Record(fields) = value else { panic!("a record") };
        assert!(fields.iter().any(|(name, value)| name == "id" && *value == apache_avro::types::Value::String(signed.id.clone())));
        read += 1;
    }
    assert_eq!(read, 1);
    let mut writer = Writer::new(&v1, Vec::new()).expect("v1 writer");
    writer.append_value(datum(&v1, 1)).expect("append");
    let v1_file = writer.into_inner().expect("v1 file");
    for value in Reader::builder(&v1_file[..]).reader_schema(&v2).build().expect("reader") {
        let record: AuditEventRecord = apache_avro::from_value(&value.expect("v2 reads a v1 file")).expect("record");
        assert_eq!(record.signature, None, "the default null");
        assert_eq!(AuditEvent::try_from(record).expect("event"), golden_event(1));
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
