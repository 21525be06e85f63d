//! The crate's error type and its single HTTP mapping: RFC 9457 `application/problem+json`
//! with a stable `type` URI per kind of problem. Internal details are logged, never sent.
//!
//! | `type` (after `https://auditlog.dev/problems/`) | status | when |
//! |---|---|---|
//! | `invalid-parameter` | 400 + `errors: [{field, message}]` | bad query parameter: date, range, filter, format, cursor, limit, `q` |
//! | `malformed-json` | 400 | an admin body is not JSON |
//! | `unauthenticated` | 401 + `WWW-Authenticate: Bearer` | credentials missing, malformed, expired, forged |
//! | `forbidden` | 403 | the credential lacks the role, or names another tenant |
//! | `not-found` | 404 | unknown route, event, tenant or key (another tenant's look the same); + `errors` when a parameter names what is missing (a proof's `id`, a tile's `path`) |
//! | `ledger-not-configured` | 404 | a ledger route on a deployment without a ledger store |
//! | `method-not-allowed` | 405 | known route, other method |
//! | `conflict` | 409 (+ `errors` naming `key_id` for a signing key) | the tenant or the tenant's signing key id exists |
//! | `not-acceptable` | 406 | a live tail asked for neither WebSocket nor `text/event-stream` |
//! | `validation` | 422 + `errors` | an invalid admin body |
//! | `too-many-requests` | 429 + `Retry-After` | the tenant's concurrent exports or streams are at their cap |
//! | `rate-limited` | 429 + `Retry-After` | the tenant is past its read requests per second |
//! | `overloaded` | 503 + `Retry-After` | the API is serving its cap of requests at once |
//! | `unavailable` | 503 + `Retry-After` | a backend is down or slow (or too slow: past the time budget) |
//! | `internal` | 500 | a bug or misconfiguration |

use auditlog_api_common::auth::AuthError;
use auditlog_api_common::problem::Problem;
use auditlog_seams::ledger_store::LedgerStoreError;
use auditlog_seams::{IndexError, LogError, StoreError};
use auditlog_tenant_registry::RegistryError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// One invalid parameter or body field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The query parameter or JSON field, e.g. `from`, `cursor`, `retention_days`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Everything that can go wrong in the query API, at startup or in a request.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A query parameter is invalid; each one is named.
    #[error("invalid parameter")]
    InvalidParameter(Vec<FieldProblem>),
    /// An admin request body is not JSON.
    #[error("request body is not valid json: {0}")]
    MalformedJson(String),
    /// An admin request body is not declared `application/json`.
    #[error("request body must be application/json, not {0}")]
    UnsupportedMediaType(String),
    /// An admin request body breaks the contract; each field is named.
    #[error("request is invalid")]
    Validation(Vec<FieldProblem>),
    /// Credentials are missing or do not verify.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// Credentials verified but do not allow this request.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such route, event, tenant or key visible to the caller.
    #[error("not found")]
    NotFound,
    /// What a parameter names does not exist (for this tenant); the parameter is named.
    #[error("{field} {message}")]
    Missing {
        /// The parameter: `id`, `path`, `proofs`.
        field: &'static str,
        /// What is missing.
        message: String,
    },
    /// A ledger route on a deployment that builds no ledger.
    #[error("the ledger is not configured on this deployment")]
    LedgerNotConfigured,
    /// The route exists, but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The live tail was asked for without a WebSocket upgrade or `text/event-stream`.
    #[error("the live tail speaks WebSocket or text/event-stream (Accept)")]
    NotAcceptable,
    /// The resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// What a request field names exists already (for this tenant); the field is named.
    #[error("{field} {message}")]
    Exists {
        /// The body field: `key_id`.
        field: &'static str,
        /// What exists.
        message: String,
    },
    /// The tenant is at its cap of concurrent exports or streams.
    #[error("too many concurrent {0} for this tenant")]
    TooManyConcurrent(&'static str),
    /// The tenant is past its read request rate; retry after the duration.
    #[error("too many requests for this tenant; retry in {retry_after:?}")]
    RateLimited {
        /// When the tenant's bucket has a token again.
        retry_after: std::time::Duration,
    },
    /// The API serves its cap of requests at once.
    #[error("the query API is serving its maximum of requests at once")]
    Overloaded,
    /// A backend cannot serve now.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Startup configuration is invalid; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// Serving failed (listener, socket).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A bug or a misconfigured backend; details are logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// A problem with one query parameter.
    pub fn param(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidParameter(vec![FieldProblem { field: field.into(), message: message.into() }])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use QueryError as E;
        match self {
            E::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid-parameter", "Invalid parameter"),
            E::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            E::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type"),
            E::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Validation failed"),
            E::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required"),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            E::NotFound | E::Missing { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            E::LedgerNotConfigured => (StatusCode::NOT_FOUND, "ledger-not-configured", "Ledger not configured"),
            E::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            E::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, "not-acceptable", "Not acceptable"),
            E::Conflict(_) | E::Exists { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            E::TooManyConcurrent(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "Too many concurrent requests"),
            E::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            E::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
            E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Backend unavailable"),
            E::Config(_) | E::Io(_) | E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    fn public_detail(&self) -> String {
        use QueryError as E;
        match self {
            E::InvalidParameter(errors) | E::Validation(errors) => {
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            }
            E::Unavailable(_) => "a backend cannot serve this request now; retry shortly".into(),
            E::RateLimited { .. } => "this tenant is past its read request rate; retry after the Retry-After seconds".into(),
            E::Config(_) | E::Io(_) | E::Internal(_) => "an internal error occurred".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut problem = Problem::new(status, slug, title, self.public_detail());
        match &self {
            QueryError::InvalidParameter(errors) | QueryError::Validation(errors) => problem.errors = Some(json!(errors)),
            QueryError::Missing { field, message } | QueryError::Exists { field, message } => {
                problem.errors = Some(json!([FieldProblem { field: (*field).into(), message: message.clone() }]));
            }
            QueryError::Unauthenticated(_) => problem.bearer_challenge = true,
            QueryError::TooManyConcurrent(_) | QueryError::Unavailable(_) | QueryError::Overloaded => problem.retry_after_secs = Some(1),
            QueryError::RateLimited { retry_after } => problem.retry_after_secs = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            _ => {}
        }
        problem.into_response()
    }
}

impl From<AuthError> for QueryError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthenticated(reason) => Self::Unauthenticated(reason),
            AuthError::Config(problems) => Self::Config(problems),
            AuthError::Internal(reason) => Self::Internal(reason),
        }
    }
}

impl From<StoreError> for QueryError {
    fn from(err: StoreError) -> Self {
        match err {
            // Parameters are checked before the store sees them; the one thing from the
            // request it may still refuse is the (signed) cursor it wraps: a 400, never a 500.
            StoreError::Invalid(m) => {
                tracing::debug!(error = %m, "event store refused the request");
                Self::param("cursor", "does not continue this query")
            }
            StoreError::Corrupt(m) => Self::Internal(format!("event store: {m}")),
            StoreError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

impl From<LedgerStoreError> for QueryError {
    fn from(err: LedgerStoreError) -> Self {
        match err {
            LedgerStoreError::Unavailable(m) => Self::Unavailable(m),
            // Paths are parsed before the store sees them; what it may still refuse is a
            // tenant id it cannot key (no ledger can exist for it).
            LedgerStoreError::Invalid(m) => {
                tracing::debug!(error = %m, "ledger store refused the request");
                Self::NotFound
            }
            other => Self::Internal(format!("ledger store: {other}")),
        }
    }
}

impl From<IndexError> for QueryError {
    fn from(err: IndexError) -> Self {
        match err {
            // The only request text the index parses is `q`.
            IndexError::Invalid(m) => {
                tracing::debug!(error = %m, "search index refused the query");
                Self::param("q", "is not a valid search query")
            }
            IndexError::Unavailable(m) => Self::Unavailable(m),
            IndexError::Rejected { reason, .. } => Self::Internal(format!("search index: {reason}")),
        }
    }
}

impl From<LogError> for QueryError {
    fn from(err: LogError) -> Self {
        match err {
            LogError::Config(m) => Self::Internal(format!("event log: {m}")),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<RegistryError> for QueryError {
    fn from(err: RegistryError) -> Self {
        let fields = |problems: Vec<auditlog_tenant_registry::FieldProblem>| {
            problems.into_iter().map(|p| FieldProblem { field: p.field, message: p.message }).collect()
        };
        match err {
            RegistryError::UnknownTenant(_) | RegistryError::UnknownApiKey(_) => Self::NotFound,
            RegistryError::TenantExists(id) => Self::Conflict(format!("tenant {id} already exists")),
            RegistryError::UnknownSigningKey(id) => Self::Missing { field: "key_id", message: format!("names no signing key of this tenant ({id:?})") },
            RegistryError::SigningKeyExists(id) => Self::Exists { field: "key_id", message: format!("{id:?} is already a signing key of this tenant") },
            RegistryError::Invalid(problems) => Self::Validation(fields(problems)),
            RegistryError::Unavailable(m) => Self::Unavailable(m),
            RegistryError::Config(m) => Self::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn parameter_problems_name_the_parameter() {
        let response = QueryError::param("cursor", "is not valid for this tenant and query").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["type"], "https://auditlog.dev/problems/invalid-parameter");
        assert_eq!(body["errors"][0]["field"], "cursor");
    }

    #[test]
    fn backend_details_stay_in_the_logs() {
        let err = QueryError::from(StoreError::Unavailable("10.1.2.3:9042 refused".into()));
        assert!(!err.public_detail().contains("10.1.2.3"));
        assert_eq!(err.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_cursor_the_store_refuses_is_a_400_naming_it() {
        let err = QueryError::from(StoreError::Invalid("cursor belongs to another tenant or query".into()));
        assert!(matches!(&err, QueryError::InvalidParameter(p) if p[0].field == "cursor"), "{err:?}");
        assert_eq!(err.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
