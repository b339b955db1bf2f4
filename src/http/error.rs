//! One error type for every handler; it becomes a JSON problem response `{"code", "description"}`.
//! Internal faults are logged and reported without details.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// Extra members of the body (e.g. the list of bad features).
    pub details: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header (503 when busy); small, to keep the error small.
    pub retry_after: Option<std::num::NonZeroU16>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            description: description.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 for a query parameter: names the parameter and the value.
    pub fn parameter(name: &str, value: &str, why: impl std::fmt::Display) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            format!("parameter '{name}' = '{value}': {why}"),
        );
        e.details = Some(json!({"parameter": name, "value": value}));
        e
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", what)
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        let s = u16::try_from(seconds.max(1)).unwrap_or(u16::MAX);
        self.retry_after = std::num::NonZeroU16::new(s);
        self
    }

    /// 413 for a request body over `max` bytes (`--max-body-bytes`), naming the limit.
    pub fn body_too_large(max: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!(
                "the request body is larger than the server accepts: at most {max} bytes \
                 (--max-body-bytes); nothing was changed"
            ),
        )
        .with_details(json!({"limit": "body-bytes", "max": max}))
    }

    /// A fault of ours: logged in full, reported as a plain 500.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "internal error; see the server log",
        )
    }
}

impl ApiError {
    /// The JSON problem: `code`, `description` and the details' members.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"code": self.code, "description": self.description});
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (&self.details, body.as_object_mut())
        {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.get().into());
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
