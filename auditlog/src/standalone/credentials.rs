//! First start of a standalone data directory: the `default` tenant, a random HS256 secret
//! and cursor key (`secrets.json`, 0600), the ledger's checkpoint signing key
//! (`ledger-key`, 0600, Go `note` signer text as `auditlog ledger-key` writes it), and
//! ready-to-use credentials (`credentials.json` and `credentials.env`, 0600); later starts
//! reuse them.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use auditlog_ingest_gateway::auth::Role;
use auditlog_ingest_gateway::auth::dev_token::{DevToken, mint_hs256};
use auditlog_ingest_gateway::config::{AuthConfig, Secret};
use auditlog_tenant_registry::{RegistryError, TenantAdmin, TenantSettings};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The tenant created on first start.
pub const DEFAULT_TENANT: &str = "default";
/// Lifetime of the tokens written on first start: long enough for a laptop or a small
/// deployment, short enough that a leaked file does not grant access forever. Tokens closer
/// than [`RENEW_BEFORE`] to their expiry are minted again at start.
const TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Tokens expiring within this are re-minted at start.
const RENEW_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Secrets file: the HS256 key and the cursor key.
const SECRETS_FILE: &str = "secrets.json";
/// The ledger's checkpoint signing key (`PRIVATE+KEY+...`, one line).
pub const LEDGER_KEY_FILE: &str = "ledger-key";
/// Credentials file (JSON).
pub const CREDENTIALS_FILE: &str = "credentials.json";
/// The same credentials as shell variables, for `set -a; . <file>`.
pub const CREDENTIALS_ENV_FILE: &str = "credentials.env";

/// Keys this data directory signs with; never printed.
#[derive(Serialize, Deserialize)]
pub struct Secrets {
    /// HS256 key of the tokens the services accept (hex of 32 random bytes).
    pub jwt_hs256_secret: String,
    /// HMAC key of pagination cursors, so cursors survive a restart.
    pub cursor_secret: String,
}

/// What a user needs to call the API, written on first start.
#[derive(Serialize, Deserialize)]
pub struct Credentials {
    /// The tenant the key and the tenant token belong to.
    pub tenant: String,
    /// `platform_admin` JWT: tenants.
    pub admin_token: String,
    /// `tenant_admin`, `writer` and `reader` JWT of [`Self::tenant`]: keys, ingest, reads.
    pub tenant_admin_token: String,
    /// API key (`writer`, `reader`) of [`Self::tenant`].
    pub api_key: String,
    /// Id of [`Self::api_key`], to revoke it.
    pub api_key_id: String,
    /// When both tokens expire (RFC 3339).
    pub tokens_expire_at: String,
}

pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, directory fsync),
/// readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| format!("{} is not valid: remove it to start over", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The data directory's secrets, drawn and written on first start.
pub fn secrets(dir: &Path) -> anyhow::Result<Secrets> {
    let path = dir.join(SECRETS_FILE);
    if let Some(secrets) = read_json(&path)? {
        return Ok(secrets);
    }
    let secrets = Secrets { jwt_hs256_secret: random_hex(), cursor_secret: random_hex() };
    write_private(&path, &serde_json::to_vec_pretty(&secrets)?)?;
    Ok(secrets)
}

/// The data directory's checkpoint signing key, generated (named `name`) on first start.
pub fn ledger_signer(dir: &Path, name: &str) -> anyhow::Result<auditlog_ledger::Signer> {
    let path = dir.join(LEDGER_KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => auditlog_ledger::Signer::parse(text.trim()).map_err(|e| anyhow!("{} is not a signer key ({e}): restore it from a backup", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = auditlog_ledger::Signer::generate(name).map_err(|e| anyhow!("ledger key name {name:?}: {e}"))?;
            write_private(&path, format!("{}\n", signer.to_key_text()).as_bytes())?;
            Ok(signer)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Where the credentials are, and whether this start created them.
pub struct Issued {
    /// The credentials.
    pub credentials: Credentials,
    /// `credentials.json`.
    pub path: PathBuf,
    /// `credentials.env`.
    pub env_path: PathBuf,
    /// Whether they were created (or renewed) by this start.
    pub created: bool,
}

fn mint(secret: &Secret, auth: &AuthConfig, tenant: Option<&str>, subject: &str, roles: Vec<Role>) -> anyhow::Result<String> {
    let token = DevToken { subject: subject.to_owned(), tenant_id: tenant.map(str::to_owned), roles, ttl: TOKEN_TTL };
    mint_hs256(secret, auth, &token).map_err(|e| anyhow!("{e}"))
}

fn expires_soon(credentials: &Credentials) -> bool {
    OffsetDateTime::parse(&credentials.tokens_expire_at, &Rfc3339).map_or(true, |at| at - OffsetDateTime::now_utc() < RENEW_BEFORE)
}

/// Ensures the `default` tenant and the credentials exist; tokens close to expiry are minted
/// again. `url` only goes into `credentials.env`, rewritten on every start.
pub async fn ensure(dir: &Path, tenants: &dyn TenantAdmin, secret: &Secret, auth: &AuthConfig, url: &str) -> anyhow::Result<Issued> {
    match tenants.create_tenant(TenantSettings::new(DEFAULT_TENANT)).await {
        Ok(_) | Err(RegistryError::TenantExists(_)) => {}
        Err(err) => return Err(anyhow!("creating the {DEFAULT_TENANT} tenant: {err}")),
    }
    let path = dir.join(CREDENTIALS_FILE);
    let existing: Option<Credentials> = read_json(&path)?;
    let created = existing.as_ref().is_none_or(expires_soon);
    let credentials = match existing {
        Some(old) if !created => old,
        old => {
            let (api_key, api_key_id) = match old.as_ref().map(|c| (c.api_key.clone(), c.api_key_id.clone())) {
                Some(kept) => kept,
                None => {
                    let issued = tenants
                        .create_api_key(DEFAULT_TENANT, "standalone quickstart", vec![Role::Writer, Role::Reader])
                        .await
                        .map_err(|e| anyhow!("creating the quickstart api key: {e}"))?;
                    (issued.key, issued.key_id)
                }
            };
            let expires = OffsetDateTime::now_utc() + TOKEN_TTL;
            let credentials = Credentials {
                tenant: DEFAULT_TENANT.to_owned(),
                admin_token: mint(secret, auth, None, "standalone-admin", vec![Role::PlatformAdmin])?,
                tenant_admin_token: mint(secret, auth, Some(DEFAULT_TENANT), "standalone-tenant-admin", vec![Role::TenantAdmin, Role::Writer, Role::Reader])?,
                api_key,
                api_key_id,
                tokens_expire_at: expires.format(&Rfc3339)?,
            };
            write_private(&path, &serde_json::to_vec_pretty(&credentials)?)?;
            credentials
        }
    };
    let env_path = dir.join(CREDENTIALS_ENV_FILE);
    let env = format!(
        "# auditlog standalone credentials; load with: set -a; . {}; set +a\nAUDITLOG_URL={url}\nAUDITLOG_TENANT={}\nAUDITLOG_API_KEY={}\nAUDITLOG_ADMIN_TOKEN={}\nAUDITLOG_TENANT_ADMIN_TOKEN={}\n",
        env_path.display(),
        credentials.tenant,
        credentials.api_key,
        credentials.admin_token,
        credentials.tenant_admin_token,
    );
    write_private(&env_path, env.as_bytes())?;
    Ok(Issued { credentials, path, env_path, created })
}

/// What standalone prints to stderr once it serves: where the credentials are, and on first
/// start a copy-paste walkthrough.
pub fn banner(issued: &Issued, url: &str) -> String {
    let env = issued.env_path.display();
    let mut text = format!("\nauditlog standalone is ready on {url}\n");
    if issued.created {
        text.push_str(&format!(
            "\nFirst start: created tenant `{tenant}`, an API key (writer, reader) and admin tokens in\n  {json}\n  {env}\n\nTry it:\n  set -a; . {env}; set +a\n  curl -s -X POST $AUDITLOG_URL/v1/events -H \"Authorization: Bearer $AUDITLOG_API_KEY\" -H 'Content-Type: application/json' \\\n    -d '{{\"action\":\"user.login\",\"actor\":{{\"id\":\"alice\",\"type\":\"user\"}},\"outcome\":\"success\"}}'\n  curl -s $AUDITLOG_URL/v1/events -H \"Authorization: Bearer $AUDITLOG_API_KEY\"\n",
            tenant = issued.credentials.tenant,
            json = issued.path.display(),
        ));
    } else {
        text.push_str(&format!("Credentials: {} (shell: set -a; . {env}; set +a)\n", issued.path.display()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog_tenant_registry::{FileTenantRegistry, TenantRegistry, api_key};

    fn auth(secret: &Secret) -> AuthConfig {
        let mut auth = AuthConfig::default();
        auth.keys.push(auditlog_ingest_gateway::config::JwtKeyConfig {
            id: "t".into(),
            material: auditlog_ingest_gateway::config::KeyMaterial::Secret(secret.clone()),
            algorithms: vec!["HS256".into()],
        });
        auth
    }

    #[tokio::test]
    async fn first_start_creates_and_later_starts_reuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = secrets(dir.path()).expect("drawn");
        assert_eq!(secrets.jwt_hs256_secret.len(), 64);
        assert_eq!(super::secrets(dir.path()).expect("read back").jwt_hs256_secret, secrets.jwt_hs256_secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(SECRETS_FILE)).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let secret = Secret::new(secrets.jwt_hs256_secret);
        let registry = FileTenantRegistry::open(dir.path().join("tenants.json")).expect("registry");
        let first = ensure(dir.path(), &registry, &secret, &auth(&secret), "http://x").await.expect("first start");
        assert!(first.created);
        assert!(api_key::authenticate(&registry, &first.credentials.api_key).is_some_and(|k| k.tenant_id == DEFAULT_TENANT));
        let again = ensure(dir.path(), &registry, &secret, &auth(&secret), "http://y").await.expect("second start");
        let signer = ledger_signer(dir.path(), "auditlog").expect("ledger key drawn");
        assert_eq!(ledger_signer(dir.path(), "other").expect("read back").verifier(), signer.verifier(), "the key is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(LEDGER_KEY_FILE)).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!again.created);
        assert_eq!(again.credentials.api_key, first.credentials.api_key);
        assert_eq!(registry.list_api_keys(DEFAULT_TENANT).map(|k| k.len()), Ok(1), "no second key");
        let env = fs::read_to_string(again.env_path).expect("env file");
        assert!(env.contains("AUDITLOG_URL=http://y") && env.contains(&first.credentials.api_key));
        assert!(registry.tenant(DEFAULT_TENANT).is_some());
    }
}
