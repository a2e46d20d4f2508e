//! The conformance suite against a local directory (a fresh temp dir per test).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::TestStore;
use slipway_artifacts::{ArtifactStore, ArtifactStoreConfig, CommitMode};

async fn make(_test: &str) -> Option<TestStore> {
    let tmp = tempfile::tempdir().unwrap();
    // A subdirectory, so tests can check that nothing appears next to the root.
    let root = tmp.path().join("root");
    let store = ArtifactStore::open(&ArtifactStoreConfig::new(root.to_str().unwrap())).unwrap();
    common::assert_mode(&store, CommitMode::StageAndRename);
    let local_root = std::fs::canonicalize(&root).unwrap();
    Some(TestStore {
        store,
        local_root: Some(local_root),
        _guard: Some(tmp),
    })
}

conformance_suite!(make);

/// A file and a directory cannot share a path on a local root: a clear
/// `InvalidPath` (400), not a backend failure, and nothing is changed.
#[tokio::test]
async fn file_directory_clash_is_a_client_error() {
    use bytes::Bytes;
    use slipway_artifacts::{ArtifactError, ArtifactPath};
    let t = make("clash").await.unwrap();
    let p = |s: &str| ArtifactPath::parse(s).unwrap();
    t.store
        .put_bytes(&p("d/x.txt"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    t.store
        .put_bytes(&p("f"), Bytes::from_static(b"f"))
        .await
        .unwrap();
    let err = t
        .store
        .put_bytes(&p("d"), Bytes::from_static(b"y"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::InvalidPath(ref m) if m.contains("directory")),
        "{err}"
    );
    let err = t
        .store
        .put_bytes(&p("f/x.txt"), Bytes::from_static(b"y"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::InvalidPath(ref m) if m.contains("'f' is a file")),
        "{err}"
    );
    assert_eq!(
        t.store.get_bytes(&p("d/x.txt")).await.unwrap(),
        Bytes::from_static(b"x")
    );
    assert_eq!(
        t.store.get_bytes(&p("f")).await.unwrap(),
        Bytes::from_static(b"f")
    );
}
