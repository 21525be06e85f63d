//! Retention: events older than their tenant's `retention_days` are never served (every read
//! starts at the tenant's cutoff) and are removed from both read models by a periodic
//! [`sweep`] calling `purge_before` per registered tenant.

use std::future::Future;
use std::time::Duration;

use auditlog_seams::EventFilter;
use auditlog_tenant_registry::DEFAULT_RETENTION_DAYS;
use time::OffsetDateTime;

use crate::state::QueryState;

/// The oldest `occurred_at` still served for `tenant` (tenants without settings keep the
/// default retention).
pub fn cutoff(state: &QueryState, tenant: &str) -> OffsetDateTime {
    let days = state.backends().tenants.tenant(tenant).map_or(DEFAULT_RETENTION_DAYS, |t| t.retention_days);
    OffsetDateTime::now_utc() - time::Duration::days(i64::from(days))
}

/// Raises `filter.from` to the tenant's cutoff.
pub fn bound(state: &QueryState, filter: &mut EventFilter) {
    let cutoff = cutoff(state, &filter.tenant_id);
    if filter.from.is_none_or(|from| from < cutoff) {
        filter.from = Some(cutoff);
    }
    if filter.to.is_some_and(|to| to < cutoff) {
        filter.to = Some(cutoff);
    }
}

/// Purges every registered tenant's expired events from the store and the index once;
/// returns how many rows and documents went.
pub async fn sweep(state: &QueryState) -> (u64, u64) {
    let backends = state.backends();
    let (mut rows, mut docs) = (0, 0);
    for tenant in backends.tenants.list_tenants() {
        let before = cutoff(state, &tenant.id);
        match backends.store.purge_before(&tenant.id, before).await {
            Ok(n) => rows += n,
            Err(err) => tracing::warn!(tenant = %tenant.id, error = %err, "retention purge of the event store failed"),
        }
        match backends.index.purge_before(&tenant.id, before).await {
            Ok(n) => docs += n,
            Err(err) => tracing::warn!(tenant = %tenant.id, error = %err, "retention purge of the search index failed"),
        }
    }
    crate::metrics::retention_purged(rows, docs);
    (rows, docs)
}

/// Sweeps every `every` until `shutdown` resolves.
pub async fn sweeper(state: QueryState, every: Duration, shutdown: impl Future<Output = ()>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {
                let (rows, docs) = sweep(&state).await;
                tracing::info!(rows, docs, "retention sweep done");
            }
        }
    }
}
