//! Typed query API configuration: serde with `deny_unknown_fields`, defaults in named
//! functions, `validate()` reporting every problem at once, secrets redacted in `Debug`, and
//! an `AUDITLOG_QUERY_*` environment override per field ([`load`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use auditlog_api_common::config::{AuthConfig, Secret, secret_from_env};
use serde::Deserialize;

use crate::error::QueryError;

/// Everything the query API needs besides its backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Topic prefix: the live tail follows `<prefix>.v1` and the dedicated topics
    /// `<prefix>.v1.<tenant>`; admin actions are recorded on `<prefix>.v1`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Schema registry base URL (Confluent-compatible API).
    #[serde(default = "default_registry_url")]
    pub registry_url: String,
    /// Credentials accepted: the same kinds as the gateway's, with keys of its own (an HS256
    /// secret need not be the gateway's).
    #[serde(default)]
    pub auth: AuthConfig,
    /// Key signing pagination cursors (HMAC-SHA256), so a cursor cannot be forged or used by
    /// another tenant or query. Every replica behind one load balancer needs the same key;
    /// when absent a random key is drawn at startup (cursors then die with the process).
    #[serde(default)]
    pub cursor_secret: Option<Secret>,
    /// Page sizes, ranges and concurrency bounds.
    #[serde(default)]
    pub limits: QueryLimits,
    /// Seconds between two retention sweeps (`purge_before` on both views per tenant).
    #[serde(default = "default_retention_sweep_secs")]
    pub retention_sweep_secs: u64,
    /// Lowest `retention_days` a tenant's retention may be lowered to (30): a lowering below
    /// it would erase recent trail. (Creating a tenant, a platform admin's act, is not bounded
    /// by it.)
    #[serde(default = "default_retention_floor_days")]
    pub retention_floor_days: u32,
    /// Seconds between a (platform_admin) retention lowering and its effect (7 days): the
    /// lowering is `pending_retention_days` until then, visible and cancellable (PATCH the
    /// current or a higher `retention_days`); the retention sweep applies it when due.
    #[serde(default = "default_retention_lowering_grace_secs")]
    pub retention_lowering_grace_secs: u64,
    /// Seconds between `DELETE /v1/tenants/{id}` and the tenant's tombstone (30 days): the
    /// tenant is `deleting` until then and PATCH `{"status":"active"}` cancels it.
    #[serde(default = "default_tenant_deletion_delay_secs")]
    pub tenant_deletion_delay_secs: u64,
    /// Replicas of each partition of a dedicated tenant topic (-1: the broker's
    /// `default.replication.factor`; production: 3). Its `retention.ms` is always -1, like
    /// the shared topic's: the log is the source of truth.
    #[serde(default = "default_dedicated_replication_factor")]
    pub dedicated_topic_replication_factor: i32,
    /// `min.insync.replicas` of a dedicated tenant topic (unset: the broker's; production: 2).
    #[serde(default)]
    pub dedicated_topic_min_insync_replicas: Option<i32>,
}

/// Bounds on expensive requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLimits {
    /// Page size when `limit` is absent.
    #[serde(default = "default_page_size")]
    pub default_page_size: usize,
    /// Largest `limit` (the event store's own maximum is 1,000).
    #[serde(default = "default_max_page_size")]
    pub max_page_size: usize,
    /// Widest `from`..`to` of `/v1/stats`, in days: aggregations cost grows with the range.
    #[serde(default = "default_max_stats_range_days")]
    pub max_stats_range_days: u32,
    /// Most histogram buckets one stats request may ask for.
    #[serde(default = "default_max_histogram_buckets")]
    pub max_histogram_buckets: u64,
    /// Exports running at once per tenant; one more is 429.
    #[serde(default = "default_max_exports_per_tenant")]
    pub max_exports_per_tenant: usize,
    /// Live tails (WebSocket + SSE) open at once per tenant; one more is 429.
    #[serde(default = "default_max_streams_per_tenant")]
    pub max_streams_per_tenant: usize,
    /// Events buffered per live-tail client; a client further behind gets a `skipped` notice
    /// instead of growing memory.
    #[serde(default = "default_stream_buffer")]
    pub stream_buffer: usize,
    /// Seconds between heartbeats on an idle live tail.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// Events per backend page while exporting: memory per export is bounded by this.
    #[serde(default = "default_export_page_size")]
    pub export_page_size: usize,
    /// Longest time one read may take against a backend; past it the answer is 503 and the
    /// work stops (the request is dropped, which cancels an OpenSearch search and a tantivy
    /// search between two blocks of documents).
    #[serde(default = "default_backend_timeout_ms")]
    pub backend_timeout_ms: u64,
    /// Read requests (list, get, stats, export, live tail) per second per tenant; past it the
    /// answer is 429 with `Retry-After`. A tenant may burst one second's worth. The default is
    /// far above what one dashboard needs and what `bench/query-bench.sh` sends; lower it to
    /// keep one tenant from starving the others.
    #[serde(default = "default_tenant_requests_per_sec")]
    pub tenant_requests_per_sec: u32,
    /// Read requests being served at once, all tenants together; one more is 503 with
    /// `Retry-After`, at once, rather than queued. Bounds the backend work and memory of a
    /// burst; an export or live tail holds its place until its response starts.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Most events one SSE `Last-Event-ID` reconnect replays (the newest are kept; older ones
    /// are reported as `skipped`).
    #[serde(default = "default_replay_max_events")]
    pub replay_max_events: usize,
    /// Most log records (every tenant's, on a shared topic) one reconnect may read to find
    /// the events to replay; what it did not read is reported as `skipped`.
    #[serde(default = "default_replay_max_scan")]
    pub replay_max_scan: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            default_page_size: default_page_size(),
            max_page_size: default_max_page_size(),
            max_stats_range_days: default_max_stats_range_days(),
            max_histogram_buckets: default_max_histogram_buckets(),
            max_exports_per_tenant: default_max_exports_per_tenant(),
            max_streams_per_tenant: default_max_streams_per_tenant(),
            stream_buffer: default_stream_buffer(),
            heartbeat_secs: default_heartbeat_secs(),
            export_page_size: default_export_page_size(),
            backend_timeout_ms: default_backend_timeout_ms(),
            tenant_requests_per_sec: default_tenant_requests_per_sec(),
            max_in_flight: default_max_in_flight(),
            replay_max_events: default_replay_max_events(),
            replay_max_scan: default_replay_max_scan(),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            topic_prefix: default_topic_prefix(),
            registry_url: default_registry_url(),
            auth: AuthConfig::default(),
            cursor_secret: None,
            limits: QueryLimits::default(),
            retention_sweep_secs: default_retention_sweep_secs(),
            retention_floor_days: default_retention_floor_days(),
            retention_lowering_grace_secs: default_retention_lowering_grace_secs(),
            tenant_deletion_delay_secs: default_tenant_deletion_delay_secs(),
            dedicated_topic_replication_factor: default_dedicated_replication_factor(),
            dedicated_topic_min_insync_replicas: None,
        }
    }
}

fn default_topic_prefix() -> String {
    "audit.events".into()
}
fn default_registry_url() -> String {
    "http://127.0.0.1:8081/apis/ccompat/v7".into()
}
fn default_dedicated_replication_factor() -> i32 {
    -1
}
fn default_retention_floor_days() -> u32 {
    30
}
fn default_retention_lowering_grace_secs() -> u64 {
    7 * 86_400
}
fn default_tenant_deletion_delay_secs() -> u64 {
    30 * 86_400
}
fn default_retention_sweep_secs() -> u64 {
    3_600
}
fn default_page_size() -> usize {
    100
}
fn default_max_page_size() -> usize {
    1_000
}
fn default_max_stats_range_days() -> u32 {
    400
}
fn default_max_histogram_buckets() -> u64 {
    2_000
}
fn default_max_exports_per_tenant() -> usize {
    2
}
fn default_max_streams_per_tenant() -> usize {
    16
}
fn default_stream_buffer() -> usize {
    256
}
fn default_heartbeat_secs() -> u64 {
    15
}
fn default_export_page_size() -> usize {
    1_000
}
fn default_backend_timeout_ms() -> u64 {
    15_000
}
fn default_tenant_requests_per_sec() -> u32 {
    10_000
}
fn default_max_in_flight() -> usize {
    1_024
}
fn default_replay_max_events() -> usize {
    1_000
}
fn default_replay_max_scan() -> u64 {
    100_000
}

impl QueryConfig {
    /// The shared topic, `<prefix>.v1`.
    pub fn topic(&self) -> String {
        auditlog_seams::topics::shared(&self.topic_prefix)
    }

    /// How a dedicated tenant topic is created: kept forever, replicated as configured.
    pub fn dedicated_topic_spec(&self, tenant: &str, partitions: i32) -> auditlog_seams::TopicSpec {
        let mut configs = vec![("retention.ms".to_owned(), "-1".to_owned())];
        if let Some(n) = self.dedicated_topic_min_insync_replicas {
            configs.push(("min.insync.replicas".to_owned(), n.to_string()));
        }
        auditlog_seams::TopicSpec { name: self.dedicated_topic(tenant), partitions, replication_factor: self.dedicated_topic_replication_factor, configs }
    }

    /// A tenant's dedicated topic, `<prefix>.v1.<tenant>`.
    pub fn dedicated_topic(&self, tenant: &str) -> String {
        auditlog_seams::topics::dedicated(&self.topic(), tenant)
    }

    /// [`QueryLimits::backend_timeout_ms`] as a duration.
    pub fn backend_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.backend_timeout_ms)
    }

    /// Every problem of the configuration, or `Ok` when there is none.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = self.auth.problems();
        if self.topic_prefix.is_empty() {
            problems.push("topic_prefix must not be empty".to_owned());
        }
        let l = &self.limits;
        for (name, value) in [
            ("limits.default_page_size", l.default_page_size),
            ("limits.max_page_size", l.max_page_size),
            ("limits.max_exports_per_tenant", l.max_exports_per_tenant),
            ("limits.max_streams_per_tenant", l.max_streams_per_tenant),
            ("limits.stream_buffer", l.stream_buffer),
            ("limits.export_page_size", l.export_page_size),
            ("limits.max_in_flight", l.max_in_flight),
            ("limits.replay_max_events", l.replay_max_events),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if l.max_page_size > 1_000 || l.export_page_size > 1_000 {
            problems.push("limits.max_page_size and limits.export_page_size must be at most 1000".to_owned());
        }
        if l.default_page_size > l.max_page_size {
            problems.push("limits.default_page_size must be at most limits.max_page_size".to_owned());
        }
        if l.max_stats_range_days == 0 || l.max_histogram_buckets == 0 || l.heartbeat_secs == 0 || l.backend_timeout_ms == 0 {
            problems.push("limits.max_stats_range_days, max_histogram_buckets, heartbeat_secs and backend_timeout_ms must be positive".to_owned());
        }
        if l.tenant_requests_per_sec == 0 || l.replay_max_scan == 0 {
            problems.push("limits.tenant_requests_per_sec and limits.replay_max_scan must be positive".to_owned());
        }
        if self.retention_sweep_secs == 0 {
            problems.push("retention_sweep_secs must be positive".to_owned());
        }
        if self.retention_floor_days == 0 || self.retention_lowering_grace_secs == 0 || self.tenant_deletion_delay_secs == 0 {
            problems.push("retention_floor_days, retention_lowering_grace_secs and tenant_deletion_delay_secs must be positive".to_owned());
        }
        if self.cursor_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            problems.push("cursor_secret must be at least 32 bytes".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Overrides fields from `AUDITLOG_QUERY_*` variables looked up with `var` (the auth
    /// section as `AUDITLOG_QUERY_AUTH_*`); reports every unparsable value.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut set = |name: &str, apply: &mut dyn FnMut(&str) -> bool| {
            if let Some(raw) = var(name)
                && !apply(raw.trim())
            {
                problems.push(format!("{name}={raw:?} is not a valid value"));
            }
        };
        set("AUDITLOG_QUERY_TOPIC_PREFIX", &mut |v| assign(&mut self.topic_prefix, v));
        set("AUDITLOG_QUERY_REGISTRY_URL", &mut |v| assign(&mut self.registry_url, v));
        set("AUDITLOG_QUERY_RETENTION_SWEEP_SECS", &mut |v| assign(&mut self.retention_sweep_secs, v));
        set("AUDITLOG_QUERY_RETENTION_FLOOR_DAYS", &mut |v| assign(&mut self.retention_floor_days, v));
        set("AUDITLOG_QUERY_RETENTION_LOWERING_GRACE_SECS", &mut |v| assign(&mut self.retention_lowering_grace_secs, v));
        set("AUDITLOG_QUERY_TENANT_DELETION_DELAY_SECS", &mut |v| assign(&mut self.tenant_deletion_delay_secs, v));
        set("AUDITLOG_QUERY_DEDICATED_TOPIC_REPLICATION_FACTOR", &mut |v| assign(&mut self.dedicated_topic_replication_factor, v));
        set("AUDITLOG_QUERY_DEDICATED_TOPIC_MIN_INSYNC_REPLICAS", &mut |v| match v.trim().parse::<i32>() {
            Ok(n) if n > 0 => {
                self.dedicated_topic_min_insync_replicas = Some(n);
                true
            }
            _ => false,
        });
        let l = &mut self.limits;
        set("AUDITLOG_QUERY_LIMITS_DEFAULT_PAGE_SIZE", &mut |v| assign(&mut l.default_page_size, v));
        set("AUDITLOG_QUERY_LIMITS_MAX_PAGE_SIZE", &mut |v| assign(&mut l.max_page_size, v));
        set("AUDITLOG_QUERY_LIMITS_MAX_STATS_RANGE_DAYS", &mut |v| assign(&mut l.max_stats_range_days, v));
        set("AUDITLOG_QUERY_LIMITS_MAX_HISTOGRAM_BUCKETS", &mut |v| assign(&mut l.max_histogram_buckets, v));
        set("AUDITLOG_QUERY_LIMITS_MAX_EXPORTS_PER_TENANT", &mut |v| assign(&mut l.max_exports_per_tenant, v));
        set("AUDITLOG_QUERY_LIMITS_MAX_STREAMS_PER_TENANT", &mut |v| assign(&mut l.max_streams_per_tenant, v));
        set("AUDITLOG_QUERY_LIMITS_STREAM_BUFFER", &mut |v| assign(&mut l.stream_buffer, v));
        set("AUDITLOG_QUERY_LIMITS_HEARTBEAT_SECS", &mut |v| assign(&mut l.heartbeat_secs, v));
        set("AUDITLOG_QUERY_LIMITS_EXPORT_PAGE_SIZE", &mut |v| assign(&mut l.export_page_size, v));
        set("AUDITLOG_QUERY_LIMITS_BACKEND_TIMEOUT_MS", &mut |v| assign(&mut l.backend_timeout_ms, v));
        set("AUDITLOG_QUERY_LIMITS_TENANT_REQUESTS_PER_SEC", &mut |v| assign(&mut l.tenant_requests_per_sec, v));
        set("AUDITLOG_QUERY_LIMITS_MAX_IN_FLIGHT", &mut |v| assign(&mut l.max_in_flight, v));
        set("AUDITLOG_QUERY_LIMITS_REPLAY_MAX_EVENTS", &mut |v| assign(&mut l.replay_max_events, v));
        set("AUDITLOG_QUERY_LIMITS_REPLAY_MAX_SCAN", &mut |v| assign(&mut l.replay_max_scan, v));
        // `AUDITLOG_QUERY_CURSOR_SECRET` or `AUDITLOG_QUERY_CURSOR_SECRET_FILE` (a mounted file).
        if let Some(secret) = secret_from_env("AUDITLOG_QUERY_CURSOR_SECRET", &var, &mut problems) {
            self.cursor_secret = Some(Secret::new(secret));
        }
        problems.extend(self.auth.apply_env("AUDITLOG_QUERY_", &var));
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

fn assign<T: FromStr>(field: &mut T, raw: &str) -> bool {
    raw.parse().map(|v| *field = v).is_ok()
}

/// Reads `path` (JSON) or starts from the defaults, applies `AUDITLOG_QUERY_*` variables from
/// the process environment, and validates.
pub fn load(path: Option<&Path>) -> Result<QueryConfig, QueryError> {
    let mut config = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| QueryError::Config(vec![format!("{}: {e}", path.display())]))?;
            serde_json::from_str(&text).map_err(|e| QueryError::Config(vec![format!("{}: {e}", path.display())]))?
        }
        None => QueryConfig::default(),
    };
    let mut problems = config.apply_env(|name| std::env::var(name).ok()).err().unwrap_or_default();
    problems.extend(config.validate().err().unwrap_or_default());
    if problems.is_empty() { Ok(config) } else { Err(QueryError::Config(problems)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let config: QueryConfig = serde_json::from_str(include_str!("../query-api.example.json")).expect("example parses");
        config.validate().expect("example is valid");
        assert_eq!(config.topic(), "audit.events.v1");
        assert!(!format!("{config:?}").contains("example-only"), "secrets are redacted");
    }

    #[test]
    fn env_overrides_and_every_problem_is_reported() {
        let vars = |name: &str| match name {
            "AUDITLOG_QUERY_LIMITS_MAX_PAGE_SIZE" => Some("50".to_owned()),
            "AUDITLOG_QUERY_LIMITS_STREAM_BUFFER" => Some("lots".to_owned()),
            "AUDITLOG_QUERY_LIMITS_TENANT_REQUESTS_PER_SEC" => Some("20000".to_owned()),
            "AUDITLOG_QUERY_AUTH_HS256_SECRET" => Some("x".repeat(40)),
            _ => None,
        };
        let mut config = QueryConfig::default();
        assert_eq!(config.apply_env(vars).expect_err("one bad value").len(), 1);
        assert_eq!(config.limits.max_page_size, 50);
        assert_eq!(config.limits.tenant_requests_per_sec, 20_000);
        assert!(config.auth.hs256_secret().is_some());
        config.limits.export_page_size = 0;
        config.limits.default_page_size = 100;
        assert_eq!(config.validate().expect_err("two problems").len(), 2);
    }
}
