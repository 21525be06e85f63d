//! Which read model serves a filter, and reading one page from it.
//!
//! The event store (ScyllaDB) serves time ranges and reads keyed by actor or by target
//! (type and id together), with any other filter applied to that key's rows; the search
//! index (OpenSearch) serves `q` and the combinations the store would have to scan a whole
//! time range for (action, outcome, severity, a lone target type or id). The store is also
//! read-your-writes, whereas the index becomes visible after its refresh interval.

use auditlog_seams::{EventFilter, Page, PageRequest};

use crate::cursor::Backend;
use crate::error::QueryError;
use crate::state::QueryState;

/// The read model for `filter`.
pub fn choose(filter: &EventFilter) -> Backend {
    if filter.text.is_some() {
        return Backend::Search;
    }
    let keyed = filter.actor_id.is_some() || (filter.target_type.is_some() && filter.target_id.is_some());
    let residual = filter.action.is_some()
        || filter.outcome.is_some()
        || filter.severity.is_some()
        || filter.target_type.is_some() != filter.target_id.is_some();
    if keyed || !residual { Backend::Store } else { Backend::Search }
}

/// One page from `backend`, within the backend time budget.
pub async fn page(state: &QueryState, backend: Backend, filter: &EventFilter, request: &PageRequest) -> Result<Page, QueryError> {
    let budget = state.config().backend_timeout();
    let backends = state.backends();
    let started = std::time::Instant::now();
    let answer = match backend {
        Backend::Store => tokio::time::timeout(budget, backends.store.list(filter, request)).await.map(|r| r.map_err(QueryError::from)),
        Backend::Search => tokio::time::timeout(budget, backends.index.search(filter, request)).await.map(|r| r.map_err(QueryError::from)),
    };
    crate::metrics::backend_read(backend, started.elapsed());
    answer.map_err(|_| QueryError::Unavailable(format!("{backend:?} read timed out")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog_schemas::Outcome;

    #[test]
    fn keyed_reads_go_to_the_store_and_scans_to_the_index() {
        let base = EventFilter { tenant_id: "t".into(), ..EventFilter::default() };
        assert_eq!(choose(&base), Backend::Store);
        assert_eq!(choose(&EventFilter { actor_id: Some("a".into()), outcome: Some(Outcome::Failure), ..base.clone() }), Backend::Store);
        assert_eq!(choose(&EventFilter { outcome: Some(Outcome::Failure), ..base.clone() }), Backend::Search);
        assert_eq!(choose(&EventFilter { target_type: Some("doc".into()), ..base.clone() }), Backend::Search);
        assert_eq!(choose(&EventFilter { actor_id: Some("a".into()), text: Some("x".into()), ..base }), Backend::Search);
    }
}
