//! Key layout of the fjall event store. Every key starts with the length-prefixed tenant id,
//! so a tenant's rows are one contiguous range and no id can reach into another's:
//!
//! - `events`:    `tenant | id` → `time` (the first write of an id wins)
//! - `by_time`:   `tenant | time | id` → row
//! - `by_actor`:  `tenant | actor_id | time | id` → empty (a reference to `by_time`)
//! - `by_target`: `tenant | target_type | target_id | time | id` → empty
//!
//! `time` is `occurred_at` in microseconds as 8 big-endian bytes with the sign bit flipped,
//! so byte order is time order; the id is last and unprefixed, so keys with the same time
//! sort by id. A list is a reverse range scan: newest first, ties by id descending. The row is
//! written once, where time-range pages and exports read it in order; an actor or target
//! entry ends with the `time | id` of its `by_time` row, one point read away, and `events`
//! (the first-write check and reads by id) holds the time. An event with two targets costs
//! one row and four short keys instead of five rows, which was most of the store's write
//! volume (format version 1 wrote the row into every keyspace; such entries are still read).

/// Appends a length-prefixed string component.
pub(super) fn put_str(key: &mut Vec<u8>, s: &str) {
    // Ids are validated far below 4 GiB; saturate rather than panic on anything else.
    key.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    key.extend_from_slice(s.as_bytes());
}

/// The order-preserving bytes of a microsecond timestamp.
pub(super) fn time_bytes(us: i64) -> [u8; 8] {
    ((us as u64) ^ (1 << 63)).to_be_bytes()
}

/// The prefix of one index family: the tenant and the index's key strings.
pub(super) fn prefix(tenant: &str, parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    put_str(&mut key, tenant);
    for part in parts {
        put_str(&mut key, part);
    }
    key
}

/// `prefix | time | id`.
pub(super) fn timed(prefix: &[u8], us: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8 + id.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(&time_bytes(us));
    key.extend_from_slice(id.as_bytes());
    key
}

/// A key above every `prefix | time | id` (ids are UTF-8, which never holds a 0xFF byte).
pub(super) fn after_all(prefix: &[u8]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&[0xff; 9]);
    key
}

/// The key of an event in `events`.
pub(super) fn by_id(tenant: &str, id: &str) -> Vec<u8> {
    let mut key = prefix(tenant, &[]);
    key.extend_from_slice(id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bytes_sort_like_time() {
        let times = [i64::MIN, -86_400_000_000, -1, 0, 1, 1_700_000_000_000_000, i64::MAX];
        assert!(times.windows(2).all(|w| time_bytes(w[0]) < time_bytes(w[1])));
    }

    #[test]
    fn tenants_cannot_reach_into_each_other() {
        let a = prefix("ab", &[]);
        let b = prefix("a", &["b"]);
        assert!(!a.starts_with(&b) && !b.starts_with(&a));
        assert!(timed(&a, i64::MAX, "\u{10ffff}") < after_all(&a));
    }
}
