//! What a distributed role checks before it serves, so that a wrong or missing setting ends
//! it at once with one line naming the setting (`error: --event-log / AUDITLOG_EVENT_LOG
//! "kafka://…": …`), instead of a role that runs but can do nothing, or a crash loop without
//! a message.

use std::time::{Duration, Instant};

use anyhow::bail;
use auditlog_api_common::config::AuthConfig;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_without_any_jwt_key_is_refused_naming_the_settings() {
        let err = require_jwt_key(&AuthConfig::default(), "AUDITLOG_GATEWAY_").expect_err("no key");
        assert!(err.to_string().contains("AUDITLOG_GATEWAY_AUTH_HS256_SECRET"), "{err}");
        let jwks = AuthConfig { jwks_file: Some("/etc/auditlog/jwks.json".into()), ..AuthConfig::default() };
        assert!(require_jwt_key(&jwks, "AUDITLOG_GATEWAY_").is_ok());
    }
}
