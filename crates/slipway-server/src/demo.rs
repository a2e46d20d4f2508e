//! The demo model: iris (scikit-learn StandardScaler + LogisticRegression,
//! exported by skl2onnx with its default ZipMap), produced by
//! `scripts/make-demo-model.py` into `models/demo/iris/` and embedded in the
//! binary. On `slipway up` (unless `--no-demo`) it is registered exactly as
//! `mlflow.onnx.log_model` would do it — experiment `demo`, a run, a logged
//! model with its files uploaded through the artifact store (digests
//! recorded), registered model `iris` version 1 with alias `champion` and the
//! training data's per-feature ranges — and deployed as `iris`. It happens
//! once per data store (setting `demo_installed`), so deleting the demo later
//! is respected.

use bytes::Bytes;
use slipway_artifacts::{ArtifactPath, ArtifactStore};
use slipway_core::{Error, LoggedModelStatus, Tag};
use slipway_metadata::{ArtifactDigest, MetadataStore, NewLoggedModel, NewModelVersion, NewRun};
use slipway_serving::{DeploymentManager, DeploymentSpec};

/// Name of the demo's registered model and deployment.
pub const DEMO_NAME: &str = "iris";
/// Alias the demo deployment follows.
pub const DEMO_ALIAS: &str = "champion";
const INSTALLED: &str = "demo_installed";

/// The files of the demo model, as `mlflow.onnx.save_model` lays them out.
const FILES: [(&str, &[u8]); 7] = [
    (
        "MLmodel",
        include_bytes!("../../../models/demo/iris/MLmodel"),
    ),
    (
        "model.onnx",
        include_bytes!("../../../models/demo/iris/model.onnx"),
    ),
    (
        "conda.yaml",
        include_bytes!("../../../models/demo/iris/conda.yaml"),
    ),
    (
        "python_env.yaml",
        include_bytes!("../../../models/demo/iris/python_env.yaml"),
    ),
    (
        "requirements.txt",
        include_bytes!("../../../models/demo/iris/requirements.txt"),
    ),
    (
        "input_example.json",
        include_bytes!("../../../models/demo/iris/input_example.json"),
    ),
    (
        "slipway.ranges.json",
        include_bytes!("../../../models/demo/iris/feature_ranges.json"),
    ),
];

/// One example row (the first iris sample), for the banner's curl line.
pub const EXAMPLE_ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

/// Registers and deploys the demo model unless it was installed before.
/// Returns whether it installed it now.
pub async fn install(
    store: &dyn MetadataStore,
    artifacts: &ArtifactStore,
    manager: &DeploymentManager,
) -> Result<bool, Error> {
    if store.get_setting(INSTALLED).await?.is_some() {
        return Ok(false);
    }
    if store.get_registered_model(DEMO_NAME).await.is_ok() {
        store
            .set_setting(INSTALLED, "skipped: a model named iris already existed")
            .await?;
        return Ok(false);
    }
    let experiment_id = match store.get_experiment_by_name("demo").await? {
        Some(e) => e.experiment_id,
        None => store.create_experiment("demo", None, &[]).await?,
    };
    let run = store
        .create_run(NewRun {
            experiment_id: experiment_id.clone(),
            user_id: "slipway".into(),
            run_name: Some("iris-demo".into()),
            start_time: slipway_core::now_millis(),
            tags: vec![Tag {
                key: "mlflow.source.name".into(),
                value: "scripts/make-demo-model.py".into(),
            }],
        })
        .await?;
    let model = store
        .create_logged_model(NewLoggedModel {
            experiment_id,
            name: Some("model".into()),
            model_type: None,
            source_run_id: Some(run.info.run_id.clone()),
            params: Vec::new(),
            tags: Vec::new(),
            creator_id: None,
        })
        .await?;
    let prefix = model
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .unwrap_or(&model.info.artifact_uri)
        .trim_matches('/')
        .to_string();
    for (name, bytes) in FILES {
        let path = ArtifactPath::parse(&format!("{prefix}/{name}"))
            .map_err(|e| Error::internal(e.to_string()))?;
        let outcome = artifacts
            .put_bytes(&path, Bytes::from_static(bytes))
            .await
            .map_err(|e| Error::internal(format!("uploading demo file {name}: {e}")))?;
        store
            .put_artifact_digest(&ArtifactDigest {
                path: path.as_str().to_string(),
                sha256: outcome.sha256_hex,
                size: outcome.size as i64,
            })
            .await?;
    }
    store
        .finalize_logged_model(&model.info.model_id, LoggedModelStatus::Ready)
        .await?;
    store
        .update_run(
            &run.info.run_id,
            Some(slipway_core::RunStatus::Finished),
            Some(slipway_core::now_millis()),
            None,
        )
        .await?;
    store
        .create_registered_model(
            DEMO_NAME,
            Some("Demo: iris classifier (StandardScaler + LogisticRegression, ONNX). Input float_input [-1, 4]."),
            &[],
            None,
        )
        .await?;
    let mv = store
        .create_model_version(NewModelVersion {
            name: DEMO_NAME.into(),
            source: format!("models:/{}", model.info.model_id),
            run_id: Some(run.info.run_id.clone()),
            model_id: Some(model.info.model_id.clone()),
            ..Default::default()
        })
        .await?;
    store
        .set_registered_model_alias(DEMO_NAME, DEMO_ALIAS, &mv.version)
        .await?;
    store.set_setting(INSTALLED, "installed").await?;
    manager
        .put(DEMO_NAME, DeploymentSpec::following(DEMO_NAME, DEMO_ALIAS))
        .await?;
    Ok(true)
}
