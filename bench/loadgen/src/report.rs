//! What a run measured: a latency histogram (microseconds), status code and transport error
//! counts, events accepted; merged across producer tasks and printed as text and as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Measurements of one producer task (or of a whole run, once merged).
#[derive(Debug, Clone)]
pub struct Stats {
    latency_us: Histogram<u64>,
    /// Responses by HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer, by kind (connect, timeout, body, ...).
    pub errors: BTreeMap<String, u64>,
    /// Events the gateway accepted (202 for all, or `accepted` of a 207 batch answer).
    pub events: u64,
    /// Request body bytes sent, to report the average body size.
    pub body_bytes: u64,
}

impl Stats {
    /// Empty stats; latencies from 1 µs to 5 min at 3 significant digits.
    pub fn new() -> Self {
        let latency_us = Histogram::new_with_bounds(1, 300_000_000, 3).expect("static histogram bounds are valid");
        Self { latency_us, statuses: BTreeMap::new(), errors: BTreeMap::new(), events: 0, body_bytes: 0 }
    }

    /// Records one answered request.
    pub fn answered(&mut self, status: u16, latency: Duration, events: u64) {
        self.latency_us.saturating_record(latency.as_micros().max(1) as u64);
        *self.statuses.entry(status).or_default() += 1;
        self.events += events;
    }

    /// Records one request without an HTTP answer; its latency counts too.
    pub fn failed(&mut self, kind: &str, latency: Duration) {
        self.latency_us.saturating_record(latency.as_micros().max(1) as u64);
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (code, n) in &other.statuses {
            *self.statuses.entry(*code).or_default() += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.events += other.events;
        self.body_bytes += other.body_bytes;
    }

    fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors.values().sum::<u64>()
    }

    fn ms_at(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1_000.0
    }
}

/// Summary of a run, printed as one JSON line for scripts.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Scenario label given on the command line.
    pub label: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Events per request (1 = `POST /v1/events`).
    pub batch: usize,
    /// Concurrent connections (closed) or in-flight cap (open).
    pub connections: usize,
    /// Target request rate (open loop), else null.
    pub target_rps: Option<f64>,
    /// Measured window, warm-up excluded.
    pub seconds: f64,
    /// Requests in the window.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Accepted events per second.
    pub events_per_s: f64,
    /// Responses by status code (string keys for JSON).
    pub statuses: BTreeMap<String, u64>,
    /// Non-2xx responses plus transport errors.
    pub failures: u64,
    /// Transport errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency percentiles in ms: p50, p95, p99, p99.9, max, mean.
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Average request body (bytes).
    pub avg_body_bytes: u64,
    /// Worst delay of the open-loop dispatcher behind schedule (ms): how far the loadgen itself lagged.
    pub max_dispatch_lag_ms: Option<f64>,
    /// `/proc/loadavg` (1, 5, 15 min) at the start and the end.
    pub loadavg: [String; 2],
    /// CPU seconds the loadgen process used over the whole run, warm-up included.
    pub loadgen_cpu_s: f64,
    /// Wall seconds of the whole run, warm-up included.
    pub wall_s: f64,
}

impl Summary {
    /// Fills in the figures derived from `stats` over `window`.
    pub fn figures(&mut self, stats: &Stats, window: Duration) {
        let secs = window.as_secs_f64().max(1e-9);
        self.seconds = secs;
        self.requests = stats.requests();
        self.requests_per_s = self.requests as f64 / secs;
        self.events_per_s = stats.events as f64 / secs;
        self.statuses = stats.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self.failures = stats.statuses.iter().filter(|(k, _)| !(200..300).contains(*k)).map(|(_, v)| v).sum::<u64>()
            + stats.errors.values().sum::<u64>();
        self.errors = stats.errors.clone();
        let mut lat = BTreeMap::new();
        if self.requests > 0 {
            lat.insert("p50", stats.ms_at(0.50));
            lat.insert("p95", stats.ms_at(0.95));
            lat.insert("p99", stats.ms_at(0.99));
            lat.insert("p99.9", stats.ms_at(0.999));
            lat.insert("max", stats.latency_us.max() as f64 / 1_000.0);
            lat.insert("mean", stats.latency_us.mean() / 1_000.0);
        }
        self.latency_ms = lat;
        self.avg_body_bytes = stats.body_bytes.checked_div(self.requests).unwrap_or(0);
    }

    /// Human-readable report on stderr-friendly lines.
    pub fn text(&self) -> String {
        let l = |k: &str| self.latency_ms.get(k).copied().unwrap_or(f64::NAN);
        format!(
            "{label}: {mode}-loop, batch {batch}, {conns} connections{target}\n  \
             {req} requests in {secs:.1} s: {rps:.0} req/s, {eps:.0} events/s\n  \
             statuses {statuses:?}, transport errors {errors:?}, failures {fail}\n  \
             latency ms: p50 {p50:.2}, p95 {p95:.2}, p99 {p99:.2}, p99.9 {p999:.2}, max {max:.2}\n  \
             loadavg {la0} -> {la1}; loadgen CPU {cpu:.1} s over {wall:.1} s",
            label = self.label,
            mode = self.mode,
            batch = self.batch,
            conns = self.connections,
            target = self.target_rps.map(|r| format!(", target {r:.0} req/s")).unwrap_or_default(),
            req = self.requests,
            secs = self.seconds,
            rps = self.requests_per_s,
            eps = self.events_per_s,
            statuses = self.statuses,
            errors = self.errors,
            fail = self.failures,
            p50 = l("p50"),
            p95 = l("p95"),
            p99 = l("p99"),
            p999 = l("p99.9"),
            max = l("max"),
            la0 = self.loadavg[0],
            la1 = self.loadavg[1],
            cpu = self.loadgen_cpu_s,
            wall = self.wall_s,
        )
    }
}

/// `/proc/loadavg`'s three averages, or `?` off Linux.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat`
/// (clock ticks of 1/100 s, the Linux `USER_HZ`); 0 when unavailable.
pub fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}
