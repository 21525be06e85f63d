//! Measures Avro encoding, decoding and validation cost per event (a quick profile aid).
use std::time::Instant;
fn main() {
    let text = include_str!("../golden/v1/event.json");
    let event: auditlog_schemas::AuditEvent = serde_json::from_str(text).expect("golden parses");
    let value: serde_json::Value = serde_json::from_str(text).expect("json");
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(event.to_avro_datum().expect("encodes"));
    }
    println!("to_avro_datum: {:.1} us/event", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let datum = event.to_avro_datum().expect("encodes");
    let current = auditlog_schemas::avro::current_schema();
    let copy = apache_avro::Schema::parse_str(auditlog_schemas::avro::current_schema_text()).expect("parses");
    for (what, schema) in [("from_avro_datum (current schema, direct)", current), ("from_avro_datum (resolving)", &copy)] {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(auditlog_schemas::AuditEvent::from_avro_datum(schema, &datum).expect("decodes"));
        }
        println!("{what}: {:.1} us/event", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let mut v = value.clone();
    v.as_object_mut().expect("object").remove("received_at");
    v.as_object_mut().expect("object").remove("occurred_at");
    let ctx = auditlog_schemas::IngestContext { tenant_id: "acme", received_at: time::OffsetDateTime::now_utc() };
    let inputs: Vec<serde_json::Value> = (0..n).map(|_| v.clone()).collect();
    let t = Instant::now();
    for input in inputs {
        std::hint::black_box(auditlog_schemas::validate_event(input, &ctx).expect("valid"));
    }
    println!("validate_event: {:.1} us/event", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(text).expect("json"));
    }
    println!("json parse: {:.1} us/event", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
