//! The embedded [`SearchIndex`] on `tantivy`, for standalone mode.
//!
//! - **Writes**: one `index` call adds its new documents and commits once (tantivy's commit
//!   fsyncs the segment files and the meta file), then reloads the reader, so the events are
//!   durable and searchable when it returns. Like the OpenSearch index's `create` operations,
//!   the first write of a `(tenant_id, id)` wins: a repeat is skipped, so replays change
//!   neither documents nor counts. Writers are serialized by a lock.
//! - **Reads**: every query is a boolean query whose first clause is the tenant; pages are
//!   sorted by `(occurred_us desc, id desc)` on fast columns and resume strictly below the
//!   cursor `<occurred_us>:<id>` (OpenSearch's `search_after`); stats count exactly.
//! - **Full text**: tantivy's query syntax over one text field, conjunctive by default (as
//!   OpenSearch's `default_operator: and`); malformed syntax is [`IndexError::Invalid`].
//! - **Cancellation**: a search or stats call runs on a blocking thread; dropping its future
//!   (a caller's timeout) or running past [`MAX_SEARCH_TIME`] stops the scoring within a few
//!   thousand documents, and the call fails as unavailable instead of answering partially.

mod query;
mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tantivy::collector::{Count, TopDocs};
use tantivy::collector::sort_key::{SortByStaticFastValue, SortByString};
use tantivy::directory::MmapDirectory;
use tantivy::query::QueryParser;
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument};
use time::{Duration, OffsetDateTime};

pub use query::{MAX_GROUPS, MAX_PAGE};

use self::schema::Fields;
use crate::query::{EventFilter, GroupBy, Page, PageRequest, Stats, StoredEvent};
use crate::search_index::{IndexError, SearchIndex};

/// Kind written into the index directory's format file.
pub const FORMAT_KIND: &str = "auditlog-search-index";
/// Format version of the index directory (schema and document encoding).
pub const FORMAT_VERSION: u32 = 1;
/// Memory of the index writer; tantivy flushes a segment when it is full. More means fewer,
/// larger segments at the cost of resident memory.
const WRITER_MEMORY_BYTES: usize = 64 << 20;
/// Longest one search or stats call may run, even when its caller waits longer (the
/// OpenSearch index's `timeout` plays the same role).
pub const MAX_SEARCH_TIME: std::time::Duration = std::time::Duration::from_secs(20);

struct Inner {
    index: Index,
    reader: IndexReader,
    /// The one writer; held for a whole `index` or `purge_before` call.
    writer: Mutex<IndexWriter>,
    fields: Fields,
    parser: QueryParser,
}

/// The search index in a local directory.
#[derive(Clone)]
pub struct TantivySearchIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TantivySearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivySearchIndex").finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(err.to_string())
}

impl TantivySearchIndex {
    /// Opens (or creates) the index in `dir`, checking its format file. Blocking.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, IndexError> {
        let dir = dir.as_ref();
        crate::event_log::embedded::files::check_format(dir, FORMAT_KIND, FORMAT_VERSION).map_err(IndexError::Invalid)?;
        let path = dir.join("tantivy");
        std::fs::create_dir_all(&path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let (schema, fields) = schema::schema();
        let directory = MmapDirectory::open(&path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let index = Index::open_or_create(directory, schema)
            .map_err(|e| IndexError::Invalid(format!("search index in {} cannot be opened: {e}", path.display())))?;
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(unavailable)?;
        let mut parser = QueryParser::for_index(&index, vec![fields.text]);
        parser.set_conjunction_by_default();
        Ok(Self { inner: Arc::new(Inner { index, reader, writer: Mutex::new(writer), fields, parser }) })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T, IndexError> + Send + 'static) -> Result<T, IndexError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| unavailable(format!("index task failed: {e}")))?
    }
}

impl Inner {
    fn index_blocking(&self, events: &[StoredEvent]) -> Result<(), IndexError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let searcher = self.reader.searcher();
        // New events are the rule and repeats (replays, redeliveries) the exception: one
        // lookup of the whole batch's keys tells whether any event needs its own check.
        let keys = events.iter().map(|s| (s.event.tenant_id.as_str(), s.event.id.as_str()));
        let any_indexed = searcher.search(&query::by_keys(&self.fields, keys), &Count).map_err(unavailable)? > 0;
        let mut seen = std::collections::HashSet::new();
        let mut added = 0;
        for stored in events {
            let e = &stored.event;
            if !seen.insert((e.tenant_id.as_str(), e.id.as_str())) {
                continue;
            }
            if any_indexed && searcher.search(&query::by_key(&self.fields, &e.tenant_id, &e.id), &Count).map_err(unavailable)? > 0 {
                continue;
            }
            writer.add_document(schema::document(&self.fields, stored)?).map_err(unavailable)?;
            added += 1;
        }
        if added > 0 {
            writer.commit().map_err(unavailable)?;
            self.reader.reload().map_err(unavailable)?;
        }
        Ok(())
    }

    fn search_blocking(&self, filter: &EventFilter, page: &PageRequest, cancel: &query::Cancel) -> Result<Page, IndexError> {
        if page.limit == 0 || page.limit > MAX_PAGE {
            return Err(IndexError::Invalid(format!("limit must be 1..={MAX_PAGE}")));
        }
        let below = page.after.as_deref().map(query::parse_cursor).transpose()?;
        let q = cancel.wrap(query::filter_query(&self.fields, &self.parser, filter, below)?);
        let sort = (
            (SortByStaticFastValue::<i64>::for_field(schema::OCCURRED_US), Order::Desc),
            (SortByString::for_field(schema::ID), Order::Desc),
        );
        let searcher = self.reader.searcher();
        let hits = cancel.check(searcher.search(&q, &TopDocs::with_limit(page.limit + 1).order_by(sort)).map_err(unavailable))?;
        let more = hits.len() > page.limit;
        let mut events = Vec::with_capacity(hits.len().min(page.limit));
        for (_, address) in hits.into_iter().take(page.limit) {
            let doc: TantivyDocument = searcher.doc(address).map_err(unavailable)?;
            events.push(schema::stored_event(&self.fields, &doc)?);
        }
        let next = match (more, events.last()) {
            (true, Some(last)) => Some(query::cursor(auditlog_schemas::avro::to_micros(last.event.occurred_at), &last.event.id)),
            _ => None,
        };
        Ok(Page { events, next })
    }

    fn stats_blocking(&self, filter: &EventFilter, group_by: Option<GroupBy>, interval: Option<Duration>, cancel: &query::Cancel) -> Result<Stats, IndexError> {
        let interval_us = match interval {
            Some(i) if i.whole_seconds() < 1 => return Err(IndexError::Invalid("interval must be at least one second".into())),
            Some(i) => Some(i.whole_seconds().saturating_mul(1_000_000)),
            None => None,
        };
        let q = cancel.wrap(query::filter_query(&self.fields, &self.parser, filter, None)?);
        let collector = query::StatsCollector { group: group_by.map(query::group_column), interval_us };
        let counts = cancel.check(self.reader.searcher().search(&q, &collector).map_err(unavailable))?;
        let mut groups: Vec<(String, u64)> = counts.groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        groups.truncate(MAX_GROUPS);
        let histogram = counts
            .histogram
            .into_iter()
            .filter_map(|(us, n)| Some((OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()?, n)))
            .collect();
        Ok(Stats { total: counts.total, groups, histogram })
    }

    fn purge_blocking(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, IndexError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let q = query::older_than(&self.fields, tenant_id, before);
        let count = self.reader.searcher().search(&q, &Count).map_err(unavailable)?;
        if count > 0 {
            writer.delete_query(q).map_err(unavailable)?;
            writer.commit().map_err(unavailable)?;
            self.reader.reload().map_err(unavailable)?;
        }
        Ok(count as u64)
    }
}

#[async_trait]
impl SearchIndex for TantivySearchIndex {
    async fn index(&self, events: &[StoredEvent]) -> Result<(), IndexError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.blocking(move |i| i.index_blocking(&events)).await
    }

    async fn search(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, IndexError> {
        let (filter, page) = (filter.clone(), page.clone());
        let (cancel, _on_drop) = query::Cancel::new(MAX_SEARCH_TIME);
        self.blocking(move |i| i.search_blocking(&filter, &page, &cancel)).await
    }

    async fn stats(&self, filter: &EventFilter, group_by: Option<GroupBy>, interval: Option<Duration>) -> Result<Stats, IndexError> {
        let filter = filter.clone();
        let (cancel, _on_drop) = query::Cancel::new(MAX_SEARCH_TIME);
        self.blocking(move |i| i.stats_blocking(&filter, group_by, interval, &cancel)).await
    }

    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, IndexError> {
        let tenant_id = tenant_id.to_owned();
        self.blocking(move |i| i.purge_blocking(&tenant_id, before)).await
    }

    async fn check_ready(&self) -> Result<(), IndexError> {
        self.blocking(|i| i.index.searchable_segment_ids().map(|_| ()).map_err(unavailable)).await
    }
}
