//! Quotas on the read routes (list, get, stats, export, live tail): a global cap on requests
//! being served at once (503 past it) and a per-tenant request rate (429 with `Retry-After`
//! past it), both from `auditlog-api-common`'s limiters, the gateway's own. A request is
//! refused at once, never queued, so a burst costs neither memory nor backend work.

use auditlog_api_common::limits::{InFlightLimit, RateLimiter};
use tokio::sync::OwnedSemaphorePermit;

use crate::config::QueryLimits;
use crate::error::QueryError;

/// The read quotas of one process.
#[derive(Debug)]
pub struct Quotas {
    /// Requests being served, all tenants together ([`QueryLimits::max_in_flight`]).
    in_flight: InFlightLimit,
    /// One token bucket per tenant, refilled at `per_sec`.
    rate: RateLimiter,
    per_sec: u32,
}

/// A request's place among those being served; released on drop, when the handler returns
/// (for an export or a live tail: when its response starts).
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl Quotas {
    /// Quotas of `limits`.
    pub fn new(limits: &QueryLimits) -> Self {
        Self { in_flight: InFlightLimit::new(limits.max_in_flight), rate: RateLimiter::new(), per_sec: limits.tenant_requests_per_sec }
    }

    /// Admits one read request of `tenant`, or refuses it: [`QueryError::Overloaded`] when the
    /// process is at its cap (the tenant is not charged then), [`QueryError::RateLimited`]
    /// when the tenant is past its rate.
    pub fn admit(&self, tenant: &str) -> Result<Admitted, QueryError> {
        let permit = self.in_flight.try_enter().ok_or(QueryError::Overloaded)?;
        self.rate.try_acquire(tenant, self.per_sec, 1).map_err(|retry_after| QueryError::RateLimited { retry_after })?;
        Ok(Admitted { _permit: permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(per_sec: u32, max_in_flight: usize) -> Quotas {
        Quotas::new(&QueryLimits { tenant_requests_per_sec: per_sec, max_in_flight, ..QueryLimits::default() })
    }

    #[tokio::test]
    async fn each_tenant_gets_its_rate_and_is_told_when_to_retry() {
        let quotas = quotas(2, 100);
        assert!(quotas.admit("a").is_ok() && quotas.admit("a").is_ok());
        let Err(QueryError::RateLimited { retry_after }) = quotas.admit("a") else { panic!("third request in a second is refused") };
        assert!(retry_after > std::time::Duration::ZERO && retry_after <= std::time::Duration::from_millis(500), "{retry_after:?}");
        assert!(quotas.admit("b").is_ok(), "another tenant is not affected");
        tokio::time::sleep(retry_after + std::time::Duration::from_millis(20)).await;
        assert!(quotas.admit("a").is_ok(), "admitted again after Retry-After");
    }

    #[test]
    fn past_the_global_cap_requests_are_shed_without_charging_the_tenant() {
        let quotas = quotas(1, 1);
        let held = quotas.admit("a").expect("first fits");
        assert!(matches!(quotas.admit("b"), Err(QueryError::Overloaded)));
        drop(held);
        assert!(quotas.admit("b").is_ok(), "the place is freed on drop, and b was not charged for the refusal");
    }
}
