//! Conformance scenarios, one module per seam.
pub mod event_log;
