//! Errors as RFC 9457 `application/problem+json`, each naming the field at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer: HTTP status, a short title, what went wrong, and the request field at
/// fault (a path such as `series[0].channels[1].values[7]`, or a header name).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What is wrong with this request.
    pub detail: String,
    /// The field (JSON path) or header at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, field: Option<String>, detail: String) -> Self {
        Self {
            kind: format!("https://loopcast.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            field,
            retry_after: None,
        }
    }

    /// The same problem with a field path starting `from` restarted at `to` (for a request
    /// whose one series sits at `series` rather than `series[0]`).
    pub(crate) fn moved(mut self, from: &str, to: &str) -> Self {
        if let Some(rest) = self.field.as_deref().and_then(|f| f.strip_prefix(from)) {
            self.field = Some(format!("{to}{rest}"));
        }
        self.detail = self.detail.replace(from, to);
        self
    }

    /// 422: the request parsed but a field's value is not acceptable.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", Some(field.into()), detail.into())
    }

    /// 400: the body is not JSON (syntax), with where parsing stopped.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-body", Some("body".into()), detail.into())
    }

    /// 413: the body is over the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            Some("body".into()),
            format!("the body is over the limit of {limit} bytes (limits.max_body_bytes)"),
        )
    }

    /// 415: a body in a media type this route does not take.
    pub fn unsupported_media(found: &str, accepted: &[&str]) -> Self {
        let found = if found.is_empty() { "nothing" } else { found };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            Some("Content-Type".into()),
            format!("expected `{}`, got `{found}`", accepted.join("` or `")),
        )
    }

    /// 401: a missing or wrong bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", Some("Authorization".into()), detail.into())
    }

    /// 413: an upload is over the configured limit.
    pub fn too_large_upload(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            Some("body".into()),
            format!("the upload is over the limit of {limit} bytes (jobs.max_upload_bytes)"),
        )
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", None, detail.into())
    }

    /// 404: a resource that `field` names (a file in the data directory) does not exist.
    pub fn missing(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", Some(field.into()), detail.into())
    }

    /// 409: the resource is in a state that does not allow the request.
    pub fn conflict(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", Some(field.into()), detail.into())
    }

    /// 503: the queue is full; retry after a second.
    pub fn overloaded(capacity: usize) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                None,
                format!("all {capacity} queue slots are taken (batching.queue_capacity); retry shortly"),
            )
        }
    }

    /// 503: the service is shutting down or its model worker has stopped.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None, detail.into())
        }
    }

    /// 504: the request's deadline passed before the model answered.
    pub fn deadline(timeout_ms: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline-exceeded",
            None,
            format!("no answer within the deadline of {timeout_ms} ms (limits.request_timeout_ms)"),
        )
    }

    /// 500: a fault of the service, not of the request.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, detail.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let body = serde_json::to_vec(&self).expect("a problem serialises");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot carry another
            // request: say so, or a client may reuse it and find it closed mid-request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
