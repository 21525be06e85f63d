//! The crate's error type and its single HTTP mapping: RFC 9457 `application/problem+json`
//! with a stable `type` URI per kind of problem. Internal details are logged, never sent.
//!
//! | `type` (after [`PROBLEM_BASE`]) | status | when |
//! |---|---|---|
//! | `malformed-json` | 400 | body (or a JSON-array batch) is not JSON |
//! | `unauthenticated` | 401 + `WWW-Authenticate: Bearer` | credentials missing, malformed, expired, forged |
//! | `forbidden` | 403 | no `writer` role, or a tenant-less credential |
//! | `tenant-mismatch` | 403 | a body `tenant_id` differs from the credential's |
//! | `not-found` | 404 | unknown route |
//! | `method-not-allowed` | 405 | known route, other method |
//! | `body-too-large` | 413 | body over the route's limit (64 KiB event, 4 MiB batch) |
//! | `unsupported-media-type` | 415 | not `application/json` (batch: or `application/x-ndjson`) |
//! | `validation` | 422 + `errors: [{field, message}]` | invalid event, empty or over-1,000 batch (`batch`) |
//! | `conflict` | 409 + `errors: [{field: "id", message}]` | a producer `id` taken by an event with other content |
//! | `rate-limited` | 429 + `Retry-After` | past the tenant's events/s |
//! | `overloaded`, `timeout`, `unavailable` | 503 + `Retry-After` | in-flight cap, request budget, Kafka/registry down (a batch's answer also lists `accepted`, `rejected`, `unavailable` and `results`, so the items already durable are known) |
//! | `internal` | 500 | a bug or misconfiguration |

use auditlog_api_common::auth::AuthError;
use auditlog_api_common::problem::Problem;
use auditlog_schemas::FieldError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use auditlog_api_common::problem::{PROBLEM_BASE, PROBLEM_JSON};

/// Everything that can go wrong in the gateway, at startup or in a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The body is not JSON (or an NDJSON batch line is not).
    #[error("request body is not valid json: {0}")]
    MalformedJson(String),
    /// The `Content-Type` is not one the route accepts.
    #[error("unsupported content type {found:?}, expected {expected}")]
    UnsupportedMediaType {
        /// What the request said, if anything.
        found: Option<String>,
        /// What the route takes.
        expected: &'static str,
    },
    /// The body is larger than the route allows.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The route's limit in bytes.
        limit: usize,
    },
    /// The request (event or batch envelope) breaks the contract; every field is named.
    #[error("request is invalid")]
    Validation(Vec<FieldError>),
    /// The event's producer id is taken by an event with other content (this id).
    #[error("id {0:?} is already taken by an event with different content")]
    Conflict(String),
    /// The body names a tenant other than the credentials'.
    #[error("tenant_id in the body does not match the credentials")]
    TenantMismatch,
    /// Credentials are missing or do not verify.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// Credentials verified but do not allow this request.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The tenant is past its rate limit.
    #[error("rate limit exceeded")]
    RateLimited {
        /// Seconds until enough tokens are back.
        retry_after_secs: u64,
    },
    /// Too many requests in flight on this instance: shed, try again shortly.
    #[error("gateway is overloaded")]
    Overloaded,
    /// The request took longer than its time budget.
    #[error("request timed out")]
    Timeout,
    /// A backend (Kafka, schema registry) cannot take writes now.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists, but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
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

impl GatewayError {
    /// A validation problem with a single field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use GatewayError as E;
        match self {
            E::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            E::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            E::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large"),
            E::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Validation failed"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Event id conflict"),
            E::TenantMismatch => (StatusCode::FORBIDDEN, "tenant-mismatch", "Tenant mismatch"),
            E::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required"),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            E::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Rate limit exceeded"),
            E::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Gateway overloaded"),
            E::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout", "Request timed out"),
            E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Backend unavailable"),
            E::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            E::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            E::Config(_) | E::Io(_) | E::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
            }
        }
    }

    /// What the client is told; backend and internal details stay in the logs.
    fn public_detail(&self) -> String {
        use GatewayError as E;
        match self {
            E::Validation(errors) if errors.len() == 1 => format!("{}: {}", display_field(&errors[0].field), errors[0].message),
            E::Validation(errors) => format!("{} fields are invalid", errors.len()),
            E::Unavailable(_) => "the event log cannot take writes now; retry with the same event ids".into(),
            E::Config(_) | E::Io(_) | E::Internal(_) => "an internal error occurred".into(),
            other => other.to_string(),
        }
    }
}

fn display_field(field: &str) -> &str {
    if field.is_empty() { "(event)" } else { field }
}

impl From<AuthError> for GatewayError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthenticated(reason) => Self::Unauthenticated(reason),
            AuthError::Config(problems) => Self::Config(problems),
            AuthError::Internal(reason) => Self::Internal(reason),
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}

impl GatewayError {
    /// The problem document this error is answered with (logged when it is a 5xx).
    pub fn into_problem(self) -> Problem {
        let (status, slug, title) = self.parts();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut problem = Problem::new(status, slug, title, self.public_detail());
        match &self {
            GatewayError::Validation(errors) => problem.errors = Some(json!(errors)),
            GatewayError::Conflict(id) => problem.errors = Some(json!(crate::ingest::ItemOutcome::conflict_errors(id))),
            GatewayError::Unauthenticated(_) => problem.bearer_challenge = true,
            GatewayError::RateLimited { retry_after_secs } => problem.retry_after_secs = Some(*retry_after_secs),
            GatewayError::Overloaded | GatewayError::Timeout | GatewayError::Unavailable(_) => problem.retry_after_secs = Some(1),
            _ => {}
        }
        problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn internal_details_are_not_sent() {
        let response = GatewayError::Unavailable("broker 10.0.0.7:9092 refused".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let detail = GatewayError::Unavailable("broker 10.0.0.7:9092 refused".into()).public_detail();
        assert!(!detail.contains("10.0.0.7"), "{detail}");
    }

    #[tokio::test]
    async fn validation_problem_body_is_pinned() {
        use http_body_util::BodyExt;
        let response = GatewayError::field("actor.id", "is required").into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let bytes = response.into_body().collect().await.expect("body reads").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json body");
        assert_eq!(
            body,
            json!({
                "type": "https://auditlog.dev/problems/validation",
                "title": "Validation failed",
                "status": 422,
                "detail": "actor.id: is required",
                "errors": [{"field": "actor.id", "message": "is required"}],
            })
        );
    }

    #[test]
    fn unauthenticated_challenges_with_bearer() {
        let response = GatewayError::Unauthenticated("expired".into()).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().expect("ascii header");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
    }
}
