//! `auditlog ledger-key`: makes a checkpoint signing key for the ledger processor;
//! `auditlog ledger-checkpoint`: issues a tenant's checkpoint on demand.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

/// Options of `auditlog ledger-key`.
#[derive(Debug, clap::Args)]
pub struct LedgerKeyArgs {
    /// The key's name (e.g. the deployment's name); checkpoints are signed under each
    /// tenant's origin whatever the name.
    #[arg(long, default_value = "auditlog")]
    name: String,
    /// Write the private key here (mode 0600, never overwritten) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Generates an Ed25519 signer; prints the private key (Go `note` signer text) to `--out` or
/// stdout and the public verifier key to stderr.
pub fn ledger_key(args: LedgerKeyArgs) -> anyhow::Result<bool> {
    let signer = auditlog_ledger::Signer::generate(&args.name).map_err(|e| anyhow::anyhow!("--name {:?}: {e}", args.name))?;
    let text = format!("{}\n", signer.to_key_text());
    match &args.out {
        Some(path) => write_new_private(path, &text).with_context(|| format!("--out {}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!("verifier key: {}", signer.verifier());
    Ok(true)
}

/// Creates `path` with mode 0600; an existing file is an error.
pub fn write_new_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Options of `auditlog ledger-checkpoint`.
#[derive(Debug, clap::Args)]
pub struct LedgerCheckpointArgs {
    /// The tenants whose saved tree to sign now (repeatable); at least one.
    #[arg(long, required = true)]
    tenant: Vec<String>,
    #[command(flatten)]
    ledger: crate::processor::LedgerArgs,
    #[command(flatten)]
    backends: crate::processor::ViewBackends,
}

/// Signs each tenant's saved tree with the given keys now, saves the checkpoint and publishes
/// it on the checkpoint topic (beside a running ledger processor, never replacing a newer
/// checkpoint); prints one line per tenant.
pub async fn ledger_checkpoint(args: LedgerCheckpointArgs) -> anyhow::Result<bool> {
    let backends = args.backends.resolved();
    let log_setting = crate::startup::setting("--event-log", "AUDITLOG_EVENT_LOG", backends.event_log_uri());
    let log = auditlog_seams::resolve::event_log(backends.event_log_uri()).context(log_setting.clone())?;
    crate::startup::log_reachable(log.as_ref(), &log_setting).await?;
    let sink = crate::processor::ledger_sink(&args.ledger, backends.ledger_uri(), log).await?;
    let mut all = true;
    for tenant in &args.tenant {
        match sink.checkpoint_now(tenant).await {
            Ok(Some(size)) => println!("{tenant}: checkpoint issued at tree size {size}"),
            Ok(None) => {
                eprintln!("{tenant}: no tree yet (no event ledgered)");
                all = false;
            }
            Err(e) => anyhow::bail!("{tenant}: {e}"),
        }
    }
    Ok(all)
}
