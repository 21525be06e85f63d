//! [`RegistryError`], the one error type of the crate.

/// One invalid field of a request, for per-field problem+json `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldProblem {
    /// JSON name of the field (`id`, `name`, `retention_days`, `roles`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

/// Errors of registry reads and changes. HTTP mapping: `Invalid` 422, `UnknownTenant`,
/// `UnknownApiKey` and `UnknownSigningKey` 404, `TenantExists` and `SigningKeyExists` 409, `Unavailable` 503, `Config` 500 at startup.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// No such tenant.
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    /// The tenant has no key with this id (keys of other tenants are not revealed).
    #[error("unknown api key {0}")]
    UnknownApiKey(String),
    /// The tenant has no signing key with this id.
    #[error("unknown signing key {0}")]
    UnknownSigningKey(String),
    /// The tenant already has a signing key with this id.
    #[error("signing key {0} already exists")]
    SigningKeyExists(String),
    /// A tenant with this id is already registered.
    #[error("tenant {0} already exists")]
    TenantExists(String),
    /// The request is invalid; nothing was written.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldProblem>),
    /// Transient: the registry's log cannot be reached or did not acknowledge in time. The
    /// change may or may not have been written; retry.
    #[error("tenant registry unavailable: {0}")]
    Unavailable(String),
    /// Invalid configuration (bad uri, missing topic).
    #[error("tenant registry misconfigured: {0}")]
    Config(String),
}

fn describe(problems: &[FieldProblem]) -> String {
    problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ")
}

impl From<auditlog_seams::LogError> for RegistryError {
    fn from(err: auditlog_seams::LogError) -> Self {
        match err {
            auditlog_seams::LogError::Config(m) => Self::Config(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}
