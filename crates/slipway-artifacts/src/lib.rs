//! Artifact storage for Slipway, behind MLflow's `mlflow-artifacts` proxy.
//!
//! This crate owns where artifact bytes live and how they get there:
//!
//! - [`ArtifactPath`]: the only way to name an artifact; parsing it enforces
//!   the path-safety rules, so no operation can reach outside the root.
//! - [`ArtifactStore`]: a local directory or an `s3://bucket/prefix` behind
//!   `object_store`, opened from an [`ArtifactStoreConfig`]. It streams
//!   uploads atomically (never a half-written file, the previous version kept
//!   on failure) with bounded memory and a SHA-256 digest, streams downloads,
//!   lists one directory level as MLflow's `FileInfo`s, deletes recursively,
//!   and cleans up leftovers of interrupted uploads.
//! - [`ArtifactError`]: what can go wrong, mapped onto
//!   [`slipway_core::ErrorCode`] by [`ArtifactError::code`].
//!
//! It knows nothing about HTTP: the server decodes requests into
//! [`ArtifactPath`]s and body streams and renders the results.

mod config;
mod error;
mod path;
mod store;

pub use config::{ArtifactStoreConfig, DEFAULT_S3_REGION, S3_ENDPOINT_ENV};
pub use error::{ArtifactError, BoxError};
pub use path::{ArtifactPath, MAX_PATH_BYTES, MAX_SEGMENT_BYTES, RESERVED_PREFIX};
pub use store::{
    ArtifactMeta, ArtifactStore, CommitMode, Download, FileInfo, PutOutcome, TEMP_DIR,
};
