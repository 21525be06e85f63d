//! Per-tenant caps on long-running requests (exports, live tails): a request that finds its
//! tenant at the cap is refused at once with 429, never queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts running requests per tenant against one cap.
#[derive(Debug, Clone)]
pub struct TenantSlots {
    max: usize,
    /// Running requests by tenant; entries leave when they reach zero, so the map holds only
    /// tenants with something running.
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// A held slot; released on drop (when the export or stream ends, however it ends).
#[derive(Debug)]
pub struct Slot {
    tenant: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl TenantSlots {
    /// Room for `max` running requests per tenant.
    pub fn new(max: usize) -> Self {
        Self { max, running: Arc::default() }
    }

    /// A slot for `tenant`, or `None` when it is at the cap.
    pub fn try_acquire(&self, tenant: &str) -> Option<Slot> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(tenant.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { tenant: tenant.to_owned(), running: Arc::clone(&self.running) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_each_tenant_and_free_on_drop() {
        let slots = TenantSlots::new(1);
        let held = slots.try_acquire("a").expect("first fits");
        assert!(slots.try_acquire("a").is_none(), "second is over the cap");
        assert!(slots.try_acquire("b").is_some(), "tenants are capped separately");
        drop(held);
        assert!(slots.try_acquire("a").is_some(), "freed on drop");
    }
}
