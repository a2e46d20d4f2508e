//! Deployments: named bindings of a registered model (by alias or version) to
//! the serving path.
//!
//! [`DeploymentManager`] owns every deployment of this process. A load
//! resolves the alias to a version, fetches the model's files into a local
//! content-addressed cache (retrying with backoff, verifying each file's
//! SHA-256 against the digest recorded at upload), loads the model with ONNX
//! Runtime, warms it up with a real inference, and only then swaps it in:
//! requests already holding the old version finish on it, new requests get
//! the new one. If anything fails, the old version keeps serving and the
//! deployment's status carries the error. A background task re-resolves
//! aliases every `deployment_poll_ms`, so alias moves made through the MLflow
//! API (on any replica) are followed within that delay.
//! Inference itself runs on the runtime's dedicated worker threads.

pub mod demo;

use crate::routes::model_versions::resolve_download_uri_with;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactPath, ArtifactStore};
use slipway_core::{Error, ErrorCode};
use slipway_metadata::MetadataStore;
use slipway_runtime::{
    FeatureRanges, LoadOptions, MlflowSignature, ModelWorker, OnnxRuntime, OptimizationLevel,
    OrtConfig, Policy, RangeAction, Runtime, Signature, WorkerConfig,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Settings of the serving layer, taken from the configuration.
#[derive(Debug, Clone)]
pub struct ServingSettings {
    /// Explicit ONNX Runtime library path.
    pub ort_lib: Option<PathBuf>,
    /// Intra-op threads per model (`None`: ONNX Runtime decides).
    pub intra_op_threads: Option<usize>,
    /// Graph optimization level.
    pub optimization_level: OptimizationLevel,
    /// Directory of the content-addressed model cache.
    pub cache_dir: PathBuf,
    /// How often aliases are re-resolved.
    pub poll_interval: Duration,
    /// Default queue capacity per deployment.
    pub queue_capacity: usize,
    /// Default `max_batch_size` per deployment.
    pub max_batch_size: usize,
    /// Whether this process loads models (false on the registry role).
    pub load_models: bool,
}

/// What to do with values outside the recorded feature ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RangePolicy {
    /// Accept and count them (`slipway_inference_out_of_range_total`).
    #[default]
    Flag,
    /// Reject the request with 400.
    Reject,
    /// Do not check.
    Ignore,
}

/// A deployment's specification, as given to `PUT /api/v1/deployments/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Registered model name.
    pub model: String,
    /// Alias to follow (e.g. `champion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Fixed version to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Largest batch (rows) per inference; also the per-request limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<usize>,
    /// Microseconds the batcher waits for more requests (0: only what is waiting).
    #[serde(default)]
    pub max_queue_delay_us: u64,
    /// Requests that may wait in the queue before 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    /// Out-of-range handling.
    #[serde(default)]
    pub range_policy: RangePolicy,
}

/// Upper bounds of a spec's numbers.
const MAX_BATCH_LIMIT: usize = 65_536;
const MAX_QUEUE_LIMIT: usize = 100_000;
const MAX_DELAY_US: u64 = 1_000_000;

impl DeploymentSpec {
    /// Checks the spec's shape; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid("Field 'model' must name a registered model"));
        }
        match (&self.alias, &self.version) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("Give either 'alias' or 'version', not both"))
            }
            (None, None) => {
                return Err(Error::invalid(
                    "Give 'alias' (e.g. \"champion\") or 'version' (e.g. \"3\")",
                ))
            }
            _ => {}
        }
        if let Some(v) = &self.version {
            if v.parse::<u64>().is_err() {
                return Err(Error::invalid(format!(
                    "Field 'version' must be a version number, got '{v}'"
                )));
            }
        }
        if let Some(b) = self.max_batch_size {
            if b == 0 || b > MAX_BATCH_LIMIT {
                return Err(Error::invalid(format!(
                    "Field 'max_batch_size' must be between 1 and {MAX_BATCH_LIMIT}, got {b}"
                )));
            }
        }
        if let Some(q) = self.queue_capacity {
            if q == 0 || q > MAX_QUEUE_LIMIT {
                return Err(Error::invalid(format!(
                    "Field 'queue_capacity' must be between 1 and {MAX_QUEUE_LIMIT}, got {q}"
                )));
            }
        }
        if self.max_queue_delay_us > MAX_DELAY_US {
            return Err(Error::invalid(format!(
                "Field 'max_queue_delay_us' must be at most {MAX_DELAY_US}, got {}",
                self.max_queue_delay_us
            )));
        }
        Ok(())
    }
}

/// One loaded model version of a deployment.
pub struct LoadedVersion {
    /// Registry version number.
    pub version: String,
    /// The worker running it.
    pub worker: ModelWorker,
    /// Seconds the load (fetch + load + warm-up) took.
    pub load_seconds: f64,
}

/// Load state of a deployment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeploymentStatus {
    /// `loading`, `ready` or `failed` (failed with an older version still serving is `degraded`).
    pub state: String,
    /// Version being served, if any.
    pub serving_version: Option<String>,
    /// Version the deployment should serve (the alias target).
    pub target_version: Option<String>,
    /// Last error, if the last load failed.
    pub error: Option<String>,
    /// When the status last changed, ms since epoch.
    pub updated_at: i64,
}

/// A deployment: spec, the version being served, and status.
pub struct Deployment {
    /// Name (the V2 model name).
    pub name: String,
    spec: RwLock<DeploymentSpec>,
    active: RwLock<Option<Arc<LoadedVersion>>>,
    status: Mutex<DeploymentStatus>,
    reload: tokio::sync::Mutex<()>,
}

impl Deployment {
    fn new(name: &str, spec: DeploymentSpec) -> Self {
        Self {
            name: name.to_string(),
            spec: RwLock::new(spec),
            active: RwLock::new(None),
            status: Mutex::new(DeploymentStatus {
                state: "loading".into(),
                serving_version: None,
                target_version: None,
                error: None,
                updated_at: slipway_core::now_millis(),
            }),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The version currently serving, if any. Holding the `Arc` keeps it alive
    /// across a swap.
    pub fn active(&self) -> Option<Arc<LoadedVersion>> {
        self.active.read().ok().and_then(|a| a.clone())
    }

    /// The current spec.
    pub fn spec(&self) -> DeploymentSpec {
        match self.spec.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The current status.
    pub fn status(&self) -> DeploymentStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut DeploymentStatus)) {
        let mut guard = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard);
        guard.updated_at = slipway_core::now_millis();
    }

    /// JSON view for the API.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "spec": self.spec(), "status": self.status()})
    }
}

/// Owns the deployments of this process and keeps them in step with the registry.
pub struct DeploymentManager {
    store: Arc<dyn MetadataStore>,
    artifacts: Arc<ArtifactStore>,
    settings: ServingSettings,
    runtime: tokio::sync::OnceCell<Result<Arc<OnnxRuntime>, String>>,
    deployments: RwLock<HashMap<String, Arc<Deployment>>>,
}

fn to_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::InvalidState, e.to_string())
}

impl DeploymentManager {
    /// A manager with no deployments yet.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        artifacts: Arc<ArtifactStore>,
        settings: ServingSettings,
    ) -> Self {
        Self {
            store,
            artifacts,
            settings,
            runtime: tokio::sync::OnceCell::new(),
            deployments: RwLock::new(HashMap::new()),
        }
    }

    /// ONNX Runtime, initialised on first use; the error says how to provide it.
    async fn runtime(&self) -> Result<Arc<OnnxRuntime>, Error> {
        let settings = self.settings.clone();
        let res = self
            .runtime
            .get_or_init(|| async move {
                let cfg = OrtConfig {
                    library_path: settings.ort_lib.clone(),
                    search_roots: ort_search_roots(),
                };
                tokio::task::spawn_blocking(move || {
                    OnnxRuntime::new(&cfg)
                        .map(Arc::new)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(format!("ONNX Runtime initialisation panicked: {e}")))
            })
            .await;
        res.clone()
            .map_err(|e| Error::new(ErrorCode::TemporarilyUnavailable, e))
    }

    /// A deployment by name.
    pub fn get(&self, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .read()
            .ok()
            .and_then(|d| d.get(name).cloned())
    }

    /// All deployments, by name.
    pub fn list(&self) -> Vec<Arc<Deployment>> {
        let mut v: Vec<_> = self
            .deployments
            .read()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Whether every deployment has a version serving.
    pub fn all_ready(&self) -> bool {
        self.list().iter().all(|d| d.active().is_some())
    }

    /// Readiness probe: every deployment serves a version that answers a
    /// shallow inference (inputs built from its signature) within 2 s.
    /// Returns the names of deployments that are not ready.
    pub async fn probe(&self) -> Vec<String> {
        let mut failing = Vec::new();
        for dep in self.list() {
            let Some(active) = dep.active() else {
                failing.push(dep.name.clone());
                continue;
            };
            let inputs = slipway_runtime::warmup_inputs(active.worker.signature());
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(2), active.worker.infer(inputs)).await,
                Ok(Ok(_))
            );
            if !ok {
                failing.push(dep.name.clone());
            }
        }
        failing
    }

    /// Creates or replaces a deployment, persists it, and loads it.
    pub async fn put(&self, name: &str, spec: DeploymentSpec) -> Result<Arc<Deployment>, Error> {
        validate_name(name)?;
        spec.validate()?;
        self.store.get_registered_model(&spec.model).await?;
        self.target_version(&spec).await?;
        let json = serde_json::to_value(&spec).map_err(|e| Error::internal(e.to_string()))?;
        self.store.put_deployment(name, &json).await?;
        let dep = self.install(name, spec);
        if self.settings.load_models {
            self.reload(&dep).await;
        } else {
            dep.set_status(|s| {
                s.state = "stored".into();
                s.error = None;
            });
        }
        Ok(dep)
    }

    fn install(&self, name: &str, spec: DeploymentSpec) -> Arc<Deployment> {
        let mut map = match self.deployments.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(existing) = map.get(name) {
            if let Ok(mut s) = existing.spec.write() {
                *s = spec;
            }
            return existing.clone();
        }
        let dep = Arc::new(Deployment::new(name, spec));
        map.insert(name.to_string(), dep.clone());
        dep
    }

    /// Deletes a deployment; in-flight requests finish on the version they hold.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.store.delete_deployment(name).await?;
        if let Ok(mut map) = self.deployments.write() {
            map.remove(name);
        }
        Ok(())
    }

    /// The version a spec points at now.
    async fn target_version(&self, spec: &DeploymentSpec) -> Result<String, Error> {
        match (&spec.alias, &spec.version) {
            (Some(alias), _) => Ok(self
                .store
                .get_model_version_by_alias(&spec.model, alias)
                .await?
                .version),
            (None, Some(v)) => Ok(self.store.get_model_version(&spec.model, v).await?.version),
            (None, None) => Err(Error::invalid("deployment has neither alias nor version")),
        }
    }

    /// Brings the deployment to its target version if it is not there yet.
    /// Never fails: errors end up in the status, the old version keeps serving.
    pub async fn reload(&self, dep: &Arc<Deployment>) {
        let _guard = dep.reload.lock().await;
        let spec = dep.spec();
        let target = match self.target_version(&spec).await {
            Ok(v) => v,
            Err(e) => {
                dep.set_status(|s| {
                    s.state = if dep.active().is_some() {
                        "degraded".into()
                    } else {
                        "failed".into()
                    };
                    s.error = Some(format!("cannot resolve the target version: {}", e.message));
                });
                return;
            }
        };
        if dep.active().map(|a| a.version == target).unwrap_or(false)
            && dep.status().error.is_none()
        {
            return;
        }
        dep.set_status(|s| {
            s.target_version = Some(target.clone());
            if dep.active().is_none() {
                s.state = "loading".into();
            }
        });
        let started = Instant::now();
        match self.load_version(&dep.name, &spec, &target).await {
            Ok(worker) => {
                let secs = started.elapsed().as_secs_f64();
                metrics::histogram!("slipway_model_load_seconds", "deployment" => dep.name.clone())
                    .record(secs);
                let loaded = Arc::new(LoadedVersion {
                    version: target.clone(),
                    worker,
                    load_seconds: secs,
                });
                if let Ok(mut a) = dep.active.write() {
                    *a = Some(loaded);
                }
                tracing::info!(deployment = %dep.name, version = %target, load_seconds = secs, "deployment serving new version");
                dep.set_status(|s| {
                    s.state = "ready".into();
                    s.serving_version = Some(target);
                    s.error = None;
                });
            }
            Err(e) => {
                metrics::counter!("slipway_model_load_failures_total", "deployment" => dep.name.clone()).increment(1);
                tracing::warn!(deployment = %dep.name, version = %target, error = %e.message, "model load failed; previous version keeps serving");
                dep.set_status(|s| {
                    s.state = if dep.active().is_some() {
                        "degraded".into()
                    } else {
                        "failed".into()
                    };
                    s.error = Some(format!("version {target}: {}", e.message));
                });
            }
        }
    }

    /// Fetches, verifies, loads and warms up one model version.
    async fn load_version(
        &self,
        name: &str,
        spec: &DeploymentSpec,
        version: &str,
    ) -> Result<ModelWorker, Error> {
        let runtime = self.runtime().await?;
        let uri = resolve_download_uri_with(self.store.as_ref(), &spec.model, version).await?;
        let prefix = uri
            .strip_prefix("mlflow-artifacts:")
            .map(|p| p.trim_start_matches('/').trim_end_matches('/').to_string())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "model source '{uri}' is not in Slipway's artifact store"
                ))
            })?;
        let mlmodel_text = match self.fetch(&format!("{prefix}/MLmodel")).await {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.code == ErrorCode::ResourceDoesNotExist => None,
            Err(e) => return Err(e),
        };
        let mlflow_sig = match &mlmodel_text {
            Some(t) => MlflowSignature::from_mlmodel_yaml(t).map_err(to_error)?,
            None => None,
        };
        let model_file = mlmodel_text
            .as_deref()
            .and_then(onnx_data_file)
            .unwrap_or_else(|| "model.onnx".to_string());
        let onnx_path = format!("{prefix}/{model_file}");
        let (local, _sha) = self.cached_file(&onnx_path).await?;
        let ranges = self.ranges(&prefix, &spec.model, version).await?;
        let mv = self.store.get_model_version(&spec.model, version).await?;
        let tag = |k: &str| {
            mv.tags
                .iter()
                .find(|t| t.key == k)
                .map(|t| t.value.eq_ignore_ascii_case("true"))
                .unwrap_or(false)
        };
        let policy = Policy {
            allow_nan: tag("slipway.allow_nan"),
            allow_inf: tag("slipway.allow_inf"),
            out_of_range: match spec.range_policy {
                RangePolicy::Flag => RangeAction::Flag,
                RangePolicy::Reject => RangeAction::Reject,
                RangePolicy::Ignore => RangeAction::Ignore,
            },
            ..Policy::default()
        };
        let options = LoadOptions {
            intra_op_threads: self.settings.intra_op_threads,
            optimization_level: self.settings.optimization_level,
        };
        let config = WorkerConfig {
            name: format!("{name}-v{version}"),
            queue_capacity: spec.queue_capacity.unwrap_or(self.settings.queue_capacity),
            max_batch_size: spec.max_batch_size.unwrap_or(self.settings.max_batch_size),
            max_queue_delay: Duration::from_micros(spec.max_queue_delay_us),
            warmup: true,
            policy,
        };
        tokio::task::spawn_blocking(move || {
            let model = runtime.load_file(&local, &options).map_err(to_error)?;
            let mut sig = Signature::resolve(model.signature().clone(), mlflow_sig.as_ref());
            sig.ranges = ranges;
            ModelWorker::start(model, sig, config).map_err(to_error)
        })
        .await
        .map_err(|e| Error::internal(format!("model loading task failed: {e}")))?
    }

    /// Per-feature ranges: the version tag `slipway.feature_ranges`, else the
    /// `slipway.ranges.json` artifact next to MLmodel, else none.
    async fn ranges(
        &self,
        prefix: &str,
        model: &str,
        version: &str,
    ) -> Result<FeatureRanges, Error> {
        let mv = self.store.get_model_version(model, version).await?;
        if let Some(t) = mv.tags.iter().find(|t| t.key == "slipway.feature_ranges") {
            return FeatureRanges::from_json(&t.value).map_err(|e| {
                Error::invalid(format!("model version tag slipway.feature_ranges: {e}"))
            });
        }
        match self.fetch(&format!("{prefix}/slipway.ranges.json")).await {
            Ok(bytes) => FeatureRanges::from_json(&String::from_utf8_lossy(&bytes))
                .map_err(|e| Error::invalid(format!("slipway.ranges.json: {e}"))),
            Err(e) if e.code == ErrorCode::ResourceDoesNotExist => Ok(FeatureRanges::default()),
            Err(e) => Err(e),
        }
    }

    /// Reads an artifact with retries and backoff (the store may be briefly unreachable).
    async fn fetch(&self, path: &str) -> Result<bytes::Bytes, Error> {
        let p = ArtifactPath::parse(path).map_err(|e| Error::invalid(e.to_string()))?;
        let mut delay = Duration::from_millis(100);
        let mut last = None;
        for attempt in 0..4 {
            match self.artifacts.get_bytes(&p).await {
                Ok(b) => return Ok(b),
                Err(e) if e.code() == ErrorCode::ResourceDoesNotExist => {
                    return Err(Error::not_found(format!("artifact {path} not found")))
                }
                Err(e) => {
                    tracing::warn!(path, attempt, error = %e, "artifact fetch failed; retrying");
                    last = Some(e);
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Err(Error::new(
            ErrorCode::TemporarilyUnavailable,
            format!(
                "artifact store unreachable while fetching {path}: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        ))
    }

    /// Puts a file into the content-addressed cache, verifying its digest
    /// against the one recorded at upload; returns its local path and digest.
    async fn cached_file(&self, path: &str) -> Result<(PathBuf, String), Error> {
        let recorded = self
            .store
            .list_artifact_digests(path)
            .await?
            .into_iter()
            .find(|d| d.path == path)
            .map(|d| d.sha256);
        if let Some(sha) = &recorded {
            let local = self.settings.cache_dir.join(format!("{sha}.onnx"));
            if local.is_file() {
                return Ok((local, sha.clone()));
            }
        }
        let bytes = self.fetch(path).await?;
        let sha = hex::encode(Sha256::digest(&bytes));
        match &recorded {
            Some(expected) if *expected != sha => {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    format!("digest mismatch for {path}: registry recorded {expected}, fetched {sha}; refusing to load"),
                ));
            }
            Some(_) => {}
            None => tracing::warn!(
                path,
                "no digest recorded for this artifact; loading without verification"
            ),
        }
        let dir = self.settings.cache_dir.clone();
        let local = dir.join(format!("{sha}.onnx"));
        let tmp = dir.join(format!(".{sha}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let target = local.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &target)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(|e| Error::internal(format!("writing model cache {}: {e}", local.display())))?;
        Ok((local, sha))
    }

    /// Loads every stored deployment (at start-up).
    pub async fn restore_all(&self) -> Result<(), Error> {
        self.sync_once().await
    }

    /// One pass: pick up deployments created or deleted elsewhere, and reload
    /// those whose target version changed.
    pub async fn sync_once(&self) -> Result<(), Error> {
        let records = self.store.list_deployments().await?;
        let mut wanted = Vec::new();
        for rec in &records {
            match serde_json::from_value::<DeploymentSpec>(rec.spec.clone()) {
                Ok(spec) => {
                    let dep = match self.get(&rec.name) {
                        Some(d) if d.spec() == spec => d,
                        _ => self.install(&rec.name, spec),
                    };
                    wanted.push(rec.name.clone());
                    self.reload(&dep).await;
                }
                Err(e) => {
                    tracing::error!(deployment = %rec.name, error = %e, "stored deployment spec is invalid; skipped")
                }
            }
        }
        if let Ok(mut map) = self.deployments.write() {
            map.retain(|name, _| wanted.contains(name));
        }
        Ok(())
    }

    /// Runs [`Self::sync_once`] every poll interval until the process ends.
    pub fn spawn_follower(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.settings.poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.sync_once().await {
                    tracing::warn!(error = %e, "deployment sync failed");
                }
            }
        });
    }
}

/// The `data` file of the MLmodel's `onnx` flavor.
fn onnx_data_file(mlmodel: &str) -> Option<String> {
    let mut in_onnx = false;
    for line in mlmodel.lines() {
        if line.starts_with("  onnx:") {
            in_onnx = true;
            continue;
        }
        if in_onnx {
            if !line.starts_with("    ") {
                break;
            }
            if let Some(v) = line.trim().strip_prefix("data:") {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

/// Directories whose `.venv` may hold the onnxruntime wheel: the working
/// directory and the executable's directory (and their parents).
fn ort_search_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        roots.push(dir);
    }
    roots
}

/// Checks a deployment name (it becomes a URL segment and a metric label).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid deployment name '{name}': use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation_names_the_field() {
        let mut spec = DeploymentSpec {
            model: "iris".into(),
            alias: Some("champion".into()),
            version: None,
            max_batch_size: Some(0),
            max_queue_delay_us: 0,
            queue_capacity: None,
            range_policy: RangePolicy::Flag,
        };
        assert!(spec
            .validate()
            .is_err_and(|e| e.message.contains("max_batch_size")));
        spec.max_batch_size = None;
        assert!(spec.validate().is_ok());
        spec.version = Some("1".into());
        assert!(spec
            .validate()
            .is_err_and(|e| e.message.contains("not both")));
        assert!(validate_name("iris-v2").is_ok() && validate_name("../x").is_err());
    }

    #[test]
    fn finds_onnx_data_file() {
        let y = "flavors:\n  onnx:\n    code: null\n    data: model.onnx\n  python_function:\n    data: x\n";
        assert_eq!(onnx_data_file(y).as_deref(), Some("model.onnx"));
    }
}
