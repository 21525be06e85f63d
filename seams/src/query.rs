//! Read-side types shared by the [`crate::EventStore`] and [`crate::SearchIndex`] seams.

use auditlog_schemas::{AuditEvent, Outcome, Severity};
use time::OffsetDateTime;

use crate::LogPosition;

/// An event as the read models keep it: the event and where it sits in the log, so a
/// tenant's log order stays recoverable from either view.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event.
    pub event: AuditEvent,
    /// Its position in the event log.
    pub position: LogPosition,
}

/// How `action` is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFilter {
    /// This action exactly.
    Exact(String),
    /// Every action starting with this prefix (`user.*` is `Prefix("user.")`).
    Prefix(String),
}

/// Filters shared by lists, searches, stats, exports and tails. Always scoped to one tenant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventFilter {
    /// The caller's tenant; there is no way to name another.
    pub tenant_id: String,
    /// Inclusive lower bound on `occurred_at`.
    pub from: Option<OffsetDateTime>,
    /// Exclusive upper bound on `occurred_at`.
    pub to: Option<OffsetDateTime>,
    /// Actor id.
    pub actor_id: Option<String>,
    /// Action, exact or prefix.
    pub action: Option<ActionFilter>,
    /// Target type.
    pub target_type: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// Severity.
    pub severity: Option<Severity>,
    /// Full-text query over names and description (search index only).
    pub text: Option<String>,
}

/// A page request: newest first, resumed after an opaque cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Most events to return.
    pub limit: usize,
    /// Where the previous page ended, as the backend encoded it.
    pub after: Option<String>,
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// What to count events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// `action`.
    Action,
    /// `actor.id`.
    ActorId,
    /// `outcome`.
    Outcome,
    /// `severity`.
    Severity,
}

/// Counts over a filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Matching events.
    pub total: u64,
    /// Counts per group key, largest first.
    pub groups: Vec<(String, u64)>,
    /// Counts per time bucket start, oldest first.
    pub histogram: Vec<(OffsetDateTime, u64)>,
}
