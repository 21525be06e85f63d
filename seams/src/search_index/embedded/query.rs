//! Queries of the tantivy search index: the filter as a boolean query always confined to the
//! tenant, newest-first pages with a `search_after`-style cursor, and exact stats through a
//! collector over fast columns.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditlog_schemas::avro::to_micros;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{BooleanQuery, EnableScoring, Explanation, Occur, Query, QueryParser, RangeQuery, Scorer, TermQuery, TermSetQuery, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{COLLECT_BLOCK_BUFFER_LEN, DocId, DocSet, Score, SegmentOrdinal, SegmentReader, TERMINATED, Term};
use time::OffsetDateTime;

use super::schema::{self, Fields};
use crate::query::{ActionFilter, EventFilter, GroupBy};
use crate::search_index::IndexError;

/// Largest page.
pub const MAX_PAGE: usize = 1_000;
/// Most groups returned by stats (as the OpenSearch index).
pub const MAX_GROUPS: usize = 1_000;

fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

fn us_range(f: &Fields, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
    let t = |us: i64| Term::from_field_i64(f.occurred_us, us);
    Box::new(RangeQuery::new(lower.map(t), upper.map(t)))
}

/// The query of a filter, optionally resumed below a cursor `(us, id)`.
pub(super) fn filter_query(
    f: &Fields,
    parser: &QueryParser,
    filter: &EventFilter,
    below: Option<(i64, String)>,
) -> Result<Box<dyn Query>, IndexError> {
    let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, term(f.tenant, &filter.tenant_id))];
    if filter.from.is_some() || filter.to.is_some() {
        let lower = filter.from.map_or(Bound::Unbounded, |t| Bound::Included(to_micros(t)));
        let upper = filter.to.map_or(Bound::Unbounded, |t| Bound::Excluded(to_micros(t)));
        must.push((Occur::Must, us_range(f, lower, upper)));
    }
    if let Some(actor) = &filter.actor_id {
        must.push((Occur::Must, term(f.actor_id, actor)));
    }
    match &filter.action {
        Some(ActionFilter::Exact(a)) => must.push((Occur::Must, term(f.action, a))),
        Some(ActionFilter::Prefix(p)) => {
            let upper = format!("{p}\u{10ffff}");
            let range = RangeQuery::new(Bound::Included(Term::from_field_text(f.action, p)), Bound::Excluded(Term::from_field_text(f.action, &upper)));
            must.push((Occur::Must, Box::new(range)));
        }
        None => {}
    }
    match (&filter.target_type, &filter.target_id) {
        (Some(kind), Some(id)) => must.push((Occur::Must, term(f.target_key, &schema::target_key(kind, id)))),
        (Some(kind), None) => must.push((Occur::Must, term(f.target_type, kind))),
        (None, Some(id)) => must.push((Occur::Must, term(f.target_id, id))),
        (None, None) => {}
    }
    if let Some(outcome) = filter.outcome {
        must.push((Occur::Must, term(f.outcome, outcome.as_str())));
    }
    if let Some(severity) = filter.severity {
        must.push((Occur::Must, term(f.severity, severity.as_str())));
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
        let parsed = parser.parse_query(text).map_err(|e| IndexError::Invalid(format!("query text {text:?}: {e}")))?;
        must.push((Occur::Must, parsed));
    }
    if let Some((us, id)) = below {
        let same_time_lower_id = BooleanQuery::new(vec![
            (Occur::Must, us_range(f, Bound::Included(us), Bound::Included(us))),
            (Occur::Must, Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(Term::from_field_text(f.id, &id))))),
        ]);
        let after = BooleanQuery::new(vec![
            (Occur::Should, us_range(f, Bound::Unbounded, Bound::Excluded(us))),
            (Occur::Should, Box::new(same_time_lower_id)),
        ]);
        must.push((Occur::Must, Box::new(after)));
    }
    Ok(Box::new(BooleanQuery::new(must)))
}

/// A query matching every document of a tenant before `before` (purges).
pub(super) fn older_than(f: &Fields, tenant_id: &str, before: OffsetDateTime) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, term(f.tenant, tenant_id)),
        (Occur::Must, us_range(f, Bound::Unbounded, Bound::Excluded(to_micros(before)))),
    ]))
}

/// A query matching one document by identity.
pub(super) fn by_key(f: &Fields, tenant_id: &str, id: &str) -> Box<dyn Query> {
    term(f.key, &schema::key(tenant_id, id))
}

/// Documents with any of the `(tenant_id, id)` keys: one sorted term-set lookup per segment
/// instead of one query per key.
pub(super) fn by_keys<'a>(f: &Fields, keys: impl Iterator<Item = (&'a str, &'a str)>) -> TermSetQuery {
    TermSetQuery::new(keys.map(|(tenant_id, id)| Term::from_field_text(f.key, &schema::key(tenant_id, id))))
}

pub(super) fn parse_cursor(text: &str) -> Result<(i64, String), IndexError> {
    let invalid = || IndexError::Invalid(format!("cursor {text:?} is not one this index made"));
    let (us, id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((us.parse().map_err(|_| invalid())?, id.to_owned()))
}

pub(super) fn cursor(us: i64, id: &str) -> String {
    format!("{us}:{id}")
}

/// Column name of a grouping.
pub(super) fn group_column(group: GroupBy) -> &'static str {
    match group {
        GroupBy::Action => "action",
        GroupBy::ActorId => "actor_id",
        GroupBy::Outcome => "outcome",
        GroupBy::Severity => "severity",
    }
}

/// Exact counts of the matching documents: total, per group key, per histogram bucket.
#[derive(Default)]
pub(super) struct Counts {
    pub total: u64,
    pub groups: HashMap<String, u64>,
    /// Bucket start in microseconds → count.
    pub histogram: BTreeMap<i64, u64>,
}

/// Counts over fast columns.
pub(super) struct StatsCollector {
    pub group: Option<&'static str>,
    pub interval_us: Option<i64>,
}

/// A segment's grouping column with more distinct terms than this is counted in a hash map;
/// below it, in an array indexed by term ordinal (8 bytes a term, no hashing per document).
const DENSE_GROUP_TERMS: usize = 1 << 20;

pub(super) struct SegmentStats {
    group: Option<StrColumn>,
    /// Count per term ordinal, when the column has at most [`DENSE_GROUP_TERMS`] terms.
    dense: Vec<u64>,
    sparse: HashMap<u64, u64>,
    occurred: Option<(Column<i64>, i64)>,
    /// The histogram bucket of the last document and its run length: documents arrive
    /// mostly in time order, so most land in the bucket of the one before.
    run: Option<(i64, u64)>,
    counts: Counts,
}

impl Collector for StatsCollector {
    type Fruit = Counts;
    type Child = SegmentStats;

    fn for_segment(&self, _: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SegmentStats> {
        let group = match self.group {
            Some(name) => reader.fast_fields().str(name)?,
            None => None,
        };
        let occurred = match self.interval_us {
            Some(interval) => Some((reader.fast_fields().i64(schema::OCCURRED_US)?, interval)),
            None => None,
        };
        let terms = group.as_ref().map_or(0, |g| g.dictionary().num_terms());
        let dense = if terms <= DENSE_GROUP_TERMS { vec![0; terms] } else { Vec::new() };
        Ok(SegmentStats { group, dense, sparse: HashMap::new(), occurred, run: None, counts: Counts::default() })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Counts>) -> tantivy::Result<Counts> {
        let mut all = Counts::default();
        for c in fruits {
            all.total += c.total;
            for (k, n) in c.groups {
                *all.groups.entry(k).or_default() += n;
            }
            for (k, n) in c.histogram {
                *all.histogram.entry(k).or_default() += n;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentStats {
    type Fruit = Counts;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.counts.total += 1;
        if let Some(column) = &self.group {
            for ord in column.term_ords(doc) {
                // `ord` < the dictionary's term count, the length of `dense` when used.
                match self.dense.get_mut(ord as usize) {
                    Some(n) => *n += 1,
                    None => *self.sparse.entry(ord).or_default() += 1,
                }
            }
        }
        if let Some((column, interval)) = &self.occurred
            && let Some(us) = column.first(doc)
        {
            let bucket = us.div_euclid(*interval) * interval;
            match &mut self.run {
                Some((b, n)) if *b == bucket => *n += 1,
                run => {
                    if let Some((b, n)) = run.replace((bucket, 1)) {
                        *self.counts.histogram.entry(b).or_default() += n;
                    }
                }
            }
        }
    }

    fn harvest(mut self) -> Counts {
        if let Some((b, n)) = self.run.take() {
            *self.counts.histogram.entry(b).or_default() += n;
        }
        if let Some(column) = &self.group {
            let dense = self.dense.iter().enumerate().filter(|(_, n)| **n > 0).map(|(ord, n)| (ord as u64, *n));
            let mut counted: Vec<(u64, u64)> = dense.chain(self.sparse).collect();
            counted.sort_unstable();
            let ords: Vec<u64> = counted.iter().map(|(ord, _)| *ord).collect();
            // One pass over the dictionary for every counted term: looking ordinals up one by
            // one decodes a dictionary block each (a stats request grouped by actor over a
            // large tenant spent a second there).
            let mut counts = counted.iter().map(|(_, n)| *n);
            let groups = &mut self.counts.groups;
            let _complete = column.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
                if let (Some(n), Ok(key)) = (counts.next(), std::str::from_utf8(bytes)) {
                    *groups.entry(key.to_owned()).or_default() += n;
                }
            });
        }
        self.counts
    }
}

/// Stops a search: set when its caller gave up (the search future was dropped, e.g. by the
/// query API's time budget) or when its own deadline passed. The blocking search sees it
/// between two blocks of documents and ends; its partial result is then discarded.
#[derive(Debug, Clone)]
pub(super) struct Cancel {
    cancelled: Arc<AtomicBool>,
    deadline: Instant,
}

/// Cancels its [`Cancel`] when dropped: held by the search future, so dropping the future
/// stops the blocking work it started.
pub(super) struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }
}

/// Documents a scorer passes between two looks at its [`Cancel`].
const CANCEL_CHECK_DOCS: u32 = 4_096;

impl Cancel {
    /// A token that expires after `budget`, and the guard cancelling it on drop.
    pub(super) fn new(budget: Duration) -> (Self, CancelOnDrop) {
        let cancel = Self { cancelled: Arc::new(AtomicBool::new(false)), deadline: Instant::now() + budget };
        (cancel.clone(), CancelOnDrop(cancel))
    }

    /// Whether the search should stop (remembered once the deadline passed).
    pub(super) fn is_cancelled(&self) -> bool {
        if self.cancelled.load(Ordering::Relaxed) {
            return true;
        }
        if Instant::now() >= self.deadline {
            self.cancelled.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// `query`, stopping at this token.
    pub(super) fn wrap(&self, query: Box<dyn Query>) -> Box<dyn Query> {
        Box::new(Cancellable { inner: query, cancel: self.clone() })
    }

    /// `result` unless the search was cancelled meanwhile (its result may be partial then).
    pub(super) fn check<T>(&self, result: Result<T, IndexError>) -> Result<T, IndexError> {
        if self.is_cancelled() { Err(IndexError::Unavailable("search cancelled: past its time budget or abandoned".into())) } else { result }
    }
}

/// A query whose scorers end early once its [`Cancel`] is set.
#[derive(Debug)]
struct Cancellable {
    inner: Box<dyn Query>,
    cancel: Cancel,
}

impl Clone for Cancellable {
    fn clone(&self) -> Self {
        Self { inner: self.inner.box_clone(), cancel: self.cancel.clone() }
    }
}

impl Query for Cancellable {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(CancellableWeight { inner: self.inner.weight(scoring)?, cancel: self.cancel.clone() }))
    }
}

struct CancellableWeight {
    inner: Box<dyn Weight>,
    cancel: Cancel,
}

fn cancelled() -> tantivy::TantivyError {
    tantivy::TantivyError::InternalError("search cancelled".into())
}

impl Weight for CancellableWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        // Building a segment's scorer can itself read much of the dictionary; look first.
        if self.cancel.is_cancelled() {
            return Err(cancelled());
        }
        Ok(Box::new(CancellableScorer { inner: self.inner.scorer(reader, boost)?, cancel: self.cancel.clone(), until_check: CANCEL_CHECK_DOCS, stopped: false }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.inner.explain(reader, doc)
    }
}

struct CancellableScorer {
    inner: Box<dyn Scorer>,
    cancel: Cancel,
    until_check: u32,
    stopped: bool,
}

impl CancellableScorer {
    /// Counts `docs` passed; past [`CANCEL_CHECK_DOCS`], looks at the token.
    fn passed(&mut self, docs: u32) -> bool {
        self.until_check = self.until_check.saturating_sub(docs);
        if self.until_check == 0 {
            self.until_check = CANCEL_CHECK_DOCS;
            self.stopped = self.cancel.is_cancelled();
        }
        self.stopped
    }
}

impl DocSet for CancellableScorer {
    fn advance(&mut self) -> DocId {
        if self.stopped || self.passed(1) {
            return TERMINATED;
        }
        self.inner.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.stopped || self.passed(1) {
            return TERMINATED;
        }
        self.inner.seek(target)
    }

    fn fill_buffer(&mut self, buffer: &mut [DocId; COLLECT_BLOCK_BUFFER_LEN]) -> usize {
        if self.stopped || self.passed(COLLECT_BLOCK_BUFFER_LEN as u32) {
            return 0;
        }
        self.inner.fill_buffer(buffer)
    }

    fn doc(&self) -> DocId {
        if self.stopped { TERMINATED } else { self.inner.doc() }
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }
}

impl Scorer for CancellableScorer {
    fn score(&mut self) -> Score {
        self.inner.score()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use tantivy::collector::Count;
    use tantivy::schema::{STRING, Schema};
    use tantivy::{Index, TantivyDocument};

    use super::*;

    /// Counts the documents it is given and cancels the search at the first one.
    struct CancelAtFirst {
        cancel: Cancel,
        seen: Arc<AtomicU64>,
    }

    struct CancelAtFirstSegment(Cancel, Arc<AtomicU64>);

    impl Collector for CancelAtFirst {
        type Fruit = ();
        type Child = CancelAtFirstSegment;
        fn for_segment(&self, _: SegmentOrdinal, _: &SegmentReader) -> tantivy::Result<CancelAtFirstSegment> {
            Ok(CancelAtFirstSegment(self.cancel.clone(), Arc::clone(&self.seen)))
        }
        fn requires_scoring(&self) -> bool {
            false
        }
        fn merge_fruits(&self, _: Vec<()>) -> tantivy::Result<()> {
            Ok(())
        }
    }

    impl SegmentCollector for CancelAtFirstSegment {
        type Fruit = ();
        fn collect(&mut self, _: DocId, _: Score) {
            self.0.cancelled.store(true, Ordering::Relaxed);
            self.1.fetch_add(1, Ordering::Relaxed);
        }
        fn harvest(self) {}
    }

    fn index_of(docs: u64) -> (Index, Field) {
        let mut schema = Schema::builder();
        let field = schema.add_text_field("f", STRING);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).expect("writer");
        for _ in 0..docs {
            let mut doc = TantivyDocument::new();
            doc.add_text(field, "x");
            writer.add_document(doc).expect("add");
        }
        writer.commit().expect("commit");
        (index, field)
    }

    #[test]
    fn a_cancelled_search_stops_scoring_instead_of_running_to_the_end() {
        let (index, field) = index_of(50_000);
        let searcher = index.reader().expect("reader").searcher();
        let (cancel, _guard) = Cancel::new(Duration::from_secs(60));
        let seen = Arc::new(AtomicU64::new(0));
        let query = cancel.wrap(term(field, "x"));
        let result = searcher.search(&query, &CancelAtFirst { cancel: cancel.clone(), seen: Arc::clone(&seen) }).map_err(|e| IndexError::Unavailable(e.to_string()));
        assert!(matches!(cancel.check(result), Err(IndexError::Unavailable(_))), "a cancelled search fails, never answers partially");
        let seen = seen.load(Ordering::Relaxed);
        assert!(seen <= u64::from(CANCEL_CHECK_DOCS) + COLLECT_BLOCK_BUFFER_LEN as u64, "scoring went on for {seen} of 50000 documents");
    }

    #[test]
    fn dropping_the_guard_or_passing_the_deadline_cancels() {
        let (index, field) = index_of(10);
        let searcher = index.reader().expect("reader").searcher();
        let (cancel, guard) = Cancel::new(Duration::from_secs(60));
        assert_eq!(searcher.search(&cancel.wrap(term(field, "x")), &Count).ok(), Some(10), "an uncancelled search is whole");
        drop(guard);
        assert!(cancel.is_cancelled(), "dropping the search future cancels its work");
        assert!(searcher.search(&cancel.wrap(term(field, "x")), &Count).is_err());
        let (late, _guard) = Cancel::new(Duration::ZERO);
        assert!(late.is_cancelled(), "past the deadline");
    }
}
