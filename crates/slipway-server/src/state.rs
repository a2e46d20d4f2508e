//! Shared application state, handed to handlers with axum's `State`.

use crate::auth::Authenticator;
use crate::config::Config;
use slipway_artifacts::ArtifactStore;
use slipway_metadata::MetadataStore;
use slipway_serving::DeploymentManager;
use std::sync::Arc;

/// Everything a handler may need, behind one reference count: axum clones
/// the state for every extractor and middleware layer of every request, so
/// a clone is one atomic increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared state.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
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
    /// The prediction log and the monitoring queries.
    pub monitor: Arc<slipway_monitor::Monitor>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Start-up progress and the cached artifact-store probe, for readiness.
    pub health: Arc<Health>,
    /// Limits on large decodes and encodes run off the executor.
    pub codec: Arc<CodecBudget>,
    /// The MLflow UI's build directory, when one was found (see [`crate::ui`]).
    pub mlflow_ui: Option<Arc<std::path::PathBuf>>,
}

/// What large decodes and encodes may use at once: `max_decode_bytes` of
/// input, on a pool of one thread fewer than the machine has cores (at least
/// one). The pool's threads run at a lower scheduling priority (nice +10)
/// than the async executor's, so a core full of JSON never delays health
/// checks and small requests: when an executor thread wakes, it runs.
pub struct CodecBudget {
    /// Byte permits.
    pub bytes: Arc<tokio::sync::Semaphore>,
    /// The byte budget (largest single acquisition).
    pub max_bytes: usize,
    jobs: std::sync::mpsc::Sender<CodecJob>,
}

type CodecJob = Box<dyn FnOnce() + Send>;

/// The nice value of codec threads (higher is lower priority).
const CODEC_NICE: i32 = 10;

impl CodecBudget {
    /// A budget of `max_bytes`, and its threads.
    pub fn new(max_bytes: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let (tx, rx) = std::sync::mpsc::channel::<CodecJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..cores.saturating_sub(1).max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("slipway-codec-{i}"))
                .spawn(move || {
                    // lowering one's own priority needs no privilege; on Linux
                    // the nice value belongs to the calling thread
                    if let Err(e) = rustix::process::setpriority_process(None, CODEC_NICE) {
                        tracing::debug!(error = %e, "codec thread keeps the default priority");
                    }
                    loop {
                        let next = rx.lock().map(|r| r.recv());
                        match next {
                            Ok(Ok(job)) => job(),
                            _ => return, // the budget was dropped
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a codec thread");
            }
        }
        Self {
            bytes: Arc::new(tokio::sync::Semaphore::new(max_bytes)),
            max_bytes,
            jobs: tx,
        }
    }

    /// Runs `work` on a codec thread and waits for its result; a panic in
    /// `work` resumes on the caller, as with `spawn_blocking`.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: CodecJob = Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        });
        if let Err(std::sync::mpsc::SendError(job)) = self.jobs.send(job) {
            // no codec thread could start: run it where tokio runs blocking work
            let _ = tokio::task::spawn_blocking(job).await;
        }
        match rx.await {
            Ok(Ok(v)) => v,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("a codec job was dropped without running"),
        }
    }
}

/// What readiness knows beyond the stores: whether start-up is done (and
/// shutdown not begun), and the last artifact-store probe.
#[derive(Default)]
pub struct Health {
    started: std::sync::atomic::AtomicBool,
    artifact_probe: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

/// How long an artifact-store probe result is reused by readiness checks.
const ARTIFACT_PROBE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Health {
    /// Marks start-up done (`true`) or shutdown begun (`false`).
    pub fn set_started(&self, started: bool) {
        self.started
            .store(started, std::sync::atomic::Ordering::Release);
    }

    /// Whether start-up is done and shutdown has not begun.
    pub fn started(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The artifact store's state, probed at most every few seconds.
    pub async fn artifact_store(&self, artifacts: &ArtifactStore) -> Result<(), String> {
        let cached = self
            .artifact_probe
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|(at, _)| at.elapsed() < ARTIFACT_PROBE_TTL);
        if let Some((_, res)) = cached {
            return res;
        }
        let res = crate::check_artifact_store(artifacts).await;
        if let Ok(mut c) = self.artifact_probe.lock() {
            *c = Some((std::time::Instant::now(), res.clone()));
        }
        res
    }
}
