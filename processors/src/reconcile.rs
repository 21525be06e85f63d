//! `auditlog reconcile`: per tenant, the events in the log against those in the event store
//! and the search index: counts, and the ids missing from or extra in each view.
//!
//! The log side is read like a replay (throw-away group, up to the ends seen at the start,
//! nothing committed) into an in-memory collector; each view is then paged through in full
//! for every tenant seen. Memory grows with the number of ids: a tool for audits and tests,
//! not for a hot path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditlog_schemas::WireCodec;
use auditlog_seams::{Conflict, EventFilter, EventLog, EventStore, PageRequest, SearchIndex, StoredEvent};
use serde::Serialize;

use crate::config::{ProcessorConfig, SinkKind};
use crate::pipeline::{Pipeline, PipelineError};
use crate::sink::{Sink, SinkError};

/// Page size used to read the views.
const PAGE: usize = 1_000;
/// Ids listed per difference in a report; the counts are always complete.
const MAX_LISTED_IDS: usize = 50;

/// One view of one tenant compared with the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ViewReport {
    /// Distinct event ids in the view.
    pub count: u64,
    /// Rows the view returned more than once (0 when exact).
    pub duplicates: u64,
    /// Ids in the log but not in the view (first [`MAX_LISTED_IDS`]).
    pub missing: Vec<String>,
    /// How many ids are missing.
    pub missing_count: u64,
    /// Ids in the view but not in the log (first [`MAX_LISTED_IDS`]).
    pub extra: Vec<String>,
    /// How many ids are extra.
    pub extra_count: u64,
}

/// One tenant's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: String,
    /// Distinct event ids in the log.
    pub log: u64,
    /// The event store (ScyllaDB).
    pub scylla: ViewReport,
    /// The search index (OpenSearch).
    pub opensearch: ViewReport,
}

impl TenantReport {
    /// True when both views hold exactly the log's events, once each.
    pub fn is_exact(&self) -> bool {
        [&self.scylla, &self.opensearch].iter().all(|v| v.duplicates == 0 && v.missing_count == 0 && v.extra_count == 0)
    }
}

/// Errors of a reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] PipelineError),
    /// Reading a view failed.
    #[error("reading the {view}: {error}")]
    View {
        /// Which view.
        view: &'static str,
        /// What failed.
        error: String,
    },
}

/// Collects the distinct ids per tenant that the pipeline decodes.
#[derive(Default)]
struct Collector(Mutex<HashMap<String, HashSet<String>>>);

#[async_trait]
impl Sink for Collector {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    async fn write(&self, events: &[StoredEvent]) -> Result<Vec<Conflict>, SinkError> {
        let mut ids = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for stored in events {
            ids.entry(stored.event.tenant_id.clone()).or_default().insert(stored.event.id.clone());
        }
        Ok(Vec::new())
    }

    async fn check_ready(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Compares the log with both views, for `tenant` or every tenant in the log.
pub async fn reconcile(
    config: &ProcessorConfig,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    store: Arc<dyn EventStore>,
    index: Arc<dyn SearchIndex>,
    tenant: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Vec<TenantReport>, ReconcileError> {
    let in_log = log_ids(config, log, codec, tenant.clone(), shutdown).await?;
    let mut tenants: BTreeMap<String, HashSet<String>> = in_log.into_iter().collect();
    if let Some(t) = tenant {
        tenants.entry(t).or_default();
    }
    let mut reports = Vec::with_capacity(tenants.len());
    for (tenant, ids) in tenants {
        let scylla = compare(&ids, View::Store(store.as_ref()).ids(&tenant).await?);
        let opensearch = compare(&ids, View::Index(index.as_ref()).ids(&tenant).await?);
        reports.push(TenantReport { tenant, log: ids.len() as u64, scylla, opensearch });
    }
    Ok(reports)
}

async fn log_ids(
    config: &ProcessorConfig,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    tenant: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<HashMap<String, HashSet<String>>, PipelineError> {
    let dlq = config.dlq_topic();
    let ends: Vec<_> = log.watermarks(&config.topics()).await?.into_iter().filter(|w| w.topic != dlq).collect();
    let mut config = config.clone();
    config.group = format!("auditlog-reconcile-{}", time::OffsetDateTime::now_utc().unix_timestamp_nanos());
    config.commit = false;
    let collector = Arc::new(Collector::default());
    let sink: Arc<dyn Sink> = collector.clone();
    Pipeline::new(config, log, codec, sink)
        .keep(Arc::new(move |e| tenant.as_ref().is_none_or(|t| *t == e.tenant_id)))
        .until(&ends)
        .run(shutdown)
        .await?;
    let ids = std::mem::take(&mut *collector.0.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(ids)
}

/// A read model to page through.
#[derive(Clone, Copy)]
enum View<'a> {
    Store(&'a dyn EventStore),
    Index(&'a dyn SearchIndex),
}

impl View<'_> {
    async fn page(self, filter: &EventFilter, page: &PageRequest) -> Result<auditlog_seams::Page, ReconcileError> {
        let (view, answer) = match self {
            Self::Store(store) => (SinkKind::Scylla, store.list(filter, page).await.map_err(|e| e.to_string())),
            Self::Index(index) => (SinkKind::OpenSearch, index.search(filter, page).await.map_err(|e| e.to_string())),
        };
        answer.map_err(|error| ReconcileError::View { view: view.as_str(), error })
    }

    /// Every id the view lists for `tenant`, repeats kept.
    async fn ids(self, tenant: &str) -> Result<Vec<String>, ReconcileError> {
        let filter = EventFilter { tenant_id: tenant.to_owned(), ..EventFilter::default() };
        let mut page = PageRequest { limit: PAGE, after: None };
        let mut ids = Vec::new();
        loop {
            let answer = self.page(&filter, &page).await?;
            ids.extend(answer.events.into_iter().map(|s| s.event.id));
            match answer.next {
                Some(next) => page.after = Some(next),
                None => return Ok(ids),
            }
        }
    }
}

/// The view's ids (as listed, repeats included) against the log's.
fn compare(log: &HashSet<String>, listed: Vec<String>) -> ViewReport {
    let listed_count = listed.len();
    let view: HashSet<String> = listed.into_iter().collect();
    let mut missing: Vec<String> = log.difference(&view).cloned().collect();
    let mut extra: Vec<String> = view.difference(log).cloned().collect();
    missing.sort();
    extra.sort();
    let (missing_count, extra_count) = (missing.len() as u64, extra.len() as u64);
    missing.truncate(MAX_LISTED_IDS);
    extra.truncate(MAX_LISTED_IDS);
    ViewReport {
        count: view.len() as u64,
        duplicates: (listed_count - view.len()) as u64,
        missing,
        missing_count,
        extra,
        extra_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_missing_extra_and_repeated_rows() {
        let log: HashSet<String> = ["a", "b", "c"].map(String::from).into();
        let report = compare(&log, ["b", "c", "c", "d"].map(String::from).to_vec());
        assert_eq!(report.count, 3);
        assert_eq!(report.duplicates, 1);
        assert_eq!((report.missing.clone(), report.missing_count), (vec!["a".to_owned()], 1));
        assert_eq!((report.extra.clone(), report.extra_count), (vec!["d".to_owned()], 1));
        let exact = compare(&log, ["a", "b", "c"].map(String::from).to_vec());
        assert_eq!(exact, ViewReport { count: 3, ..ViewReport::default() });
    }
}
