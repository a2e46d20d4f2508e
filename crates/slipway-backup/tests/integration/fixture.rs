//! The committed fixture of backup format version 1
//! (`tests/fixtures/v1`) is read, verified and restored by the current
//! reader: future format versions must keep it readable.
//!
//! Regenerate (only when version 1's writer itself changes, which it must
//! not once released): `cargo test -p slipway-backup --test integration --
//! --ignored write_fixture_v1`.

use std::path::PathBuf;

use slipway_backup::{restore, verify, Location, RestoreOptions, SystemClock, VerifyOptions};
use slipway_metadata::MetadataStore;

use crate::common::{self, progress, stores, upload, Kind};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

#[tokio::test]
async fn format_v1_fixture_reads_verifies_and_restores() {
    // Copy it: verify records its result next to the manifest.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), tmp.path());
    let loc = Location::open(tmp.path().to_str().unwrap(), &common::s3(), false).unwrap();
    let m = loc.resolve(None).await.unwrap();
    assert_eq!(m.format_version, 1);
    assert_eq!(m.counts()["runs"], 1);
    let report = verify(
        &loc,
        &m,
        &VerifyOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.model_versions, 1);
    let dst = stores(Kind::Local).await;
    restore(
        &loc,
        &m,
        &dst.target(),
        &RestoreOptions::default(),
        &progress(),
    )
    .await
    .unwrap();
    let mv = dst
        .store
        .get_model_version_by_alias("fixture-model", "champion")
        .await
        .unwrap();
    assert_eq!(mv.version, "1");
    let runs = dst
        .store
        .get_experiment_by_name("fixture")
        .await
        .unwrap()
        .expect("experiment");
    assert_eq!(
        runs.tags
            .iter()
            .find(|t| t.key == "purpose")
            .map(|t| t.value.as_str()),
        Some("fixture")
    );
    let bytes = dst
        .artifacts
        .get_bytes(
            &slipway_artifacts::ArtifactPath::parse(&format!(
                "{}/MLmodel",
                model_prefix(&dst).await
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("onnx"));
}

async fn model_prefix(s: &common::Stores) -> String {
    let mv = s
        .store
        .get_model_version("fixture-model", "1")
        .await
        .unwrap();
    let uri = slipway_metadata::registry::resolve_download_uri(&s.store, &mv.name, &mv.version)
        .await
        .unwrap();
    uri.strip_prefix("mlflow-artifacts:")
        .unwrap()
        .trim_matches('/')
        .to_string()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Writes `tests/fixtures/v1` from a small store (run by hand, see above).
#[tokio::test]
#[ignore]
async fn write_fixture_v1() {
    use slipway_core::{Metric, Tag};
    let src = stores(Kind::Local).await;
    let st = &src.store;
    let exp = st
        .create_experiment(
            "fixture",
            None,
            &[Tag {
                key: "purpose".into(),
                value: "fixture".into(),
            }],
        )
        .await
        .unwrap();
    let run = st
        .create_run(slipway_metadata::NewRun {
            experiment_id: exp.clone(),
            user_id: "fixture".into(),
            run_name: Some("fixture-run".into()),
            start_time: 1_764_547_200_000,
            tags: vec![],
        })
        .await
        .unwrap();
    st.log_batch(
        &run.info.run_id,
        &[Metric {
            key: "acc".into(),
            value: 0.97,
            timestamp: 1_764_547_200_000,
            step: 1,
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
            run_id: None,
        }],
        &[slipway_core::Param {
            key: "lr".into(),
            value: "0.1".into(),
        }],
        &[],
    )
    .await
    .unwrap();
    let m = st
        .create_logged_model(slipway_metadata::NewLoggedModel {
            experiment_id: exp,
            name: Some("model".into()),
            source_run_id: Some(run.info.run_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let p = m
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .unwrap()
        .trim_matches('/')
        .to_string();
    upload(
        &src,
        &format!("{p}/MLmodel"),
        b"flavors:\n  onnx:\n    data: model.onnx\n".to_vec(),
    )
    .await;
    upload(
        &src,
        &format!("{p}/model.onnx"),
        b"not really onnx".to_vec(),
    )
    .await;
    st.finalize_logged_model(&m.info.model_id, slipway_core::LoggedModelStatus::Ready)
        .await
        .unwrap();
    st.create_registered_model("fixture-model", None, &[], None)
        .await
        .unwrap();
    st.create_model_version(slipway_metadata::NewModelVersion {
        name: "fixture-model".into(),
        source: format!("models:/{}", m.info.model_id),
        model_id: Some(m.info.model_id.clone()),
        run_id: Some(run.info.run_id.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    st.set_registered_model_alias("fixture-model", "champion", "1")
        .await
        .unwrap();
    st.put_deployment(
        "fixture",
        &serde_json::json!({"model": "fixture-model", "alias": "champion"}),
    )
    .await
    .unwrap();
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let loc = Location::open(dir.to_str().unwrap(), &common::s3(), true).unwrap();
    slipway_backup::create(
        &src.source(),
        &loc,
        &Default::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(dir.join(".slipway-tmp"));
}
