//! Conformance scenarios, one module per seam.
pub mod event_log;
pub mod event_store;
pub mod search_index;
