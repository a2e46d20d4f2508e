//! Uploads stream: a body far larger than the memory budget goes through with
//! a bounded peak RSS. Its own test binary so no other test inflates the peak.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactPath, ArtifactStore, ArtifactStoreConfig};

/// Peak resident set size of this process, in bytes (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_has_bounded_memory() {
    const TOTAL: usize = 96 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let store =
        ArtifactStore::open(&ArtifactStoreConfig::new(tmp.path().to_str().unwrap())).unwrap();
    let before = peak_rss();

    let chunks = (0..TOTAL / CHUNK).map(|i| {
        let mut c = vec![(i % 251) as u8; CHUNK];
        c[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Ok::<_, std::io::Error>(Bytes::from(c))
    });
    let body = futures::stream::iter(chunks);
    let path = ArtifactPath::parse("big/weights.bin").unwrap();
    let out = store.put_stream(&path, body, u64::MAX).await.unwrap();
    assert_eq!(out.size, TOTAL as u64);

    // Download streams too, and hashes to the digest the upload reported.
    let download = store.get(&path).await.unwrap();
    assert_eq!(download.meta.size, TOTAL as u64);
    let mut got = Sha256::new();
    let mut stream = download.stream;
    while let Some(chunk) = stream.next().await {
        got.update(chunk.unwrap());
    }
    assert_eq!(hex::encode(got.finalize()), out.sha256_hex);

    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grew = after.saturating_sub(before);
        // Parts are 8 MiB with 2 in flight: tens of MiB, never the 96 MiB body.
        assert!(
            grew < 64 * 1024 * 1024,
            "peak RSS grew by {} MiB",
            grew / (1024 * 1024)
        );
        eprintln!(
            "peak RSS grew by {} MiB for a {} MiB upload",
            grew / (1024 * 1024),
            TOTAL >> 20
        );
    }
}
