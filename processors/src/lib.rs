//! The processors: exactly-once read models in ScyllaDB and OpenSearch, with a dead-letter
//! topic and replay.
//!
//! Not built yet (issue #4). They will consume through `auditlog-seams`' `EventLog` (manual
//! commits from the acknowledgement path) and write through its `EventStore` and
//! `SearchIndex` seams.
