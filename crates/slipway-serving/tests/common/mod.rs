//! Test support: a fake [`Runtime`] whose models a test describes in the
//! "model file" itself, and a registry (SQLite + local artifact store in a
//! temp dir) to register such models in.
//!
//! A fake model file is JSON: `{"weights": [a, b], "latency_ms": 0,
//! "fail_every": 0, "flip": false}`. The model has input `x` FP32 `[-1, 2]`
//! and outputs `score` FP32 `[-1, 1]` = `a*x0 + b*x1` and `label` INT64
//! `[-1]` = `score > 0` (inverted with `flip`). `latency_ms` sleeps per run;
//! `fail_every: n` fails every n-th run. A file that is not such JSON fails
//! to load with a message naming the local path (as ONNX Runtime does), so
//! tests can check that paths never reach clients. `LOADS` counts loads.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use serde::Deserialize;
use slipway_artifacts::{ArtifactPath, ArtifactStore, ArtifactStoreConfig};
use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::{ArtifactDigest, MetadataStore, NewModelVersion};
use slipway_runtime::{
    DataType, LoadOptions, Model, ModelOutput, OptimizationLevel, Runtime, RuntimeError, Signature,
    Tensor, TensorData, TensorSpec,
};
use slipway_serving::{DeploymentManager, LoaderSettings, ServingSettings};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Default)]
pub struct FakeSpec {
    pub weights: [f32; 2],
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub fail_every: u64,
    #[serde(default)]
    pub flip: bool,
    /// Record the thread (name, scheduling policy) of every run but the
    /// warm-up in [`RUN_THREADS`].
    #[serde(default)]
    pub record_threads: bool,
}

/// Threads that ran models with `record_threads`: name and scheduling
/// policy.
pub static RUN_THREADS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

/// `SCHED_BATCH` and `SCHED_IDLE` as `/proc` shows them.
pub const SCHED_BATCH: u32 = 3;
pub const SCHED_IDLE: u32 = 5;

/// The calling thread's scheduling policy (field 41 of
/// `/proc/thread-self/stat`).
pub fn thread_policy() -> u32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    // fields from the third (state) on
    after.split(' ').nth(41 - 3).unwrap().parse().unwrap()
}

pub struct FakeModel {
    spec: FakeSpec,
    sig: Signature,
    runs: u64,
}

pub fn fake_signature() -> Signature {
    Signature::new(
        vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 2])],
        vec![
            TensorSpec::new("score", DataType::Fp32, vec![-1, 1]),
            TensorSpec::new("label", DataType::Int64, vec![-1]),
        ],
    )
}

impl Model for FakeModel {
    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError> {
        self.runs += 1;
        if self.spec.record_threads && self.runs > 1 {
            let name = std::thread::current().name().unwrap_or("").to_string();
            RUN_THREADS.lock().unwrap().push((name, thread_policy()));
        }
        if self.spec.latency_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.spec.latency_ms));
        }
        // the warm-up run (the first) never fails
        if self.spec.fail_every > 0 && self.runs > 1 && self.runs % self.spec.fail_every == 0 {
            return Err(RuntimeError::Inference("fake failure".into()));
        }
        let x = &inputs[0];
        let rows = x.batch_size().unwrap_or(0);
        let TensorData::Fp32(v) = &x.data else {
            return Err(RuntimeError::Inference("expected FP32".into()));
        };
        let [a, b] = self.spec.weights;
        let scores: Vec<f32> = (0..rows).map(|r| a * v[2 * r] + b * v[2 * r + 1]).collect();
        let labels: Vec<i64> = scores
            .iter()
            .map(|s| i64::from((*s > 0.0) != self.spec.flip))
            .collect();
        Ok(vec![
            ModelOutput::plain(
                Tensor::new("score", vec![rows as i64, 1], TensorData::Fp32(scores)).unwrap(),
            ),
            ModelOutput::plain(
                Tensor::new("label", vec![rows as i64], TensorData::Int64(labels)).unwrap(),
            ),
        ])
    }
}

/// Loads fake models; `transient_failures` makes the next N loads fail as
/// if the runtime library were missing (a transient failure).
#[derive(Default)]
pub struct FakeRuntime {
    pub loads: AtomicUsize,
    pub transient_failures: Mutex<usize>,
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn load_bytes(&self, bytes: &[u8], _: &LoadOptions) -> Result<Box<dyn Model>, RuntimeError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        {
            let mut t = self.transient_failures.lock().unwrap();
            if *t > 0 {
                *t -= 1;
                return Err(RuntimeError::LibraryNotFound {
                    searched: vec!["(fake)".into()],
                });
            }
        }
        let spec: FakeSpec = serde_json::from_slice(bytes)
            .map_err(|e| RuntimeError::ModelLoad(format!("not a fake model: {e}")))?;
        Ok(Box::new(FakeModel {
            spec,
            sig: fake_signature(),
            runs: 0,
        }))
    }

    fn load_file(
        &self,
        path: &Path,
        options: &LoadOptions,
    ) -> Result<Box<dyn Model>, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::ModelLoad(e.to_string()))?;
        self.load_bytes(&bytes, options).map_err(|e| match e {
            // name the local file the way ONNX Runtime does
            RuntimeError::ModelLoad(m) => {
                RuntimeError::ModelLoad(format!("Load model from {} failed: {m}", path.display()))
            }
            other => other,
        })
    }
}

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn MetadataStore>,
    pub artifacts: Arc<ArtifactStore>,
    pub runtime: Arc<FakeRuntime>,
}

pub const MLMODEL_ONNX: &str = "flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17.0\n  python_function:\n    loader_module: mlflow.onnx\n";
pub const MLMODEL_SKLEARN: &str = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n";

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
            runtime: Arc::new(FakeRuntime::default()),
        }
    }

    pub fn manager(&self, load_models: bool) -> Arc<DeploymentManager> {
        Arc::new(DeploymentManager::new(
            self.store.clone(),
            self.artifacts.clone(),
            self.runtime.clone(),
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
                load_models,
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

    /// Registers a version of `model` whose files are `mlmodel` and a
    /// model file holding `model_file`; returns the version.
    pub async fn version_with(&self, model: &str, mlmodel: &str, model_file: &[u8]) -> String {
        if self.store.get_registered_model(model).await.is_err() {
            self.store
                .create_registered_model(model, None, &[], None)
                .await
                .unwrap();
        }
        let prefix = format!("fake/{model}/{}", uuid::Uuid::new_v4().simple());
        self.upload(&format!("{prefix}/MLmodel"), mlmodel.as_bytes().to_vec())
            .await;
        self.upload(&format!("{prefix}/model.onnx"), model_file.to_vec())
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

    /// A working fake version.
    pub async fn version(&self, model: &str, spec: serde_json::Value) -> String {
        self.version_with(model, MLMODEL_ONNX, spec.to_string().as_bytes())
            .await
    }

    pub async fn alias(&self, model: &str, alias: &str, version: &str) {
        self.store
            .set_registered_model_alias(model, alias, version)
            .await
            .unwrap();
    }
}

/// One request of `rows` rows.
pub fn request(rows: usize, x: [f32; 2]) -> Vec<Tensor> {
    let data: Vec<f32> = (0..rows).flat_map(|_| x).collect();
    vec![Tensor::new("x", vec![rows as i64, 2], TensorData::Fp32(data)).unwrap()]
}

/// Sends `n` single-row requests through the deployment's routing, as the
/// server does: route, run, finish (copies go to the mirror queue). Rows
/// alternate in sign so that labels are balanced. Returns how many each
/// version answered.
pub async fn drive(
    mgr: &DeploymentManager,
    name: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let dep = mgr.get(name).expect("deployment");
    let mut by_version = std::collections::BTreeMap::new();
    for i in 0..n {
        let routed = dep.route(None).expect("routed");
        let v = (i as f32 * 0.37).sin() * 2.0;
        let inputs = request(1, [v, 0.5]);
        let copy = routed.wants_inputs().then(|| inputs.clone());
        *by_version
            .entry(routed.version.version.clone())
            .or_default() += 1;
        match routed.version.worker.infer(inputs).await {
            Ok(r) => routed.answered(&r.outputs, copy, mgr.mirror_queue()),
            Err(_) => routed.failed(copy),
        }
    }
    // let queued copies finish
    tokio::time::sleep(Duration::from_millis(50)).await;
    by_version
}
