//! Slipway's HTTP server.
//!
//! [`Application::build`] opens the stores, bootstraps the admin token, binds
//! the listener (port 0 in tests) and exposes the bound address;
//! [`Application::run_until_stopped`] serves until SIGTERM/SIGINT and drains
//! in-flight requests. Routes live in one module per resource under
//! [`routes`]. This crate owns HTTP concerns only: storage semantics belong
//! to `slipway-metadata` and `slipway-artifacts`.

pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod extract;
pub mod routes;
pub mod serving;
pub mod state;
pub mod telemetry;

use anyhow::Context;
use config::Config;
use slipway_artifacts::{ArtifactStore, ArtifactStoreConfig};
use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::MetadataStore;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Opens the metadata store named by the configuration.
pub async fn open_metadata_store(config: &Config) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let url = config.metadata_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    let store = SqlStore::connect(&url, SqlOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("opening metadata store {}: {e}", config::redact_url(&url)))?;
    Ok(Arc::new(store))
}

/// Opens the artifact store named by the configuration.
pub async fn open_artifact_store(config: &Config) -> anyhow::Result<ArtifactStore> {
    let cfg = ArtifactStoreConfig {
        root: config.artifact_root(),
        s3_endpoint: config.s3_endpoint.clone(),
        s3_region: config.s3_region.clone(),
        ..Default::default()
    };
    ArtifactStore::open(&cfg)
        .map_err(|e| anyhow::anyhow!("opening artifact store {}: {e}", cfg.root))
}

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    /// Secret of an admin token minted by this start, shown once by the caller.
    pub new_admin_token: Option<String>,
}

impl Application {
    /// Opens stores, applies migrations, bootstraps the admin token and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = open_metadata_store(&config).await?;
        let artifacts = open_artifact_store(&config).await?;
        if let Err(e) = artifacts
            .cleanup_stale_uploads(Duration::from_secs(0))
            .await
        {
            tracing::warn!(error = %e, "could not clean up interrupted uploads");
        }
        let new_admin_token = bootstrap::ensure_admin_token(store.as_ref(), &config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {} (setting listen)", config.listen))?;
        let addr = listener.local_addr()?;
        let auth = Arc::new(auth::Authenticator::new(
            store.clone(),
            Duration::from_secs(config.token_cache_seconds),
        ));
        let artifacts = Arc::new(artifacts);
        let serving = Arc::new(serving::DeploymentManager::new(
            store.clone(),
            artifacts.clone(),
            serving_settings(&config),
        ));
        let state = AppState {
            store,
            serving,
            artifacts,
            config: Arc::new(config),
            auth,
            metrics: telemetry::metrics_handle(),
        };
        Ok(Self {
            listener,
            addr,
            state,
            new_admin_token,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shared state, for callers that act on the stores before serving.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Registers and deploys the demo model (once per data store); returns
    /// whether it did so now.
    pub async fn install_demo(&self) -> anyhow::Result<bool> {
        if self.state.config.role == config::Role::Serving {
            return Ok(false);
        }
        let s = &self.state;
        serving::demo::install(s.store.as_ref(), &s.artifacts, &s.serving)
            .await
            .map_err(|e| anyhow::anyhow!("installing the demo model: {e}"))
    }

    /// Loads stored deployments (serving roles) and starts following aliases.
    pub async fn start_serving(&self) -> anyhow::Result<()> {
        if self.state.config.role == config::Role::Registry {
            return Ok(());
        }
        self.state
            .serving
            .restore_all()
            .await
            .map_err(|e| anyhow::anyhow!("restoring deployments: {e}"))?;
        self.state.serving.spawn_follower();
        Ok(())
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish
    /// within `shutdown_grace_seconds`.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_seconds);
        let app = routes::router(self.state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received; draining in-flight requests");
            let _ = tx.send(());
        });
        let serve = tokio::spawn(async move { server.await });
        tokio::pin!(serve);
        tokio::select! {
            res = &mut serve => { res??; }
            _ = async { let _ = rx.await; tokio::time::sleep(grace).await; } => {
                tracing::warn!("grace period over; closing remaining connections");
            }
        }
        Ok(())
    }
}

fn serving_settings(config: &Config) -> serving::ServingSettings {
    use config::GraphOptimization as G;
    use slipway_runtime::OptimizationLevel as O;
    serving::ServingSettings {
        ort_lib: config.ort_lib.clone(),
        intra_op_threads: (config.intra_op_threads > 0).then_some(config.intra_op_threads as usize),
        optimization_level: match config.graph_optimization {
            G::Disable => O::Disable,
            G::Basic => O::Basic,
            G::Extended => O::Extended,
            G::All => O::All,
        },
        cache_dir: config.model_cache_dir(),
        poll_interval: Duration::from_millis(config.deployment_poll_ms),
        queue_capacity: config.inference_queue_capacity as usize,
        max_batch_size: config.max_batch_size as usize,
        load_models: config.role != config::Role::Registry,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
