//! How an [`ArtifactStore`](crate::ArtifactStore) is located and tuned.

use serde::Deserialize;

/// Environment variable naming an S3-compatible endpoint (MinIO, SeaweedFS,
/// ...) when [`ArtifactStoreConfig::s3_endpoint`] is not set.
pub const S3_ENDPOINT_ENV: &str = "SLIPWAY_S3_ENDPOINT";

/// Region used for S3 when neither the config nor `AWS_REGION` names one.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Where artifacts live and how uploads are performed.
///
/// `root` is either a local directory (absolute or relative path, or
/// `file:///abs/path`; created if missing) or `s3://bucket[/prefix]`. For S3,
/// credentials and other settings come from the usual `AWS_*` environment
/// variables (`AmazonS3Builder::from_env`); the fields below override them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactStoreConfig {
    /// Local directory or `s3://bucket[/prefix]`.
    pub root: String,
    /// S3 endpoint URL, e.g. `http://127.0.0.1:8333`. Falls back to
    /// `SLIPWAY_S3_ENDPOINT`, then to `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`. When an
    /// endpoint is given, path-style addressing is used, and plain `http://`
    /// is allowed if the endpoint uses it.
    pub s3_endpoint: Option<String>,
    /// S3 region. Falls back to `AWS_REGION`, then to `us-east-1`.
    pub s3_region: Option<String>,
    /// Size of each part of a multipart upload, in bytes. Bodies up to this
    /// size are sent in one request. S3 requires at least 5 MiB; clamped up
    /// to that.
    pub multipart_part_size: usize,
    /// Parts of one upload in flight at once. Peak memory per upload is about
    /// `(multipart_concurrency + 1) * multipart_part_size`.
    pub multipart_concurrency: usize,
}

/// Smallest part S3 accepts (except for the last part).
pub(crate) const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

impl Default for ArtifactStoreConfig {
    fn default() -> Self {
        Self {
            root: "./mlartifacts".to_owned(),
            s3_endpoint: None,
            s3_region: None,
            multipart_part_size: 8 * 1024 * 1024,
            multipart_concurrency: 2,
        }
    }
}

impl ArtifactStoreConfig {
    /// A config with this root and default settings otherwise.
    pub fn new(root: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            ..Self::default()
        }
    }
}
