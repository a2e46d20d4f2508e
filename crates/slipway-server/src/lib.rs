//! Slipway's HTTP server.
//!
//! [`Application::build`] opens the stores, bootstraps the admin token, binds
//! the listener (port 0 in tests) and exposes the bound address;
//! [`Application::run_until_stopped`] serves until SIGTERM/SIGINT, drains
//! in-flight requests and writes the prediction log's buffer. Routes live in
//! one module per resource under [`routes`]. This crate owns HTTP concerns
//! only: storage semantics belong to `slipway-metadata` and
//! `slipway-artifacts`.

pub mod auth;
pub mod backups;
pub mod bootstrap;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod extract;
pub mod routes;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod ui;

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

/// Opens (and, for SQLite, creates) the metadata store named by the
/// configuration, applying migrations.
pub async fn open_metadata_store(config: &Config) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let url = config.metadata_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    connect(&url, SqlOptions::default()).await
}

/// Opens the SQL metadata store named by the configuration as its concrete
/// type (backups and restores need its SQL access).
pub async fn open_sql_store(config: &Config, options: SqlOptions) -> anyhow::Result<SqlStore> {
    let url = config.metadata_url();
    if url.starts_with("sqlite:") && options.create_if_missing {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    SqlStore::connect(&url, options)
        .await
        .map_err(|e| anyhow::anyhow!("opening the metadata store: {}", e.message))
}

/// Opens an existing metadata store; never creates one (commands such as
/// `slipway token` that manage a store the server made).
pub async fn open_existing_metadata_store(
    config: &Config,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let options = SqlOptions {
        create_if_missing: false,
        ..SqlOptions::default()
    };
    connect(&config.metadata_url(), options).await
}

async fn connect(url: &str, options: SqlOptions) -> anyhow::Result<Arc<dyn MetadataStore>> {
    let store = SqlStore::connect(url, options)
        .await
        .map_err(|e| anyhow::anyhow!("opening the metadata store: {}", e.message))?;
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

/// Probes the artifact store (for S3: that the bucket exists and these
/// credentials may list it); the error names the store, endpoint and cause.
pub async fn check_artifact_store(artifacts: &ArtifactStore) -> Result<(), String> {
    let probe = tokio::time::timeout(Duration::from_secs(10), artifacts.check()).await;
    let err = match probe {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            let mut cause = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                cause = format!("{cause}: {s}");
                src = s.source();
            }
            cause
        }
        Err(_) => "no answer within 10 s".to_string(),
    };
    let endpoint = artifacts
        .endpoint()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default();
    let hint = if artifacts.location().starts_with("s3://") {
        let bucket = artifacts
            .location()
            .trim_start_matches("s3://")
            .split('/')
            .next()
            .unwrap_or("");
        format!(
            " (check that bucket '{bucket}' exists{endpoint}: Slipway does not create buckets; and that the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY may list and write it)"
        )
    } else {
        String::new()
    };
    Err(format!(
        "artifact store {}{endpoint} is not usable: {err}{hint}",
        artifacts.location()
    ))
}

/// Name of the lease under which one replica refreshes the drift and
/// accuracy gauges and deletes old monitoring data.
const MONITORING_LEASE: &str = "monitoring";

/// Every `monitoring_interval_seconds`: the lease holder refreshes the
/// drift and performance gauges and applies retention.
fn spawn_monitoring(state: &AppState) {
    let store = state.store.clone();
    let monitor = state.monitor.clone();
    let every = Duration::from_secs(state.config.monitoring_interval_seconds);
    let holder = bootstrap::holder_id();
    let ttl = i64::try_from(every.as_millis() * 3).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.acquire_lease(MONITORING_LEASE, &holder, ttl).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "monitoring lease could not be read");
                    continue;
                }
            }
            monitor.refresh_gauges().await;
            if let Err(e) = monitor.retention().await {
                tracing::warn!(error = %e.message, "monitoring retention failed");
            }
        }
    });
}

/// A built, bound, not yet serving application.
pub struct Application {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    state: AppState,
    admin_token: bootstrap::AdminTokenOrigin,
    http: Option<Http>,
    stop: Arc<tokio::sync::Notify>,
}

/// Stops a running [`Application`] as SIGTERM does (embedding, tests).
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<tokio::sync::Notify>);

impl ShutdownTrigger {
    /// Starts the graceful shutdown (once; later calls do nothing more).
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

/// The HTTP server task, once started.
struct Http {
    task: tokio::task::JoinHandle<()>,
    /// Fires when the shutdown signal has arrived.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Application {
    /// Opens stores, applies migrations, bootstraps the admin token and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        slipway_runtime::worker::set_transparent_huge_pages(config.transparent_huge_pages);
        let store = open_metadata_store(&config).await?;
        let artifacts = open_artifact_store(&config).await?;
        check_artifact_store(&artifacts)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        if let Err(e) = artifacts
            .cleanup_stale_uploads(Duration::from_secs(0))
            .await
        {
            tracing::warn!(error = %e, "could not clean up interrupted uploads");
        }
        let admin_token = bootstrap::ensure_admin_token(store.as_ref(), &config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {} (setting listen)", config.listen))?;
        let addr = listener.local_addr()?;
        let auth = Arc::new(auth::Authenticator::new(
            store.clone(),
            Duration::from_secs(config.token_cache_seconds),
        ));
        let artifacts = Arc::new(artifacts);
        let serving = Arc::new(slipway_serving::DeploymentManager::new(
            store.clone(),
            artifacts.clone(),
            onnx_runtime(&config),
            serving_settings(&config),
        ));
        let monitor =
            slipway_monitor::Monitor::start(artifacts.clone(), &serving, monitor_settings(&config));
        let mlflow_ui = {
            let setting = config.mlflow_ui_dir.clone();
            tokio::task::spawn_blocking(move || {
                ui::find_mlflow_ui(setting.as_deref(), &ort_search_roots())
            })
            .await
            .unwrap_or(None)
        };
        match &mlflow_ui {
            Some(dir) => tracing::info!(dir = %dir.display(), "serving the MLflow UI"),
            None => tracing::info!("no MLflow UI found; `/` says how to install it"),
        }
        let state = AppState::new(state::Shared {
            store,
            serving,
            monitor,
            artifacts,
            auth,
            metrics: telemetry::metrics_handle(),
            health: Arc::new(state::Health::default()),
            mlflow_ui: mlflow_ui.map(Arc::new),
            codec: Arc::new(state::CodecBudget::new(
                usize::try_from(config.max_decode_bytes).unwrap_or(usize::MAX),
            )),
            config: Arc::new(config),
        });
        Ok(Self {
            listener: Some(listener),
            addr,
            state,
            admin_token,
            http: None,
            stop: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the admin token comes from, for the start-up banner.
    pub fn admin_token_origin(&self) -> &bootstrap::AdminTokenOrigin {
        &self.admin_token
    }

    /// A handle that stops the application as SIGTERM does.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.stop.clone())
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
        let lease = bootstrap::StartupLease::acquire(s.store.as_ref(), "startup:demo").await?;
        let res = demo::install(s.store.as_ref(), &s.artifacts, &s.serving).await;
        lease.release(s.store.as_ref()).await;
        res.map_err(|e| anyhow::anyhow!("installing the demo model: {e}"))
    }

    /// Starts answering HTTP now, before deployments are loaded: health
    /// answers at once, readiness says 503 until [`Self::run_until_stopped`]
    /// (start-up done) and every deployment's first load has finished.
    pub fn start_http(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let config = self.state.config.clone();
        let limits = serve::ConnectionLimits {
            header_timeout: Duration::from_secs(config.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(config.keep_alive_timeout_seconds),
            max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
        };
        let app = routes::router(self.state.clone());
        let (tx, stopping) = tokio::sync::watch::channel(false);
        let health = self.state.health.clone();
        let stop = self.stop.clone();
        let task = tokio::spawn(serve::serve(listener, app, limits, async move {
            tokio::select! {
                () = shutdown_signal() => {}
                () = stop.notified() => {}
            }
            tracing::info!("shutdown signal received; draining in-flight requests");
            health.set_started(false);
            let _ = tx.send(true);
        }));
        self.http = Some(Http { task, stopping });
    }

    /// Loads stored deployments (roles that serve) or reads them (registry),
    /// and starts following the registry.
    pub async fn start_serving(&self) -> anyhow::Result<()> {
        self.state
            .serving
            .restore_all()
            .await
            .map_err(|e| anyhow::anyhow!("restoring deployments: {e}"))?;
        self.state.serving.spawn_follower();
        spawn_monitoring(&self.state);
        Ok(())
    }

    /// Marks start-up done, starts scheduled backups (when `backup_to` is
    /// set) and serves until SIGTERM or SIGINT; then lets in-flight requests
    /// finish and writes the prediction log's buffered rows, both within
    /// `shutdown_grace_seconds` of the signal (the log gets at least
    /// [`LOG_FLUSH_FLOOR`] even when draining took the whole grace period).
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        self.start_http();
        self.state.health.set_started(true);
        let scheduler = backups::spawn(
            self.state.config.clone(),
            self.state.store.clone(),
            self.state.artifacts.clone(),
        );
        let grace = Duration::from_secs(self.state.config.shutdown_grace_seconds);
        let Some(Http { task, mut stopping }) = self.http.take() else {
            return Ok(());
        };
        tokio::pin!(task);
        // serve until the signal (or until the server ends on its own)
        tokio::select! {
            _ = &mut task => {}
            _ = async {
                while !*stopping.borrow() {
                    if stopping.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            } => {}
        }
        let deadline = tokio::time::Instant::now() + grace;
        // drain: the server task ends once every connection has closed
        if !task.is_finished() && tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!("grace period over; closing remaining connections");
        }
        if let Some(s) = scheduler {
            s.abort();
        }
        flush_prediction_log(&self.state.monitor, deadline).await;
        Ok(())
    }
}

/// Least time the prediction log's last flush gets at shutdown, even when
/// draining used the whole grace period (the Helm chart leaves 5 s between
/// the grace period and the kubelet's SIGKILL).
pub const LOG_FLUSH_FLOOR: Duration = Duration::from_secs(3);

/// Writes the prediction log's buffered rows (graceful shutdown), until
/// `deadline` but for at least [`LOG_FLUSH_FLOOR`].
async fn flush_prediction_log(monitor: &slipway_monitor::Monitor, deadline: tokio::time::Instant) {
    let buffered = monitor.log().buffered_rows();
    let until = deadline.max(tokio::time::Instant::now() + LOG_FLUSH_FLOOR);
    match tokio::time::timeout_at(until, monitor.shutdown()).await {
        Ok(()) => tracing::info!(rows = buffered, "prediction log flushed"),
        Err(_) => tracing::warn!(
            rows = monitor.log().buffered_rows(),
            "prediction log not flushed before the grace period ended; its buffered rows are lost"
        ),
    }
}

fn serving_settings(config: &Config) -> slipway_serving::ServingSettings {
    use config::GraphOptimization as G;
    use slipway_runtime::OptimizationLevel as O;
    slipway_serving::ServingSettings {
        loader: slipway_serving::LoaderSettings {
            intra_op_threads: (config.intra_op_threads > 0)
                .then_some(config.intra_op_threads as usize),
            optimization_level: match config.graph_optimization {
                G::Disable => O::Disable,
                G::Basic => O::Basic,
                G::Extended => O::Extended,
                G::All => O::All,
            },
            cache_dir: config.model_cache_dir(),
            queue_capacity: config.inference_queue_capacity as usize,
            max_batch_size: config.max_batch_size as usize,
            inline_max: Duration::from_micros(config.inline_max_micros),
        },
        poll_interval: Duration::from_millis(config.deployment_poll_ms),
        load_models: config.role != config::Role::Registry,
        replica_id: bootstrap::holder_id(),
        log_fraction: config.prediction_log_fraction,
    }
}

fn monitor_settings(config: &Config) -> slipway_monitor::MonitorSettings {
    slipway_monitor::MonitorSettings {
        log: slipway_monitor::LogSettings {
            buffer_rows: config.prediction_log_buffer_rows,
            flush_rows: config.prediction_log_flush_rows,
            flush_interval: Duration::from_secs(config.prediction_log_flush_seconds),
        },
        retention_days: config.prediction_log_retention_days,
        drift_window_seconds: config.drift_window_seconds,
        drift_min_rows: config.drift_min_rows,
        drift_reference_rows: config.drift_reference_rows,
        drift_sample_limit: usize::try_from(config.drift_sample_limit).unwrap_or(usize::MAX),
        performance_window_seconds: config.performance_window_seconds,
        feedback_lookback_hours: config.feedback_lookback_hours,
    }
}

/// ONNX Runtime, created when the first model loads; the library comes from
/// `ort_lib`, the environment or the project's `.venv` (see
/// `slipway_runtime::onnx`).
fn onnx_runtime(config: &Config) -> Arc<dyn slipway_runtime::Runtime> {
    let cfg = slipway_runtime::OrtConfig {
        library_path: config.ort_lib.clone(),
        search_roots: ort_search_roots(),
    };
    Arc::new(slipway_runtime::LazyRuntime::new(
        "onnxruntime",
        move || {
            slipway_runtime::OnnxRuntime::new(&cfg)
                .map(|rt| Arc::new(rt) as Arc<dyn slipway_runtime::Runtime>)
        },
    ))
}

/// Directories whose `.venv` may hold the onnxruntime wheel (and the MLflow
/// UI): the working directory and the executable's directory (and their parents).
pub(crate) fn ort_search_roots() -> Vec<std::path::PathBuf> {
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::PathBuf::from))
    {
        roots.push(dir);
    }
    roots
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use slipway_runtime::{ModelOutput, Tensor, TensorData};
    use slipway_serving::{Prediction, PredictionSink, Role};

    fn prediction(i: usize) -> Prediction {
        Prediction {
            deployment: Arc::from("flushed"),
            version: "1".into(),
            role: Role::Stable,
            request_id: Arc::from(format!("req-{i}")),
            time: std::time::SystemTime::now(),
            latency: Duration::from_millis(1),
            status: 200,
            inputs: vec![
                Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![i as f32, 1.0])).unwrap(),
            ],
            outputs: vec![ModelOutput::plain(
                Tensor::new("label", vec![1], TensorData::Int64(vec![i as i64 % 3])).unwrap(),
            )],
        }
    }

    async fn logged_rows(store: &ArtifactStore) -> usize {
        let found = slipway_monitor::files::prediction_files(store, "flushed", None, 0, i64::MAX)
            .await
            .unwrap();
        let mut rows = 0;
        for f in &found {
            let batches = slipway_monitor::files::read_file(store, f, None)
                .await
                .unwrap();
            rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        rows
    }

    /// Rows neither old nor many enough to be written are written when the
    /// server stops gracefully.
    #[tokio::test]
    async fn graceful_shutdown_writes_the_prediction_log_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            admin_token: Some(config::Secret::new("test-admin-token-0123456789")),
            prediction_log_flush_seconds: 3600,
            prediction_log_flush_rows: 10_000_000,
            shutdown_grace_seconds: 5,
            ..Config::default()
        };
        let app = Application::build(config).await.unwrap();
        let monitor = app.state().monitor.clone();
        let store = app.state().artifacts.clone();
        let stop = app.shutdown_trigger();
        let running = tokio::spawn(app.run_until_stopped());
        for i in 0..25 {
            monitor.log().submit(prediction(i));
        }
        assert_eq!(monitor.log().buffered_rows(), 25);
        assert_eq!(logged_rows(&store).await, 0, "written before the shutdown");
        stop.trigger();
        tokio::time::timeout(Duration::from_secs(30), running)
            .await
            .expect("the server stops within its grace period")
            .unwrap()
            .unwrap();
        assert_eq!(logged_rows(&store).await, 25);
        assert_eq!(monitor.log().buffered_rows(), 0);
    }
}
