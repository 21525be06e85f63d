//! The query API's routes, one module per resource:
//!
//! - [`events`]: `GET /v1/events`, `GET /v1/events/{id}`;
//! - [`stats`]: `GET /v1/stats`;
//! - [`export`]: `GET /v1/events/export`;
//! - [`stream`]: `GET /v1/events/stream` (WebSocket and SSE);
//! - [`ledger`]: checkpoint, keys, inclusion and consistency proofs, tiles;
//! - [`admin`]: tenants and API keys.

pub mod admin;
pub mod events;
pub mod export;
pub mod ledger;
pub mod stats;
pub mod stream;
