//! `auditlog admin`: tenants and API keys on the shared tenant registry, and development
//! JWTs, until the query API's HTTP admin endpoints exist. Every change is durable in the
//! registry before the command prints it, and reaches every running service within a second.

use std::sync::Arc;

use anyhow::Context as _;
use auditlog_tenant_registry::{Role, TenantAdmin, TenantPatch, TenantSettings, open_registry};
use serde_json::json;

use crate::gateway::{TokenArgs, token};

/// Options of `auditlog admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Tenant registry URI (`kafka://host:port[?topic=...]`).
    #[arg(long, env = "AUDITLOG_TENANT_REGISTRY", default_value = "kafka://127.0.0.1:9092", global = true)]
    registry: String,
    /// Event log URI, where dedicated tenant topics are created.
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092", global = true)]
    event_log: String,
    /// Topic prefix of the gateways: a dedicated topic is `<prefix>.v1.<tenant>`.
    #[arg(long, env = "AUDITLOG_GATEWAY_TOPIC_PREFIX", default_value = "audit.events", global = true)]
    topic_prefix: String,
    /// Partitions of a dedicated topic created for a tenant.
    #[arg(long, default_value_t = 6, global = true)]
    dedicated_partitions: i32,
    /// Replicas of each partition of a dedicated topic (-1: the broker's default).
    #[arg(long, env = "AUDITLOG_QUERY_DEDICATED_TOPIC_REPLICATION_FACTOR", default_value_t = -1, allow_negative_numbers = true, global = true,
          value_parser = clap::value_parser!(i32).range(-1..))]
    dedicated_replication_factor: i32,
    /// `min.insync.replicas` of a dedicated topic (unset: the broker's).
    #[arg(long, env = "AUDITLOG_QUERY_DEDICATED_TOPIC_MIN_INSYNC_REPLICAS", global = true, value_parser = clap::value_parser!(i32).range(1..))]
    dedicated_min_insync_replicas: Option<i32>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Create a tenant.
    CreateTenant {
        /// Tenant id: lowercase letters, digits, `_` and `-`.
        #[arg(long)]
        id: String,
        /// Display name (defaults to the id).
        #[arg(long, default_value = "")]
        name: String,
        /// Days events are kept.
        #[arg(long)]
        retention_days: Option<u32>,
        /// Events per second the tenant may ingest (gateway default when absent).
        #[arg(long)]
        rate_limit_per_sec: Option<u32>,
        /// Write the tenant's events to its own topic `<prefix>.v1.<id>` (created here).
        #[arg(long)]
        dedicated_topic: bool,
    },
    /// Change a tenant's settings.
    UpdateTenant {
        /// Tenant id.
        #[arg(long)]
        id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New retention in days.
        #[arg(long)]
        retention_days: Option<u32>,
        /// New rate limit.
        #[arg(long)]
        rate_limit_per_sec: Option<u32>,
        /// Pin to (`true`) or unpin from (`false`) a dedicated topic.
        #[arg(long)]
        dedicated_topic: Option<bool>,
    },
    /// List tenants.
    ListTenants,
    /// Create an API key; its secret is printed this once and stored only as a hash.
    CreateKey {
        /// Tenant the key is scoped to.
        #[arg(long)]
        tenant: String,
        /// Label.
        #[arg(long)]
        name: String,
        /// Roles, comma separated: tenant_admin, writer, reader.
        #[arg(long, value_delimiter = ',', default_value = "writer")]
        roles: Vec<String>,
    },
    /// List a tenant's API keys (never their secrets).
    ListKeys {
        /// Tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke an API key.
    RevokeKey {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Key id, as `create-key` or `list-keys` printed it.
        #[arg(long)]
        key_id: String,
    },
    /// Print a development JWT signed with the HS256 key of the gateway (default) or, with
    /// `--service query`, of the query API: each service verifies with its own key.
    Token(TokenArgs),
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<bool> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(true)
}

/// Runs one admin command.
pub async fn admin(args: AdminArgs) -> anyhow::Result<bool> {
    let uri = args.registry;
    // A tenant is pinned to its dedicated topic only after the topic exists, so no gateway
    // ever routes an event to a topic that is not there.
    let dedicate = |tenant: String| {
        let (log_uri, prefix, partitions) = (args.event_log.clone(), args.topic_prefix.clone(), args.dedicated_partitions);
        let (replication_factor, min_insync) = (args.dedicated_replication_factor, args.dedicated_min_insync_replicas);
        async move {
            let log = auditlog_seams::resolve::event_log(&log_uri)?;
            let topic = format!("{prefix}.v1.{tenant}");
            // Kept forever like the shared topic (the log is the source of truth), never by
            // the broker's default retention.
            let mut configs = vec![("retention.ms".to_owned(), "-1".to_owned())];
            if let Some(n) = min_insync {
                configs.push(("min.insync.replicas".to_owned(), n.to_string()));
            }
            let spec = auditlog_seams::TopicSpec { name: topic.clone(), partitions, replication_factor, configs };
            log.ensure_topic_as(&spec).await.with_context(|| format!("creating the dedicated topic {topic}"))?;
            eprintln!("dedicated topic {topic} is ready");
            anyhow::Ok(())
        }
    };
    let open = || async {
        let registry: Arc<dyn TenantAdmin> =
            open_registry(&uri).await.with_context(|| format!("opening the tenant registry at {uri}"))?;
        anyhow::Ok(registry)
    };
    match args.command {
        AdminCommand::Token(args) => token(args),
        AdminCommand::CreateTenant { id, name, retention_days, rate_limit_per_sec, dedicated_topic } => {
            let mut settings = TenantSettings::new(id);
            settings.name = name;
            if let Some(days) = retention_days {
                settings.retention_days = days;
            }
            settings.rate_limit_per_sec = rate_limit_per_sec;
            settings.dedicated_topic = dedicated_topic;
            let registry = open().await?;
            if dedicated_topic {
                if let Some(problem) = auditlog_tenant_registry::validate::tenant_id_problem(&settings.id) {
                    anyhow::bail!("id: {problem}");
                }
                dedicate(settings.id.clone()).await?;
            }
            print(&registry.create_tenant(settings).await?)
        }
        AdminCommand::UpdateTenant { id, name, retention_days, rate_limit_per_sec, dedicated_topic } => {
            let patch = TenantPatch { name, retention_days, rate_limit_per_sec: rate_limit_per_sec.map(Some), dedicated_topic, ..TenantPatch::default() };
            let registry = open().await?;
            if dedicated_topic == Some(true) {
                registry.tenant(&id).with_context(|| format!("unknown tenant {id}"))?;
                dedicate(id.clone()).await?;
            }
            print(&registry.update_tenant(&id, patch).await?)
        }
        AdminCommand::ListTenants => print(&open().await?.list_tenants()),
        AdminCommand::CreateKey { tenant, name, roles } => {
            let roles = roles
                .iter()
                .map(|r| Role::parse(r).with_context(|| format!("unknown role {r:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let issued = open().await?.create_api_key(&tenant, &name, roles).await?;
            eprintln!("store this key now: it is shown once and kept only as a hash");
            print(&json!({"key_id": issued.key_id, "key": issued.key}))
        }
        AdminCommand::ListKeys { tenant } => print(&open().await?.list_api_keys(&tenant)?),
        AdminCommand::RevokeKey { tenant, key_id } => print(&open().await?.revoke_api_key(&tenant, &key_id).await?),
    }
}
