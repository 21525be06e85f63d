//! The two load shapes. Closed loop: N tasks, each sends its next request when the previous one
//! answered (maximum rate at concurrency N). Open loop: requests are scheduled at a fixed rate
//! whatever the answers, and each latency is measured from the request's *scheduled* start, so a
//! stalled gateway (or a lagging load generator) shows up in the percentiles instead of quietly
//! lowering the offered load (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::events::EventGen;
use crate::report::Stats;
use crate::tokens::Tenant;

/// Where and what to send.
pub struct Target {
    /// HTTP client (keep-alive pool, no proxy).
    pub client: reqwest::Client,
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// Tenants with their tokens; each request picks one at random.
    pub tenants: Vec<Tenant>,
    /// Events per request; 0 sends one event to `POST /v1/events`.
    pub batch: usize,
    /// Share of events carrying a producer id.
    pub id_fraction: f64,
    /// History the events' `occurred_at` spreads over (zero: now).
    pub spread: time::Duration,
    /// Share of requests for the first tenant (a large tenant among small ones); 0 picks
    /// every tenant alike.
    pub hot_share: f64,
    /// Request bodies made up front and sent again and again (empty: a new body per
    /// request), so generating load costs next to no CPU; see [`Target::with_pool`].
    pub pool: Vec<bytes::Bytes>,
}

/// The time frame of a run: requests started before `measure_from` are warm-up, none start at
/// or after `end`, and at most `max_requests` start in all.
#[derive(Clone, Copy)]
pub struct Window {
    /// End of the warm-up.
    pub measure_from: Instant,
    /// No request starts after this.
    pub end: Instant,
    /// Cap on requests started (warm-up included).
    pub max_requests: u64,
}

impl Target {
    /// Makes `bodies` request bodies up front, of events without a producer id: the gateway
    /// gives every event it accepts a new id, so a body sent again is new events, not
    /// duplicates.
    pub fn with_pool(mut self, bodies: usize) -> Self {
        self.id_fraction = 0.0;
        let mut events = self.events(0x9001);
        self.pool = (0..bodies).map(|_| self.generate(&mut events)).collect();
        self
    }

    fn generate(&self, events: &mut EventGen) -> bytes::Bytes {
        let value = if self.batch == 0 {
            events.event()
        } else {
            serde_json::Value::Array((0..self.batch).map(|_| events.event()).collect())
        };
        serde_json::to_vec(&value).expect("a JSON value always serializes").into()
    }

    fn body(&self, events: &mut EventGen, rng: &mut StdRng) -> bytes::Bytes {
        if self.pool.is_empty() {
            self.generate(events)
        } else {
            self.pool[rng.random_range(0..self.pool.len())].clone()
        }
    }

    /// Sends one request; the status and the events it got accepted, or the transport error kind.
    async fn send(&self, tenant: &Tenant, body: bytes::Bytes) -> Result<(u16, u64), &'static str> {
        let path = if self.batch == 0 { "/v1/events" } else { "/v1/events/batch" };
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, &tenant.bearer)
            .body(body)
            .send()
            .await
            .map_err(error_kind)?;
        let status = response.status().as_u16();
        let answer = response.bytes().await.map_err(error_kind)?;
        let events = match (status, self.batch) {
            (202, 0) => 1,
            (202, n) => n as u64,
            (207, _) => serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("accepted").and_then(serde_json::Value::as_u64))
                .unwrap_or(0),
            _ => 0,
        };
        Ok((status, events))
    }

    fn tenant(&self, rng: &mut StdRng) -> &Tenant {
        if self.tenants.len() > 1 && self.hot_share > 0.0 {
            if rng.random_bool(self.hot_share) {
                return &self.tenants[0];
            }
            return &self.tenants[rng.random_range(1..self.tenants.len())];
        }
        &self.tenants[rng.random_range(0..self.tenants.len())]
    }

    fn events(&self, seed: u64) -> EventGen {
        EventGen::new(StdRng::seed_from_u64(seed), self.id_fraction).spread_over(self.spread)
    }
}

fn error_kind(err: reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// Closed loop with `connections` concurrent senders; returns the merged stats.
pub async fn closed_loop(target: Arc<Target>, connections: usize, window: Window) -> Stats {
    let started = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for n in 0..connections {
        let (target, started) = (Arc::clone(&target), Arc::clone(&started));
        workers.spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x5eed ^ n as u64);
            let mut events = target.events(n as u64);
            let mut stats = Stats::new();
            while Instant::now() < window.end && started.fetch_add(1, Ordering::Relaxed) < window.max_requests {
                let body = target.body(&mut events, &mut rng);
                let len = body.len() as u64;
                let t0 = Instant::now();
                let result = target.send(target.tenant(&mut rng), body).await;
                if t0 >= window.measure_from {
                    record(&mut stats, result, t0.elapsed(), len);
                }
            }
            stats
        });
    }
    let mut total = Stats::new();
    while let Some(done) = workers.join_next().await {
        total.merge(&done.expect("a closed-loop worker panicked"));
    }
    total
}

fn record(stats: &mut Stats, result: Result<(u16, u64), &'static str>, latency: Duration, body_len: u64) {
    stats.body_bytes += body_len;
    match result {
        Ok((status, events)) => stats.answered(status, latency, events),
        Err(kind) => stats.failed(kind, latency),
    }
}

/// Open loop at `rate` requests/s with at most `max_in_flight` outstanding (a request waiting
/// for a slot is still timed from its scheduled start). Returns the stats and the worst delay of
/// the dispatcher behind schedule.
pub async fn open_loop(target: Arc<Target>, rate: f64, max_in_flight: usize, window: Window) -> (Stats, Duration) {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut rng = StdRng::seed_from_u64(0x0be7);
    let mut events = target.events(0x0be8);
    let mut in_flight = JoinSet::new();
    let (start, mut max_lag) = (Instant::now(), Duration::ZERO);
    for i in 0..window.max_requests {
        let scheduled = start + interval.mul_f64(i as f64);
        if scheduled >= window.end {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(scheduled));
        let body = target.body(&mut events, &mut rng);
        let tenant = target.tenant(&mut rng).clone();
        let (target, stats, slots) = (Arc::clone(&target), Arc::clone(&stats), Arc::clone(&slots));
        in_flight.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            let len = body.len() as u64;
            let result = target.send(&tenant, body).await;
            if scheduled >= window.measure_from {
                let latency = Instant::now().saturating_duration_since(scheduled);
                record(&mut stats.lock().unwrap_or_else(PoisonError::into_inner), result, latency, len);
            }
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    let total = stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
    (total, max_lag)
}
