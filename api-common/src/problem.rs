//! RFC 9457 `application/problem+json` bodies, shared by every service's error type: each
//! crate keeps one error enum and one `IntoResponse` that builds a [`Problem`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Base of every problem `type` URI; the path names the kind of problem and never changes.
pub const PROBLEM_BASE: &str = "https://auditlog.dev/problems/";

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem answer.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable slug appended to [`PROBLEM_BASE`].
    pub slug: &'static str,
    /// Short human summary of the kind of problem.
    pub title: &'static str,
    /// What went wrong with this request; never internal details.
    pub detail: String,
    /// Per-field problems (`[{field, message}]`), when any.
    pub errors: Option<serde_json::Value>,
    /// Seconds for `Retry-After`, when the client should come back.
    pub retry_after_secs: Option<u64>,
    /// Whether to challenge with `WWW-Authenticate: Bearer` (401).
    pub bearer_challenge: bool,
    /// Extension members (RFC 9457 §3.2) added to the body, e.g. a batch's per-item results.
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem without field errors or extra headers.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: None,
            retry_after_secs: None,
            bearer_challenge: false,
            extensions: serde_json::Map::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(errors) = self.errors {
            body["errors"] = errors;
        }
        for (name, value) in self.extensions {
            body[name] = value;
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.bearer_challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="auditlog", error="invalid_token""#));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
