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
