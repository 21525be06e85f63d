//! The ingest gateway: authenticated, validating HTTP ingest onto tenant-keyed Kafka topics.
//!
//! Not built yet (issue #3). What it builds on is in place: validation and the wire format in
//! `auditlog-schemas`, the durable append in `auditlog-seams`' `EventLog`; the `auditlog
//! produce` command drives that same path from the command line meanwhile.
