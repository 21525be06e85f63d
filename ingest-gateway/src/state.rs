//! Shared state of every request: configuration, the trait-typed backends, auth, limits and
//! the idempotency cache.

use std::sync::Arc;
use std::time::Duration;

use auditlog_schemas::WireCodec;
use auditlog_seams::EventLog;
use metrics_exporter_prometheus::PrometheusHandle;

// The verifier comes from api-common directly, not through `crate::auth`: `auth` (the
// extractors) depends on this state, and this state must not depend back on it.
use auditlog_api_common::auth::Authenticator;

use crate::config::GatewayConfig;
use crate::idempotency::IdempotencyCache;
use crate::limits::{InFlightBytes, InFlightLimit, RateLimiter};
use crate::problem::GatewayError;
use crate::tenants::TenantRegistry;

/// Cheap-to-clone handle on the gateway's state.
#[derive(Clone)]
pub struct GatewayState(Arc<Inner>);

struct Inner {
    config: GatewayConfig,
    log: Arc<dyn EventLog>,
    codec: Arc<WireCodec>,
    tenants: Arc<dyn TenantRegistry>,
    auth: Authenticator,
    limiter: RateLimiter,
    /// Sheds requests past `limits.max_in_flight_requests` (backpressure).
    in_flight: InFlightLimit,
    /// Sheds requests whose bodies would exceed `limits.max_in_flight_body_bytes` together.
    in_flight_bytes: InFlightBytes,
    idempotency: IdempotencyCache,
    metrics: PrometheusHandle,
    http: reqwest::Client,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState").field("config", &self.0.config).finish_non_exhaustive()
    }
}

impl GatewayState {
    /// Validates `config` (every problem reported at once) and assembles the state.
    pub fn new(
        config: GatewayConfig,
        log: Arc<dyn EventLog>,
        codec: Arc<WireCodec>,
        tenants: Arc<dyn TenantRegistry>,
    ) -> Result<Self, GatewayError> {
        config.validate().map_err(GatewayError::Config)?;
        let auth = Authenticator::new(&config.auth, Arc::clone(&tenants))?;
        let http = reqwest::Client::builder()
            .timeout(config.limits.registry_timeout())
            .build()
            .map_err(|e| GatewayError::Config(vec![format!("http client: {e}")]))?;
        Ok(Self(Arc::new(Inner {
            in_flight: InFlightLimit::new(config.limits.max_in_flight_requests),
            in_flight_bytes: InFlightBytes::new(config.limits.max_in_flight_body_bytes),
            idempotency: IdempotencyCache::new(
                config.idempotency.capacity,
                Duration::from_secs(config.idempotency.ttl_secs),
            ),
            limiter: RateLimiter::new(),
            metrics: crate::metrics::handle(),
            config,
            log,
            codec,
            tenants,
            auth,
            http,
        })))
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.0.config
    }

    /// The event log every accepted event is appended to.
    pub fn event_log(&self) -> &Arc<dyn EventLog> {
        &self.0.log
    }

    /// The Confluent wire-format codec.
    pub fn codec(&self) -> &WireCodec {
        &self.0.codec
    }

    /// Tenant settings and API keys.
    pub fn tenants(&self) -> &dyn TenantRegistry {
        self.0.tenants.as_ref()
    }

    /// Credential verification.
    pub fn authenticator(&self) -> &Authenticator {
        &self.0.auth
    }

    /// Per-tenant rate limits.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.0.limiter
    }

    /// Global in-flight request cap.
    pub fn in_flight(&self) -> &InFlightLimit {
        &self.0.in_flight
    }

    /// The in-flight body bytes cap.
    pub fn in_flight_bytes(&self) -> &InFlightBytes {
        &self.0.in_flight_bytes
    }

    /// Recent answers by producer id.
    pub fn idempotency(&self) -> &IdempotencyCache {
        &self.0.idempotency
    }

    /// Renders `/metrics`.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// Client for the registry readiness probe.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.0.http
    }

    /// The topic a tenant's events go to.
    pub fn topic_for(&self, tenant: &str) -> String {
        let dedicated = self.tenants().tenant(tenant).is_some_and(|t| t.dedicated_topic);
        if dedicated { self.config().dedicated_topic(tenant) } else { self.config().topic() }
    }

    /// A tenant's rate limit in events per second.
    pub fn rate_limit_for(&self, tenant: &str) -> u32 {
        self.tenants()
            .tenant(tenant)
            .and_then(|t| t.rate_limit_per_sec)
            .unwrap_or(self.config().default_rate_limit_per_sec)
    }
}
