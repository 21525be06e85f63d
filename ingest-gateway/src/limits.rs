//! Load protection: a per-tenant token bucket (events per second, from each tenant's settings)
//! and global caps on requests and request bytes in flight. Defined once in
//! `auditlog-api-common` (the query API sheds load with the same pieces); re-exported here.

pub use auditlog_api_common::limits::{InFlightBytes, InFlightLimit, RateLimiter};
