//! JWT verification following RFC 8725: keys come only from configuration, each with its own
//! algorithm allow-list; `exp`, `iss`, `aud` and `sub` are required, `nbf` is checked.
//!
//! Refused outright: `alg=none` (not an algorithm `jsonwebtoken` knows), an algorithm outside
//! the key's allow-list (so an HS256 token signed with an RSA public key never meets the RSA
//! key as an HMAC secret), a `kid` naming no configured key, and any header that carries or
//! points at key material (`jku`, `x5u`, `jwk`, `x5c`) or demands extensions (`crit`). The
//! services never fetch a URL named by a token.

use std::str::FromStr;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, decode, decode_header};
use serde::Deserialize;

use super::{Principal, Role, is_well_formed_tenant_id};
use crate::config::{AuthConfig, JwtKeyConfig, KeyMaterial};
use super::AuthError;

/// One configured verification key.
struct VerifierKey {
    id: String,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Verifies bearer JWTs against the configured keys.
pub struct JwtVerifier {
    keys: Vec<VerifierKey>,
    issuer: String,
    audience: String,
    leeway_secs: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<(&str, &[Algorithm])> = self.keys.iter().map(|k| (k.id.as_str(), k.algorithms.as_slice())).collect();
        f.debug_struct("JwtVerifier")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The claims the services read; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    /// Optional here so that a missing `sub` is reported as such by the required-claims check.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl JwtVerifier {
    /// Loads every configured key, refusing keys whose algorithms mix families or do not fit
    /// the key material.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        for key in &config.keys {
            match load_key(key) {
                Ok(k) => keys.push(k),
                Err(problem) => problems.push(format!("auth.keys[{}]: {problem}", key.id)),
            }
        }
        if let Some(path) = &config.jwks_file {
            match load_jwks(path) {
                Ok(loaded) => keys.extend(loaded),
                Err(more) => problems.extend(more),
            }
        }
        if !problems.is_empty() {
            return Err(AuthError::Config(problems));
        }
        Ok(Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: config.leeway_secs,
        })
    }

    /// The caller a token speaks for, or 401. The caller learns only what it can act on
    /// (a malformed token, an expired or not yet valid one, a missing claim, a refused
    /// header); why a token failed against the configuration (unknown `kid`, an algorithm
    /// not allowed, wrong issuer or audience, a bad signature) is logged, in the request's
    /// span, and answered as "invalid token".
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.check(token).map_err(|refusal| {
            tracing::info!(reason = %refusal.logged, "bearer token refused");
            AuthError::Unauthenticated(refusal.public)
        })
    }

    fn check(&self, token: &str) -> Result<Principal, Refusal> {
        let header = decode_header(token).map_err(|e| Refusal::new(MALFORMED, format!("malformed token header: {e}")))?;
        refuse_header_tricks(&header)?;
        let candidates: Vec<&VerifierKey> = self
            .keys
            .iter()
            .filter(|k| header.kid.as_deref().is_none_or(|kid| kid == k.id))
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::invalid(format!("token names an unknown key id {:?}", header.kid.as_deref().unwrap_or_default())));
        }
        let allowed: Vec<&VerifierKey> = candidates.into_iter().filter(|k| k.algorithms.contains(&header.alg)).collect();
        if allowed.is_empty() {
            return Err(Refusal::invalid(format!("algorithm {:?} is not allowed", header.alg)));
        }
        let validation = self.validation(header.alg);
        let mut last_error = None;
        for key in allowed {
            match decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return principal(data.claims),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.map_or_else(|| Refusal::invalid("token did not verify".into()), |e| describe(&e)))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        validation
    }
}

fn load_key(config: &JwtKeyConfig) -> Result<VerifierKey, String> {
    let algorithms = config
        .algorithms
        .iter()
        .map(|name| Algorithm::from_str(name).map_err(|_| format!("unknown algorithm {name:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = algorithms.first() else {
        return Err("no algorithms allowed".into());
    };
    let family = first.family();
    if algorithms.iter().any(|a| a.family() != family) {
        return Err("algorithms of one key must belong to one family".into());
    }
    use jsonwebtoken::AlgorithmFamily as F;
    let key = match (&config.material, family) {
        (KeyMaterial::Secret(secret), F::Hmac) => {
            if secret.expose().len() < 32 {
                return Err("an HMAC secret must be at least 32 bytes".into());
            }
            DecodingKey::from_secret(secret.expose().as_bytes())
        }
        (KeyMaterial::PublicKeyPem(pem), F::Rsa) => DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?,
        (KeyMaterial::PublicKeyPem(pem), F::Ec) => DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?,
        (KeyMaterial::PublicKeyPem(pem), F::Ed) => DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| e.to_string())?,
        (KeyMaterial::Secret(_), _) => return Err("a shared secret only verifies HS* algorithms".into()),
        (KeyMaterial::PublicKeyPem(_), F::Hmac) => return Err("a public key cannot verify HS* algorithms".into()),
    };
    Ok(VerifierKey { id: config.id.clone(), key, algorithms })
}

/// Loads every key of a JWKS file; each needs `kid` and `alg`, and symmetric keys are refused
/// (a JWKS file holds public keys; shared secrets belong in `auth.keys`).
fn load_jwks(path: &str) -> Result<Vec<VerifierKey>, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("auth.jwks_file {path}: {e}")])?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| vec![format!("auth.jwks_file {path}: not a JWKS document: {e}")])?;
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        match load_jwk(jwk) {
            Ok(key) => keys.push(key),
            Err(problem) => problems.push(format!("auth.jwks_file {path}: keys[{i}]: {problem}")),
        }
    }
    if problems.is_empty() { Ok(keys) } else { Err(problems) }
}

fn load_jwk(jwk: &Jwk) -> Result<VerifierKey, String> {
    let id = jwk.common.key_id.clone().ok_or("has no kid")?;
    let alg = jwk.common.key_algorithm.ok_or("has no alg")?;
    let alg = Algorithm::from_str(&alg.to_string()).map_err(|_| format!("alg {alg} cannot sign JWTs"))?;
    if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return Err("symmetric keys are not accepted from a JWKS file".into());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    if key.family() != alg.family() {
        return Err(format!("key type does not fit alg {alg:?}"));
    }
    Ok(VerifierKey { id, key, algorithms: vec![alg] })
}

fn refuse_header_tricks(header: &Header) -> Result<(), Refusal> {
    let tricks = [
        ("jku", header.jku.is_some()),
        ("x5u", header.x5u.is_some()),
        ("jwk", header.jwk.is_some()),
        ("x5c", header.x5c.is_some()),
        ("crit", header.crit.is_some()),
    ];
    match tricks.iter().find(|(_, present)| *present) {
        Some((name, _)) => {
            let reason = format!("token header `{name}` is not accepted");
            Err(Refusal { public: reason.clone(), logged: reason })
        }
        None => Ok(()),
    }
}

fn principal(claims: Claims) -> Result<Principal, Refusal> {
    let roles: Vec<Role> = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
    match &claims.tenant_id {
        Some(tenant) if !is_well_formed_tenant_id(tenant) => {
            return Err(Refusal::new(BAD_TENANT_CLAIM, BAD_TENANT_CLAIM.to_owned()));
        }
        None if !roles.contains(&Role::PlatformAdmin) => {
            return Err(Refusal::new(MISSING_TENANT_CLAIM, MISSING_TENANT_CLAIM.to_owned()));
        }
        _ => {}
    }
    let subject = claims.sub.unwrap_or_default();
    Ok(Principal { subject, tenant_id: claims.tenant_id, roles })
}

/// A refused token: what the caller is told, and what is logged.
struct Refusal {
    /// Says nothing about the configuration (keys, algorithms, issuer, audience).
    public: String,
    logged: String,
}

impl Refusal {
    fn new(public: &str, logged: String) -> Self {
        Self { public: public.to_owned(), logged }
    }

    /// A failure against the configuration: the caller learns only that the token is invalid.
    fn invalid(logged: String) -> Self {
        Self::new(INVALID, logged)
    }
}

const MALFORMED: &str = "malformed token header";
const INVALID: &str = "invalid token";
const BAD_TENANT_CLAIM: &str = "tenant_id claim is not a valid tenant id";
const MISSING_TENANT_CLAIM: &str = "tenant_id claim is required except on platform_admin tokens";

fn describe(err: &jsonwebtoken::errors::Error) -> Refusal {
    use jsonwebtoken::errors::ErrorKind as K;
    match err.kind() {
        K::ExpiredSignature => Refusal::new("token expired", "token expired".into()),
        K::ImmatureSignature => Refusal::new("token not valid yet (nbf)", "token not valid yet (nbf)".into()),
        // The required claims are the same everywhere (RFC 8725 profile), not configuration.
        K::MissingRequiredClaim(claim) => {
            let reason = format!("claim `{claim}` is required");
            Refusal::new(&reason, reason.clone())
        }
        K::InvalidIssuer => Refusal::invalid("wrong issuer".into()),
        K::InvalidAudience => Refusal::invalid("wrong audience".into()),
        K::InvalidSignature => Refusal::invalid("signature does not verify".into()),
        K::InvalidAlgorithm => Refusal::invalid("algorithm not allowed for this key".into()),
        other => Refusal::invalid(format!("token is invalid: {other:?}")),
    }
}
