//! Suppression of retried events: a bounded cache of recent `(tenant_id, id)` → first answer
//! and a digest of the content it was given for, for producer-supplied ids only (generated ids
//! are new by construction). The same id with the same content is a retry (the first answer
//! again); with other content it is a conflict (409), never a silent discard.
//!
//! Bounded by count (oldest entries evicted first) and by age (entries expire after the TTL).
//! It is a best-effort first line: two identical requests racing each other may both append,
//! an entry evicted or held by another gateway instance is not seen. Behind it, the event
//! store keeps the same digest beside each id: the processors' upserts by `(tenant_id, id)`
//! keep the first copy (exactly-once read models) and dead-letter a later copy with other
//! content (reason `conflict`), so a conflict the cache missed is never dropped silently.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

/// SHA-256 of an event's producer-supplied content: the one digest the event stores keep
/// beside each id too ([`auditlog_schemas::digest`] defines its canonical encoding).
pub use auditlog_schemas::ContentDigest;

/// The answer given to the first request that carried an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAnswer {
    /// The event id.
    pub id: String,
    /// When the first copy was received.
    pub received_at: OffsetDateTime,
    /// The first copy's content; a later copy with another digest is a conflict.
    pub digest: ContentDigest,
}

type Key = (String, String);

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (FirstAnswer, Instant)>,
    /// Insertion order, for eviction by count and age.
    order: VecDeque<(Key, Instant)>,
}

/// Bounded map of recent answers.
#[derive(Debug)]
pub struct IdempotencyCache {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
}

impl IdempotencyCache {
    /// A cache of at most `capacity` entries, each kept `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { inner: Mutex::new(Inner::default()), capacity: capacity.max(1), ttl }
    }

    /// The first answer for `(tenant, id)`, if still remembered.
    pub fn get(&self, tenant: &str, id: &str) -> Option<FirstAnswer> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (tenant.to_owned(), id.to_owned());
        inner
            .entries
            .get(&key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(answer, _)| answer.clone())
    }

    /// Remembers the answer for `(tenant, id)`, keeping an unexpired earlier one.
    pub fn insert(&self, tenant: &str, answer: FirstAnswer) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.evict(&mut inner, now);
        let key = (tenant.to_owned(), answer.id.clone());
        if inner.entries.get(&key).is_some_and(|(_, at)| now.duration_since(*at) < self.ttl) {
            return;
        }
        inner.entries.insert(key.clone(), (answer, now));
        inner.order.push_back((key, now));
        while inner.entries.len() > self.capacity {
            if !Self::pop_oldest(&mut inner) {
                break;
            }
        }
    }

    /// Entries remembered now (expired ones not yet evicted included).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, inner: &mut Inner, now: Instant) {
        while inner.order.front().is_some_and(|(_, at)| now.duration_since(*at) >= self.ttl) {
            Self::pop_oldest(inner);
        }
    }

    /// Drops the oldest order entry, and its map entry unless it was re-inserted since.
    fn pop_oldest(inner: &mut Inner) -> bool {
        let Some((key, at)) = inner.order.pop_front() else {
            return false;
        };
        if inner.entries.get(&key).is_some_and(|(_, current)| *current == at) {
            inner.entries.remove(&key);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str) -> FirstAnswer {
        FirstAnswer { id: id.into(), received_at: OffsetDateTime::UNIX_EPOCH, digest: [0; 32] }
    }

    #[tokio::test(start_paused = true)]
    async fn remembers_per_tenant_until_ttl() {
        let cache = IdempotencyCache::new(10, Duration::from_secs(60));
        cache.insert("a", answer("e1"));
        assert_eq!(cache.get("a", "e1"), Some(answer("e1")));
        assert_eq!(cache.get("b", "e1"), None, "ids are per tenant");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.get("a", "e1"), None, "expired");
        cache.insert("a", answer("e2"));
        assert_eq!(cache.len(), 1, "expired entry evicted on insert");
    }

    #[test]
    fn bounded_by_capacity_oldest_first() {
        let cache = IdempotencyCache::new(2, Duration::from_secs(60));
        for id in ["e1", "e2", "e3"] {
            cache.insert("a", answer(id));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a", "e1"), None);
        assert!(cache.get("a", "e3").is_some());
    }
}
