//! The query API: tenant-scoped reads, search, stats, exports, live tail and administration.
//!
//! Not built yet (issue #5). It will read through `auditlog-seams`' `EventStore` and
//! `SearchIndex` seams and tail through its `EventLog`.
