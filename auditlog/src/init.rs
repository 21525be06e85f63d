//! `auditlog init`: creates what the distributed roles expect to find, once per deployment
//! (a compose one-shot, a Kubernetes Job): the event, dead-letter and tenant-registry topics
//! with explicit partitions, replication and retention; the AuditEvent schema under
//! `<topic>-value` in the registry; the ScyllaDB keyspace and tables; the OpenSearch index
//! template (its monthly indices and alias follow on first write). Every step is idempotent:
//! what exists is left as it is. Backends that are still starting are retried until
//! `--wait-secs` runs out.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use auditlog_schemas::WireCodec;
use auditlog_seams::event_log::kafka::{TopicCreation, TopicSpec};
use auditlog_seams::{resolve, topics};
use auditlog_tenant_registry::RegistryUri;

/// Pause between two tries of a step whose backend is not there yet.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Options of `auditlog init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Event log URI (Kafka only: the embedded log of standalone mode needs no init).
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092")]
    event_log: String,
    /// Confluent-compatible schema registry base URL.
    #[arg(long, env = "AUDITLOG_REGISTRY_URL", default_value = "http://127.0.0.1:8081/apis/ccompat/v7")]
    registry: String,
    /// The shared events topic (its dead-letter topic is `<topic>.dlq`).
    #[arg(long, env = "AUDITLOG_TOPIC", default_value = "audit.events.v1")]
    topic: String,
    /// The ledger's compacted checkpoint topic (key = tenant, value = the latest signed note).
    #[arg(long, env = "AUDITLOG_CHECKPOINT_TOPIC", default_value = auditlog_processors::ledger::CHECKPOINT_TOPIC)]
    checkpoint_topic: String,
    /// Tenant registry URI; its compacted topic is created (`kafka://host:port[?topic=...]`).
    #[arg(long, env = "AUDITLOG_TENANT_REGISTRY", default_value = "kafka://127.0.0.1:9092")]
    tenant_registry: String,
    /// Partitions of the events topic: the most processors of one sink that can share work.
    #[arg(long, env = "AUDITLOG_INIT_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Partitions of the dead-letter topic.
    #[arg(long, env = "AUDITLOG_INIT_DLQ_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    dlq_partitions: i32,
    /// Replicas of every partition; -1 takes the broker's `default.replication.factor`.
    #[arg(long, env = "AUDITLOG_INIT_REPLICATION_FACTOR", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..))]
    replication_factor: i32,
    /// `min.insync.replicas` of every topic (with acks=all, a write needs this many replicas);
    /// unset: the broker's default.
    #[arg(long, env = "AUDITLOG_INIT_MIN_INSYNC_REPLICAS", value_parser = clap::value_parser!(i32).range(1..))]
    min_insync_replicas: Option<i32>,
    /// Event store URI (`scylla://host:port[,...]/keyspace[?replication_factor=N]`), or
    /// `none` to skip it.
    #[arg(long, env = "AUDITLOG_EVENT_STORE", default_value = "scylla://127.0.0.1:9042/auditlog")]
    event_store: String,
    /// Search index URI (`opensearch://host:port/alias`), or `none` to skip it.
    #[arg(long, env = "AUDITLOG_SEARCH_INDEX", default_value = "opensearch://127.0.0.1:9200/auditlog-events")]
    search_index: String,
    /// How long each backend may take to become reachable.
    #[arg(long, env = "AUDITLOG_INIT_WAIT_SECS", default_value_t = 120)]
    wait_secs: u64,
    /// Development only: a directory (a volume the gateway and the query API mount) where
    /// random secrets are drawn once, each in its own 0600 file: `gateway-hs256`,
    /// `query-hs256` (each service its own HS256 key), `query-cursor` and `ledger-key` (the
    /// ledger's checkpoint signing key); existing files are kept. The services read them
    /// through `AUDITLOG_GATEWAY_AUTH_HS256_SECRET_FILE`, `AUDITLOG_QUERY_AUTH_HS256_SECRET_FILE`,
    /// `AUDITLOG_QUERY_CURSOR_SECRET_FILE` and `AUDITLOG_LEDGER_KEY_FILES`.
    #[arg(long, env = "AUDITLOG_INIT_DEV_SECRETS_DIR")]
    dev_secrets_dir: Option<std::path::PathBuf>,
}

/// The files `--dev-secrets-dir` holds, one random secret each.
pub const DEV_SECRET_FILES: [&str; 4] = ["gateway-hs256", "query-hs256", "query-cursor", "ledger-key"];

/// Draws the development secrets that do not exist yet in `dir` (created 0700); answers the
/// files it wrote. Never prints a secret.
fn ensure_dev_secrets(dir: &std::path::Path) -> anyhow::Result<Vec<&'static str>> {
    std::fs::create_dir_all(dir).with_context(|| format!("--dev-secrets-dir / AUDITLOG_INIT_DEV_SECRETS_DIR {:?}", dir.display().to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("restricting {}", dir.display()))?;
    }
    let mut written = Vec::new();
    for name in DEV_SECRET_FILES {
        let path = dir.join(name);
        if !path.exists() {
            let secret = if name == "ledger-key" {
                let signer = auditlog_ledger::Signer::generate("auditlog-dev").map_err(|e| anyhow::anyhow!("generating the ledger key: {e}"))?;
                format!("{}\n", signer.to_key_text())
            } else {
                crate::standalone::credentials::random_hex()
            };
            crate::standalone::credentials::write_private(&path, secret.as_bytes())?;
            written.push(name);
        }
    }
    Ok(written)
}

/// Runs every step; prints one line per thing created or found.
pub async fn init(args: InitArgs) -> anyhow::Result<bool> {
    if let Some(dir) = &args.dev_secrets_dir {
        let written = ensure_dev_secrets(dir)?;
        println!("development secrets in {}: {} drawn, the others kept", dir.display(), written.len());
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let log = resolve::kafka_event_log(&args.event_log).context("--event-log / AUDITLOG_EVENT_LOG")?;
    let tenants_topic = match RegistryUri::parse(&args.tenant_registry).context("--tenant-registry / AUDITLOG_TENANT_REGISTRY")? {
        RegistryUri::Kafka { topic, .. } => Some(topic),
        _ => None,
    };

    for spec in topic_specs(&args, tenants_topic.as_deref()) {
        let created = retry(deadline, &format!("creating topic {} on {}", spec.name, args.event_log), || log.create_topic(&spec)).await?;
        let what = match created {
            TopicCreation::Created => "created",
            TopicCreation::Existed => "exists, left as it is",
        };
        println!("topic {}: {what}", spec.name);
    }

    let codec = WireCodec::new(&args.registry, Duration::from_secs(10)).context("--registry / AUDITLOG_REGISTRY_URL")?;
    let id = retry(deadline, &format!("registering the schema at {}", args.registry), || codec.schema_id(&args.topic)).await?;
    println!("schema {}-value: id {id}", args.topic);

    if args.event_store != "none" {
        if !args.event_store.starts_with("scylla://") {
            bail!("--event-store / AUDITLOG_EVENT_STORE: init sets up ScyllaDB (scylla://...) or nothing (none), not {:?}", args.event_store);
        }
        retry(deadline, &format!("creating the keyspace and tables at {}", args.event_store), || resolve::event_store(&args.event_store)).await?;
        println!("event store {}: keyspace and tables ready", args.event_store);
        retry(deadline, &format!("creating the ledger tables at {}", args.event_store), || resolve::ledger_store(&args.event_store)).await?;
        println!("ledger store {}: tables ready", args.event_store);
    }
    if args.search_index != "none" {
        if args.search_index.starts_with("file://") {
            bail!("--search-index / AUDITLOG_SEARCH_INDEX: init sets up OpenSearch or nothing (none), not {:?}", args.search_index);
        }
        retry(deadline, &format!("creating the index at {}", args.search_index), || resolve::search_index(&args.search_index)).await?;
        println!("search index {}: index template ready (monthly indices follow on first write)", args.search_index);
    }
    Ok(true)
}

/// The topics of a deployment: events and dead letters kept forever (the log is the source
/// of truth; replays start at offset 0), the tenant registry compacted and kept forever.
fn topic_specs(args: &InitArgs, tenants_topic: Option<&str>) -> Vec<TopicSpec> {
    let mut common = vec![("retention.ms".to_owned(), "-1".to_owned())];
    if let Some(n) = args.min_insync_replicas {
        common.push(("min.insync.replicas".to_owned(), n.to_string()));
    }
    let spec = |name: String, partitions: i32, extra: &[(&str, &str)]| TopicSpec {
        name,
        partitions,
        replication_factor: args.replication_factor,
        configs: common.iter().cloned().chain(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).collect(),
    };
    let mut specs = vec![
        spec(args.topic.clone(), args.partitions, &[]),
        spec(topics::dead_letters(&args.topic), args.dlq_partitions, &[]),
    ];
    if let Some(topic) = tenants_topic {
        specs.push(spec(topic.to_owned(), 1, &[("cleanup.policy", "compact")]));
    }
    specs.push(spec(args.checkpoint_topic.clone(), 1, &[("cleanup.policy", "compact")]));
    specs
}

/// Runs `step` until it succeeds or `deadline` passes; then fails with `what` and the last
/// error, on one line.
async fn retry<T, E, F, Fut>(deadline: Instant, what: &str, mut step: F) -> anyhow::Result<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut logged = false;
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(err) if Instant::now() + RETRY_PAUSE < deadline => {
                if !logged {
                    eprintln!("waiting: {what}: {err}");
                    logged = true;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(err) => bail!("{what}: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: InitArgs,
    }

    #[test]
    fn topics_are_kept_forever_and_the_registry_is_compacted() {
        let cli = Cli::parse_from(["init", "--replication-factor", "3", "--min-insync-replicas", "2", "--tenant-registry", "kafka://k:9092?topic=t.v1"]);
        let specs = topic_specs(&cli.args, Some("t.v1"));
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["audit.events.v1", "audit.events.v1.dlq", "t.v1", "audit.ledger.checkpoints.v1"]);
        assert_eq!((specs[0].partitions, specs[1].partitions, specs[2].partitions, specs[3].partitions), (6, 3, 1, 1));
        for spec in &specs {
            assert_eq!(spec.replication_factor, 3);
            assert!(spec.configs.contains(&("retention.ms".into(), "-1".into())), "{spec:?}");
            assert!(spec.configs.contains(&("min.insync.replicas".into(), "2".into())), "{spec:?}");
        }
        assert!(specs[2].configs.contains(&("cleanup.policy".into(), "compact".into())));
        assert!(specs[3].configs.contains(&("cleanup.policy".into(), "compact".into())));
        assert!(!specs[0].configs.iter().any(|(k, _)| k == "cleanup.policy"));
    }

    #[test]
    fn dev_secrets_are_drawn_once_private_and_distinct() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let secrets = dir.path().join("secrets");
        assert_eq!(ensure_dev_secrets(&secrets).expect("drawn"), DEV_SECRET_FILES);
        let read = |name: &str| std::fs::read_to_string(secrets.join(name)).expect("written");
        let first: Vec<String> = DEV_SECRET_FILES.iter().map(|n| read(n)).collect();
        assert_ne!(first[0], first[1], "the gateway and the query API get different keys");
        for secret in &first[..3] {
            assert_eq!(secret.len(), 64);
            assert_eq!(auditlog_api_common::secrets::placeholder_reason(secret), None);
        }
        auditlog_ledger::Signer::parse(first[3].trim()).expect("the ledger key is a signer key");
        assert_eq!(std::fs::metadata(&secrets).expect("dir").permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(secrets.join("gateway-hs256")).expect("file").permissions().mode() & 0o777, 0o600);
        assert!(ensure_dev_secrets(&secrets).expect("kept").is_empty(), "a second run keeps them");
        assert_eq!(DEV_SECRET_FILES.iter().map(|n| read(n)).collect::<Vec<_>>(), first);
    }

    #[test]
    fn refuses_nonsense_counts() {
        for bad in [["init", "--partitions", "0"], ["init", "--replication-factor", "-2"], ["init", "--min-insync-replicas", "0"]] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
