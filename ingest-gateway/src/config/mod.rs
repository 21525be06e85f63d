//! Typed gateway configuration: serde with `deny_unknown_fields`, defaults in named functions,
//! `validate()` reporting every problem at once, secrets redacted in `Debug`, and an
//! `AUDITLOG_GATEWAY_*` environment override per field ([`load`]).

mod env;

use std::time::Duration;

use serde::Deserialize;

pub use auditlog_api_common::config::{AuthConfig, ENV_HS256_KEY_ID, JwtKeyConfig, KeyMaterial, Secret};
pub use env::load;

/// Everything the gateway needs besides its backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Topic prefix: events go to `<prefix>.v1`, or `<prefix>.v1.<tenant>` for tenants pinned
    /// to a dedicated topic.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Schema registry base URL (Confluent-compatible API).
    #[serde(default = "default_registry_url")]
    pub registry_url: String,
    /// Credentials accepted by the gateway.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Request, body and concurrency limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Rate limit of tenants whose settings name none.
    #[serde(default = "default_rate_limit_per_sec")]
    pub default_rate_limit_per_sec: u32,
    /// Suppression of retried events with the same producer id.
    #[serde(default)]
    pub idempotency: IdempotencyConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            topic_prefix: default_topic_prefix(),
            registry_url: default_registry_url(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            default_rate_limit_per_sec: default_rate_limit_per_sec(),
            idempotency: IdempotencyConfig::default(),
        }
    }
}

/// Request, body and concurrency limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest body of `POST /v1/events`; larger is 413. Twice the 32 KiB event limit, so
    /// pretty-printed events still fit while the validated size decides.
    #[serde(default = "default_event_body_max_bytes")]
    pub event_body_max_bytes: usize,
    /// Largest body of `POST /v1/events/batch` (design contract: 4 MiB).
    #[serde(default = "default_batch_body_max_bytes")]
    pub batch_body_max_bytes: usize,
    /// Most events in one batch (design contract: 1,000).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Requests processed at once; more are shed with 503 and `Retry-After` instead of
    /// queueing (memory stays bounded by this times the batch body limit).
    #[serde(default = "default_max_in_flight_requests")]
    pub max_in_flight_requests: usize,
    /// Request body bytes held at once by requests in flight (by `Content-Length`, or the
    /// route's body limit when the length is unknown); past it requests are shed with 503
    /// and `Retry-After`, so memory stays bounded however large the in-flight cap is. At
    /// least `batch_body_max_bytes`.
    #[serde(default = "default_max_in_flight_body_bytes")]
    pub max_in_flight_body_bytes: usize,
    /// Longest time a request may take end to end; past it the answer is 503.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Longest wait for the broker's acknowledgement of a request's events; past it the answer
    /// is 503 (the events may still land: producers retry with the same ids).
    #[serde(default = "default_append_timeout_ms")]
    pub append_timeout_ms: u64,
    /// Time budget of one schema registry call.
    #[serde(default = "default_registry_timeout_ms")]
    pub registry_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            event_body_max_bytes: default_event_body_max_bytes(),
            batch_body_max_bytes: default_batch_body_max_bytes(),
            batch_max_events: default_batch_max_events(),
            max_in_flight_requests: default_max_in_flight_requests(),
            max_in_flight_body_bytes: default_max_in_flight_body_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            append_timeout_ms: default_append_timeout_ms(),
            registry_timeout_ms: default_registry_timeout_ms(),
        }
    }
}

impl LimitsConfig {
    /// [`Self::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`Self::append_timeout_ms`] as a duration.
    pub fn append_timeout(&self) -> Duration {
        Duration::from_millis(self.append_timeout_ms)
    }

    /// [`Self::registry_timeout_ms`] as a duration.
    pub fn registry_timeout(&self) -> Duration {
        Duration::from_millis(self.registry_timeout_ms)
    }
}

/// Recent-answer cache for producer-supplied ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Most `(tenant, id)` answers remembered; the oldest go first.
    #[serde(default = "default_idempotency_capacity")]
    pub capacity: usize,
    /// How long an answer is remembered, in seconds.
    #[serde(default = "default_idempotency_ttl_secs")]
    pub ttl_secs: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { capacity: default_idempotency_capacity(), ttl_secs: default_idempotency_ttl_secs() }
    }
}

fn default_topic_prefix() -> String {
    "audit.events".into()
}
fn default_registry_url() -> String {
    "http://127.0.0.1:8081/apis/ccompat/v7".into()
}
fn default_rate_limit_per_sec() -> u32 {
    10_000
}
fn default_event_body_max_bytes() -> usize {
    64 * 1024
}
fn default_batch_body_max_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_batch_max_events() -> usize {
    1_000
}
fn default_max_in_flight_requests() -> usize {
    1_024
}
fn default_max_in_flight_body_bytes() -> usize {
    256 * 1024 * 1024
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_append_timeout_ms() -> u64 {
    5_000
}
fn default_registry_timeout_ms() -> u64 {
    2_000
}
fn default_idempotency_capacity() -> usize {
    100_000
}
fn default_idempotency_ttl_secs() -> u64 {
    600
}

impl GatewayConfig {
    /// The shared topic, `<prefix>.v1`.
    pub fn topic(&self) -> String {
        auditlog_seams::topics::shared(&self.topic_prefix)
    }

    /// A tenant's dedicated topic, `<prefix>.v1.<tenant>`.
    pub fn dedicated_topic(&self, tenant: &str) -> String {
        auditlog_seams::topics::dedicated(&self.topic(), tenant)
    }

    /// Every problem of the configuration, or `Ok` when there is none.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.topic_prefix.is_empty() {
            problems.push("topic_prefix must not be empty".to_owned());
        }
        problems.extend(self.auth.problems());
        let l = &self.limits;
        for (name, value) in [
            ("limits.event_body_max_bytes", l.event_body_max_bytes),
            ("limits.batch_body_max_bytes", l.batch_body_max_bytes),
            ("limits.batch_max_events", l.batch_max_events),
            ("limits.max_in_flight_requests", l.max_in_flight_requests),
            ("idempotency.capacity", self.idempotency.capacity),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if l.max_in_flight_body_bytes < l.batch_body_max_bytes {
            problems.push("limits.max_in_flight_body_bytes must be at least limits.batch_body_max_bytes".to_owned());
        }
        if l.append_timeout_ms == 0 || l.request_timeout_ms == 0 || l.registry_timeout_ms == 0 {
            problems.push("limits timeouts must be positive".to_owned());
        }
        if l.append_timeout_ms >= l.request_timeout_ms {
            problems.push("limits.append_timeout_ms must be below limits.request_timeout_ms".to_owned());
        }
        if self.default_rate_limit_per_sec == 0 {
            problems.push("default_rate_limit_per_sec must be positive".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let config = GatewayConfig {
            auth: AuthConfig {
                keys: vec![JwtKeyConfig {
                    id: "dev".into(),
                    material: KeyMaterial::Secret(Secret::new("hunter2-hunter2")),
                    algorithms: vec!["HS256".into()],
                }],
                ..AuthConfig::default()
            },
            ..GatewayConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("***"));
    }

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../../gateway.example.json");
        let config: GatewayConfig = serde_json::from_str(text).expect("example config parses");
        config.validate().expect("example config is valid");
        assert_eq!(config.topic(), "audit.events.v1");
        assert_eq!(config.auth.keys.len(), 2);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_all_reported() {
        assert!(serde_json::from_str::<GatewayConfig>(r#"{"topic":"x"}"#).is_err());
        let mut config = GatewayConfig::default();
        config.limits.batch_max_events = 0;
        config.default_rate_limit_per_sec = 0;
        let problems = config.validate().expect_err("two problems");
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
