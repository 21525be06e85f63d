//! `auditlog sign` and `auditlog signing-key generate`: the producer side of signed events.
//!
//! `sign` adds a `signature` to an event with a PKCS#8 PEM private key (Ed25519 or ECDSA
//! P-256), over the canonical bytes of `auditlog_schemas::signing::signed_bytes` (see
//! `docs/signing.md`); `signing-key generate` makes such a key and prints the public key in
//! the form `POST /v1/tenants/{id}/signing-keys` takes.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use auditlog_schemas::signing::{KeyWindow, ProducerKey, verify};
use auditlog_schemas::validate::{IngestContext, Rejection};
use auditlog_schemas::{SignatureAlg, validate_event};
use serde_json::Value;

/// A signature algorithm on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgArg {
    /// Ed25519.
    #[value(name = "ed25519")]
    Ed25519,
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
}

impl From<AlgArg> for SignatureAlg {
    fn from(alg: AlgArg) -> Self {
        match alg {
            AlgArg::Ed25519 => Self::Ed25519,
            AlgArg::EcdsaP256Sha256 => Self::EcdsaP256Sha256,
        }
    }
}

/// Options of `auditlog sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// PKCS#8 PEM private key (Ed25519 or ECDSA P-256), e.g. from `auditlog signing-key generate`.
    #[arg(long)]
    key: PathBuf,
    /// The key's id in the tenant's signing-key registry.
    #[arg(long)]
    key_id: String,
    /// Tenant the event is sent for: part of the signed bytes (the gateway takes it from the
    /// credentials).
    #[arg(long)]
    tenant: String,
    /// Expected algorithm of the key (default: whatever the key is).
    #[arg(long, value_enum)]
    alg: Option<AlgArg>,
    /// Event JSON file, or `-` for stdin. It must carry its `id` and `occurred_at`.
    input: PathBuf,
}

/// Signs one event and prints it, with its `signature`, as one JSON line.
pub fn sign(args: SignArgs) -> anyhow::Result<bool> {
    let pem = std::fs::read_to_string(&args.key).with_context(|| format!("--key {}", args.key.display()))?;
    let key = ProducerKey::from_pkcs8_pem(&pem).with_context(|| format!("--key {}", args.key.display()))?;
    if let Some(alg) = args.alg.map(SignatureAlg::from)
        && alg != key.alg()
    {
        bail!("--alg {alg}, but the key in {} is {}", args.key.display(), key.alg());
    }
    let text = if args.input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the event from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input.display()))?
    };
    let mut value: Value = serde_json::from_str(&text).context("the event is not JSON")?;
    let Value::Object(fields) = &mut value else { bail!("the event must be a JSON object") };
    // Re-signing replaces an earlier signature; the signature is never part of what is signed.
    fields.remove("signature");
    for required in ["id", "occurred_at"] {
        if fields.get(required).is_none_or(Value::is_null) {
            bail!("the event has no {required}: a signed event carries its own {required}");
        }
    }
    let ctx = IngestContext { tenant_id: &args.tenant, received_at: time::OffsetDateTime::now_utc() };
    let event = validate_event(value.clone(), &ctx).map_err(|r| refused(&r))?;
    let signature = key.sign(&event, &args.key_id)?;
    if let Value::Object(fields) = &mut value {
        fields.insert("signature".to_owned(), serde_json::to_value(&signature)?);
    }
    // What the gateway will see: the signed event validates (the key id included) and verifies.
    let signed = validate_event(value.clone(), &ctx).map_err(|r| refused(&r))?;
    let window = KeyWindow {
        alg: key.alg(),
        public_key: key.public_key(),
        not_before: signed.occurred_at,
        not_after: None,
        revoked_at: None,
    };
    verify(&signed, &window).map_err(|e| anyhow::anyhow!("the new signature does not verify: {e}"))?;
    println!("{}", serde_json::to_string(&value)?);
    Ok(true)
}

fn refused(rejection: &Rejection) -> anyhow::Error {
    match rejection {
        Rejection::Invalid(errors) => anyhow::anyhow!(
            "the event would be refused: {}",
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
        ),
        Rejection::TenantMismatch => anyhow::anyhow!("the event's tenant_id is not --tenant"),
    }
}

/// Options of `auditlog signing-key`.
#[derive(Debug, clap::Args)]
pub struct SigningKeyArgs {
    #[command(subcommand)]
    command: SigningKeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SigningKeyCommand {
    /// Make a producer key: writes the PKCS#8 PEM private key (mode 0600, never overwritten)
    /// and prints the public key as standard base64, as `POST /v1/tenants/{id}/signing-keys`
    /// takes it.
    Generate {
        /// Write the private key here.
        #[arg(long)]
        out: PathBuf,
        /// Signature algorithm.
        #[arg(long, value_enum, default_value = "ed25519")]
        alg: AlgArg,
    },
}

/// Runs `auditlog signing-key ...`.
pub fn signing_key(args: SigningKeyArgs) -> anyhow::Result<bool> {
    match args.command {
        SigningKeyCommand::Generate { out, alg } => {
            let key = ProducerKey::generate(alg.into());
            let pem = key.to_pkcs8_pem()?;
            crate::ledger::write_new_private(&out, &pem).with_context(|| format!("--out {}", out.display()))?;
            println!("{}", key.public_key_base64());
            eprintln!("{} private key written to {}; register the public key above for your producer", key.alg(), out.display());
            Ok(true)
        }
    }
}
