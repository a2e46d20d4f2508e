//! Copies between artifact stores that check content on the way: the body
//! is hashed as it streams, and when the end arrives with the wrong SHA-256
//! or size the stream fails instead of ending, so the upload is discarded
//! (a staged file deleted, a multipart upload aborted, a single PUT never
//! sent). A blob at a content address therefore always holds that content.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactError, ArtifactPath, ArtifactStore};

use crate::{Progress, RateLimit};

/// Why a verified copy failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// The source file does not exist.
    NotFound,
    /// The content read does not match the expected digest or size.
    Mismatch {
        /// SHA-256 of what was read.
        actual: String,
    },
    /// A store failed.
    Store(ArtifactError),
}

/// The error a verifying body yields at its end on a mismatch.
#[derive(Debug, thiserror::Error)]
#[error("content does not match its recorded SHA-256")]
struct ContentMismatch;

/// What to check and account while streaming.
pub(crate) struct Checks<'a> {
    pub sha256: &'a str,
    pub size: u64,
    pub progress: Option<&'a Progress>,
    pub rate: Option<&'a RateLimit>,
}

/// Streams `from` at `src` into `to` at `dst`, failing (and storing
/// nothing) unless the content has `checks.sha256` and `checks.size`.
pub(crate) async fn copy_verified(
    from: &ArtifactStore,
    src: &ArtifactPath,
    to: &ArtifactStore,
    dst: &ArtifactPath,
    checks: Checks<'_>,
) -> Result<u64, CopyError> {
    let download = match from.get(src).await {
        Ok(d) => d,
        Err(ArtifactError::NotFound(_)) => return Err(CopyError::NotFound),
        Err(e) => return Err(CopyError::Store(e)),
    };
    let seen: Arc<Mutex<Option<(String, u64)>>> = Arc::new(Mutex::new(None));
    let body = verifying(
        download.stream,
        checks.sha256.to_string(),
        checks.size,
        seen.clone(),
        checks.progress,
        checks.rate,
    );
    match to.put_stream(dst, body, u64::MAX).await {
        Ok(out) => Ok(out.size),
        Err(ArtifactError::BodyAborted(e)) => {
            if e.downcast_ref::<ContentMismatch>().is_some() {
                let (actual, _size) = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
                return Err(CopyError::Mismatch { actual });
            }
            match e.downcast::<ArtifactError>() {
                Ok(inner) => Err(match *inner {
                    ArtifactError::NotFound(_) => CopyError::NotFound,
                    other => CopyError::Store(other),
                }),
                Err(e) => Err(CopyError::Store(ArtifactError::BodyAborted(e))),
            }
        }
        Err(e) => Err(CopyError::Store(e)),
    }
}

/// Reads `path` of `store` to the end; its SHA-256 and size.
pub(crate) async fn hash(
    store: &ArtifactStore,
    path: &ArtifactPath,
    progress: Option<&Progress>,
) -> Result<(String, u64), CopyError> {
    let mut download = match store.get(path).await {
        Ok(d) => d,
        Err(ArtifactError::NotFound(_)) => return Err(CopyError::NotFound),
        Err(e) => return Err(CopyError::Store(e)),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = download.stream.next().await {
        let chunk = chunk.map_err(CopyError::Store)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if let Some(p) = progress {
            Progress::add(&p.bytes_done, chunk.len() as u64);
        }
    }
    Ok((hex::encode(hasher.finalize()), size))
}

type Body<'a> =
    futures::stream::BoxStream<'a, Result<Bytes, Box<dyn std::error::Error + Send + Sync>>>;

fn verifying<'a>(
    inner: futures::stream::BoxStream<'static, Result<Bytes, ArtifactError>>,
    expected: String,
    expected_size: u64,
    seen: Arc<Mutex<Option<(String, u64)>>>,
    progress: Option<&'a Progress>,
    rate: Option<&'a RateLimit>,
) -> Body<'a> {
    struct St<'a> {
        inner: futures::stream::BoxStream<'static, Result<Bytes, ArtifactError>>,
        hasher: Sha256,
        size: u64,
        done: bool,
        expected: String,
        expected_size: u64,
        seen: Arc<Mutex<Option<(String, u64)>>>,
        progress: Option<&'a Progress>,
        rate: Option<&'a RateLimit>,
    }
    let st = St {
        inner,
        hasher: Sha256::new(),
        size: 0,
        done: false,
        expected,
        expected_size,
        seen,
        progress,
        rate,
    };
    futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.hasher.update(&chunk);
                let n = chunk.len() as u64;
                st.size += n;
                if let Some(r) = st.rate {
                    r.consume(n).await;
                }
                if let Some(p) = st.progress {
                    Progress::add(&p.bytes_done, n);
                }
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                    st,
                ))
            }
            None => {
                st.done = true;
                let actual = hex::encode(std::mem::take(&mut st.hasher).finalize());
                if actual == st.expected && st.size == st.expected_size {
                    None
                } else {
                    if let Ok(mut s) = st.seen.lock() {
                        *s = Some((actual, st.size));
                    }
                    Some((
                        Err(Box::new(ContentMismatch) as Box<dyn std::error::Error + Send + Sync>),
                        st,
                    ))
                }
            }
        }
    })
    .boxed()
}
