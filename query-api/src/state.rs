//! Shared state of every request: configuration, the trait-typed backends, auth, cursor
//! signing, per-tenant concurrency slots and the live-tail hub.

use std::sync::Arc;

use auditlog_api_common::auth::Authenticator;
use auditlog_schemas::WireCodec;
use auditlog_seams::ledger_store::LedgerStore;
use auditlog_seams::{EventLog, EventStore, SearchIndex};
use auditlog_tenant_registry::TenantAdmin;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::QueryConfig;
use crate::cursor::CursorCodec;
use crate::error::QueryError;
use crate::live::LiveHub;
use crate::quota::Quotas;
use crate::slots::TenantSlots;

/// The backends the query API reads and writes through, all trait-typed.
#[derive(Clone)]
pub struct Backends {
    /// Time-range, id, actor and target reads.
    pub store: Arc<dyn EventStore>,
    /// Full text, filter combinations and stats.
    pub index: Arc<dyn SearchIndex>,
    /// Live tail, and where admin actions are recorded.
    pub log: Arc<dyn EventLog>,
    /// Confluent wire-format codec for the tail and the admin audit trail.
    pub codec: Arc<WireCodec>,
    /// Tenants and API keys (the gateway's registry).
    pub tenants: Arc<dyn TenantAdmin>,
    /// The tamper-evidence ledger, when this deployment builds one: without it the ledger
    /// routes answer 404 (`ledger-not-configured`) and events carry no `leaf_index`.
    pub ledger: Option<LedgerBackend>,
}

/// Where the ledger is read, and how its logs are named.
#[derive(Clone)]
pub struct LedgerBackend {
    /// Tiles, leaf rows, checkpoints and keys, written by the ledger processor.
    pub store: Arc<dyn LedgerStore>,
    /// The deployment name, the first half of every origin (`<deployment>/<tenant>`); the
    /// ledger processor's `--ledger-deployment`.
    pub deployment: String,
}

/// Cheap-to-clone handle on the query API's state.
#[derive(Clone)]
pub struct QueryState(Arc<Inner>);

struct Inner {
    config: QueryConfig,
    backends: Backends,
    auth: Authenticator,
    cursors: CursorCodec,
    /// Caps exports running at once per tenant (429 past it).
    exports: TenantSlots,
    /// Caps live tails open at once per tenant (429 past it).
    streams: TenantSlots,
    live: LiveHub,
    /// Per-tenant read rate and the cap on requests served at once.
    quotas: Quotas,
    metrics: PrometheusHandle,
}

impl std::fmt::Debug for QueryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryState").field("config", &self.0.config).finish_non_exhaustive()
    }
}

impl QueryState {
    /// Validates `config` (every problem reported at once) and assembles the state.
    pub fn new(config: QueryConfig, backends: Backends) -> Result<Self, QueryError> {
        config.validate().map_err(QueryError::Config)?;
        let registry: Arc<dyn auditlog_tenant_registry::TenantRegistry> = backends.tenants.clone();
        let auth = Authenticator::new(&config.auth, registry)?;
        let cursors = match &config.cursor_secret {
            Some(secret) => CursorCodec::new(secret.expose().as_bytes()),
            None => {
                tracing::warn!("no cursor_secret configured: cursors are signed with a random key and die with this process");
                CursorCodec::new(&rand::random::<[u8; 32]>())
            }
        };
        let live = LiveHub::new(&config, backends.log.clone(), backends.codec.clone(), backends.tenants.clone());
        Ok(Self(Arc::new(Inner {
            exports: TenantSlots::new(config.limits.max_exports_per_tenant),
            streams: TenantSlots::new(config.limits.max_streams_per_tenant),
            quotas: Quotas::new(&config.limits),
            metrics: crate::metrics::handle(),
            auth,
            cursors,
            live,
            backends,
            config,
        })))
    }

    /// The configuration.
    pub fn config(&self) -> &QueryConfig {
        &self.0.config
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.0.backends
    }

    /// Credential verification.
    pub fn authenticator(&self) -> &Authenticator {
        &self.0.auth
    }

    /// Cursor signing.
    pub fn cursors(&self) -> &CursorCodec {
        &self.0.cursors
    }

    /// Export slots per tenant.
    pub fn exports(&self) -> &TenantSlots {
        &self.0.exports
    }

    /// Live-tail slots per tenant.
    pub fn streams(&self) -> &TenantSlots {
        &self.0.streams
    }

    /// Read quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.0.quotas
    }

    /// The live-tail hub.
    pub fn live(&self) -> &LiveHub {
        &self.0.live
    }

    /// Renders `/metrics`.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }
}
