//! Lists of the fjall event store: pick the index that serves the filter (target, actor, or
//! time), reverse-range-scan it between the time bounds and the cursor, and filter the rest
//! in memory.
//!
//! The cursor is `<query fingerprint>.<occurred_us>.<hex id>` of the last event returned: a
//! cursor taken from another tenant's or another filter's list is refused, never
//! reinterpreted. A scan is bounded like the ScyllaDB store's: after [`SCAN_LIMIT`] rows the
//! page ends early with a cursor where the scan stopped.

use std::fmt::Write as _;
use std::ops::Bound;

use auditlog_schemas::avro::to_micros;

use super::{Tables, keys, row_of};
use crate::event_store::StoreError;
use crate::query::{EventFilter, Page, PageRequest};

/// Largest page.
pub const MAX_PAGE: usize = 1_000;
/// Rows examined by one list before it returns a short page with a cursor: bounds the work
/// of a filter that matches rarely (the search index serves those better).
pub const SCAN_LIMIT: usize = 20_000;


/// A stable fingerprint of a list's tenant and filters (FNV-1a, 64 bits). The time range is
/// left out: a cursor is a position in the newest-first order, valid whatever the bounds, and
/// callers move `from` between pages (the query API raises it to the retention cutoff,
/// `now - retention`, on every request).
fn fingerprint(filter: &EventFilter) -> u64 {
    let unbounded = EventFilter { from: None, to: None, ..filter.clone() };
    format!("{unbounded:?}").bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn cursor(filter: &EventFilter, us: i64, id: &str) -> String {
    let mut text = format!("{:016x}.{us}.", fingerprint(filter));
    for b in id.bytes() {
        let _ = write!(text, "{b:02x}");
    }
    text
}

fn parse_cursor(filter: &EventFilter, text: &str) -> Result<(i64, String), StoreError> {
    let invalid = || StoreError::Invalid(format!("cursor {text:?} is not one this store made"));
    let mut parts = text.splitn(3, '.');
    let (Some(fp), Some(us), Some(hex)) = (parts.next(), parts.next(), parts.next()) else { return Err(invalid()) };
    if u64::from_str_radix(fp, 16).ok() != Some(fingerprint(filter)) {
        return Err(StoreError::Invalid("cursor belongs to another tenant or query".into()));
    }
    let us = us.parse().map_err(|_| invalid())?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(invalid());
    }
    let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16)).collect::<Result<Vec<u8>, _>>().map_err(|_| invalid())?;
    Ok((us, String::from_utf8(bytes).map_err(|_| invalid())?))
}

/// Serves [`crate::EventStore::list`] (blocking).
pub(super) fn list(tables: &Tables, filter: &EventFilter, page: &PageRequest) -> Result<Page, StoreError> {
    if filter.text.is_some() {
        return Err(StoreError::Invalid("full-text queries are served by the search index".into()));
    }
    if page.limit == 0 || page.limit > MAX_PAGE {
        return Err(StoreError::Invalid(format!("limit must be 1..={MAX_PAGE}")));
    }
    let tenant = filter.tenant_id.as_str();
    let (index, prefix) = match (&filter.target_type, &filter.target_id, &filter.actor_id) {
        (Some(kind), Some(id), _) => (&tables.by_target, keys::prefix(tenant, &[kind, id])),
        (_, _, Some(actor)) => (&tables.by_actor, keys::prefix(tenant, &[actor])),
        _ => (&tables.by_time, keys::prefix(tenant, &[])),
    };
    let lower = Bound::Included(keys::timed(&prefix, filter.from.map_or(i64::MIN, to_micros), ""));
    let upper = match (&page.after, filter.to) {
        (Some(text), _) => {
            let (us, id) = parse_cursor(filter, text)?;
            Bound::Excluded(keys::timed(&prefix, us, &id))
        }
        (None, Some(to)) => Bound::Excluded(keys::timed(&prefix, to_micros(to), "")),
        (None, None) => Bound::Included(keys::after_all(&prefix)),
    };
    let mut events = Vec::with_capacity(page.limit.min(64));
    let mut scanned = 0;
    // Once the page is full, the scan looks for one more match: the cursor is only given
    // when there is a next page (`next` is null on the last page, even a full one).
    let mut full_at: Option<String> = None;
    for item in index.range::<Vec<u8>, _>((lower, upper)).rev() {
        let (key, value) = item.into_inner().map_err(super::unavailable)?;
        let Some(stored) = row_of(tables, tenant, &key, prefix.len(), &value)? else { continue };
        let (us, id) = (to_micros(stored.event.occurred_at), stored.event.id.clone());
        scanned += 1;
        // Rows past the upper time bound can only come from a cursor above it: skip them.
        let in_range = filter.to.is_none_or(|to| stored.event.occurred_at < to);
        if in_range && filter.matches_fields(&stored.event) {
            if full_at.is_some() {
                return Ok(Page { events, next: full_at });
            }
            events.push(stored);
            if events.len() == page.limit {
                full_at = Some(cursor(filter, us, &id));
            }
        }
        if scanned >= SCAN_LIMIT {
            // Cut short: whether more follows is unknown, so a cursor is given.
            return Ok(Page { events, next: Some(full_at.unwrap_or_else(|| cursor(filter, us, &id))) });
        }
    }
    Ok(Page { events, next: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let f = EventFilter { tenant_id: "a".into(), ..EventFilter::default() };
        let g = EventFilter { tenant_id: "b".into(), ..EventFilter::default() };
        let c = cursor(&f, -5, "a.b:c");
        assert_eq!(parse_cursor(&f, &c).ok(), Some((-5, "a.b:c".to_owned())));
        assert!(matches!(parse_cursor(&g, &c), Err(StoreError::Invalid(_))));
        for bad in ["", "nope", "x.1.", "0.x.00", &format!("{:016x}.1.zz", fingerprint(&f)), &format!("{:016x}.1.ff", fingerprint(&f))] {
            assert!(matches!(parse_cursor(&f, bad), Err(StoreError::Invalid(_))), "{bad}");
        }
    }
}
