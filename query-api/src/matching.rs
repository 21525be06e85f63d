//! Whether one event passes a filter, for the paths that filter events themselves (the live
//! tail and the `Last-Event-ID` replay); the read models apply filters in their own queries.
//!
//! Its own module so that the live hub ([`crate::live`]) needs neither [`crate::reads`] nor
//! [`crate::state`]: `state` owns the hub, `reads` reads through `state`, and neither is
//! imported back by `live`.

use auditlog_schemas::AuditEvent;
use auditlog_seams::EventFilter;

/// Whether `event` passes `filter`. `q` matches case-insensitively as a substring of the
/// action, actor id and name, and description — close to, not the same as, the index's
/// full-text analysis.
pub fn matches(event: &AuditEvent, filter: &EventFilter) -> bool {
    filter.matches(event) && filter.text.as_ref().is_none_or(|q| text_matches(event, q))
}

fn text_matches(event: &AuditEvent, query: &str) -> bool {
    let haystack = [Some(event.action.as_str()), Some(event.actor.id.as_str()), event.actor.name.as_deref(), event.description.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    query.split_whitespace().all(|word| haystack.contains(&word.to_lowercase()))
}
