//! Lists of the ScyllaDB event store: pick the table that serves the filter (target, actor,
//! or time), walk its non-empty day buckets newest first, and filter the rest in memory.
//!
//! The cursor is the `(occurred_us, id)` of the last event returned: the next page continues
//! strictly below it in clustering order. A scan is bounded: after [`SCAN_LIMIT`] rows that
//! did not match, the page ends early with a cursor where the scan stopped.


use super::{ScyllaEventStore, bucket_of, stored_from_row, target_key, unavailable};
use crate::event_store::StoreError;
use crate::query::{EventFilter, Page, PageRequest};

/// Largest page.
pub const MAX_PAGE: usize = 1_000;
/// Rows fetched per query when other filters (action, outcome, ...) may drop rows: larger
/// means fewer round trips, more rows read past the page. Without such filters a query
/// fetches just what the page still lacks.
const FILTERED_FETCH: usize = 200;
/// Rows examined by one list before it returns a short page with a cursor: bounds the work of
/// a filter that matches rarely (the search index serves those better).
pub const SCAN_LIMIT: usize = 20_000;

type Row = (i64, String, String, String, i32, i64);

/// Which table serves a filter, with its partition key values.
enum Index<'f> {
    Time,
    Actor(&'f str),
    Target(String),
}

/// Encodes a cursor.
fn cursor(us: i64, id: &str) -> String {
    format!("{us}:{id}")
}

/// Decodes a cursor made by [`cursor`].
fn parse_cursor(text: &str) -> Result<(i64, String), StoreError> {
    let invalid = || StoreError::Invalid(format!("cursor {text:?} is not one this store made"));
    let (us, id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((us.parse().map_err(|_| invalid())?, id.to_owned()))
}


/// The day buckets of one index partition family in `[low, high]`, newest first.
pub(super) async fn buckets(
    store: &ScyllaEventStore,
    tenant_id: &str,
    index_name: &str,
    index_key: &str,
    high: i32,
    low: i32,
) -> Result<Vec<i32>, StoreError> {
    let result = store
        .session
        .execute_unpaged(&store.st.select_buckets, (tenant_id, index_name, index_key, high, low))
        .await
        .map_err(unavailable)?;
    let rows = result.into_rows_result().map_err(unavailable)?;
    rows.rows::<(i32,)>().map_err(unavailable)?.map(|r| r.map(|(b,)| b).map_err(unavailable)).collect()
}

async fn fetch(
    store: &ScyllaEventStore,
    index: &Index<'_>,
    tenant_id: &str,
    bucket: i32,
    below: &(i64, String),
    fetch: i32,
) -> Result<Vec<Row>, StoreError> {
    let s = &store.session;
    let (us, id) = (below.0, below.1.as_str());
    let st = &store.st;
    let result = match index {
        Index::Time => s.execute_unpaged(&st.list_time, (tenant_id, bucket, us, id, fetch)).await,
        Index::Actor(actor) => s.execute_unpaged(&st.list_actor, (tenant_id, *actor, bucket, us, id, fetch)).await,
        Index::Target(key) => s.execute_unpaged(&st.list_target, (tenant_id, key.as_str(), bucket, us, id, fetch)).await,
    }
    .map_err(unavailable)?;
    let rows = result.into_rows_result().map_err(unavailable)?;
    rows.rows::<Row>().map_err(unavailable)?.map(|r| r.map_err(unavailable)).collect()
}

/// Whether `filter` may drop rows of `index` (a filter the partition key does not imply).
fn residual(filter: &EventFilter, index: &Index<'_>) -> bool {
    let keyed = match index {
        Index::Target(_) => filter.actor_id.is_some(),
        Index::Actor(_) | Index::Time => filter.target_type.is_some() || filter.target_id.is_some(),
    };
    keyed || filter.action.is_some() || filter.outcome.is_some() || filter.severity.is_some()
}

/// Serves [`crate::EventStore::list`].
pub(super) async fn list(store: &ScyllaEventStore, filter: &EventFilter, page: &PageRequest) -> Result<Page, StoreError> {
    if filter.text.is_some() {
        return Err(StoreError::Invalid("full-text queries are served by the search index".into()));
    }
    if page.limit == 0 || page.limit > MAX_PAGE {
        return Err(StoreError::Invalid(format!("limit must be 1..={MAX_PAGE}")));
    }
    let index = match (&filter.target_type, &filter.target_id, &filter.actor_id) {
        (Some(kind), Some(id), _) => Index::Target(target_key(kind, id)),
        (_, _, Some(actor)) => Index::Actor(actor),
        _ => Index::Time,
    };
    let (index_name, index_key) = match &index {
        Index::Time => ("time", String::new()),
        Index::Actor(a) => ("actor", (*a).to_owned()),
        Index::Target(k) => ("target", k.clone()),
    };
    let lower_us = filter.from.map_or(i64::MIN, auditlog_schemas::avro::to_micros);
    let upper_us = filter.to.map_or(i64::MAX, auditlog_schemas::avro::to_micros);
    let mut below = match &page.after {
        Some(text) => {
            let (us, id) = parse_cursor(text)?;
            if us > upper_us { (upper_us, String::new()) } else { (us, id) }
        }
        None => (upper_us, String::new()),
    };
    let tenant = filter.tenant_id.as_str();
    let days = buckets(store, tenant, index_name, &index_key, bucket_of(below.0), bucket_of(lower_us)).await?;
    let mut events = Vec::with_capacity(page.limit);
    let mut scanned = 0;
    let filtered = residual(filter, &index);
    // Once the page is full, the scan looks for one more match: the cursor is only given
    // when there is a next page (`next` is null on the last page, even a full one).
    let mut full_at: Option<String> = None;
    for day in days {
        loop {
            // One more than the page lacks: the match after a full page.
            let lacking = page.limit + 1 - events.len();
            let want = if filtered { lacking.max(FILTERED_FETCH) } else { lacking }.min(MAX_PAGE);
            // `want` is at most MAX_PAGE, so the cast cannot truncate.
            let rows = fetch(store, &index, tenant, day, &below, want as i32).await?;
            let full = rows.len() == want;
            for row in rows {
                if row.0 < lower_us {
                    return Ok(Page { events, next: None });
                }
                below = (row.0, row.1.clone());
                let stored = stored_from_row(row)?;
                scanned += 1;
                if filter.matches_fields(&stored.event) {
                    if full_at.is_some() {
                        return Ok(Page { events, next: full_at });
                    }
                    events.push(stored);
                    if events.len() == page.limit {
                        full_at = Some(cursor(below.0, &below.1));
                    }
                }
                if scanned >= SCAN_LIMIT {
                    // Cut short: whether more follows is unknown, so a cursor is given.
                    return Ok(Page { events, next: Some(full_at.unwrap_or_else(|| cursor(below.0, &below.1))) });
                }
            }
            if !full {
                break;
            }
        }
        // Rows of older days are all below any bound of this one.
    }
    Ok(Page { events, next: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(parse_cursor(&cursor(-5, "a:b.c")).ok(), Some((-5, "a:b.c".to_owned())));
        assert!(parse_cursor("nope").is_err());
        assert!(parse_cursor("x:1").is_err());
    }

    #[test]
    fn buckets_are_utc_days() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(86_400_000_000 - 1), 0);
        assert_eq!(bucket_of(-1), -1);
        assert_eq!(bucket_of(i64::MAX), 106_751_991);
    }
}
