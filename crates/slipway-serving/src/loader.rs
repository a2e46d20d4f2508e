//! Loading one model version: resolve its files in the registry, fetch them
//! from the artifact store (with retries) into a content-addressed local
//! cache, verify each against the SHA-256 recorded at upload, load the model
//! through the [`Runtime`] trait, warm it up with a real inference and start
//! its worker.
//!
//! Failures are classified ([`LoadError::permanent`]): a version without an
//! `onnx` flavor, a missing or corrupt model file, a digest mismatch or a
//! model the runtime rejects will fail the same way every time, so callers
//! do not retry them until the target changes; an unreachable artifact store
//! or a missing runtime library may heal, so callers retry with backoff.
//! Messages name artifacts, never local paths (those are logged).

use crate::spec::{DeploymentSpec, RangePolicy};
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactPath, ArtifactStore};
use slipway_core::{Error, ErrorCode};
use slipway_metadata::MetadataStore;
use slipway_runtime::{
    FeatureRanges, LoadOptions, MlflowSignature, MlmodelFlavors, ModelWorker, OptimizationLevel,
    Policy, RangeAction, Runtime, Signature, WorkerConfig,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the loader and the deployments it feeds.
#[derive(Debug, Clone)]
pub struct LoaderSettings {
    /// Intra-op threads per model (`None`: the runtime decides).
    pub intra_op_threads: Option<usize>,
    /// Graph optimization level.
    pub optimization_level: OptimizationLevel,
    /// Directory of the content-addressed model cache.
    pub cache_dir: PathBuf,
    /// Default queue capacity per deployment.
    pub queue_capacity: usize,
    /// Default `max_batch_size` per deployment.
    pub max_batch_size: usize,
    /// Runs predicted to take at most this long go on the caller's thread
    /// ([`WorkerConfig::inline_max`]); zero never.
    pub inline_max: Duration,
}

/// Why a version could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// What failed, safe to show to any client.
    pub message: String,
    /// True when retrying cannot help until the registry or spec changes.
    pub permanent: bool,
}

impl LoadError {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// From a store error: lookups of things that do not exist are
    /// permanent, store outages transient.
    fn from_store(e: Error) -> Self {
        match e.code {
            ErrorCode::TemporarilyUnavailable | ErrorCode::InternalError => {
                Self::transient(e.message)
            }
            _ => Self::permanent(e.message),
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        let code = if e.permanent {
            ErrorCode::InvalidState
        } else {
            ErrorCode::TemporarilyUnavailable
        };
        Error::new(code, e.message)
    }
}

/// What a load needs to know about the model version, checked without
/// loading it (the `PUT` of a deployment checks this first).
#[derive(Debug, Clone)]
pub struct VersionFiles {
    /// Artifact prefix of the model directory.
    pub prefix: String,
    /// The `MLmodel` text, if the directory has one.
    pub mlmodel: Option<String>,
    /// The ONNX file, relative to the artifact root.
    pub onnx_path: String,
}

/// Loads model versions for deployments.
pub struct Loader {
    store: Arc<dyn MetadataStore>,
    artifacts: Arc<ArtifactStore>,
    runtime: Arc<dyn Runtime>,
    settings: LoaderSettings,
}

impl Loader {
    /// A loader over the registry, the artifact store and a runtime.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        artifacts: Arc<ArtifactStore>,
        runtime: Arc<dyn Runtime>,
        settings: LoaderSettings,
    ) -> Self {
        Self {
            store,
            artifacts,
            runtime,
            settings,
        }
    }

    /// The loader's settings.
    pub fn settings(&self) -> &LoaderSettings {
        &self.settings
    }

    /// Finds the version's model files and checks that they can be served
    /// at all: an `onnx` flavor (when there is an MLmodel) and the model
    /// file present. Cheap: reads MLmodel and stats one file.
    pub async fn inspect(&self, model: &str, version: &str) -> Result<VersionFiles, LoadError> {
        let uri =
            slipway_metadata::registry::resolve_download_uri(self.store.as_ref(), model, version)
                .await
                .map_err(LoadError::from_store)?;
        let prefix = uri
            .strip_prefix("mlflow-artifacts:")
            .map(|p| p.trim_start_matches('/').trim_end_matches('/').to_string())
            .ok_or_else(|| {
                LoadError::permanent(format!(
                    "version {version} of '{model}' has source '{uri}', which is not in Slipway's artifact store; register models logged to this server"
                ))
            })?;
        let mlmodel = match self.fetch(&format!("{prefix}/MLmodel")).await {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.permanent && e.message.ends_with("not found") => None,
            Err(e) => return Err(e),
        };
        let model_file = match &mlmodel {
            Some(text) => {
                let flavors = MlmodelFlavors::from_mlmodel_yaml(text).map_err(|e| {
                    LoadError::permanent(format!(
                        "the MLmodel file of version {version} of '{model}' cannot be read: {e}"
                    ))
                })?;
                if !flavors.has("onnx") {
                    return Err(LoadError::permanent(format!(
                        "version {version} of '{model}' has no onnx flavor (its flavors: {}); Slipway serves ONNX models: convert it (for scikit-learn, skl2onnx: `onx = skl2onnx.to_onnx(model, X[:1])`) and log it with mlflow.onnx.log_model(onx, ...)",
                        if flavors.0.is_empty() {
                            "none".to_string()
                        } else {
                            flavors.names().join(", ")
                        }
                    )));
                }
                flavors
                    .data_file("onnx")
                    .unwrap_or("model.onnx")
                    .to_string()
            }
            None => "model.onnx".to_string(),
        };
        let onnx_path = format!("{prefix}/{model_file}");
        let p = ArtifactPath::parse(&onnx_path).map_err(|e| LoadError::permanent(e.to_string()))?;
        match self.artifacts.exists(&p).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(LoadError::permanent(format!(
                    "version {version} of '{model}' names model file {onnx_path}, which is not in the artifact store"
                )))
            }
            Err(e) => {
                tracing::warn!(path = %onnx_path, error = %e, "artifact store check failed");
                return Err(LoadError::transient(format!(
                    "artifact store unreachable while checking {onnx_path}"
                )));
            }
        }
        Ok(VersionFiles {
            prefix,
            mlmodel,
            onnx_path,
        })
    }

    /// Fetches, verifies, loads and warms up one model version for the
    /// deployment `name`.
    pub async fn load(
        &self,
        name: &str,
        spec: &DeploymentSpec,
        version: &str,
    ) -> Result<ModelWorker, LoadError> {
        let files = self.inspect(&spec.model, version).await?;
        let mlflow_sig = match &files.mlmodel {
            Some(t) => MlflowSignature::from_mlmodel_yaml(t).map_err(|e| {
                LoadError::permanent(format!("the MLmodel signature cannot be read: {e}"))
            })?,
            None => None,
        };
        let (local, _key) = self.cached_model(&files).await?;
        let ranges = self.ranges(&files.prefix, &spec.model, version).await?;
        let mv = self
            .store
            .get_model_version(&spec.model, version)
            .await
            .map_err(LoadError::from_store)?;
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
            inline_max: self.settings.inline_max,
        };
        let runtime = self.runtime.clone();
        let artifact = files.onnx_path.clone();
        let artifact_dir = files.prefix.clone();
        tokio::task::spawn_blocking(move || {
            let hide = |e: slipway_runtime::RuntimeError| -> LoadError {
                let raw = e.to_string();
                tracing::warn!(file = %local.display(), error = %raw, "model failed to load");
                // name the artifact, never the local cache
                let mut shown = raw.replace(&local.display().to_string(), &artifact);
                if let Some(dir) = local.parent() {
                    shown = shown.replace(&dir.display().to_string(), &artifact_dir);
                }
                if let Some(root) = local.parent().and_then(|d| d.parent()) {
                    shown = shown.replace(&root.display().to_string(), "<model cache>");
                }
                match e {
                    slipway_runtime::RuntimeError::LibraryNotFound { .. }
                    | slipway_runtime::RuntimeError::LibraryLoad { .. } => LoadError::transient(
                        "the ONNX Runtime library is not available on this server (see its log)",
                    ),
                    _ if shown.contains(&artifact) => LoadError::permanent(shown),
                    _ => LoadError::permanent(format!("model file {artifact}: {shown}")),
                }
            };
            let model = runtime.load_file(&local, &options).map_err(hide)?;
            let mut sig = Signature::resolve(model.signature().clone(), mlflow_sig.as_ref());
            sig.ranges = ranges;
            ModelWorker::start(model, sig, config).map_err(hide)
        })
        .await
        .map_err(|e| LoadError::transient(format!("model loading task failed: {e}")))?
    }

    /// Per-feature ranges: the version tag `slipway.feature_ranges`, else the
    /// `slipway.ranges.json` artifact next to MLmodel, else none.
    async fn ranges(
        &self,
        prefix: &str,
        model: &str,
        version: &str,
    ) -> Result<FeatureRanges, LoadError> {
        let mv = self
            .store
            .get_model_version(model, version)
            .await
            .map_err(LoadError::from_store)?;
        if let Some(t) = mv.tags.iter().find(|t| t.key == "slipway.feature_ranges") {
            return FeatureRanges::from_json(&t.value).map_err(|e| {
                LoadError::permanent(format!("model version tag slipway.feature_ranges: {e}"))
            });
        }
        match self.fetch(&format!("{prefix}/slipway.ranges.json")).await {
            Ok(bytes) => FeatureRanges::from_json(&String::from_utf8_lossy(&bytes))
                .map_err(|e| LoadError::permanent(format!("slipway.ranges.json: {e}"))),
            Err(e) if e.permanent && e.message.ends_with("not found") => {
                Ok(FeatureRanges::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Reads an artifact with retries and backoff (the store may be briefly
    /// unreachable). A missing artifact is a permanent error ending in
    /// "not found".
    pub async fn fetch(&self, path: &str) -> Result<bytes::Bytes, LoadError> {
        let p = ArtifactPath::parse(path).map_err(|e| LoadError::permanent(e.to_string()))?;
        let mut delay = Duration::from_millis(100);
        let mut last = None;
        for attempt in 0..4 {
            match self.artifacts.get_bytes(&p).await {
                Ok(b) => return Ok(b),
                Err(e) if e.code() == ErrorCode::ResourceDoesNotExist => {
                    return Err(LoadError::permanent(format!("artifact {path} not found")))
                }
                Err(e) => {
                    tracing::warn!(path, attempt, error = %e, "artifact fetch failed; retrying");
                    last = Some(e);
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Err(LoadError::transient(format!(
            "artifact store unreachable while fetching {path}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Mirrors the model directory (the model file and the files next to
    /// it, such as ONNX external data, but not MLflow's environment files)
    /// into the content-addressed cache, verifying each file against the
    /// digest recorded at upload; returns the local model file and the
    /// cache key (a digest over every file's name and digest).
    async fn cached_model(&self, files: &VersionFiles) -> Result<(PathBuf, String), LoadError> {
        let prefix = files.prefix.as_str();
        let model_rel = files
            .onnx_path
            .strip_prefix(prefix)
            .unwrap_or(&files.onnx_path)
            .trim_start_matches('/')
            .to_string();
        let recorded: std::collections::BTreeMap<String, String> = self
            .store
            .list_artifact_digests(&format!("{prefix}/"))
            .await
            .map_err(LoadError::from_store)?
            .into_iter()
            .filter_map(|d| {
                let rel = d.path.strip_prefix(prefix)?.strip_prefix('/')?.to_string();
                Some((rel, d.sha256))
            })
            .collect();
        let mut wanted = self.list_model_files(prefix).await?;
        wanted.retain(|rel| rel == &model_rel || !is_environment_file(rel));
        if !wanted.contains(&model_rel) {
            wanted.push(model_rel.clone());
        }
        wanted.sort();
        // every file's digest known: the cache entry may exist already
        if wanted.iter().all(|rel| recorded.contains_key(rel)) {
            let key = cache_key(
                wanted
                    .iter()
                    .map(|rel| (rel.as_str(), recorded[rel].as_str())),
            );
            let dir = self.settings.cache_dir.join(&key);
            if dir.join(COMPLETE_MARKER).is_file() {
                return Ok((dir.join(&model_rel), key));
            }
        }
        let mut fetched = Vec::with_capacity(wanted.len());
        for rel in &wanted {
            let path = format!("{prefix}/{rel}");
            let bytes = self.fetch(&path).await?;
            let sha = hex::encode(Sha256::digest(&bytes));
            match recorded.get(rel) {
                Some(expected) if *expected != sha => {
                    return Err(LoadError::permanent(format!(
                        "digest mismatch for {path}: the registry recorded {expected} at upload, the store now holds {sha}; refusing to load"
                    )));
                }
                Some(_) => {}
                None => tracing::warn!(
                    path,
                    "no digest recorded for this artifact; loading without verification"
                ),
            }
            fetched.push((rel.clone(), sha, bytes));
        }
        let key = cache_key(
            fetched
                .iter()
                .map(|(rel, sha, _)| (rel.as_str(), sha.as_str())),
        );
        let root = self.settings.cache_dir.clone();
        let dir = root.join(&key);
        let tmp = root.join(format!(".{key}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let final_dir = dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if final_dir.join(COMPLETE_MARKER).is_file() {
                return Ok(());
            }
            for (rel, _, bytes) in &fetched {
                let file = tmp.join(rel);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&file, bytes)?;
            }
            std::fs::write(tmp.join(COMPLETE_MARKER), b"")?;
            if final_dir.exists() {
                // an incomplete leftover of a crash: replace it
                std::fs::remove_dir_all(&final_dir)?;
            }
            match std::fs::rename(&tmp, &final_dir) {
                Ok(()) => Ok(()),
                // another load won the race with the same content
                Err(_) if final_dir.join(COMPLETE_MARKER).is_file() => {
                    std::fs::remove_dir_all(&tmp)
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| LoadError::transient(format!("model cache task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(dir = %dir.display(), error = %e, "cannot write the model cache");
            LoadError::transient("cannot write the local model cache (see the server log)")
        })?;
        Ok((dir.join(&model_rel), key))
    }

    /// Files under the model directory (relative paths), at most a few
    /// levels deep.
    async fn list_model_files(&self, prefix: &str) -> Result<Vec<String>, LoadError> {
        let mut out = Vec::new();
        let mut dirs = vec![(String::new(), 0usize)];
        while let Some((rel_dir, depth)) = dirs.pop() {
            let full = if rel_dir.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}/{rel_dir}")
            };
            let p = ArtifactPath::parse(&full).map_err(|e| LoadError::permanent(e.to_string()))?;
            let entries = self.artifacts.list_dir(Some(&p)).await.map_err(|e| {
                tracing::warn!(path = %full, error = %e, "listing the model directory failed");
                LoadError::transient(format!("artifact store unreachable while listing {full}"))
            })?;
            for e in entries {
                let rel = if rel_dir.is_empty() {
                    e.path.clone()
                } else {
                    format!("{rel_dir}/{}", e.path)
                };
                if e.is_dir {
                    if depth < 4 {
                        dirs.push((rel, depth + 1));
                    }
                } else {
                    out.push(rel);
                }
            }
        }
        Ok(out)
    }
}

/// Written last into a cache entry: its files are complete.
const COMPLETE_MARKER: &str = ".complete";

/// Files of an MLflow model directory that serving never needs.
fn is_environment_file(rel: &str) -> bool {
    matches!(
        rel,
        "MLmodel"
            | "conda.yaml"
            | "python_env.yaml"
            | "requirements.txt"
            | "input_example.json"
            | "serving_input_example.json"
            | "registered_model_meta"
    ) || rel.starts_with("slipway.")
}

/// A cache key over the files' names and digests.
fn cache_key<'a>(files: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (rel, sha) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}
