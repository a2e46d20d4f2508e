//! Shared application state, handed to handlers with axum's `State`.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::serving::DeploymentManager;
use slipway_artifacts::ArtifactStore;
use slipway_metadata::MetadataStore;
use std::sync::Arc;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Metadata store (SQLite or PostgreSQL).
    pub store: Arc<dyn MetadataStore>,
    /// Artifact store (local directory or S3).
    pub artifacts: Arc<ArtifactStore>,
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Token verification.
    pub auth: Arc<Authenticator>,
    /// Deployments and their loaded models.
    pub serving: Arc<DeploymentManager>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}
