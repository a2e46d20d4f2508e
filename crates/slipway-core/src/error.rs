//! The one table of error kinds: each maps to an HTTP status and a wire code.
//!
//! Library crates keep their own `thiserror` enums and convert into [`Error`];
//! the server renders it as MLflow's `{"error_code", "message"}` or as V2's
//! `{"error"}` depending on the route.

use std::fmt;

/// Error kinds, named after MLflow's `ErrorCode` values where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request parameter is missing, malformed or out of range (400).
    InvalidParameterValue,
    /// The request body could not be parsed at all (400).
    MalformedRequest,
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
    /// The request body exceeds the configured limit (413).
    PayloadTooLarge,
    /// A queue or rate limit is full; retry later (429).
    RequestLimitExceeded,
    /// The service, or a dependency of it, is not ready (503).
    TemporarilyUnavailable,
    /// A server-side fault; details are logged, not returned (500).
    InternalError,
}

impl ErrorCode {
    /// HTTP status for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidParameterValue
            | Self::MalformedRequest
            | Self::ResourceAlreadyExists
            | Self::InvalidState => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::ResourceDoesNotExist | Self::EndpointNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::RequestLimitExceeded => 429,
            Self::InternalError => 500,
            Self::TemporarilyUnavailable => 503,
        }
    }

    /// Wire code, as MLflow's clients expect it in `error_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Self::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Self::InvalidState => "INVALID_STATE",
            Self::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            Self::MethodNotAllowed => "BAD_REQUEST",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::PayloadTooLarge => "REQUEST_LIMIT_EXCEEDED",
            Self::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            Self::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
        }
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
