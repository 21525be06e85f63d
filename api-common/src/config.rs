//! Auth configuration shared by the services: typed serde structs with
//! `deny_unknown_fields`, defaults in named functions, secrets redacted in `Debug`, and the
//! `<PREFIX>AUTH_*` environment overrides ([`AuthConfig::apply_env`]).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// Key id given to the HS256 secret from `<PREFIX>AUTH_HS256_SECRET`.
pub const ENV_HS256_KEY_ID: &str = "env-hs256";

/// A secret string (HS256 shared secret): never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// JWT verification settings (RFC 8725).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Required `iss` claim.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Required `aud` claim.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Verification keys; each with its own algorithm allow-list.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// A JWKS document (RFC 7517) on local disk, read at startup; every key must carry `kid`
    /// and `alg` (its allow-list) and be asymmetric. The services never fetch keys by URL.
    #[serde(default)]
    pub jwks_file: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: default_issuer(),
            audience: default_audience(),
            leeway_secs: default_leeway_secs(),
            keys: Vec::new(),
            jwks_file: None,
        }
    }
}

/// One JWT verification key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id; a token naming a `kid` must name one of these exactly.
    pub id: String,
    /// The key material.
    pub material: KeyMaterial,
    /// Algorithms this key may verify (`HS256`, `RS256`, `ES256`, `EdDSA`, ...); never mixes
    /// families, so HS/RS confusion cannot happen.
    pub algorithms: Vec<String>,
}

/// Key material of a [`JwtKeyConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KeyMaterial {
    /// HMAC shared secret (development).
    Secret(Secret),
    /// A PEM public key (RSA, EC or Ed25519), inline.
    PublicKeyPem(String),
}

fn default_issuer() -> String {
    "auditlog".into()
}
fn default_audience() -> String {
    "auditlog".into()
}
fn default_leeway_secs() -> u64 {
    30
}

impl AuthConfig {
    /// Every problem of these settings (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.issuer.is_empty() || self.audience.is_empty() {
            problems.push("auth.issuer and auth.audience must not be empty".to_owned());
        }
        for key in &self.keys {
            if key.algorithms.is_empty() {
                problems.push(format!("auth.keys[{}].algorithms must not be empty", key.id));
            }
        }
        problems
    }

    /// The first HS256 shared secret, for minting development tokens.
    pub fn hs256_secret(&self) -> Option<&Secret> {
        self.keys.iter().find_map(|k| match &k.material {
            KeyMaterial::Secret(s) if k.algorithms.iter().any(|a| a == "HS256") => Some(s),
            _ => None,
        })
    }

    /// Overrides fields from `<prefix>AUTH_ISSUER`, `_AUDIENCE`, `_LEEWAY_SECS`, `_JWKS_FILE`
    /// and `_HS256_SECRET` or `_HS256_SECRET_FILE` (a file holding it, the container
    /// convention for mounted secrets) (e.g. prefix `AUDITLOG_GATEWAY_`); answers every
    /// unparsable value.
    pub fn apply_env(&mut self, prefix: &str, var: &impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut problems = Vec::new();
        let name = |field: &str| format!("{prefix}AUTH_{field}");
        if let Some(v) = var(&name("ISSUER")) {
            self.issuer = v;
        }
        if let Some(v) = var(&name("AUDIENCE")) {
            self.audience = v;
        }
        if let Some(raw) = var(&name("LEEWAY_SECS")) {
            match u64::from_str(raw.trim()) {
                Ok(v) => self.leeway_secs = v,
                Err(_) => problems.push(format!("{}={raw:?} is not a valid value", name("LEEWAY_SECS"))),
            }
        }
        if let Some(path) = var(&name("JWKS_FILE")) {
            self.jwks_file = Some(path);
        }
        if let Some(secret) = secret_from_env(&name("HS256_SECRET"), var, &mut problems) {
            self.keys.retain(|k| k.id != ENV_HS256_KEY_ID);
            self.keys.push(JwtKeyConfig {
                id: ENV_HS256_KEY_ID.into(),
                material: KeyMaterial::Secret(Secret::new(secret)),
                algorithms: vec!["HS256".into()],
            });
        }
        problems
    }
}

/// A secret from `<name>` or from the file `<name>_FILE` names (its content, trailing
/// whitespace trimmed); both set, or an unreadable or empty file, is a problem.
pub fn secret_from_env(name: &str, var: &impl Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Option<String> {
    let file_var = format!("{name}_FILE");
    match (var(name), var(&file_var)) {
        (Some(_), Some(_)) => {
            problems.push(format!("{name} and {file_var} are both set: set one"));
            None
        }
        (Some(secret), None) => Some(secret),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim_end().to_owned()),
            Ok(_) => {
                problems.push(format!("{file_var}={path:?}: the file is empty"));
                None
            }
            Err(err) => {
                problems.push(format!("{file_var}={path:?}: {err}"));
                None
            }
        },
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_from_a_file_named_by_the_file_variable() {
        let dir = std::env::temp_dir().join(format!("auditlog-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("hs256");
        std::fs::write(&path, "0123456789abcdefghijklmnopqrstuvwxyz\n").expect("written");
        let file = path.display().to_string();
        let vars = |name: &str| (name == "X_AUTH_HS256_SECRET_FILE").then(|| file.clone());
        let mut auth = AuthConfig::default();
        assert!(auth.apply_env("X_", &vars).is_empty());
        assert_eq!(auth.hs256_secret().map(Secret::expose), Some("0123456789abcdefghijklmnopqrstuvwxyz"), "trailing newline trimmed");
        let both = |name: &str| match name {
            "X_AUTH_HS256_SECRET_FILE" => Some(file.clone()),
            "X_AUTH_HS256_SECRET" => Some("s".repeat(40)),
            _ => None,
        };
        assert_eq!(AuthConfig::default().apply_env("X_", &both).len(), 1, "both set is a problem");
        let missing = |name: &str| (name == "X_AUTH_HS256_SECRET_FILE").then(|| "/nonexistent/auditlog/secret".to_owned());
        let mut auth = AuthConfig::default();
        assert_eq!(auth.apply_env("X_", &missing).len(), 1);
        assert!(auth.keys.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn env_overrides_auth_and_redacts_the_secret() {
        let vars = |name: &str| match name {
            "X_AUTH_ISSUER" => Some("me".to_owned()),
            "X_AUTH_LEEWAY_SECS" => Some("-1".to_owned()),
            "X_AUTH_HS256_SECRET" => Some("s".repeat(40)),
            _ => None,
        };
        let mut auth = AuthConfig::default();
        let problems = auth.apply_env("X_", &vars);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(auth.issuer, "me");
        assert!(auth.hs256_secret().is_some());
        assert!(!format!("{auth:?}").contains("ssss"));
    }
}
