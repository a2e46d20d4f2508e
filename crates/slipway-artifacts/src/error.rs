//! The crate's error type and its mapping onto Slipway's error table.
//!
//! Messages (`Display`) are safe to show a client: they name the artifact path
//! and the rule or condition, never backend internals. Backend details stay in
//! the `source()` chain of [`ArtifactError::Backend`] for logs.

use slipway_core::ErrorCode;

/// Boxed error from a request body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in artifact storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The client-supplied path broke a safety rule; the message names the
    /// path and the rule.
    #[error("{0}")]
    InvalidPath(String),
    /// No artifact at this path.
    #[error("no such artifact: '{0}'")]
    NotFound(String),
    /// The upload exceeded the byte limit; nothing was stored.
    #[error("artifact upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The request body failed mid-way (client disconnect, truncated body);
    /// the upload was discarded.
    #[error("artifact upload was aborted: the request body failed")]
    BodyAborted(#[source] BoxError),
    /// The store could not be opened from its configuration.
    #[error("invalid artifact store configuration: {0}")]
    Config(String),
    /// The storage backend failed. The message names only the operation and
    /// path; the backend error is the `source()`, for logs.
    #[error("artifact storage failed to {op} '{path}'")]
    Backend {
        /// What was being done: "write", "read", "list", "delete", ...
        op: &'static str,
        /// The artifact path (or `<root>`) concerned.
        path: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
}

impl ArtifactError {
    /// Builds [`ArtifactError::InvalidPath`] naming `path` and the broken `rule`.
    pub fn invalid_path(path: &str, rule: &str) -> Self {
        Self::InvalidPath(format!(
            "invalid artifact path '{}': {rule}",
            printable(path)
        ))
    }

    /// The error kind in Slipway's table, which decides HTTP status and wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidPath(_) => ErrorCode::InvalidParameterValue,
            Self::NotFound(_) => ErrorCode::ResourceDoesNotExist,
            Self::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::BodyAborted(_) => ErrorCode::MalformedRequest,
            Self::Config(_) | Self::Backend { .. } => ErrorCode::InternalError,
        }
    }

    /// Wraps a backend error for `op` on `path`, turning the backend's
    /// not-found into [`ArtifactError::NotFound`].
    pub(crate) fn backend(op: &'static str, path: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound(printable(path)),
            source => Self::Backend {
                op,
                path: printable(path),
                source,
            },
        }
    }
}

impl From<ArtifactError> for slipway_core::Error {
    /// Keeps the kind and the client-safe message. Log the original first if
    /// it is [`ArtifactError::Backend`]: its cause is dropped here.
    fn from(e: ArtifactError) -> Self {
        slipway_core::Error::new(e.code(), e.to_string())
    }
}

/// A path made safe to print: control characters escaped, long ones cut.
fn printable(path: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out = String::with_capacity(path.len().min(MAX_CHARS + 8));
    for (i, c) in path.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
