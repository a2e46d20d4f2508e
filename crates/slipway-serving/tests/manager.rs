//! The deployment lifecycle with a fake model: loads, refusals of versions
//! that can never load, failures that keep the old version serving, backoff,
//! readiness. Registry and artifacts are real (SQLite + a local directory).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{request, Registry, MLMODEL_SKLEARN};
use serde_json::json;
use slipway_runtime::TensorData;
use slipway_serving::{DeploymentSpec, DeploymentState};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn deploys_and_serves_the_alias_target() {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    reg.alias("m", "champion", &v1).await;
    let mgr = reg.manager(true);
    let dep = mgr
        .put("d", DeploymentSpec::following("m", "champion"))
        .await
        .unwrap();
    assert_eq!(dep.status().state, DeploymentState::Ready);
    let active = dep.active().unwrap();
    assert_eq!(active.version, v1);
    let out = active.worker.infer(request(2, [3.0, 1.0])).await.unwrap();
    assert_eq!(out.outputs[0].tensor.data, TensorData::Fp32(vec![3.0, 3.0]));
    assert_eq!(out.outputs[1].tensor.data, TensorData::Int64(vec![1, 1]));

    // the alias moves: the next sync swaps the new version in
    let v2 = reg.version("m", json!({"weights": [2.0, 0.0]})).await;
    reg.alias("m", "champion", &v2).await;
    mgr.sync_once().await.unwrap();
    assert_eq!(dep.active().unwrap().version, v2);
    assert_eq!(dep.status().state, DeploymentState::Ready);
}

#[tokio::test]
async fn versions_that_can_never_load_are_refused_at_put() {
    let reg = Registry::new().await;
    let mgr = reg.manager(true);
    // no onnx flavor
    let v = reg.version_with("sk", MLMODEL_SKLEARN, b"pickle").await;
    let e = mgr
        .put("d", DeploymentSpec::pinned("sk", &v))
        .await
        .unwrap_err();
    assert_eq!(e.code.http_status(), 400, "{}", e.message);
    assert!(
        e.message
            .contains("has no onnx flavor (its flavors: python_function, sklearn)")
            && e.message.contains("skl2onnx"),
        "{}",
        e.message
    );
    assert!(mgr.get("d").is_none());
    assert!(
        reg.store.get_deployment("d").await.is_err(),
        "nothing stored"
    );

    // a model file the runtime rejects: the message names the artifact, never the cache
    let bad = reg
        .version_with("broken", common::MLMODEL_ONNX, b"not json")
        .await;
    let e = mgr
        .put("b", DeploymentSpec::pinned("broken", &bad))
        .await
        .unwrap_err();
    let cache = reg.dir.path().display().to_string();
    assert!(
        !e.message.contains(&cache),
        "local path leaked: {}",
        e.message
    );
    assert!(
        e.message.contains("fake/broken/") && e.message.contains("model.onnx"),
        "{}",
        e.message
    );
    assert_eq!(e.code.http_status(), 400);
}

#[tokio::test]
async fn a_broken_alias_target_keeps_the_old_version_and_is_not_retried() {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    reg.alias("m", "champion", &v1).await;
    let mgr = reg.manager(true);
    let dep = mgr
        .put("d", DeploymentSpec::following("m", "champion"))
        .await
        .unwrap();
    let broken = reg.version_with("m", common::MLMODEL_ONNX, b"{oops").await;
    reg.alias("m", "champion", &broken).await;
    mgr.sync_once().await.unwrap();
    let st = dep.status();
    assert_eq!(st.state, DeploymentState::Degraded);
    assert_eq!(st.serving_version.as_deref(), Some(v1.as_str()));
    assert!(st.error_permanent && st.retry_at.is_none(), "{st:?}");
    assert!(!st
        .error
        .unwrap()
        .contains(&reg.dir.path().display().to_string()));
    let loads = reg.runtime.loads.load(Ordering::SeqCst);
    for _ in 0..3 {
        mgr.sync_once().await.unwrap();
    }
    assert_eq!(
        reg.runtime.loads.load(Ordering::SeqCst),
        loads,
        "permanent failures are not retried"
    );
    assert_eq!(
        dep.active().unwrap().version,
        v1,
        "the old version keeps serving"
    );
    // the alias moves on to a good version: loaded at once
    let v3 = reg.version("m", json!({"weights": [3.0, 0.0]})).await;
    reg.alias("m", "champion", &v3).await;
    mgr.sync_once().await.unwrap();
    assert_eq!(dep.active().unwrap().version, v3);
    assert_eq!(dep.status().state, DeploymentState::Ready);
    assert!(dep.status().error.is_none());
}

#[tokio::test]
async fn transient_failures_back_off_exponentially() {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    reg.alias("m", "champion", &v1).await;
    // stored by another replica; this one fails to load it twice, transiently
    reg.store
        .put_deployment(
            "d",
            &serde_json::to_value(DeploymentSpec::following("m", "champion")).unwrap(),
        )
        .await
        .unwrap();
    *reg.runtime.transient_failures.lock().unwrap() = 2;
    let mgr = reg.manager(true);
    mgr.sync_once().await.unwrap();
    let dep = mgr.get("d").unwrap();
    let st = dep.status();
    assert_eq!(st.state, DeploymentState::Failed);
    assert!(!st.error_permanent);
    let first_retry = st.retry_at.expect("a retry is scheduled") - st.updated_at;
    assert!((900..=1100).contains(&first_retry), "{first_retry} ms");
    // before the retry is due, syncs do not load again
    let loads = reg.runtime.loads.load(Ordering::SeqCst);
    mgr.sync_once().await.unwrap();
    assert_eq!(reg.runtime.loads.load(Ordering::SeqCst), loads);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    mgr.sync_once().await.unwrap();
    assert_eq!(reg.runtime.loads.load(Ordering::SeqCst), loads + 1);
    let st = dep.status();
    let second_retry = st.retry_at.expect("second retry scheduled") - st.updated_at;
    assert!(
        (1900..=2100).contains(&second_retry),
        "doubles: {second_retry} ms"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    mgr.sync_once().await.unwrap();
    assert_eq!(dep.status().state, DeploymentState::Ready);
    assert!(dep.status().retry_at.is_none());
}

#[tokio::test]
async fn one_failed_deployment_does_not_make_the_replica_unready() {
    let reg = Registry::new().await;
    let good = reg.version("good", json!({"weights": [1.0, 0.0]})).await;
    reg.alias("good", "champion", &good).await;
    let broken = reg.version_with("bad", common::MLMODEL_ONNX, b"nope").await;
    reg.alias("bad", "champion", &broken).await;
    for name in ["good", "bad"] {
        reg.store
            .put_deployment(
                name,
                &serde_json::to_value(DeploymentSpec::following(name, "champion")).unwrap(),
            )
            .await
            .unwrap();
    }
    let mgr = reg.manager(true);
    // nothing attempted yet: not ready
    assert!(!mgr.readiness(false).await.ready || mgr.list().is_empty());
    mgr.sync_once().await.unwrap();
    assert_eq!(
        mgr.get("bad").unwrap().status().state,
        DeploymentState::Failed
    );
    assert_eq!(
        mgr.get("good").unwrap().status().state,
        DeploymentState::Ready
    );
    let r = mgr.readiness(false).await;
    assert!(r.ready, "{r:?}");
    let strict = mgr.readiness(true).await;
    assert!(!strict.ready);
    assert_eq!(strict.not_ready.len(), 1);
    assert_eq!(strict.not_ready[0].0, "bad");
}

#[tokio::test]
async fn the_registry_role_follows_deployments_without_loading() {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    reg.alias("m", "champion", &v1).await;
    reg.store
        .put_deployment(
            "d",
            &serde_json::to_value(DeploymentSpec::following("m", "champion")).unwrap(),
        )
        .await
        .unwrap();
    let mgr = reg.manager(false);
    mgr.sync_once().await.unwrap();
    let dep = mgr.get("d").expect("listed on the registry role too");
    assert_eq!(dep.status().state, DeploymentState::Stored);
    assert_eq!(dep.status().target_version.as_deref(), Some(v1.as_str()));
    assert_eq!(reg.runtime.loads.load(Ordering::SeqCst), 0);
    assert!(mgr.readiness(true).await.ready);
}
