//! HTTP rendering of domain errors: one body shape per protocol.
//!
//! Every error is a kind from the one table ([`slipway_core::ErrorCode::row`]:
//! status, wire code, `Retry-After`, `Connection: close`) and a message. MLflow
//! routes, the MLflow scoring protocol (`/api/v1/deployments/{name}/invocations`)
//! included, answer `{"error_code": "...", "message": "..."}`; V2 inference
//! routes answer `{"error": "..."}`. Runtime and protocol errors map into the
//! table here ([`runtime_error`], [`protocol_error`]). Internal errors are
//! logged by whoever builds them; the body never carries internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use slipway_core::{Error, ErrorCode};
use slipway_protocol::ProtocolError;
use slipway_runtime::RuntimeError;

/// Which wire shape an error body takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `{"error_code", "message"}`: MLflow's REST API and its scoring server.
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

/// Renders an error in the given protocol's shape, with the status and
/// headers the table gives its kind.
pub fn render(protocol: Protocol, err: &Error) -> Response {
    let row = err.code.row();
    let status = StatusCode::from_u16(row.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match protocol {
        Protocol::Mlflow => {
            serde_json::json!({"error_code": row.code, "message": err.message})
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
    with_row_headers(err.code, resp)
}

/// Adds the headers the table gives `code` (`Retry-After`, `Connection:
/// close`) to a response built elsewhere (an HTML page, say).
pub fn with_row_headers(code: ErrorCode, mut resp: Response) -> Response {
    let row = code.row();
    let headers = resp.headers_mut();
    if let Some(secs) = row.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if row.close_connection {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The kind of a runtime error: bad input 400, a full queue 429, a stopped
/// worker 503, the model or runtime failing 500.
pub fn runtime_code(e: &RuntimeError) -> ErrorCode {
    match e {
        RuntimeError::Validation(_)
        | RuntimeError::Unsupported(_)
        | RuntimeError::InvalidInput(_) => ErrorCode::InvalidInput,
        RuntimeError::QueueFull { .. } => ErrorCode::RequestLimitExceeded,
        RuntimeError::WorkerStopped(_) => ErrorCode::TemporarilyUnavailable,
        RuntimeError::LibraryNotFound { .. }
        | RuntimeError::LibraryLoad { .. }
        | RuntimeError::ModelLoad(_)
        | RuntimeError::Inference(_) => ErrorCode::InternalError,
    }
}

/// A runtime error of `deployment` as a domain error: bad input and
/// overload are explained; server-side faults are logged and not detailed.
pub fn runtime_error(deployment: &str, e: &RuntimeError) -> Error {
    let code = runtime_code(e);
    if code == ErrorCode::InternalError {
        tracing::error!(deployment, error = %e, "inference failed");
        return Error::new(
            code,
            format!("inference failed for '{deployment}'; see server logs"),
        );
    }
    Error::new(code, e.to_string())
}

/// A protocol (decoding or encoding) error as a domain error: an
/// unsupported content type 415, anything else bad input (400).
pub fn protocol_error(e: &ProtocolError) -> Error {
    let code = match e {
        ProtocolError::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
        _ => ErrorCode::InvalidInput,
    };
    Error::new(code, e.to_string())
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
        if let slipway_artifacts::ArtifactError::BodyAborted(src) = &e {
            if let Some(stalled) = src.downcast_ref::<crate::routes::artifacts::UploadStalled>() {
                return Self(Error::new(
                    ErrorCode::RequestTimeout,
                    format!("Artifact upload aborted: {stalled}; nothing was stored"),
                ));
            }
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn body(resp: Response) -> (u16, axum::http::HeaderMap, serde_json::Value) {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes =
            futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    /// Each protocol renders every kind from the one table: the same status
    /// and headers, its own body.
    #[test]
    fn every_kind_renders_from_the_table_in_each_protocol() {
        for kind in ErrorCode::ALL {
            let row = kind.row();
            let err = Error::new(kind, "what was wrong");
            let (status, headers, mlflow) = body(render(Protocol::Mlflow, &err));
            assert_eq!(status, row.status, "{kind:?}");
            assert_eq!(
                mlflow,
                serde_json::json!({"error_code": row.code, "message": "what was wrong"}),
                "{kind:?}"
            );
            assert_eq!(
                headers.get(header::RETRY_AFTER).map(|v| v
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()),
                row.retry_after_secs,
                "{kind:?}"
            );
            assert_eq!(
                headers.get(header::CONNECTION).is_some(),
                row.close_connection,
                "{kind:?}"
            );
            let (v2_status, v2_headers, v2) = body(render(Protocol::V2, &err));
            assert_eq!(v2_status, row.status, "{kind:?}");
            assert_eq!(
                v2,
                serde_json::json!({"error": "what was wrong"}),
                "{kind:?}"
            );
            assert_eq!(
                v2_headers.get(header::RETRY_AFTER),
                headers.get(header::RETRY_AFTER)
            );
        }
    }

    /// Runtime and protocol errors land on the kinds whose statuses their
    /// crates document; server-side faults never leak their details.
    #[test]
    fn runtime_and_protocol_errors_map_into_the_table() {
        let runtime = [
            (
                RuntimeError::Validation(slipway_runtime::ValidationError::DuplicateInput {
                    name: "x".into(),
                }),
                ErrorCode::InvalidInput,
            ),
            (
                RuntimeError::Unsupported("u".into()),
                ErrorCode::InvalidInput,
            ),
            (
                RuntimeError::InvalidInput("i".into()),
                ErrorCode::InvalidInput,
            ),
            (
                RuntimeError::QueueFull {
                    model: "m".into(),
                    capacity: 4,
                    retry_after_secs: 1,
                },
                ErrorCode::RequestLimitExceeded,
            ),
            (
                RuntimeError::WorkerStopped("m".into()),
                ErrorCode::TemporarilyUnavailable,
            ),
            (
                RuntimeError::LibraryNotFound { searched: vec![] },
                ErrorCode::InternalError,
            ),
            (
                RuntimeError::LibraryLoad {
                    path: "p".into(),
                    message: "m".into(),
                },
                ErrorCode::InternalError,
            ),
            (
                RuntimeError::ModelLoad("secret path".into()),
                ErrorCode::InternalError,
            ),
            (
                RuntimeError::Inference("secret path".into()),
                ErrorCode::InternalError,
            ),
        ];
        for (e, kind) in runtime {
            assert_eq!(runtime_code(&e), kind, "{e:?}");
            assert_eq!(kind.http_status(), e.http_status(), "{e:?}");
            if let Some(secs) = e.retry_after_secs() {
                assert_eq!(kind.row().retry_after_secs, Some(secs), "{e:?}");
            }
            let err = runtime_error("dep", &e);
            assert_eq!(err.code, kind);
            if kind == ErrorCode::InternalError {
                assert!(!err.message.contains("secret"), "{}", err.message);
                assert!(err.message.contains("'dep'"), "{}", err.message);
            } else {
                assert_eq!(err.message, e.to_string());
            }
        }
        let media = ProtocolError::UnsupportedMediaType {
            content_type: "text/xml".into(),
        };
        let field = ProtocolError::Missing {
            field: "inputs".into(),
        };
        for (e, kind) in [
            (media, ErrorCode::UnsupportedMediaType),
            (field, ErrorCode::InvalidInput),
        ] {
            let err = protocol_error(&e);
            assert_eq!(err.code, kind);
            assert_eq!(kind.http_status(), e.http_status(), "{e:?}");
            assert_eq!(err.message, e.to_string());
        }
    }
}
