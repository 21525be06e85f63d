//! `auditlog admin`: tenants, API keys and producers' signing keys on the shared tenant
//! registry, and development JWTs, until the query API's HTTP admin endpoints exist. Every change is durable in the
//! registry before the command prints it, and reaches every running service within a second.

use std::sync::Arc;

use anyhow::Context as _;
use auditlog_tenant_registry::{NewSigningKey, Role, SignaturePolicy, TenantAdmin, TenantPatch, TenantSettings, open_registry};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
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
        /// Whether events must carry a producer's signature: off, optional, required.
        #[arg(long, default_value = "off")]
        signatures: SignaturePolicy,
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
        /// Whether events must carry a producer's signature: off, optional, required.
        #[arg(long)]
        signatures: Option<SignaturePolicy>,
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
    /// Producers' signing keys: the public keys a tenant's signed events are checked with.
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Print a development JWT signed with the HS256 key of the gateway (default) or, with
    /// `--service query`, of the query API: each service verifies with its own key.
    Token(TokenArgs),
}

#[derive(Debug, clap::Subcommand)]
enum SigningKeyCommand {
    /// Register a producer's public key; prints the key's record.
    Add {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The producing service the key belongs to.
        #[arg(long)]
        producer: String,
        /// `ed25519` or `ecdsa-p256-sha256`.
        #[arg(long, default_value = "ed25519")]
        alg: String,
        /// The raw public key in standard base64 (32 bytes for ed25519; a SEC1 point, 33 or 65
        /// bytes, for P-256).
        #[arg(long)]
        public_key: String,
        /// Key id, `[A-Za-z0-9._:-]{1,128}` (default: the first 16 hex digits of the key's SHA-256).
        #[arg(long)]
        key_id: Option<String>,
        /// RFC 3339: earliest `occurred_at` the key verifies (default: now).
        #[arg(long, value_parser = rfc3339)]
        not_before: Option<OffsetDateTime>,
        /// RFC 3339: `occurred_at` from which the key no longer verifies.
        #[arg(long, value_parser = rfc3339)]
        not_after: Option<OffsetDateTime>,
    },
    /// List a tenant's signing keys, revoked and expired ones included.
    List {
        /// Tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a signing key from a time on (events before it stay valid); a key revoked
    /// already keeps the earlier time.
    Revoke {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Key id, as `add` or `list` printed it.
        #[arg(long)]
        key_id: String,
        /// RFC 3339 (default: now).
        #[arg(long, value_parser = rfc3339)]
        at: Option<OffsetDateTime>,
    },
}

fn rfc3339(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-01-01T00:00:00Z"))
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
        AdminCommand::CreateTenant { id, name, retention_days, rate_limit_per_sec, dedicated_topic, signatures } => {
            let mut settings = TenantSettings::new(id);
            settings.name = name;
            if let Some(days) = retention_days {
                settings.retention_days = days;
            }
            settings.rate_limit_per_sec = rate_limit_per_sec;
            settings.dedicated_topic = dedicated_topic;
            settings.signatures = signatures;
            let registry = open().await?;
            if dedicated_topic {
                if let Some(problem) = auditlog_tenant_registry::validate::tenant_id_problem(&settings.id) {
                    anyhow::bail!("id: {problem}");
                }
                dedicate(settings.id.clone()).await?;
            }
            print(&registry.create_tenant(settings).await?)
        }
        AdminCommand::UpdateTenant { id, name, retention_days, rate_limit_per_sec, dedicated_topic, signatures } => {
            let patch = TenantPatch { name, retention_days, rate_limit_per_sec: rate_limit_per_sec.map(Some), dedicated_topic, signatures, ..TenantPatch::default() };
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
        AdminCommand::SigningKey { command } => match command {
            SigningKeyCommand::Add { tenant, producer, alg, public_key, key_id, not_before, not_after } => {
                let key = NewSigningKey { key_id, producer, alg, public_key, not_before, not_after };
                print(&open().await?.add_signing_key(&tenant, key).await?)
            }
            SigningKeyCommand::List { tenant } => print(&open().await?.list_signing_keys(&tenant)?),
            SigningKeyCommand::Revoke { tenant, key_id, at } => {
                let at = at.unwrap_or_else(OffsetDateTime::now_utc);
                print(&open().await?.revoke_signing_key(&tenant, &key_id, at).await?)
            }
        },
    }
}
