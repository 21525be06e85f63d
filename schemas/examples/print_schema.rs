//! Prints the Avro schema the Rust record derives, pretty, for writing a new `.avsc` version.
use apache_avro::AvroSchema;
fn main() {
    let schema = auditlog_schemas::avro::AuditEventRecord::get_schema();
    println!("{}", serde_json::to_string_pretty(&schema).expect("schema serializes"));
}
