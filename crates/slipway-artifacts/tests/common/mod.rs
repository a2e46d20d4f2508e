//! The one conformance suite every artifact backend must pass.
//!
//! A backend test file defines `async fn make(test: &str) -> Option<TestStore>`
//! (a fresh, empty store per test; `None` means skipped) and invokes
//! `conformance_suite!(make);` (after `#[macro_use] mod common;`), which generates one `#[tokio::test]` per case.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};
use slipway_artifacts::{
    ArtifactError, ArtifactPath, ArtifactStore, CommitMode, FileInfo, TEMP_DIR,
};
use slipway_core::ErrorCode;

/// A store under test and what the cases need to know about it.
pub struct TestStore {
    /// The store, empty at the start of the test.
    pub store: ArtifactStore,
    /// For local backends: the root directory on disk.
    pub local_root: Option<PathBuf>,
    /// Keeps a temporary directory alive for the test's duration.
    pub _guard: Option<tempfile::TempDir>,
}

/// Generates one `#[tokio::test]` per conformance case, each with a fresh
/// store from `$make`.
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_cases!(
            $make;
            roundtrip_small,
            roundtrip_empty_file,
            roundtrip_20mb,
            digest_matches_sha256,
            nested_listing,
            listing_of_missing_or_file_is_empty,
            overwrite_replaces,
            delete_file_and_directory,
            missing_and_directory_are_not_found,
            exists_file_and_directory,
            bad_paths_rejected,
            body_error_keeps_previous_version,
            too_large_keeps_nothing,
            abort_after_multipart_started_keeps_previous_version,
            dropped_upload_leaves_nothing,
            temp_leftovers_invisible_and_cleaned,
        );
    };
}

/// Helper for [`conformance_suite!`].
macro_rules! conformance_cases {
    ($make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(t) = $make(stringify!($case)).await else { return };
                common::$case(&t).await;
            }
        )*
    };
}

pub fn p(s: &str) -> ArtifactPath {
    ArtifactPath::parse(s).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64*), so corruption is visible.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `data` as a body stream of `chunk`-sized pieces.
pub fn body(
    data: &[u8],
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

pub async fn read_all(store: &ArtifactStore, path: &str) -> Vec<u8> {
    let download = store.get(&p(path)).await.unwrap();
    let size = download.meta.size;
    let mut out = Vec::with_capacity(size as usize);
    let mut stream = download.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        out.len() as u64,
        size,
        "streamed length differs from meta.size for {path}"
    );
    out
}

fn file(name: &str, size: u64) -> FileInfo {
    FileInfo {
        path: name.to_owned(),
        is_dir: false,
        file_size: Some(size),
    }
}

fn dir(name: &str) -> FileInfo {
    FileInfo {
        path: name.to_owned(),
        is_dir: true,
        file_size: None,
    }
}

/// Entries under the temp area, including object_store's hidden staging
/// files for a local backend.
pub async fn temp_entries(t: &TestStore) -> Vec<String> {
    match &t.local_root {
        Some(root) => match std::fs::read_dir(root.join(TEMP_DIR)) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        },
        None => t
            .store
            .object_store()
            .list(Some(&ObjectPath::from(TEMP_DIR)))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap(),
    }
}

/// Waits (polling, with a deadline) until no temp entries are left.
pub async fn assert_temp_drains(t: &TestStore) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = temp_entries(t).await;
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "temporary upload data left behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_not_found(store: &ArtifactStore, path: &str) {
    let err = store.get(&p(path)).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::NotFound(_)),
        "get {path}: {err:?}"
    );
    assert_eq!(err.code(), ErrorCode::ResourceDoesNotExist);
    let err = store.head(&p(path)).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::NotFound(_)),
        "head {path}: {err:?}"
    );
}

// ---- cases ----

pub async fn roundtrip_small(t: &TestStore) {
    let content = b"hello, artifacts\n".to_vec();
    let out = t
        .store
        .put_bytes(&p("a.txt"), Bytes::from(content.clone()))
        .await
        .unwrap();
    assert_eq!(out.size, content.len() as u64);
    assert_eq!(read_all(&t.store, "a.txt").await, content);
    assert_eq!(t.store.get_bytes(&p("a.txt")).await.unwrap(), content);
    let meta = t.store.head(&p("a.txt")).await.unwrap();
    assert_eq!(meta.size, content.len() as u64);
    assert_eq!(meta.path.as_str(), "a.txt");
    assert!(meta.last_modified_ms > 0);
    // Names with spaces, unicode and other printable characters survive.
    for name in [
        "with space.txt",
        "ユニコード/ファイル.bin",
        "odd'chars;(1)+=,@~!$&.txt",
        "x%20y",
    ] {
        t.store
            .put_bytes(&p(name), Bytes::from(name.as_bytes().to_vec()))
            .await
            .unwrap();
        assert_eq!(read_all(&t.store, name).await, name.as_bytes(), "{name}");
    }
    assert!(temp_entries(t).await.is_empty());
}

pub async fn roundtrip_empty_file(t: &TestStore) {
    let out = t
        .store
        .put_stream(&p("empty"), body(&[], 1), 10)
        .await
        .unwrap();
    assert_eq!(out.size, 0);
    assert_eq!(out.sha256_hex, sha256_hex(&[]));
    assert!(read_all(&t.store, "empty").await.is_empty());
    assert_eq!(
        t.store.list_dir(None).await.unwrap(),
        vec![file("empty", 0)]
    );
}

pub async fn roundtrip_20mb(t: &TestStore) {
    let content = data(20 * 1024 * 1024 + 123, 20);
    let out = t
        .store
        .put_stream(&p("big/model.bin"), body(&content, 64 * 1024), u64::MAX)
        .await
        .unwrap();
    assert_eq!(out.size, content.len() as u64);
    assert_eq!(out.sha256_hex, sha256_hex(&content));
    let back = read_all(&t.store, "big/model.bin").await;
    assert!(back == content, "20 MB round trip differs");
    assert_eq!(
        t.store.list_dir(Some(&p("big"))).await.unwrap(),
        vec![file("model.bin", content.len() as u64)]
    );
    assert!(temp_entries(t).await.is_empty());
}

pub async fn digest_matches_sha256(t: &TestStore) {
    // Known vector: SHA-256("abc").
    let out = t
        .store
        .put_bytes(&p("abc"), Bytes::from_static(b"abc"))
        .await
        .unwrap();
    assert_eq!(
        out.sha256_hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // Chunking must not change the digest.
    let content = data(300_001, 7);
    for chunk in [1_000, 4_096, 65_536, 300_001] {
        let out = t
            .store
            .put_stream(&p("d/c"), body(&content, chunk), u64::MAX)
            .await
            .unwrap();
        assert_eq!(out.sha256_hex, sha256_hex(&content), "chunk {chunk}");
    }
}

pub async fn nested_listing(t: &TestStore) {
    for (path, len) in [
        ("top.txt", 3),
        ("d/a.txt", 5),
        ("d/sub/b.txt", 7),
        ("d/sub/c/d.txt", 11),
        ("d/z/e", 1),
    ] {
        t.store
            .put_bytes(&p(path), Bytes::from(vec![b'x'; len]))
            .await
            .unwrap();
    }
    assert_eq!(
        t.store.list_dir(None).await.unwrap(),
        vec![dir("d"), file("top.txt", 3)]
    );
    assert_eq!(
        t.store.list_dir(Some(&p("d"))).await.unwrap(),
        vec![file("a.txt", 5), dir("sub"), dir("z")]
    );
    assert_eq!(
        t.store.list_dir(Some(&p("d/"))).await.unwrap(),
        vec![file("a.txt", 5), dir("sub"), dir("z")]
    );
    assert_eq!(
        t.store.list_dir(Some(&p("d/sub"))).await.unwrap(),
        vec![file("b.txt", 7), dir("c")]
    );
    assert_eq!(
        t.store.list_dir(Some(&p("d/sub/c"))).await.unwrap(),
        vec![file("d.txt", 11)]
    );
    // Wire shape of MLflow's FileInfo: directories carry no file_size.
    let json = serde_json::to_string(&t.store.list_dir(Some(&p("d/sub"))).await.unwrap()).unwrap();
    assert_eq!(
        json,
        r#"[{"path":"b.txt","is_dir":false,"file_size":7},{"path":"c","is_dir":true}]"#
    );
}

pub async fn listing_of_missing_or_file_is_empty(t: &TestStore) {
    assert!(t.store.list_dir(None).await.unwrap().is_empty());
    assert!(t.store.list_dir(Some(&p("nope"))).await.unwrap().is_empty());
    t.store
        .put_bytes(&p("f.txt"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert!(t
        .store
        .list_dir(Some(&p("f.txt")))
        .await
        .unwrap()
        .is_empty());
    assert!(t
        .store
        .list_dir(Some(&p("nope/deeper")))
        .await
        .unwrap()
        .is_empty());
}

pub async fn overwrite_replaces(t: &TestStore) {
    t.store
        .put_bytes(&p("m/v"), Bytes::from_static(b"version one, longer"))
        .await
        .unwrap();
    t.store
        .put_bytes(&p("m/v"), Bytes::from_static(b"v2"))
        .await
        .unwrap();
    assert_eq!(read_all(&t.store, "m/v").await, b"v2");
    assert_eq!(
        t.store.list_dir(Some(&p("m"))).await.unwrap(),
        vec![file("v", 2)]
    );
}

pub async fn delete_file_and_directory(t: &TestStore) {
    for path in [
        "keep.txt",
        "gone.txt",
        "tree/a",
        "tree/b/c",
        "tree/b/d/e",
        "treehouse/x",
    ] {
        t.store
            .put_bytes(&p(path), Bytes::from(path.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    assert_eq!(t.store.delete(&p("gone.txt")).await.unwrap(), 1);
    assert_not_found(&t.store, "gone.txt").await;
    assert_eq!(t.store.delete(&p("tree/b")).await.unwrap(), 2);
    assert_eq!(
        t.store.list_dir(Some(&p("tree"))).await.unwrap(),
        vec![file("a", 6)]
    );
    assert_eq!(read_all(&t.store, "tree/a").await, b"tree/a");
    assert_eq!(t.store.delete(&p("tree")).await.unwrap(), 1);
    assert_not_found(&t.store, "tree/b/c").await;
    // A sibling sharing the name as a string prefix is untouched.
    assert_eq!(read_all(&t.store, "treehouse/x").await, b"treehouse/x");
    assert_eq!(
        t.store.list_dir(None).await.unwrap(),
        vec![file("keep.txt", 8), dir("treehouse")]
    );
    assert!(t.store.list_dir(Some(&p("tree"))).await.unwrap().is_empty());
    // Deleting what is not there is not an error.
    assert_eq!(t.store.delete(&p("tree")).await.unwrap(), 0);
    assert_eq!(t.store.delete(&p("never/was")).await.unwrap(), 0);
}

pub async fn missing_and_directory_are_not_found(t: &TestStore) {
    assert_not_found(&t.store, "missing.txt").await;
    t.store
        .put_bytes(&p("dir/inner.txt"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_not_found(&t.store, "dir").await;
    let err = t.store.get(&p("missing.txt")).await.unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");
}

pub async fn exists_file_and_directory(t: &TestStore) {
    t.store
        .put_bytes(&p("e/f.txt"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(t.store.exists(&p("e/f.txt")).await.unwrap());
    assert!(t.store.exists(&p("e")).await.unwrap());
    assert!(!t.store.exists(&p("e/g.txt")).await.unwrap());
    assert!(!t.store.exists(&p("f")).await.unwrap());
}

/// Paths a client might send to escape the root or reach reserved data.
pub const BAD_PATHS: &[&str] = &[
    "",
    "/",
    "/etc/passwd",
    "..",
    "../outside.txt",
    "a/../../outside.txt",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "//server/share",
    "..\\outside.txt",
    "a\\b",
    "C:\\Windows\\x",
    "C:/Windows/x",
    "a\0b",
    "a\u{7f}b",
    "line\nbreak",
    "%2e%2e/outside.txt",
    "%2E%2E%2Foutside.txt",
    "a%2f..%2f..%2fb",
    "..%5coutside",
    ".slipway-tmp/x",
    ".slipway",
    "a/.slipway-tmp/x",
    "frag#ment",
];

pub async fn bad_paths_rejected(t: &TestStore) {
    for bad in BAD_PATHS {
        let err = ArtifactPath::parse(bad).unwrap_err();
        assert!(
            matches!(err, ArtifactError::InvalidPath(_)),
            "{bad:?} gave {err:?}"
        );
        assert_eq!(err.code(), ErrorCode::InvalidParameterValue, "{bad:?}");
        assert!(
            err.to_string().contains("invalid artifact path"),
            "{bad:?}: {err}"
        );
    }
    let long = "a/".repeat(600);
    assert!(ArtifactPath::parse(&long).is_err());
    // Nothing was written anywhere, inside the root or next to it.
    assert!(t.store.list_dir(None).await.unwrap().is_empty());
    if let Some(root) = &t.local_root {
        let parent = root.parent().unwrap();
        let names: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("outside")), "{names:?}");
    }
}

fn failing_body(
    good: Vec<u8>,
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    body(&good, chunk).chain(futures::stream::once(async {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        ))
    }))
}

pub async fn body_error_keeps_previous_version(t: &TestStore) {
    t.store
        .put_bytes(&p("r/model.bin"), Bytes::from_static(b"good old version"))
        .await
        .unwrap();
    let err = t
        .store
        .put_stream(
            &p("r/model.bin"),
            failing_body(data(100_000, 1), 10_000),
            u64::MAX,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::BodyAborted(_)), "{err:?}");
    assert_eq!(read_all(&t.store, "r/model.bin").await, b"good old version");
    // A fresh path stays absent.
    let err = t
        .store
        .put_stream(&p("r/new.bin"), failing_body(data(1000, 2), 100), u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::BodyAborted(_)), "{err:?}");
    assert_not_found(&t.store, "r/new.bin").await;
    assert_eq!(
        t.store.list_dir(Some(&p("r"))).await.unwrap(),
        vec![file("model.bin", 16)]
    );
    assert_temp_drains(t).await;
}

pub async fn too_large_keeps_nothing(t: &TestStore) {
    let content = data(2_000, 3);
    let err = t
        .store
        .put_stream(&p("big.bin"), body(&content, 300), 1_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::TooLarge { limit: 1_000 }),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
    assert_not_found(&t.store, "big.bin").await;
    // Exactly at the limit is fine.
    let out = t
        .store
        .put_stream(&p("big.bin"), body(&content[..1_000], 300), 1_000)
        .await
        .unwrap();
    assert_eq!(out.size, 1_000);
    // Over the limit after the multipart upload started: old version kept.
    let huge = data(12 * 1024 * 1024, 4);
    let err = t
        .store
        .put_stream(&p("big.bin"), body(&huge, 256 * 1024), 11 * 1024 * 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { .. }), "{err:?}");
    assert_eq!(read_all(&t.store, "big.bin").await, &content[..1_000]);
    assert_temp_drains(t).await;
}

pub async fn abort_after_multipart_started_keeps_previous_version(t: &TestStore) {
    t.store
        .put_bytes(&p("w/weights"), Bytes::from_static(b"v1"))
        .await
        .unwrap();
    // Well past one part (8 MiB by default), so a multipart upload is in flight.
    let err = t
        .store
        .put_stream(
            &p("w/weights"),
            failing_body(data(18 * 1024 * 1024, 5), 256 * 1024),
            u64::MAX,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::BodyAborted(_)), "{err:?}");
    assert_eq!(read_all(&t.store, "w/weights").await, b"v1");
    assert_eq!(
        t.store.list_dir(Some(&p("w"))).await.unwrap(),
        vec![file("weights", 2)]
    );
    assert_temp_drains(t).await;
}

pub async fn dropped_upload_leaves_nothing(t: &TestStore) {
    t.store
        .put_bytes(&p("x/keep"), Bytes::from_static(b"old"))
        .await
        .unwrap();
    for (name, sent) in [("x/keep", 12 * 1024 * 1024), ("x/small", 1024)] {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let chunks = data(sent, 6)
            .chunks(256 * 1024)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>();
        let n = chunks.len();
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)).chain(
            futures::stream::once(async move {
                let _ = tx.send(());
                futures::future::pending::<Result<Bytes, std::io::Error>>().await
            }),
        );
        let store = t.store.clone();
        let path = p(name);
        let task = tokio::spawn(async move { store.put_stream(&path, stream, u64::MAX).await });
        // All `n` chunks consumed and the body now hangs: the client vanishes.
        rx.recv().await.unwrap();
        assert!(n > 0);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_temp_drains(t).await;
    }
    assert_eq!(read_all(&t.store, "x/keep").await, b"old");
    assert_not_found(&t.store, "x/small").await;
    assert_eq!(
        t.store.list_dir(Some(&p("x"))).await.unwrap(),
        vec![file("keep", 3)]
    );
}

pub async fn temp_leftovers_invisible_and_cleaned(t: &TestStore) {
    // What a kill -9 mid-upload leaves: data under the temp area.
    let raw = t.store.object_store();
    raw.put(
        &ObjectPath::from(format!("{TEMP_DIR}/crashed-upload")),
        Bytes::from_static(b"partial").into(),
    )
    .await
    .unwrap();
    if let Some(root) = &t.local_root {
        // object_store's own staging file of an interrupted local write.
        std::fs::write(root.join(TEMP_DIR).join("0000-uuid#1"), b"partial").unwrap();
        // A staging file next to user data (e.g. from an interrupted copy).
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::write(root.join("run").join("model.bin#1"), b"partial").unwrap();
    }
    t.store
        .put_bytes(&p("run/real.txt"), Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(t.store.list_dir(None).await.unwrap(), vec![dir("run")]);
    assert_eq!(
        t.store.list_dir(Some(&p("run"))).await.unwrap(),
        vec![file("real.txt", 2)]
    );
    let expected = if t.local_root.is_some() { 2 } else { 1 };
    assert_eq!(temp_entries(t).await.len(), expected);
    // Fresh leftovers could belong to an upload in flight: kept.
    assert_eq!(
        t.store
            .cleanup_stale_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(temp_entries(t).await.len(), expected);
    assert_eq!(
        t.store.cleanup_stale_uploads(Duration::ZERO).await.unwrap(),
        expected as u64
    );
    assert!(temp_entries(t).await.is_empty());
    assert_eq!(read_all(&t.store, "run/real.txt").await, b"ok");
    // Nothing to do the second time.
    assert_eq!(
        t.store.cleanup_stale_uploads(Duration::ZERO).await.unwrap(),
        0
    );
}

/// Sanity check that a store's commit mode is what the backend test expects.
pub fn assert_mode(store: &ArtifactStore, mode: CommitMode) {
    assert_eq!(store.commit_mode(), mode);
}
