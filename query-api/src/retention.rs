//! Retention: events older than their tenant's `retention_days` are never served (every read
//! starts at the tenant's cutoff) and are removed from both read models by a periodic
//! [`sweep`] calling `purge_before` per registered tenant.
//!
//! The sweep also carries out the delayed admin changes, each recorded in the audit trail
//! before it takes effect (actor `system:retention-sweep`): a pending retention lowering whose
//! `pending_effective_at` has passed is applied (`tenant.retention.apply`), and a `deleting`
//! tenant whose `delete_after` has passed is tombstoned (`tenant.delete`: status `deleted`,
//! every credential and key refused). Nothing is purged for a tenant under `legal_hold`, nor
//! for a deleted one (purging a deleted tenant's data is a later, separate step).

use std::future::Future;
use std::time::Duration;

use auditlog_seams::EventFilter;
use auditlog_api_common::auth::Principal;
use auditlog_tenant_registry::{DEFAULT_RETENTION_DAYS, TenantPatch, TenantSettings, TenantStatus};
use time::OffsetDateTime;

use crate::audit::AdminAction;
use crate::routes::admin::audited;
use crate::state::QueryState;

/// Actor of the changes the sweep carries out.
pub const SWEEPER: &str = "system:retention-sweep";

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

/// Applies what is due, then purges every registered tenant's expired events from the store
/// and the index once; returns how many rows and documents went.
pub async fn sweep(state: &QueryState) -> (u64, u64) {
    let backends = state.backends();
    let (mut rows, mut docs) = (0, 0);
    for tenant in backends.tenants.list_tenants() {
        let Some(tenant) = apply_due(state, tenant).await else { continue };
        if tenant.legal_hold || tenant.status == TenantStatus::Deleted {
            continue;
        }
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

/// Carries out `tenant`'s due deletion or retention lowering (audited first); answers its
/// settings afterwards, `None` when a change failed (nothing is purged for it this time).
async fn apply_due(state: &QueryState, tenant: TenantSettings) -> Option<TenantSettings> {
    let now = OffsetDateTime::now_utc();
    let sweeper = Principal { subject: SWEEPER.into(), tenant_id: None, roles: Vec::new() };
    let (name, patch) = if tenant.status == TenantStatus::Deleting && tenant.delete_after.is_some_and(|at| at <= now) {
        ("tenant.delete", TenantPatch { status: Some(TenantStatus::Deleted), ..TenantPatch::default() })
    } else if let (Some(days), Some(at)) = (tenant.pending_retention_days, tenant.pending_effective_at)
        && at <= now
    {
        ("tenant.retention.apply", TenantPatch { retention_days: Some(days), pending_retention: Some(None), ..TenantPatch::default() })
    } else {
        return Some(tenant);
    };
    let metadata = serde_json::json!({"patch": patch, "before": tenant});
    let action = AdminAction { action: name, actor: &sweeper, targets: vec![("tenant", tenant.id.clone())], metadata };
    let id = tenant.id.clone();
    let applied = audited(state, action, async { Ok(state.backends().tenants.update_tenant(&id, patch).await?) }).await;
    match applied {
        Ok(updated) => {
            tracing::info!(tenant = %id, action = name, "delayed admin change applied");
            Some(updated)
        }
        Err(err) => {
            tracing::warn!(tenant = %id, action = name, error = %err, "delayed admin change not applied; retried at the next sweep");
            None
        }
    }
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
