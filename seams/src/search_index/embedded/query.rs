//! Queries of the tantivy search index: the filter as a boolean query always confined to the
//! tenant, newest-first pages with a `search_after`-style cursor, and exact stats through a
//! collector over fast columns.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use auditlog_schemas::avro::to_micros;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, Term};
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
