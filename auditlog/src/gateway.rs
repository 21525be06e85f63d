//! `auditlog gateway` and `auditlog admin token`: the ingest gateway role, and development
//! tokens signed with the gateway's HS256 secret.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use auditlog_ingest_gateway::auth::Role;
use auditlog_ingest_gateway::auth::dev_token::{DevToken, mint_hs256};
use auditlog_ingest_gateway::config::{KeyMaterial, load};
use auditlog_ingest_gateway::{GatewayState, run};
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
}

/// Options of `auditlog admin token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Gateway config holding the HS256 key to sign with.
    #[arg(long, env = "AUDITLOG_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
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
    run(listener, state, shutdown_signal("draining requests and flushing the producer")).await.map_err(|e| anyhow::anyhow!("{e}"))?;
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

/// Prints a development JWT signed with the config's first HS256 key.
pub fn token(args: TokenArgs) -> anyhow::Result<bool> {
    let config = load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(secret) = config.auth.keys.iter().find_map(|k| match &k.material {
        KeyMaterial::Secret(s) if k.algorithms.iter().any(|a| a == "HS256") => Some(s.clone()),
        _ => None,
    }) else {
        bail!("the gateway config has no HS256 key: set auth.keys or AUDITLOG_GATEWAY_AUTH_HS256_SECRET");
    };
    let roles = args
        .roles
        .iter()
        .map(|r| Role::parse(r).with_context(|| format!("unknown role {r:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.tenant.is_none() && roles != [Role::PlatformAdmin] {
        bail!("--tenant is required unless the only role is platform_admin");
    }
    let token = DevToken { subject: args.subject, tenant_id: args.tenant, roles, ttl: Duration::from_secs(args.ttl_secs) };
    println!("{}", mint_hs256(&secret, &config.auth, &token).map_err(|e| anyhow::anyhow!("{e}"))?);
    Ok(true)
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
