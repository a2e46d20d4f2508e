//! Runs the conformance suite on SQLite in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::{conformance, MetadataStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/meta.db", dir.path().display());
    let store = SqlStore::connect(&url, SqlOptions::default())
        .await
        .expect("connect");
    assert!(!store.is_postgres());
    conformance::run_all(Arc::new(store.clone())).await;
    let wal = dir.path().join("nested/dir/meta.db-wal");
    assert!(
        wal.exists(),
        "SQLite runs in WAL mode ({} missing)",
        wal.display()
    );
    store.close().await;

    // Re-opening applies no migration twice and keeps the data.
    let again = SqlStore::connect(&url, SqlOptions::default())
        .await
        .expect("reconnect");
    let e = again.get_experiment("0").await.expect("default experiment");
    assert_eq!(e.name, "Default");
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_open_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/meta.db", dir.path().display());
    let store = SqlStore::connect(
        &url,
        SqlOptions {
            max_connections: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    conformance::concurrent_log_batch(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test]
async fn rejects_unknown_urls() {
    let e = SqlStore::connect("mysql://x", SqlOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, slipway_metadata::ErrorCode::InvalidParameterValue);
    let e = SqlStore::connect("sqlite::memory:", SqlOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, slipway_metadata::ErrorCode::InvalidParameterValue);
}

/// The suite's future is `Send`, so callers can spawn it.
#[allow(dead_code)]
fn run_all_is_send(store: Arc<dyn MetadataStore>) {
    fn assert_send<T: Send>(_: &T) {}
    let fut = conformance::run_all(store);
    assert_send(&fut);
}
