//! The query API: tenant-scoped reads, search, stats, exports, live tail and administration
//! (issue #5), over the `EventStore`, `SearchIndex` and `EventLog` seams and the shared tenant
//! registry; it never names a concrete backend.
//!
//! - [`server`]: [`router`] and [`run`] (`run(listener, state, shutdown)`), and
//!   [`run_with_metrics_listener`] serving `/metrics` on a listener of its own;
//! - [`routes`]: events (list, by id), stats, export, stream (WebSocket/SSE), ledger, admin;
//! - [`params`]: strict query-string parsing into an [`auditlog_seams::EventFilter`];
//! - [`ledger`]: the tamper-evidence ledger's read side (checkpoint, `leaf_index`, proofs
//!   from stored tiles);
//! - [`reads`]: which read model serves a filter (store for keyed reads, index for the rest);
//! - [`cursor`]: HMAC-signed cursors bound to tenant and query;
//! - [`live`]: one shared log tail fanned out to bounded per-client buffers;
//! - [`matching`]: whether one event passes a filter (live tail, replay);
//! - [`quota`]: per-tenant read rate (429) and the cap on requests served at once (503);
//! - [`retention`]: per-tenant cutoff on reads and the purge sweeper;
//! - [`audit`]: admin actions recorded as events of tenant `system`;
//! - [`auth`]: the `Reader` extractor and admin role checks (verification in
//!   `auditlog-api-common`);
//! - [`error`]: [`QueryError`] and its RFC 9457 mapping; [`metrics`]: every series;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`;
//! - [`config`]: the typed [`QueryConfig`]; [`state`]: [`QueryState`] and [`Backends`].

pub mod audit;
pub mod auth;
pub mod config;
pub mod cursor;
pub mod error;
pub mod ledger;
pub mod live;
pub mod matching;
pub mod metrics;
pub mod ops;
pub mod params;
pub mod quota;
pub mod reads;
pub mod retention;
pub mod routes;
pub mod server;
pub mod slots;
pub mod state;

pub use config::QueryConfig;
pub use error::QueryError;
pub use server::{metrics_router, router, router_without_metrics, run, run_with_metrics_listener};
pub use state::{Backends, LedgerBackend, QueryState};
