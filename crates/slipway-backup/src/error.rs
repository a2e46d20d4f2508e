//! The crate's error type. Messages are for operators at a terminal or in a
//! log: they name the backup, the file, the artifact path or the setting,
//! and what to do; causes stay in `source()`.

use slipway_artifacts::ArtifactError;
use slipway_metadata::sql::snapshot::SnapshotError;

/// Everything that can go wrong in a backup, verify, restore or prune.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The destination or source location is not usable as written.
    #[error("invalid backup location '{location}': {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No complete backup where one was asked for.
    #[error("{0}")]
    NotFound(String),
    /// The backup exists but has no manifest: it was interrupted (or is
    /// still being written) and is never used.
    #[error("backup {id} at {location} is incomplete (no manifest: interrupted or still being written); it cannot be restored")]
    Incomplete {
        /// The backup id.
        id: String,
        /// Where it is.
        location: String,
    },
    /// A manifest or part does not follow the format.
    #[error("backup format error in {file}: {reason}")]
    Format {
        /// The file concerned, relative to the backup location.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The backup was written by a newer Slipway.
    #[error("{0}")]
    Unsupported(String),
    /// The restore target already holds data.
    #[error("{0}")]
    TargetNotEmpty(String),
    /// A file's content does not match its recorded SHA-256.
    #[error("{what}: SHA-256 is {actual}, expected {expected}")]
    DigestMismatch {
        /// What was read (an artifact path, a blob, a metadata part).
        what: String,
        /// The recorded digest.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },
    /// Another process holds the backup lease of this store.
    #[error("another backup of this store is running (lease '{lease}' held by {holder}); try again when it has finished")]
    Busy {
        /// The lease name.
        lease: String,
        /// Its holder.
        holder: String,
    },
    /// The lease was lost while the backup ran (its holder stalled longer
    /// than the lease lasts); the backup was abandoned before its manifest.
    #[error("the backup lease '{0}' was lost while the backup ran; the backup was abandoned")]
    LeaseLost(String),
    /// An artifact store (source, destination or target) failed.
    #[error("{context}: {source}")]
    Artifacts {
        /// What was being done.
        context: String,
        /// The store's error.
        #[source]
        source: Box<ArtifactError>,
    },
    /// The object store under a location failed (listing, deleting).
    #[error("{context}: {source}")]
    ObjectStore {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Box<object_store::Error>,
    },
    /// The metadata database failed or its data does not fit.
    #[error("metadata: {0}")]
    Metadata(#[source] Box<SnapshotError>),
    /// The metadata store refused an operation (leases, lookups).
    #[error("metadata store: {0}")]
    Store(String),
    /// A local file (scratch space) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A schedule or retention policy is not valid.
    #[error("{0}")]
    Invalid(String),
}

impl BackupError {
    pub(crate) fn artifacts(context: impl Into<String>) -> impl FnOnce(ArtifactError) -> Self {
        let context = context.into();
        move |source| Self::Artifacts {
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn format(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Format {
            file: file.into(),
            reason: reason.into(),
        }
    }
}

impl From<SnapshotError> for BackupError {
    fn from(e: SnapshotError) -> Self {
        Self::Metadata(Box::new(e))
    }
}

impl From<slipway_core::Error> for BackupError {
    fn from(e: slipway_core::Error) -> Self {
        Self::Store(e.message)
    }
}

/// Result with [`BackupError`].
pub type Result<T, E = BackupError> = std::result::Result<T, E>;
