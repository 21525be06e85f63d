//! `auditlog gateway` and `auditlog admin token`: the ingest gateway role, and development
//! tokens signed with the HS256 secret of the gateway or of the query API (each has its own).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use auditlog_ingest_gateway::auth::Role;
use auditlog_ingest_gateway::auth::dev_token::{DevToken, mint_hs256};
use auditlog_ingest_gateway::config::{AuthConfig, load};
use auditlog_ingest_gateway::{GatewayState, run_with_metrics_listener};
use auditlog_schemas::WireCodec;
use auditlog_seams::resolve;

use crate::signal::shutdown_signal;
use crate::startup;

/// Options of `auditlog gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Gateway config (JSON); defaults plus `AUDITLOG_GATEWAY_*` variables when absent.
    #[arg(long, env = "AUDITLOG_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "AUDITLOG_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Event log URI.
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092")]
    event_log: String,
    /// Tenant registry URI: tenants' settings and API keys (`memory://` keeps them in this
    /// process only).
    #[arg(long, env = "AUDITLOG_TENANT_REGISTRY", default_value = "kafka://127.0.0.1:9092")]
    tenant_registry: String,
    /// Serve `/metrics` on this address instead of `--listen` (which then answers 404 there),
    /// so only the scraper reaches it.
    #[arg(long, env = "AUDITLOG_GATEWAY_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    dev: DevMode,
}

/// `--dev-mode`, shared by the gateway and the query API.
#[derive(Debug, Clone, clap::Args)]
pub struct DevMode {
    /// Development mode: accept HS256 shared-secret tokens on a non-loopback listener (a role
    /// listening only on 127.0.0.1/::1/localhost accepts them without it, with a warning).
    /// Production verifies RS256/ES256/EdDSA keys (`*_AUTH_JWKS_FILE`) and leaves this off.
    #[arg(long = "dev-mode", env = "AUDITLOG_DEV_MODE", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub on: bool,
}

/// Which service a development token is for: each verifies with its own HS256 secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// The ingest gateway (`AUDITLOG_GATEWAY_AUTH_HS256_SECRET`, `--config`).
    Gateway,
    /// The query API (`AUDITLOG_QUERY_AUTH_HS256_SECRET`, `--query-config`).
    Query,
}

/// Options of `auditlog admin token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The service the token is for; it is signed with that service's HS256 key.
    #[arg(long, value_enum, default_value = "gateway")]
    service: Service,
    /// Gateway config holding the HS256 key to sign with (`--service gateway`).
    #[arg(long, env = "AUDITLOG_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Query API config holding the HS256 key to sign with (`--service query`).
    #[arg(long, env = "AUDITLOG_QUERY_CONFIG")]
    query_config: Option<PathBuf>,
    /// Tenant of the token; omit only for `platform_admin`.
    #[arg(long)]
    tenant: Option<String>,
    /// Roles, comma separated: platform_admin, tenant_admin, writer, reader.
    #[arg(long, value_delimiter = ',', default_value = "writer")]
    roles: Vec<String>,
    /// `sub` claim.
    #[arg(long, default_value = "dev")]
    subject: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
}

/// Serves the gateway until SIGINT or SIGTERM, then drains and flushes.
pub async fn gateway(args: GatewayArgs) -> anyhow::Result<bool> {
    let config = load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    startup::require_jwt_key(&config.auth, "AUDITLOG_GATEWAY_")?;
    let listeners = std::iter::once(args.listen.as_str()).chain(args.metrics_listen.as_deref()).collect();
    startup::check_secrets(&config.auth, "AUDITLOG_GATEWAY_", "AUDITLOG_GATEWAY_CONFIG", &[], &startup::Exposure { listeners, dev_mode: args.dev.on })?;
    let log_setting = startup::setting("--event-log", "AUDITLOG_EVENT_LOG", &args.event_log);
    let log_uri = with_delivery_timeout(&args.event_log, config.limits.append_timeout()).context(log_setting.clone())?;
    let log = resolve::event_log(&log_uri).context(log_setting.clone())?;
    startup::log_reachable(log.as_ref(), &log_setting).await?;
    let codec = Arc::new(
        WireCodec::new(&config.registry_url, config.limits.registry_timeout())
            .with_context(|| startup::setting("registry_url", "AUDITLOG_GATEWAY_REGISTRY_URL", &config.registry_url))?,
    );
    let tenants = auditlog_tenant_registry::open_registry(&args.tenant_registry)
        .await
        .with_context(|| startup::setting("--tenant-registry", "AUDITLOG_TENANT_REGISTRY", &args.tenant_registry))?;
    let state = GatewayState::new(config, log, codec, tenants)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("auditlog gateway listening on http://{}", listener.local_addr()?);
    let metrics = match &args.metrics_listen {
        Some(addr) => {
            let metrics = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| startup::setting("--metrics-listen", "AUDITLOG_GATEWAY_METRICS_LISTEN", addr))?;
            eprintln!("auditlog gateway metrics on http://{}/metrics", metrics.local_addr()?);
            Some(metrics)
        }
        None => None,
    };
    run_with_metrics_listener(listener, metrics, state, shutdown_signal("draining requests and flushing the producer"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(true)
}

/// How much sooner than the gateway's append budget the Kafka producer gives up on a record.
const DELIVERY_MARGIN: Duration = Duration::from_millis(250);

/// The event log URI with the Kafka producer's `message.timeout.ms` inside the gateway's
/// append budget (`limits.append_timeout_ms`), so that when the gateway answers 503 the
/// producer has given up too: an event reported unavailable will not land later and be
/// doubled by the client's retry. An explicit `message.timeout.ms` in the URI must fit too.
fn with_delivery_timeout(uri: &str, append_timeout: Duration) -> anyhow::Result<String> {
    if !uri.starts_with("kafka://") {
        return Ok(uri.to_owned());
    }
    let budget = append_timeout.saturating_sub(DELIVERY_MARGIN).max(Duration::from_millis(100));
    let explicit = uri.split_once('?').and_then(|(_, query)| {
        query.split('&').find_map(|pair| pair.strip_prefix("message.timeout.ms=").map(str::to_owned))
    });
    match explicit {
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) if Duration::from_millis(ms) <= budget => Ok(uri.to_owned()),
            _ => bail!(
                "message.timeout.ms={ms} must be a number of milliseconds within limits.append_timeout_ms ({} ms) less {} ms",
                append_timeout.as_millis(),
                DELIVERY_MARGIN.as_millis()
            ),
        },
        None => {
            let separator = if uri.contains('?') { '&' } else { '?' };
            Ok(format!("{uri}{separator}message.timeout.ms={}", budget.as_millis()))
        }
    }
}

/// Prints a development JWT signed with the first HS256 key of the chosen service's config
/// (`--service`), refusing a placeholder secret as the service itself would.
pub fn token(args: TokenArgs) -> anyhow::Result<bool> {
    let (auth, prefix, config_var): (AuthConfig, _, _) = match args.service {
        Service::Gateway => (load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?.auth, "AUDITLOG_GATEWAY_", "AUDITLOG_GATEWAY_CONFIG"),
        Service::Query => (
            auditlog_query_api::config::load(args.query_config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?.auth,
            "AUDITLOG_QUERY_",
            "AUDITLOG_QUERY_CONFIG",
        ),
    };
    let Some(secret) = auth.hs256_secret().cloned() else {
        bail!("the {} config has no HS256 key: set auth.keys in {config_var}'s file, or {prefix}AUTH_HS256_SECRET(_FILE)", service_name(args.service));
    };
    // The placeholder rule only (minting is local, nothing listens): the service would refuse
    // such a secret anyway.
    startup::refuse_placeholder_secrets(&auth, prefix, config_var, &[])?;
    let roles = args
        .roles
        .iter()
        .map(|r| Role::parse(r).with_context(|| format!("unknown role {r:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.tenant.is_none() && roles != [Role::PlatformAdmin] {
        bail!("--tenant is required unless the only role is platform_admin");
    }
    let token = DevToken { subject: args.subject, tenant_id: args.tenant, roles, ttl: Duration::from_secs(args.ttl_secs) };
    println!("{}", mint_hs256(&secret, &auth, &token).map_err(|e| anyhow::anyhow!("{e}"))?);
    Ok(true)
}

fn service_name(service: Service) -> &'static str {
    match service {
        Service::Gateway => "gateway",
        Service::Query => "query API",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_gives_up_within_the_append_budget() {
        let budget = Duration::from_secs(5);
        assert_eq!(with_delivery_timeout("kafka://k:9092", budget).expect("ok"), "kafka://k:9092?message.timeout.ms=4750");
        assert_eq!(with_delivery_timeout("kafka://k:9092?linger.ms=5", budget).expect("ok"), "kafka://k:9092?linger.ms=5&message.timeout.ms=4750");
        assert_eq!(with_delivery_timeout("kafka://k:9092?message.timeout.ms=3000", budget).expect("ok"), "kafka://k:9092?message.timeout.ms=3000");
        assert!(with_delivery_timeout("kafka://k:9092?message.timeout.ms=10000", budget).is_err(), "a producer that outlives the answer");
        assert_eq!(with_delivery_timeout("file:///log", budget).expect("ok"), "file:///log");
    }
}
