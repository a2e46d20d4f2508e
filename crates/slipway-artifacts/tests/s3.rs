//! The conformance suite against a real S3 server (SeaweedFS from
//! `scripts/start-s3.sh`), once per commit mode, plus credential checks.
//!
//! Needs `eval "$(scripts/start-s3.sh)"` first; fails without it unless
//! `SLIPWAY_TEST_SKIP_S3=1`. Every test works under its own key prefix, so
//! tests run in parallel against one bucket.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use slipway_artifacts::{ArtifactError, ArtifactStore, ArtifactStoreConfig, CommitMode};

use common::TestStore;

struct S3Env {
    bucket: String,
    endpoint: String,
    access_key: String,
    region: String,
}

/// The S3 test environment, or `None` (skipped) when `SLIPWAY_TEST_SKIP_S3=1`.
/// Panics with instructions when it is missing.
fn s3_env(test: &str) -> Option<S3Env> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(bucket) = var("SLIPWAY_TEST_S3_BUCKET") else {
        if var("SLIPWAY_TEST_SKIP_S3").as_deref() == Some("1") {
            eprintln!("{test}: skipped (SLIPWAY_TEST_SKIP_S3=1)");
            return None;
        }
        panic!(
            "SLIPWAY_TEST_S3_BUCKET is not set: start the test S3 server with \
             `eval \"$(scripts/start-s3.sh)\"` (stop it later with `eval \"$SLIPWAY_S3_STOP\"`), \
             or set SLIPWAY_TEST_SKIP_S3=1 to skip the S3 tests"
        );
    };
    let need = |name: &str| {
        var(name).unwrap_or_else(|| {
            panic!("SLIPWAY_TEST_S3_BUCKET is set but {name} is not: run `eval \"$(scripts/start-s3.sh)\"`")
        })
    };
    Some(S3Env {
        bucket,
        endpoint: need("SLIPWAY_S3_ENDPOINT"),
        access_key: need("AWS_ACCESS_KEY_ID"),
        region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
    })
}

fn unique_prefix(test: &str) -> String {
    format!("slipway-tests/{test}-{}", uuid::Uuid::new_v4())
}

async fn open(test: &str, mode: CommitMode) -> Option<TestStore> {
    let env = s3_env(test)?;
    let mut cfg = ArtifactStoreConfig::new(format!("s3://{}/{}", env.bucket, unique_prefix(test)));
    cfg.s3_endpoint = Some(env.endpoint);
    let store = ArtifactStore::open(&cfg).unwrap().with_commit_mode(mode);
    store.check().await.unwrap();
    Some(TestStore {
        store,
        local_root: None,
        _guard: None,
    })
}

async fn make_direct(test: &str) -> Option<TestStore> {
    let t = open(test, CommitMode::Direct).await?;
    // Opening s3:// picks Direct by default.
    common::assert_mode(&t.store, CommitMode::Direct);
    Some(t)
}

async fn make_staged(test: &str) -> Option<TestStore> {
    open(test, CommitMode::StageAndRename).await
}

/// Default for S3: uploads go straight to the final key.
mod direct {
    use super::*;
    conformance_suite!(make_direct);
}

/// The brief's generic path: stage under `.slipway-tmp/`, then copy + delete.
mod stage_and_rename {
    use super::*;
    conformance_suite!(make_staged);
}

fn raw_client(env: &S3Env, access_key: &str, secret: Option<&str>) -> Arc<dyn ObjectStore> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&env.bucket)
        .with_endpoint(&env.endpoint)
        .with_region(&env.region)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false);
    b = match secret {
        Some(secret) => b
            .with_access_key_id(access_key)
            .with_secret_access_key(secret),
        None => b.with_skip_signature(true),
    };
    Arc::new(b.build().unwrap())
}

fn assert_denied(err: &ArtifactError) {
    assert!(
        matches!(err, ArtifactError::Backend { .. }),
        "expected a backend refusal, got {err:?}"
    );
    let detail = format!("{:?}", err);
    assert!(
        [
            "403",
            "401",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "InvalidAccessKeyId",
            "Forbidden"
        ]
        .iter()
        .any(|s| detail.contains(s)),
        "refusal does not look like an auth failure: {detail}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_rejected() {
    let Some(env) = s3_env("wrong_credentials_are_rejected") else {
        return;
    };
    let prefix = unique_prefix("creds");
    let path = object_store::path::Path::from(format!("{prefix}/probe.txt"));

    // The right key works (through the same raw client type).
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    let good = raw_client(&env, &env.access_key, Some(&secret));
    good.put(&path, Bytes::from_static(b"probe").into())
        .await
        .unwrap();

    let cases: [(&str, Arc<dyn ObjectStore>); 3] = [
        (
            "wrong secret",
            raw_client(&env, &env.access_key, Some("definitely-not-the-secret")),
        ),
        (
            "unknown key",
            raw_client(&env, "AKIAUNKNOWNKEY000000", Some(&secret)),
        ),
        ("anonymous", raw_client(&env, "", None)),
    ];
    for (what, client) in cases {
        let store = ArtifactStore::from_object_store(client, CommitMode::Direct);
        let err = store.check().await.unwrap_err();
        assert_denied(&err);
        let p = common::p(&format!("{prefix}/probe.txt"));
        let err = store.get_bytes(&p).await.unwrap_err();
        assert!(
            !matches!(err, ArtifactError::NotFound(_)),
            "{what}: read was not refused: {err:?}"
        );
        assert_denied(&err);
        let err = store
            .put_bytes(
                &common::p(&format!("{prefix}/evil.txt")),
                Bytes::from_static(b"x"),
            )
            .await
            .unwrap_err();
        assert_denied(&err);
    }
    // Nothing was written by the refused clients.
    let keys: Vec<_> = good
        .list(Some(&object_store::path::Path::from(prefix.as_str())))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("{prefix}/probe.txt")]);
    good.delete(&path).await.unwrap();
}
