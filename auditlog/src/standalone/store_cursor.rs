//! Workaround for a bug in the embedded store's cursors, until `seams` fixes it: the fjall
//! store binds a cursor to a fingerprint of the whole filter (`seams/src/event_store/embedded/read.rs`,
//! `fingerprint`), `from` included, but the query API raises `from` to the tenant's retention
//! cutoff, `now - retention_days`, which moves between two requests; every second page then
//! failed with "cursor belongs to another tenant or query" (a 500). The query API already
//! binds each cursor to its tenant and query with an HMAC, so here the inner fingerprint is
//! re-stamped for the filter of the request that presents the cursor.

use std::sync::Arc;

use async_trait::async_trait;
use auditlog_seams::{EventFilter, EventStore, Page, PageRequest, StoreError, StoredEvent};
use time::OffsetDateTime;

/// An [`EventStore`] whose cursors survive the moving retention cutoff; see the module docs.
pub struct StableCursors(pub Arc<dyn EventStore>);

/// The embedded store's fingerprint of a filter (FNV-1a over its `Debug` form).
fn fingerprint(filter: &EventFilter) -> u64 {
    format!("{filter:?}").bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[async_trait]
impl EventStore for StableCursors {
    async fn upsert(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.0.upsert(events).await
    }

    async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        self.0.get(tenant_id, id).await
    }

    async fn list(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, StoreError> {
        let after = page.after.as_deref().map(|cursor| match cursor.split_once('.') {
            Some((_, rest)) => format!("{:016x}.{rest}", fingerprint(filter)),
            None => cursor.to_owned(),
        });
        self.0.list(filter, &PageRequest { limit: page.limit, after }).await
    }

    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.0.purge_before(tenant_id, before).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.0.check_ready().await
    }
}
