//! A damaged backup fails `verify` with a report naming the damaged file,
//! and `restore` refuses it before writing anything.

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use slipway_backup::format::{backup_dir, blob_key};
use slipway_backup::{
    create, restore, verify, CreateOptions, RestoreOptions, SystemClock, VerifyOptions,
};

use crate::common::{self, location, populate, progress, stores, Kind};

async fn damage(loc: &slipway_backup::Location, key: &str, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let store = loc.store().object_store();
    let path = ObjectPath::from(key);
    let bytes = store
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    store
        .put(&path, PutPayload::from(Bytes::from(f(bytes))))
        .await
        .unwrap();
}

async fn corrupted_artifact(kind: Kind) {
    if kind == Kind::Remote && !common::remote_available() {
        return;
    }
    let src = stores(kind).await;
    let prefix = populate(&src, 4096).await;
    let (loc, _g) = location(kind);
    let b = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    let onnx = format!("{prefix}/model.onnx");
    let sha = slipway_metadata::MetadataStore::list_artifact_digests(&src.store, &onnx)
        .await
        .unwrap()[0]
        .sha256
        .clone();
    damage(&loc, &blob_key(&sha), |mut b| {
        b[10] ^= 0xff;
        b
    })
    .await;
    let report = verify(
        &loc,
        &b.manifest,
        &VerifyOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    assert!(!report.ok());
    let text = report.problems.join("\n");
    assert!(
        text.contains(&blob_key(&sha)) && text.contains(&onnx) && text.contains("corrupt"),
        "{text}"
    );
    assert!(
        text.contains("model version"),
        "the model versions needing it are named: {text}"
    );
    let listed = loc.list().await.unwrap();
    assert!(
        listed[0].verification.as_ref().is_some_and(|v| !v.ok),
        "verify records its failure"
    );

    let dst = stores(kind).await;
    let e = restore(
        &loc,
        &b.manifest,
        &dst.target(),
        &RestoreOptions::default(),
        &progress(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&onnx), "{e}");
    assert!(
        dst.store.contents().await.unwrap().is_empty(),
        "no metadata restored from a corrupt backup"
    );
}

async fn truncated_metadata(kind: Kind) {
    if kind == Kind::Remote && !common::remote_available() {
        return;
    }
    let src = stores(kind).await;
    populate(&src, 4096).await;
    let (loc, _g) = location(kind);
    let b = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    let part = b
        .manifest
        .tables
        .iter()
        .find(|t| t.name == "metrics")
        .unwrap()
        .file
        .path
        .clone();
    let file = format!("{}/{part}", backup_dir(&b.manifest.backup_id));
    damage(&loc, &file, |b| b[..b.len() / 2].to_vec()).await;
    let report = verify(
        &loc,
        &b.manifest,
        &VerifyOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    assert!(!report.ok());
    let text = report.problems.join("\n");
    assert!(text.contains(&file) && text.contains("truncated"), "{text}");

    let dst = stores(kind).await;
    let e = restore(
        &loc,
        &b.manifest,
        &dst.target(),
        &RestoreOptions::default(),
        &progress(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&file), "{e}");
    assert!(dst.store.contents().await.unwrap().is_empty());
    assert!(
        dst.artifacts.list_dir(None).await.unwrap().is_empty(),
        "nothing written before the parts are checked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_a_corrupted_artifact_local() {
    corrupted_artifact(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_a_corrupted_artifact_s3() {
    corrupted_artifact(Kind::Remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_a_truncated_metadata_file_local() {
    truncated_metadata(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_a_truncated_metadata_file_s3() {
    truncated_metadata(Kind::Remote).await;
}
