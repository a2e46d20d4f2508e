//! The one table of error kinds: each maps to an HTTP status and a wire code.
//!
//! Library crates keep their own `thiserror` enums and convert into [`Error`];
//! the server renders it as MLflow's `{"error_code", "message"}` or as V2's
//! `{"error"}` depending on the route.

use std::fmt;

/// Error kinds, named after MLflow's `ErrorCode` values where one exists.
///
/// [`ErrorCode::row`] is the one table that gives each kind its HTTP status,
/// its wire code and the headers its status implies; every protocol renders
/// its body from it (MLflow and MLflow scoring `{"error_code", "message"}`,
/// V2 `{"error"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request parameter is missing, malformed or out of range (400).
    InvalidParameterValue,
    /// The request body could not be parsed at all (400).
    MalformedRequest,
    /// An inference request that does not fit the model's contract or
    /// the inference protocol: wrong shapes, types, names, a batch above
    /// the limit, an undecodable body (400, `BAD_REQUEST` as MLflow's
    /// scoring server answers).
    InvalidInput,
    /// The scoring endpoint does not accept the body's content type (415,
    /// `BAD_REQUEST` as MLflow's scoring server answers).
    UnsupportedMediaType,
    /// The named resource does not exist (404).
    ResourceDoesNotExist,
    /// The resource already exists (400, as MLflow answers).
    ResourceAlreadyExists,
    /// The resource exists but is in a state that forbids the operation (400).
    InvalidState,
    /// No route matches the path (404).
    EndpointNotFound,
    /// The method is not allowed on this route (405).
    MethodNotAllowed,
    /// No credentials, or unknown credentials (401).
    Unauthenticated,
    /// Valid credentials with too weak a scope (403).
    PermissionDenied,
    /// The client took too long to send the request body (408; the
    /// connection is closed).
    RequestTimeout,
    /// The request conflicts with the resource's current state, e.g. a
    /// second active rollout (409).
    Conflict,
    /// The request body exceeds the configured limit (413).
    PayloadTooLarge,
    /// A queue or rate limit is full, e.g. a model's request queue; retry
    /// later (429 with `Retry-After`).
    RequestLimitExceeded,
    /// The service, a dependency of it, or the model asked for is not
    /// ready (503 with `Retry-After`).
    TemporarilyUnavailable,
    /// A server-side fault, the model failing included; details are
    /// logged, not returned (500).
    InternalError,
}

/// One row of the error table: what a kind looks like on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRow {
    /// HTTP status.
    pub status: u16,
    /// Wire code (`error_code` of MLflow-shaped bodies).
    pub code: &'static str,
    /// `Retry-After` seconds sent with the answer, if any.
    pub retry_after_secs: Option<u64>,
    /// Whether the answer closes the connection (the rest of a slow body
    /// is not awaited).
    pub close_connection: bool,
}

const fn row(status: u16, code: &'static str) -> ErrorRow {
    ErrorRow {
        status,
        code,
        retry_after_secs: None,
        close_connection: false,
    }
}

impl ErrorCode {
    /// Every kind, in table order.
    pub const ALL: [ErrorCode; 17] = [
        Self::InvalidParameterValue,
        Self::MalformedRequest,
        Self::InvalidInput,
        Self::UnsupportedMediaType,
        Self::ResourceDoesNotExist,
        Self::ResourceAlreadyExists,
        Self::InvalidState,
        Self::EndpointNotFound,
        Self::MethodNotAllowed,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::RequestTimeout,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::RequestLimitExceeded,
        Self::TemporarilyUnavailable,
        Self::InternalError,
    ];

    /// The table: status, wire code and implied headers of each kind.
    pub const fn row(self) -> ErrorRow {
        match self {
            Self::InvalidParameterValue => row(400, "INVALID_PARAMETER_VALUE"),
            Self::MalformedRequest => row(400, "MALFORMED_REQUEST"),
            Self::InvalidInput => row(400, "BAD_REQUEST"),
            Self::UnsupportedMediaType => row(415, "BAD_REQUEST"),
            Self::ResourceDoesNotExist => row(404, "RESOURCE_DOES_NOT_EXIST"),
            Self::ResourceAlreadyExists => row(400, "RESOURCE_ALREADY_EXISTS"),
            Self::InvalidState => row(400, "INVALID_STATE"),
            Self::EndpointNotFound => row(404, "ENDPOINT_NOT_FOUND"),
            Self::MethodNotAllowed => row(405, "BAD_REQUEST"),
            Self::Unauthenticated => row(401, "UNAUTHENTICATED"),
            Self::PermissionDenied => row(403, "PERMISSION_DENIED"),
            Self::RequestTimeout => ErrorRow {
                close_connection: true,
                ..row(408, "REQUEST_TIMEOUT")
            },
            Self::Conflict => row(409, "RESOURCE_CONFLICT"),
            Self::PayloadTooLarge => row(413, "REQUEST_LIMIT_EXCEEDED"),
            Self::RequestLimitExceeded => ErrorRow {
                retry_after_secs: Some(1),
                ..row(429, "REQUEST_LIMIT_EXCEEDED")
            },
            Self::TemporarilyUnavailable => ErrorRow {
                retry_after_secs: Some(1),
                ..row(503, "TEMPORARILY_UNAVAILABLE")
            },
            Self::InternalError => row(500, "INTERNAL_ERROR"),
        }
    }

    /// HTTP status for this kind.
    pub fn http_status(self) -> u16 {
        self.row().status
    }

    /// Wire code, as MLflow's clients expect it in `error_code`.
    pub fn as_str(self) -> &'static str {
        self.row().code
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain error: a kind from the table and a message safe to show a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The kind, which decides status and wire code.
    pub code: ErrorCode,
    /// Human-readable text naming what was wrong. Never contains secrets or internals.
    pub message: String,
}

impl Error {
    /// Builds an error of any kind.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    /// `INVALID_PARAMETER_VALUE` (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    /// `RESOURCE_DOES_NOT_EXIST` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }
    /// `RESOURCE_ALREADY_EXISTS` (400).
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }
    /// `INVALID_STATE` (400).
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }
    /// `INTERNAL_ERROR` (500). Log the cause before building this.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}

/// Result alias over the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as documented: a change here changes what clients see.
    #[test]
    fn every_kind_has_its_status_code_and_headers() {
        let expected: [(ErrorCode, u16, &str, Option<u64>, bool); 17] = [
            (
                ErrorCode::InvalidParameterValue,
                400,
                "INVALID_PARAMETER_VALUE",
                None,
                false,
            ),
            (
                ErrorCode::MalformedRequest,
                400,
                "MALFORMED_REQUEST",
                None,
                false,
            ),
            (ErrorCode::InvalidInput, 400, "BAD_REQUEST", None, false),
            (
                ErrorCode::UnsupportedMediaType,
                415,
                "BAD_REQUEST",
                None,
                false,
            ),
            (
                ErrorCode::ResourceDoesNotExist,
                404,
                "RESOURCE_DOES_NOT_EXIST",
                None,
                false,
            ),
            (
                ErrorCode::ResourceAlreadyExists,
                400,
                "RESOURCE_ALREADY_EXISTS",
                None,
                false,
            ),
            (ErrorCode::InvalidState, 400, "INVALID_STATE", None, false),
            (
                ErrorCode::EndpointNotFound,
                404,
                "ENDPOINT_NOT_FOUND",
                None,
                false,
            ),
            (ErrorCode::MethodNotAllowed, 405, "BAD_REQUEST", None, false),
            (
                ErrorCode::Unauthenticated,
                401,
                "UNAUTHENTICATED",
                None,
                false,
            ),
            (
                ErrorCode::PermissionDenied,
                403,
                "PERMISSION_DENIED",
                None,
                false,
            ),
            (
                ErrorCode::RequestTimeout,
                408,
                "REQUEST_TIMEOUT",
                None,
                true,
            ),
            (ErrorCode::Conflict, 409, "RESOURCE_CONFLICT", None, false),
            (
                ErrorCode::PayloadTooLarge,
                413,
                "REQUEST_LIMIT_EXCEEDED",
                None,
                false,
            ),
            (
                ErrorCode::RequestLimitExceeded,
                429,
                "REQUEST_LIMIT_EXCEEDED",
                Some(1),
                false,
            ),
            (
                ErrorCode::TemporarilyUnavailable,
                503,
                "TEMPORARILY_UNAVAILABLE",
                Some(1),
                false,
            ),
            (ErrorCode::InternalError, 500, "INTERNAL_ERROR", None, false),
        ];
        assert_eq!(
            expected.map(|e| e.0),
            ErrorCode::ALL,
            "ALL lists every kind once, in table order"
        );
        for (kind, status, code, retry, close) in expected {
            let row = kind.row();
            assert_eq!(
                (
                    row.status,
                    row.code,
                    row.retry_after_secs,
                    row.close_connection
                ),
                (status, code, retry, close),
                "{kind:?}"
            );
            assert_eq!((kind.http_status(), kind.as_str()), (status, code));
            assert!((400..600).contains(&status), "{kind:?} is an error status");
        }
        // only overload and unavailability invite a retry
        for kind in ErrorCode::ALL {
            assert_eq!(
                kind.row().retry_after_secs.is_some(),
                matches!(kind.http_status(), 429 | 503),
                "{kind:?}"
            );
        }
    }
}
