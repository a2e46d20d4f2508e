//! Test support: a registry (SQLite + a local artifact store in a temp
//! dir), deployment managers over it, a monitor, and predictions.

use bytes::Bytes;
use slipway_artifacts::{ArtifactPath, ArtifactStore, ArtifactStoreConfig};
use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::{ArtifactDigest, MetadataStore, NewModelVersion};
use slipway_monitor::{LogSettings, Monitor, MonitorSettings};
use slipway_runtime::{
    LoadOptions, Model, ModelOutput, OptimizationLevel, Runtime, RuntimeError, Tensor, TensorData,
};
use slipway_serving::{DeploymentManager, LoaderSettings, Prediction, Role, ServingSettings};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A runtime that loads nothing: the managers here never load models
/// (registry role).
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn name(&self) -> &'static str {
        "none"
    }

    fn load_bytes(&self, _: &[u8], _: &LoadOptions) -> Result<Box<dyn Model>, RuntimeError> {
        Err(RuntimeError::ModelLoad("this test loads no models".into()))
    }

    fn load_file(&self, _: &Path, _: &LoadOptions) -> Result<Box<dyn Model>, RuntimeError> {
        Err(RuntimeError::ModelLoad("this test loads no models".into()))
    }
}

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Arc<ArtifactStore>,
}

/// An `MLmodel` with the onnx flavor and no signature.
pub const MLMODEL_ONNX: &str =
    "flavors:\n  onnx:\n    data: model.onnx\n  python_function:\n    loader_module: mlflow.onnx\n";

/// An `MLmodel` whose tensor signature has input `x` FP32 `[-1, 2]` and
/// outputs `score` FP32 `[-1, 1]` and `label` INT64 `[-1]`.
pub const MLMODEL_SIGNED: &str = r#"flavors:
  onnx:
    data: model.onnx
  python_function:
    loader_module: mlflow.onnx
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "x"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}, "name": "score"}, {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}, "name": "label"}]'
"#;

impl Registry {
    pub async fn new() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/meta.db", dir.path().display());
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqlStore::connect(&url, SqlOptions::default())
                .await
                .unwrap(),
        );
        let artifacts = Arc::new(
            ArtifactStore::open(&ArtifactStoreConfig::new(
                dir.path().join("artifacts").display().to_string(),
            ))
            .unwrap(),
        );
        Registry {
            dir,
            store,
            artifacts,
        }
    }

    /// A manager that stores deployments but loads no model (registry role).
    pub fn registry_manager(&self) -> Arc<DeploymentManager> {
        Arc::new(DeploymentManager::new(
            self.store.clone(),
            self.artifacts.clone(),
            Arc::new(NoRuntime),
            ServingSettings {
                loader: LoaderSettings {
                    intra_op_threads: None,
                    optimization_level: OptimizationLevel::All,
                    cache_dir: self.dir.path().join("cache"),
                    queue_capacity: 64,
                    max_batch_size: 64,
                    inline_max: Duration::ZERO,
                },
                poll_interval: Duration::from_millis(100),
                load_models: false,
                replica_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
                log_fraction: 1.0,
            },
        ))
    }

    async fn upload(&self, path: &str, bytes: Vec<u8>) {
        let p = ArtifactPath::parse(path).unwrap();
        let out = self
            .artifacts
            .put_bytes(&p, Bytes::from(bytes))
            .await
            .unwrap();
        self.store
            .put_artifact_digest(&ArtifactDigest {
                path: path.into(),
                sha256: out.sha256_hex,
                size: out.size as i64,
            })
            .await
            .unwrap();
    }

    /// Registers a version of `model` whose directory holds `mlmodel` and a
    /// model file; returns the version.
    pub async fn version_with(&self, model: &str, mlmodel: &str) -> String {
        if self.store.get_registered_model(model).await.is_err() {
            self.store
                .create_registered_model(model, None, &[], None)
                .await
                .unwrap();
        }
        let prefix = format!("models/{model}/{}", uuid::Uuid::new_v4().simple());
        self.upload(&format!("{prefix}/MLmodel"), mlmodel.as_bytes().to_vec())
            .await;
        self.upload(&format!("{prefix}/model.onnx"), b"not loaded here".to_vec())
            .await;
        self.store
            .create_model_version(NewModelVersion {
                name: model.into(),
                source: format!("mlflow-artifacts:/{prefix}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .version
    }

    pub async fn alias(&self, model: &str, alias: &str, version: &str) {
        self.store
            .set_registered_model_alias(model, alias, version)
            .await
            .unwrap();
    }
}

/// Settings whose log writes only when asked (an hour's age, a million rows).
pub fn settings(buffer_rows: u64) -> MonitorSettings {
    MonitorSettings {
        log: LogSettings {
            buffer_rows,
            flush_rows: 1_000_000,
            flush_interval: Duration::from_secs(3600),
        },
        retention_days: 30,
        drift_window_seconds: 3600,
        drift_min_rows: 100,
        drift_reference_rows: 1000,
        drift_sample_limit: 10_000,
        performance_window_seconds: 86_400,
        feedback_lookback_hours: 24,
    }
}

pub fn monitor(reg: &Registry, mgr: &Arc<DeploymentManager>, s: MonitorSettings) -> Arc<Monitor> {
    Monitor::start(reg.artifacts.clone(), mgr, s)
}

/// A served request of `rows` rows of deployment `d`, version 1.
pub fn prediction(d: &str, id: usize, rows: usize) -> Prediction {
    let x: Vec<f32> = (0..rows * 2).map(|i| (id * 10 + i) as f32).collect();
    Prediction {
        deployment: Arc::from(d),
        version: "1".into(),
        role: Role::Stable,
        request_id: Arc::from(format!("req-{id}")),
        time: SystemTime::now(),
        latency: Duration::from_millis(1),
        status: 200,
        inputs: vec![Tensor::new("x", vec![rows as i64, 2], TensorData::Fp32(x)).unwrap()],
        outputs: vec![ModelOutput::plain(
            Tensor::new("label", vec![rows as i64], TensorData::Int64(vec![1; rows])).unwrap(),
        )],
    }
}

/// Rows of deployment `d` in the log's files.
pub async fn logged_rows(store: &ArtifactStore, d: &str) -> usize {
    let found = slipway_monitor::files::prediction_files(store, d, None, 0, i64::MAX)
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
