//! A reference uploaded on a replica that has not loaded the model (the
//! registry role) is checked against the version's MLmodel signature.

use crate::common::{monitor, settings, Registry, MLMODEL_ONNX, MLMODEL_SIGNED};
use bytes::Bytes;
use slipway_serving::DeploymentSpec;

async fn put(m: &slipway_monitor::Monitor, d: &str, csv: &str) -> Result<u64, (u16, String)> {
    m.put_reference(d, Bytes::from(csv.to_string()), true)
        .await
        .map(|info| info.rows)
        .map_err(|e| (e.code.http_status(), e.message))
}

#[tokio::test]
async fn a_registry_replica_checks_the_columns_against_the_mlmodel_signature() {
    let reg = Registry::new().await;
    let v = reg.version_with("m", MLMODEL_SIGNED).await;
    reg.alias("m", "champion", &v).await;
    let mgr = reg.registry_manager();
    mgr.put("d", DeploymentSpec::following("m", "champion"))
        .await
        .unwrap();
    assert!(mgr.get("d").unwrap().loaded(&v).is_none());
    let m = monitor(&reg, &mgr, settings(1000));

    assert_eq!(put(&m, "d", "x[0],x[1],label\n1,2,0\n3,4,1\n").await, Ok(2));
    let (status, msg) = put(&m, "d", "x[0],petal\n1,2\n").await.unwrap_err();
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("'petal' is not a column of version")
            && msg.contains("x[0], x[1], score[0], label"),
        "{msg}"
    );
    let (status, msg) = put(&m, "d", "x[0]\nred\n").await.unwrap_err();
    assert_eq!(status, 400);
    assert!(msg.contains("'x[0]' holds text"), "{msg}");
    let (status, msg) = put(&m, "d", "label\n1\n").await.unwrap_err();
    assert_eq!(status, 400);
    assert!(
        msg.contains("none of version") && msg.contains("x[0], x[1]"),
        "{msg}"
    );
}

#[tokio::test]
async fn without_a_signature_the_upload_is_stored_unchecked() {
    let reg = Registry::new().await;
    let v = reg.version_with("u", MLMODEL_ONNX).await;
    let mgr = reg.registry_manager();
    mgr.put("d", DeploymentSpec::pinned("u", &v)).await.unwrap();
    let m = monitor(&reg, &mgr, settings(1000));
    assert_eq!(put(&m, "d", "anything,at_all\n1,2\n").await, Ok(1));
}
