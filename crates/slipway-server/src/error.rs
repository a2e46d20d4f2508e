//! HTTP rendering of domain errors: one body shape per protocol.
//!
//! MLflow routes answer `{"error_code": "...", "message": "..."}`; V2
//! inference routes answer `{"error": "..."}`. Status codes come from the one
//! table in [`slipway_core::ErrorCode`]. Internal errors are logged by whoever
//! builds them; the body never carries internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use slipway_core::{Error, ErrorCode};

/// Which wire shape an error body takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `{"error_code", "message"}`.
    Mlflow,
    /// `{"error"}`.
    V2,
}

impl Protocol {
    /// The protocol a path belongs to.
    pub fn for_path(path: &str) -> Self {
        if path.starts_with("/v2") {
            Self::V2
        } else {
            Self::Mlflow
        }
    }
}

/// Renders an error in the given protocol's shape.
pub fn render(protocol: Protocol, err: &Error) -> Response {
    let status =
        StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match protocol {
        Protocol::Mlflow => {
            serde_json::json!({"error_code": err.code.as_str(), "message": err.message})
        }
        Protocol::V2 => serde_json::json!({"error": err.message}),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if err.code == ErrorCode::Unauthenticated {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"slipway\", Basic realm=\"slipway\""),
        );
    }
    with_retry_after(resp)
}

/// Adds `Retry-After: 1` to 429 and 503 responses (queue full, not ready),
/// whatever protocol shaped the body.
pub fn with_retry_after(mut resp: Response) -> Response {
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// An error on an MLflow route.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        render(Protocol::Mlflow, &self.0)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<slipway_artifacts::ArtifactError> for ApiError {
    fn from(e: slipway_artifacts::ArtifactError) -> Self {
        let code = e.code();
        if code == ErrorCode::InternalError {
            tracing::error!(error = %e, "artifact store failure");
            return Self(Error::internal("artifact store failure; see server logs"));
        }
        Self(Error::new(code, e.to_string()))
    }
}

/// Result type of MLflow route handlers.
pub type ApiResult<T> = Result<T, ApiError>;
