//! Environment overrides of the gateway configuration: one `AUDITLOG_GATEWAY_*` variable per
//! field (Kubernetes sets secrets and per-deployment values this way), and [`load`] that reads
//! a JSON file, applies the environment and validates, reporting every problem at once.

use std::path::Path;
use std::str::FromStr;

use super::GatewayConfig;
use crate::problem::GatewayError;

/// Reads `path` (JSON) or starts from the defaults, applies `AUDITLOG_GATEWAY_*` variables
/// from the process environment, and validates.
pub fn load(path: Option<&Path>) -> Result<GatewayConfig, GatewayError> {
    let mut config = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| GatewayError::Config(vec![format!("{}: {e}", path.display())]))?;
            serde_json::from_str(&text).map_err(|e| GatewayError::Config(vec![format!("{}: {e}", path.display())]))?
        }
        None => GatewayConfig::default(),
    };
    let mut problems = config.apply_env(|name| std::env::var(name).ok()).err().unwrap_or_default();
    problems.extend(config.validate().err().unwrap_or_default());
    if problems.is_empty() { Ok(config) } else { Err(GatewayError::Config(problems)) }
}

impl GatewayConfig {
    /// Overrides fields from variables looked up with `var`, e.g.
    /// `AUDITLOG_GATEWAY_LIMITS_BATCH_MAX_EVENTS`; reports every unparsable value.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut env = Env { var: &var, problems: &mut problems };
        env.set("AUDITLOG_GATEWAY_TOPIC_PREFIX", &mut self.topic_prefix);
        env.set("AUDITLOG_GATEWAY_REGISTRY_URL", &mut self.registry_url);
        env.set("AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC", &mut self.default_rate_limit_per_sec);
        let l = &mut self.limits;
        env.set("AUDITLOG_GATEWAY_LIMITS_EVENT_BODY_MAX_BYTES", &mut l.event_body_max_bytes);
        env.set("AUDITLOG_GATEWAY_LIMITS_BATCH_BODY_MAX_BYTES", &mut l.batch_body_max_bytes);
        env.set("AUDITLOG_GATEWAY_LIMITS_BATCH_MAX_EVENTS", &mut l.batch_max_events);
        env.set("AUDITLOG_GATEWAY_LIMITS_MAX_IN_FLIGHT_REQUESTS", &mut l.max_in_flight_requests);
        env.set("AUDITLOG_GATEWAY_LIMITS_MAX_IN_FLIGHT_BODY_BYTES", &mut l.max_in_flight_body_bytes);
        env.set("AUDITLOG_GATEWAY_LIMITS_REQUEST_TIMEOUT_MS", &mut l.request_timeout_ms);
        env.set("AUDITLOG_GATEWAY_LIMITS_APPEND_TIMEOUT_MS", &mut l.append_timeout_ms);
        env.set("AUDITLOG_GATEWAY_LIMITS_REGISTRY_TIMEOUT_MS", &mut l.registry_timeout_ms);
        env.set("AUDITLOG_GATEWAY_IDEMPOTENCY_CAPACITY", &mut self.idempotency.capacity);
        env.set("AUDITLOG_GATEWAY_IDEMPOTENCY_TTL_SECS", &mut self.idempotency.ttl_secs);
        problems.extend(self.auth.apply_env("AUDITLOG_GATEWAY_", &var));
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

struct Env<'a, F: Fn(&str) -> Option<String>> {
    var: &'a F,
    problems: &'a mut Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn set<T: FromStr>(&mut self, name: &str, field: &mut T) {
        if let Some(raw) = (self.var)(name) {
            match raw.trim().parse() {
                Ok(value) => *field = value,
                Err(_) => self.problems.push(format!("{name}={raw:?} is not a valid value")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_fields_and_reports_every_bad_value() {
        let vars = |name: &str| match name {
            "AUDITLOG_GATEWAY_TOPIC_PREFIX" => Some("audit.prod".to_owned()),
            "AUDITLOG_GATEWAY_LIMITS_BATCH_MAX_EVENTS" => Some("500".to_owned()),
            "AUDITLOG_GATEWAY_AUTH_HS256_SECRET" => Some("s".repeat(40)),
            "AUDITLOG_GATEWAY_IDEMPOTENCY_CAPACITY" => Some("many".to_owned()),
            "AUDITLOG_GATEWAY_AUTH_LEEWAY_SECS" => Some("-1".to_owned()),
            _ => None,
        };
        let mut config = GatewayConfig::default();
        let problems = config.apply_env(vars).expect_err("two bad values");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(config.topic(), "audit.prod.v1");
        assert_eq!(config.limits.batch_max_events, 500);
        assert_eq!(config.auth.keys.len(), 1);
        assert!(!format!("{config:?}").contains("ssssssss"), "secret stays redacted");
    }
}
