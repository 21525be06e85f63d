//! Load protection shared by the HTTP services: a per-tenant token bucket (a cost per request
//! against each tenant's own rate) and global caps on requests and request bytes in flight.
//! The ingest gateway charges one token per event at the tenant's ingest rate; the query API
//! one per read request at its configured query rate.
//!
//! The bucket is hand-rolled rather than `governor`'s keyed limiter because every tenant has
//! its own rate (governor's keyed limiter shares one quota across keys) and a batch costs one
//! token per event; the whole thing is a few lines of arithmetic under one mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Most tenants tracked at once; past it, buckets that are full again (idle tenants) are
/// dropped, which loses nothing since a new bucket starts full.
const MAX_TRACKED_TENANTS: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-tenant token buckets. A bucket holds one second of the tenant's rate.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `cost` tokens from `tenant`'s bucket refilled at `rate_per_sec`, or says how long
    /// to wait. A batch larger than the bucket passes once the bucket is full and leaves it in
    /// debt by the difference, so a large batch is possible at all while the tenant's events
    /// per second, over time, stay within its rate.
    pub fn try_acquire(&self, tenant: &str, rate_per_sec: u32, cost: usize) -> Result<(), Duration> {
        let rate = f64::from(rate_per_sec.max(1));
        let charge = cost as f64;
        let cost = charge.min(rate);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_TENANTS && !buckets.contains_key(tenant) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < rate);
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket { tokens: rate, last: now });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= cost {
            bucket.tokens -= charge;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - bucket.tokens) / rate))
        }
    }
}

/// Caps requests in flight; a request that finds no room is shed at once (503 with
/// `Retry-After`) rather than queued, so memory stays bounded.
#[derive(Debug, Clone)]
pub struct InFlightLimit {
    /// One permit per request in flight, released when its response is produced.
    permits: Arc<Semaphore>,
}

impl InFlightLimit {
    /// Room for `max` requests at once.
    pub fn new(max: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max)) }
    }

    /// A permit, or `None` when full.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }
}

/// Caps the request body bytes held by requests in flight, in KiB permits; a request that
/// finds no room is shed at once, like [`InFlightLimit`].
#[derive(Debug, Clone)]
pub struct InFlightBytes {
    /// One permit per KiB reserved; released when the response is produced.
    permits: Arc<Semaphore>,
}

impl InFlightBytes {
    /// Room for `max_bytes` bytes at once.
    pub fn new(max_bytes: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_bytes.div_ceil(1024).min(Semaphore::MAX_PERMITS))) }
    }

    /// Reserves `bytes`, or `None` when they do not fit now.
    pub fn try_reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).ok()?;
        Arc::clone(&self.permits).try_acquire_many_owned(kib).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_at_the_tenants_rate() {
        let limiter = RateLimiter::new();
        assert!(limiter.try_acquire("a", 2, 1).is_ok());
        assert!(limiter.try_acquire("a", 2, 1).is_ok());
        let wait = limiter.try_acquire("a", 2, 1).expect_err("bucket of 2 is empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limiter.try_acquire("b", 2, 1).is_ok(), "tenants have separate buckets");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(limiter.try_acquire("a", 2, 1).is_ok(), "refilled after half a second");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_larger_than_the_bucket_passes_and_is_paid_back() {
        let limiter = RateLimiter::new();
        assert!(limiter.try_acquire("a", 10, 50).is_ok(), "a full bucket lets a large batch through");
        let wait = limiter.try_acquire("a", 10, 1).expect_err("the bucket is 40 events in debt");
        assert!(wait > Duration::from_secs(4) && wait <= Duration::from_millis(4_100), "{wait:?}");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(limiter.try_acquire("a", 10, 1).is_err(), "after 4 s the debt is paid, nothing saved yet");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(limiter.try_acquire("a", 10, 1).is_ok());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(limiter.try_acquire("a", 10, 11).is_ok(), "a batch over the bucket waits for a full bucket");
        assert!(limiter.try_acquire("a", 10, 11).is_err());
    }

    #[test]
    fn in_flight_bytes_shed_past_capacity() {
        let bytes = InFlightBytes::new(10 * 1024);
        let big = bytes.try_reserve(8 * 1024).expect("8 KiB of 10 fit");
        assert!(bytes.try_reserve(4 * 1024).is_none(), "12 KiB of 10 do not fit");
        let small = bytes.try_reserve(100).expect("a small body fits in the rest");
        drop(big);
        assert!(bytes.try_reserve(8 * 1024).is_some(), "released on drop");
        drop(small);
        assert!(bytes.try_reserve(usize::MAX).is_none(), "more than exists is refused, not a panic");
    }

    #[test]
    fn in_flight_limit_sheds_past_capacity() {
        let limit = InFlightLimit::new(1);
        let first = limit.try_enter();
        assert!(first.is_some());
        assert!(limit.try_enter().is_none());
        drop(first);
        assert!(limit.try_enter().is_some());
    }
}
