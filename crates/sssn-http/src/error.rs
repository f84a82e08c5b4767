//! HTTP errors: the one place where an [`ErrorKind`] becomes a status code, and back.
//!
//! Every error response is JSON `{"detail": "<text>", "kind": "<error kind>"}`. `detail`
//! is what v1 clients read; `kind` lets the remote client give back exactly the
//! [`ErrorKind`] the server-side operation failed with, so a remote channel fails the same
//! way a local one does.
//!
//! | error kind | status |
//! |---|---|
//! | `unauthenticated` (missing, malformed, expired, forged or revoked token) | 401 |
//! | `permission_denied` (valid token without the right; direct write in another's name) | 403 |
//! | `not_found`, `not_connected` (unknown channel or route) | 404 |
//! | `invalid_message`, `invalid_argument`, `unsupported_operation` (bad JSON, wrong shape, operation the kind lacks) | 400 |
//! | `unsupported_operation` for an HTTP method a route lacks | 405 |
//! | `stale_claim` (ack/nack/extend/reject of a claim that expired, was reclaimed or is not the caller's) | 409 |
//! | body larger than the server's limit | 413 |
//! | `backpressure` | 429 |
//! | `shutting_down` (channel not started, draining or stopped; server shutting down) | 503 |
//! | `timeout` | 504 |
//! | `remote` | 502 |
//! | `store`, `internal` | 500 |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sssn::{Error, ErrorKind};

/// The status code an [`ErrorKind`] is answered with (the table in the module docs).
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::NotConnected | ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::UnsupportedOperation
        | ErrorKind::InvalidMessage
        | ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::StaleClaim => StatusCode::CONFLICT,
        ErrorKind::Backpressure => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Remote => StatusCode::BAD_GATEWAY,
        // `ErrorKind` is non-exhaustive: anything new is a server-side failure until mapped.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error kind a status code stands for when the body does not name one (a proxy's
/// error page, a v1 server): the inverse of [`status_for`] where it is unambiguous.
pub fn kind_for_status(status: StatusCode) -> ErrorKind {
    match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::CONFLICT => ErrorKind::StaleClaim,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => {
            ErrorKind::InvalidArgument
        }
        StatusCode::METHOD_NOT_ALLOWED => ErrorKind::UnsupportedOperation,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::Backpressure,
        StatusCode::SERVICE_UNAVAILABLE => ErrorKind::ShuttingDown,
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => ErrorKind::Timeout,
        s if s == StatusCode::BAD_REQUEST => ErrorKind::InvalidArgument,
        s if s.is_server_error() => ErrorKind::Remote,
        _ => ErrorKind::Remote,
    }
}

/// Parses the `kind` field of an error body (the names of [`ErrorKind::as_str`]).
pub fn parse_kind(name: &str) -> Option<ErrorKind> {
    const ALL: [ErrorKind; 14] = [
        ErrorKind::NotConnected,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::UnsupportedOperation,
        ErrorKind::Backpressure,
        ErrorKind::ShuttingDown,
        ErrorKind::StaleClaim,
        ErrorKind::InvalidMessage,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Timeout,
        ErrorKind::Store,
        ErrorKind::Remote,
        ErrorKind::Internal,
    ];
    ALL.into_iter().find(|k| k.as_str() == name)
}

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable text (v1 clients read this).
    pub detail: String,
    /// The [`ErrorKind`] name (absent in v1 responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An error answered over HTTP: status, error kind and detail text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    kind: ErrorKind,
    detail: String,
}

impl ApiError {
    /// An error of `kind` with the status [`status_for`] gives it.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            status: status_for(kind),
            kind,
            detail: detail.into(),
        }
    }

    /// 401 for a request without an `Authorization: Bearer …` header (v1's exact text).
    pub fn missing_token() -> Self {
        Self::new(ErrorKind::Unauthenticated, "Missing Bearer token.")
    }

    /// 404 for a path no route serves (FastAPI's text, as v1 answered).
    pub fn route_not_found() -> Self {
        Self::new(ErrorKind::NotFound, "Not Found")
    }

    /// 404 for a channel this server does not serve.
    pub fn unknown_channel(id: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("Channel '{id}' is not served here."),
        )
    }

    /// 405 for a method a route does not serve.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            kind: ErrorKind::UnsupportedOperation,
            detail: "Method Not Allowed".into(),
        }
    }

    /// 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: ErrorKind::InvalidArgument,
            detail: format!("Request body larger than {limit} bytes."),
        }
    }

    /// 400 for a malformed request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, detail)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            detail: self.detail.clone(),
            kind: Some(self.kind.as_str().to_owned()),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        if matches!(e.kind(), ErrorKind::Store | ErrorKind::Internal) {
            tracing::error!(error = %e, "request failed on the server side");
        }
        // v1's wording over HTTP: the caller is the token's holder.
        if let Some((op, channel)) = e.denied_operation() {
            return Self::new(
                ErrorKind::PermissionDenied,
                format!("Token does not permit '{op}' on channel '{channel}'."),
            );
        }
        Self::new(e.kind(), e.message())
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::new(e.kind, e.detail)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for name in [
            "not_connected",
            "unauthenticated",
            "permission_denied",
            "unsupported_operation",
            "backpressure",
            "shutting_down",
            "stale_claim",
            "invalid_message",
            "invalid_argument",
            "not_found",
            "timeout",
            "store",
            "remote",
            "internal",
        ] {
            let kind = parse_kind(name).unwrap();
            assert_eq!(kind.as_str(), name);
        }
        assert_eq!(parse_kind("nope"), None);
    }

    #[test]
    fn status_mapping_is_invertible_where_unambiguous() {
        for kind in [
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::StaleClaim,
            ErrorKind::Backpressure,
            ErrorKind::ShuttingDown,
            ErrorKind::Timeout,
        ] {
            assert_eq!(kind_for_status(status_for(kind)), kind);
        }
        assert_eq!(
            status_for(ErrorKind::Store),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status_for(ErrorKind::UnsupportedOperation),
            StatusCode::BAD_REQUEST
        );
    }
}
