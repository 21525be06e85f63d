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

impl EventFilter {
    /// Whether `event` passes the structured filters: actor, action (exact or prefix), target
    /// type and id, outcome and severity. Tenant, time range and `text` are left to the
    /// caller, which usually serves them from its key layout or a search engine.
    pub fn matches_fields(&self, event: &AuditEvent) -> bool {
        self.actor_id.as_ref().is_none_or(|a| &event.actor.id == a)
            && self.outcome.is_none_or(|o| event.outcome == o)
            && self.severity.is_none_or(|s| event.severity == s)
            && self.target_type.as_ref().is_none_or(|t| event.targets.iter().any(|x| &x.kind == t))
            && self.target_id.as_ref().is_none_or(|t| event.targets.iter().any(|x| &x.id == t))
            && match &self.action {
                None => true,
                Some(ActionFilter::Exact(a)) => &event.action == a,
                Some(ActionFilter::Prefix(p)) => event.action.starts_with(p.as_str()),
            }
    }

    /// Whether `event` belongs to the tenant, lies in the time range and passes the
    /// structured filters; `text` is not evaluated.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        event.tenant_id == self.tenant_id
            && self.from.is_none_or(|f| event.occurred_at >= f)
            && self.to.is_none_or(|t| event.occurred_at < t)
            && self.matches_fields(event)
    }
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

#[cfg(test)]
mod tests {
    use auditlog_schemas::{Actor, ActorType, Target};
    use time::macros::datetime;

    use super::*;

    fn event() -> AuditEvent {
        let at = datetime!(2026-11-20 12:00 UTC);
        AuditEvent {
            id: "e1".into(),
            tenant_id: "acme".into(),
            occurred_at: at,
            received_at: at,
            action: "user.login".into(),
            actor: Actor { id: "alice".into(), kind: ActorType::User, name: None, email: None },
            targets: vec![Target { kind: "document".into(), id: "d1".into(), name: None }],
            outcome: Outcome::Failure,
            severity: Severity::Warning,
            source: None,
            context: None,
            description: None,
            metadata: None,
            signature: None,
        }
    }

    #[test]
    fn every_filter_takes_part() {
        let e = event();
        let base = EventFilter { tenant_id: "acme".into(), ..EventFilter::default() };
        assert!(base.matches(&e));
        let passing = EventFilter {
            from: Some(e.occurred_at),
            to: Some(e.occurred_at + time::Duration::SECOND),
            actor_id: Some("alice".into()),
            action: Some(ActionFilter::Prefix("user.".into())),
            target_type: Some("document".into()),
            target_id: Some("d1".into()),
            outcome: Some(Outcome::Failure),
            severity: Some(Severity::Warning),
            ..base.clone()
        };
        assert!(passing.matches(&e));
        let failing = [
            EventFilter { tenant_id: "other".into(), ..passing.clone() },
            EventFilter { to: Some(e.occurred_at), ..passing.clone() },
            EventFilter { actor_id: Some("bob".into()), ..passing.clone() },
            EventFilter { action: Some(ActionFilter::Exact("user.".into())), ..passing.clone() },
            EventFilter { target_id: Some("d2".into()), ..passing.clone() },
            EventFilter { outcome: Some(Outcome::Success), ..passing.clone() },
            EventFilter { severity: Some(Severity::Info), ..passing.clone() },
        ];
        for filter in failing {
            assert!(!filter.matches(&e), "{filter:?}");
        }
        assert!(EventFilter { tenant_id: "other".into(), ..passing }.matches_fields(&e), "fields leave tenant to the caller");
    }
}
