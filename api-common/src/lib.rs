//! HTTP pieces shared by the ingest gateway and the query API, so both authenticate, fail and
//! expose operations alike:
//!
//! - [`auth`]: JWT (RFC 8725) and API-key verification, [`auth::Principal`], roles;
//! - [`config`]: the typed [`config::AuthConfig`] and its environment overrides;
//! - [`limits`]: per-tenant token buckets and in-flight caps (429/503 load shedding);
//! - [`problem`]: RFC 9457 [`problem::Problem`] bodies;
//! - [`ops`]: `/healthz`, OpenAPI security schemes, the Prometheus recorder;
//! - [`secrets`]: the known placeholder secrets every service refuses at startup;
//! - [`signatures`]: producer signatures checked against the tenant's registered keys.

pub mod auth;
pub mod config;
pub mod limits;
pub mod ops;
pub mod problem;
pub mod secrets;
pub mod signatures;
