//! What a distributed role checks before it serves, so that a wrong or missing setting ends
//! it at once with one line naming the setting (`error: --event-log / AUDITLOG_EVENT_LOG
//! "kafka://…": …`), instead of a role that runs but can do nothing, or a crash loop without
//! a message.

use std::time::{Duration, Instant};

use anyhow::bail;
use auditlog_api_common::config::{AuthConfig, ENV_HS256_KEY_ID, KeyMaterial, Secret};
use auditlog_api_common::secrets::{HOW_TO_GENERATE, placeholder_reason};
use auditlog_seams::EventLog;

/// How long a role waits at start for its event log to answer
/// (`AUDITLOG_STARTUP_TIMEOUT_SECS`, default 60): long enough for a broker that is starting
/// too, short enough that a wrong address shows up as an exit with its reason.
const STARTUP_TIMEOUT_VAR: &str = "AUDITLOG_STARTUP_TIMEOUT_SECS";
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A setting as the error line names it: its flag, its variable and its value.
pub fn setting(flag: &str, var: &str, value: &str) -> String {
    format!("{flag} / {var} {value:?}")
}

/// The startup budget from the environment; an unparsable value is itself a setting error.
fn startup_timeout() -> anyhow::Result<Duration> {
    match std::env::var(STARTUP_TIMEOUT_VAR) {
        Err(_) => Ok(DEFAULT_STARTUP_TIMEOUT),
        Ok(raw) => match raw.trim().parse::<u64>() {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => bail!("{STARTUP_TIMEOUT_VAR}={raw:?} is not a number of seconds"),
        },
    }
}

/// Waits until `log` answers (metadata from a broker), or fails naming `setting`.
pub async fn log_reachable(log: &dyn EventLog, setting: &str) -> anyhow::Result<()> {
    let budget = startup_timeout()?;
    let deadline = Instant::now() + budget;
    loop {
        match log.check_ready().await {
            Ok(()) => return Ok(()),
            Err(err) if Instant::now() >= deadline => {
                bail!("{setting}: not reachable within {} s ({STARTUP_TIMEOUT_VAR}): {err}", budget.as_secs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Fails unless `auth` can verify some JWT: without a key no token is ever accepted, and
/// tenants cannot even be created (that takes a `platform_admin` token).
pub fn require_jwt_key(auth: &AuthConfig, prefix: &str) -> anyhow::Result<()> {
    if auth.keys.is_empty() && auth.jwks_file.is_none() {
        bail!(
            "no JWT verification key: set {prefix}AUTH_JWKS_FILE (production: RS256/ES256/EdDSA public keys), \
             auth.keys in the --config file, or {prefix}AUTH_HS256_SECRET (development only)"
        );
    }
    Ok(())
}

/// The value a secret setting is shown with in an error line: never the secret itself.
const REDACTED: &str = "<redacted>";

/// How a role is exposed: its listeners and whether development mode is on.
#[derive(Debug, Clone)]
pub struct Exposure<'a> {
    /// Every address the role listens on (API, metrics).
    pub listeners: Vec<&'a str>,
    /// `--dev-mode` / `AUDITLOG_DEV_MODE`.
    pub dev_mode: bool,
}

/// Whether `addr` (`host:port`) listens on loopback only: `127.0.0.0/8`, `::1`, `localhost`.
/// An unspecified (`0.0.0.0`, `[::]`, `:8080`) or unparsable host is not loopback.
pub fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses the secrets of a role at startup, one line naming the setting and never the
/// secret: a known placeholder (every example secret the repository showed) anywhere, and an
/// HS256 shared secret on a non-loopback listener without development mode. A role whose
/// listeners are all loopback accepts an HS256 secret without the flag (local use and the
/// test harnesses), with a warning.
///
/// `prefix` is the role's variable prefix (`AUDITLOG_GATEWAY_`), `config_var` the variable of
/// its config file; `extra` are its other secret settings (flag, variable, secret).
pub fn check_secrets(auth: &AuthConfig, prefix: &str, config_var: &str, extra: &[(&str, &str, &Secret)], exposure: &Exposure<'_>) -> anyhow::Result<()> {
    let hs256 = refuse_placeholder_secrets(auth, prefix, config_var, extra)?;
    match hs256.first() {
        Some(first) => exposure_rule(first, prefix, exposure),
        None => Ok(()),
    }
}

/// The placeholder rule of [`check_secrets`] alone; answers the settings naming the HS256
/// secrets found.
pub fn refuse_placeholder_secrets(auth: &AuthConfig, prefix: &str, config_var: &str, extra: &[(&str, &str, &Secret)]) -> anyhow::Result<Vec<String>> {
    let mut hs256 = Vec::new();
    for key in &auth.keys {
        let KeyMaterial::Secret(secret) = &key.material else { continue };
        let named = if key.id == ENV_HS256_KEY_ID {
            let var = format!("{prefix}AUTH_HS256_SECRET");
            let file_var = format!("{var}_FILE");
            let var = if std::env::var_os(&file_var).is_some() { file_var } else { var };
            setting("auth HS256 secret", &var, REDACTED)
        } else {
            setting(&format!("--config auth.keys[{}]", key.id), config_var, REDACTED)
        };
        refuse_placeholder(&named, secret)?;
        hs256.push(named);
    }
    for (flag, var, secret) in extra {
        refuse_placeholder(&setting(flag, var, REDACTED), secret)?;
    }
    Ok(hs256)
}

fn exposure_rule(first: &str, prefix: &str, exposure: &Exposure<'_>) -> anyhow::Result<()> {
    if exposure.dev_mode {
        tracing::warn!(secret = %first, "development mode: HS256 shared-secret tokens are accepted; production verifies RS256/ES256/EdDSA keys");
        return Ok(());
    }
    if let Some(public) = exposure.listeners.iter().find(|addr| !is_loopback(addr)) {
        bail!(
            "{}: an HS256 shared secret ({first}) on the non-loopback listener {public} is for development only: \
             set --dev-mode / AUDITLOG_DEV_MODE=true, or verify RS256/ES256/EdDSA keys ({prefix}AUTH_JWKS_FILE)",
            setting("--dev-mode", "AUDITLOG_DEV_MODE", "false")
        );
    }
    tracing::warn!(secret = %first, "HS256 shared-secret tokens accepted without --dev-mode because every listener is loopback");
    Ok(())
}

fn refuse_placeholder(named: &str, secret: &Secret) -> anyhow::Result<()> {
    match placeholder_reason(secret.expose()) {
        Some(reason) => bail!("{named}: {reason}; {HOW_TO_GENERATE}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlog_api_common::config::JwtKeyConfig;

    const RANDOM: &str = "9c1f4e7a2b8d0c6e3f5a1b9d7c2e4f6a8b0d1c3e5f7a9b2d4c6e8f0a1b3c5d7e";

    fn hs256(id: &str, secret: &str) -> AuthConfig {
        let key = JwtKeyConfig { id: id.into(), material: KeyMaterial::Secret(Secret::new(secret)), algorithms: vec!["HS256".into()] };
        AuthConfig { keys: vec![key], ..AuthConfig::default() }
    }

    fn exposure(listeners: &[&'static str], dev_mode: bool) -> Exposure<'static> {
        Exposure { listeners: listeners.to_vec(), dev_mode }
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        for yes in ["127.0.0.1:8080", "127.1.2.3:1", "[::1]:8090", "localhost:8080", "LOCALHOST:1"] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["0.0.0.0:8080", "[::]:8080", ":8080", "10.0.0.5:8080", "gateway:8080", "example.com:80", "nonsense"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn placeholder_secrets_are_refused_in_one_line_without_the_secret() {
        let placeholder = "dev-only-insecure-hs256-secret-change-me-0123456789";
        for auth in [hs256("dev", placeholder), hs256(ENV_HS256_KEY_ID, placeholder)] {
            let err = check_secrets(&auth, "AUDITLOG_GATEWAY_", "AUDITLOG_GATEWAY_CONFIG", &[], &exposure(&["127.0.0.1:8080"], true)).expect_err("refused");
            let line = err.to_string();
            assert!(line.contains("\"<redacted>\"") && !line.contains(placeholder) && !line.contains('\n'), "{line}");
            assert!(line.contains("AUDITLOG_GATEWAY_"), "names the setting: {line}");
        }
        let cursor = Secret::new("change-me-cursor-signing-secret-32-bytes");
        let err = check_secrets(&hs256("dev", RANDOM), "AUDITLOG_QUERY_", "AUDITLOG_QUERY_CONFIG", &[("cursor_secret", "AUDITLOG_QUERY_CURSOR_SECRET", &cursor)], &exposure(&["127.0.0.1:8090"], false))
            .expect_err("cursor placeholder refused");
        assert!(err.to_string().starts_with("cursor_secret / AUDITLOG_QUERY_CURSOR_SECRET \"<redacted>\": "), "{err}");
    }

    #[test]
    fn hs256_needs_dev_mode_unless_every_listener_is_loopback() {
        let auth = hs256(ENV_HS256_KEY_ID, RANDOM);
        let check = |listeners: &[&'static str], dev| check_secrets(&auth, "AUDITLOG_GATEWAY_", "AUDITLOG_GATEWAY_CONFIG", &[], &exposure(listeners, dev));
        assert!(check(&["127.0.0.1:8080"], false).is_ok());
        assert!(check(&["127.0.0.1:8080", "[::1]:9464"], false).is_ok());
        let err = check(&["127.0.0.1:8080", "0.0.0.0:9464"], false).expect_err("a public metrics listener counts");
        assert!(err.to_string().starts_with("--dev-mode / AUDITLOG_DEV_MODE \"false\": ") && err.to_string().contains("0.0.0.0:9464"), "{err}");
        assert!(check(&["0.0.0.0:8080"], true).is_ok(), "development mode allows it");
        let jwks_only = AuthConfig { jwks_file: Some("/etc/auditlog/jwks.json".into()), ..AuthConfig::default() };
        assert!(check_secrets(&jwks_only, "AUDITLOG_GATEWAY_", "AUDITLOG_GATEWAY_CONFIG", &[], &exposure(&["0.0.0.0:8080"], false)).is_ok(), "no HS256: no flag needed");
    }

    #[test]
    fn a_role_without_any_jwt_key_is_refused_naming_the_settings() {
        let err = require_jwt_key(&AuthConfig::default(), "AUDITLOG_GATEWAY_").expect_err("no key");
        assert!(err.to_string().contains("AUDITLOG_GATEWAY_AUTH_HS256_SECRET"), "{err}");
        let jwks = AuthConfig { jwks_file: Some("/etc/auditlog/jwks.json".into()), ..AuthConfig::default() };
        assert!(require_jwt_key(&jwks, "AUDITLOG_GATEWAY_").is_ok());
    }
}
