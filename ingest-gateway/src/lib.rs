//! The ingest gateway: authenticated, validating, idempotent HTTP ingest onto tenant-keyed
//! Kafka topics (issue #3).
//!
//! - [`server`]: [`router`] and [`run`] (`run(listener, state, shutdown)`), and
//!   [`run_with_metrics_listener`] serving `/metrics` on a listener of its own;
//! - [`routes`]: `POST /v1/events` and `POST /v1/events/batch`;
//! - `ingest` (private): validate, deduplicate, encode, append concurrently;
//! - [`auth`]: JWT (RFC 8725) and API keys, roles, the [`auth::Writer`] extractor;
//! - [`tenants`]: the [`tenants::TenantRegistry`] trait and its implementations, re-exported
//!   from `auditlog-tenant-registry`;
//! - [`limits`]: per-tenant token buckets, the in-flight cap;
//! - [`idempotency`]: recent answers by producer id;
//! - [`problem`]: [`GatewayError`] and its RFC 9457 mapping;
//! - [`metrics`]: every `auditlog_gateway_*` series;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`;
//! - [`config`]: the typed [`GatewayConfig`].
//!
//! The gateway holds its backends as traits ([`auditlog_seams::EventLog`],
//! [`tenants::TenantRegistry`]) and never names a concrete one.

pub mod auth;
pub mod config;
pub mod idempotency;
mod ingest;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod problem;
pub mod routes;
pub mod server;
pub mod state;
pub mod tenants;

pub use config::GatewayConfig;
pub use problem::GatewayError;
pub use server::{metrics_router, router, router_without_metrics, run, run_with_metrics_listener};
pub use state::GatewayState;
