//! [`ArtifactStore`]: reads, listings and deletes over an object store, and
//! the atomic streaming upload ([`ArtifactStore::put_stream`]).
//!
//! Uploads never become visible half-written. With
//! [`CommitMode::StageAndRename`] (local directories) the body is streamed to
//! `.slipway-tmp/<uuid>` and renamed onto the final key, which on a local file
//! system is one atomic `rename(2)`. With [`CommitMode::Direct`] (S3) the body
//! goes straight to the final key, because S3 makes a single `PUT` or a
//! completed multipart upload visible atomically and an aborted or abandoned
//! multipart upload never shows up at the key. Either way a failure leaves the
//! previous version of the artifact intact, and leftovers of a crash are
//! either under `.slipway-tmp/` (hidden from listings, removed by
//! [`ArtifactStore::cleanup_stale_uploads`]) or incomplete S3 multipart
//! uploads (invisible; expire them with a bucket lifecycle rule).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ArtifactStoreConfig, DEFAULT_S3_REGION, MIN_PART_SIZE, S3_ENDPOINT_ENV};
use crate::error::{ArtifactError, BoxError};
use crate::path::ArtifactPath;

/// Top-level "directory" holding in-flight uploads. Never listed, never
/// addressable by a client path (see [`crate::RESERVED_PREFIX`]).
pub const TEMP_DIR: &str = ".slipway-tmp";

/// How a finished upload becomes visible at its final key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Stream to `.slipway-tmp/<uuid>`, then rename onto the final key. The
    /// default for local directories, where the rename is atomic.
    StageAndRename,
    /// Stream straight to the final key. For stores where a single put or a
    /// completed multipart upload appears atomically and an aborted one never
    /// appears (S3). The default for S3: no server-side copy, no 5 GiB
    /// copy limit.
    Direct,
}

/// The result of a successful upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256_hex: String,
}

/// Metadata of one stored artifact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactMeta {
    /// The artifact's path.
    pub path: ArtifactPath,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
    /// The backend's entity tag, if it has one.
    pub e_tag: Option<String>,
}

/// A streaming download: metadata first, then the body in chunks.
pub struct Download {
    /// Metadata of the file being read (`meta.size` is the body length).
    pub meta: ArtifactMeta,
    /// The body. Errors mid-way are [`ArtifactError::Backend`].
    pub stream: BoxStream<'static, Result<Bytes, ArtifactError>>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// One entry of a directory listing, in the shape of MLflow's `FileInfo` as
/// the `mlflow-artifacts` proxy returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// The entry's name, relative to the listed directory (its basename: the
    /// proxy's `_list_artifacts_mlflow_artifacts` returns
    /// `posixpath.basename(path)`; clients join it to the listed path).
    pub path: String,
    /// Whether the entry is a directory.
    pub is_dir: bool,
    /// Size in bytes for files; absent for directories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone)]
enum Backend {
    /// A local directory (canonical path); stale uploads are cleaned with `std::fs`
    /// so that object_store's own hidden `#N` staging files go too.
    Local(PathBuf),
    /// Anything reached only through the object-store API.
    Remote,
}

/// Artifact storage rooted at a local directory or an S3 prefix.
///
/// Cheap to clone (the backend is shared). All paths are [`ArtifactPath`]s,
/// relative to the root; nothing outside the root can be named.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    location: String,
    endpoint: Option<String>,
    commit: CommitMode,
    part_size: usize,
    concurrency: usize,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("location", &self.location)
            .field("commit", &self.commit)
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl ArtifactStore {
    /// Opens the store described by `cfg`: a local directory (created if
    /// missing) or `s3://bucket[/prefix]` (see [`ArtifactStoreConfig`]). Does
    /// no network I/O; use [`ArtifactStore::check`] to probe an S3 store.
    pub fn open(cfg: &ArtifactStoreConfig) -> Result<Self, ArtifactError> {
        let root = cfg.root.trim();
        let mut endpoint = None;
        let (store, backend, location, commit): (Arc<dyn ObjectStore>, _, _, _) = if let Some(
            rest,
        ) =
            root.strip_prefix("s3://")
        {
            let (store, location, ep) = open_s3(rest, cfg)?;
            endpoint = ep;
            (store, Backend::Remote, location, CommitMode::Direct)
        } else if let Some(rest) = root.strip_prefix("file://") {
            let (store, dir) = open_local(FsPath::new(rest))?;
            let location = dir.display().to_string();
            (
                Arc::new(store),
                Backend::Local(dir),
                location,
                CommitMode::StageAndRename,
            )
        } else if root.contains("://") {
            return Err(ArtifactError::Config(format!(
                    "artifact root '{root}' has an unsupported scheme (use a directory path or s3://bucket/prefix)"
                )));
        } else if root.is_empty() {
            return Err(ArtifactError::Config("artifact root is empty".to_owned()));
        } else {
            let (store, dir) = open_local(FsPath::new(root))?;
            let location = dir.display().to_string();
            (
                Arc::new(store),
                Backend::Local(dir),
                location,
                CommitMode::StageAndRename,
            )
        };
        Ok(Self {
            store,
            backend,
            location,
            endpoint,
            commit,
            part_size: cfg.multipart_part_size.max(MIN_PART_SIZE),
            concurrency: cfg.multipart_concurrency.max(1),
        })
    }

    /// Wraps any object store (already scoped to the artifact root), e.g. an
    /// in-memory one. Uploads use `commit`; stale-upload cleanup goes through
    /// the object-store API.
    pub fn from_object_store(store: Arc<dyn ObjectStore>, commit: CommitMode) -> Self {
        let defaults = ArtifactStoreConfig::default();
        Self {
            location: store.to_string(),
            store,
            backend: Backend::Remote,
            endpoint: None,
            commit,
            part_size: defaults.multipart_part_size,
            concurrency: defaults.multipart_concurrency,
        }
    }

    /// Returns the store with a different [`CommitMode`].
    pub fn with_commit_mode(mut self, commit: CommitMode) -> Self {
        self.commit = commit;
        self
    }

    /// The commit mode uploads use.
    pub fn commit_mode(&self) -> CommitMode {
        self.commit
    }

    /// Where the store lives, for logs: a directory path or `s3://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The S3 endpoint in use, when one was configured (none for AWS and
    /// local stores).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The underlying object store, scoped to the artifact root. Bypasses
    /// path validation and atomic uploads: for tests and diagnostics.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Probes the backend with a one-level listing of the root (readiness
    /// checks; proves S3 credentials and bucket).
    pub async fn check(&self) -> Result<(), ArtifactError> {
        self.store
            .list_with_delimiter(None)
            .await
            .map(|_| ())
            .map_err(|e| ArtifactError::backend("list", "<root>", e))
    }

    /// Streams `body` into the file at `path`, all or nothing.
    ///
    /// Memory stays bounded by about `(multipart_concurrency + 1) *
    /// multipart_part_size` whatever the body size. SHA-256 is computed on the
    /// way. If the body yields an error ([`ArtifactError::BodyAborted`]),
    /// grows past `max_bytes` ([`ArtifactError::TooLarge`]), or the backend
    /// fails, the partial upload is discarded and an existing file at `path`
    /// is left untouched. If this future is dropped mid-way (client gone), the
    /// partial upload is discarded by a background task.
    pub async fn put_stream<S, E>(
        &self,
        path: &ArtifactPath,
        body: S,
        max_bytes: u64,
    ) -> Result<PutOutcome, ArtifactError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let final_key = path.to_object_path()?;
        self.check_local_clash(path)?;
        let staged = self.commit == CommitMode::StageAndRename;
        let key = if staged {
            temp_key()
        } else {
            final_key.clone()
        };
        let mut upload = PendingUpload {
            store: Arc::clone(&self.store),
            key,
            delete_key_on_discard: staged,
            writer: None,
            armed: true,
        };
        let result = async {
            let outcome = self.stream_into(&mut upload, path, body, max_bytes).await?;
            if staged {
                self.store
                    .rename(&upload.key, &final_key)
                    .await
                    .map_err(|e| ArtifactError::backend("write", path.as_str(), e))?;
            }
            Ok(outcome)
        }
        .await;
        match result {
            Ok(outcome) => {
                upload.armed = false;
                tracing::debug!(path = %path, size = outcome.size, "artifact stored");
                Ok(outcome)
            }
            Err(e) => {
                upload.discard().await;
                Err(e)
            }
        }
    }

    async fn stream_into<S, E>(
        &self,
        upload: &mut PendingUpload,
        path: &ArtifactPath,
        body: S,
        max_bytes: u64,
    ) -> Result<PutOutcome, ArtifactError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let write_err = |e| ArtifactError::backend("write", path.as_str(), e);
        let mut body = std::pin::pin!(body);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        // Chunks held until a full part has arrived: a body shorter than one
        // part is sent as a single PUT, a longer one as a multipart upload.
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        while let Some(item) = body.next().await {
            let chunk = item.map_err(|e| ArtifactError::BodyAborted(e.into()))?;
            if chunk.is_empty() {
                continue;
            }
            size = size.saturating_add(chunk.len() as u64);
            if size > max_bytes {
                return Err(ArtifactError::TooLarge { limit: max_bytes });
            }
            hasher.update(&chunk);
            if let Some(writer) = upload.writer.as_mut() {
                writer
                    .wait_for_capacity(self.concurrency)
                    .await
                    .map_err(write_err)?;
                writer.put(chunk);
                continue;
            }
            pending_len += chunk.len();
            pending.push(chunk);
            if pending_len >= self.part_size {
                let multipart = self
                    .store
                    .put_multipart(&upload.key)
                    .await
                    .map_err(write_err)?;
                let mut writer = WriteMultipart::new_with_chunk_size(multipart, self.part_size);
                for chunk in pending.drain(..) {
                    writer.put(chunk);
                }
                pending_len = 0;
                upload.writer = Some(writer);
            }
        }
        match upload.writer.take() {
            // `finish` aborts the multipart upload itself when it fails.
            Some(writer) => writer.finish().await.map_err(write_err)?,
            None => {
                let payload: PutPayload = pending.into_iter().collect();
                self.store
                    .put(&upload.key, payload)
                    .await
                    .map_err(write_err)?
            }
        };
        Ok(PutOutcome {
            size,
            sha256_hex: hex::encode(hasher.finalize()),
        })
    }

    /// Stores `data` at `path` (atomically, no size limit). Convenience over
    /// [`ArtifactStore::put_stream`] for small in-memory files.
    pub async fn put_bytes(
        &self,
        path: &ArtifactPath,
        data: Bytes,
    ) -> Result<PutOutcome, ArtifactError> {
        let body = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(data) });
        self.put_stream(path, body, u64::MAX).await
    }

    /// On a local directory a file cannot share its path with a directory
    /// (S3 allows both): refuse such uploads up front with a clear error
    /// instead of a failed rename.
    fn check_local_clash(&self, path: &ArtifactPath) -> Result<(), ArtifactError> {
        let Backend::Local(root) = &self.backend else {
            return Ok(());
        };
        if root.join(path.as_str()).is_dir() {
            return Err(ArtifactError::invalid_path(
                path.as_str(),
                "a directory of that name exists; a file cannot replace it",
            ));
        }
        let segments: Vec<&str> = path.segments().collect();
        for i in 1..segments.len() {
            let prefix = segments[..i].join("/");
            if root.join(&prefix).is_file() {
                return Err(ArtifactError::invalid_path(
                    path.as_str(),
                    &format!("'{prefix}' is a file, so it cannot hold other files"),
                ));
            }
        }
        Ok(())
    }

    /// Opens the file at `path` for streaming. A missing file, or a path that
    /// names a directory, is [`ArtifactError::NotFound`].
    pub async fn get(&self, path: &ArtifactPath) -> Result<Download, ArtifactError> {
        let key = path.to_object_path()?;
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| ArtifactError::backend("read", path.as_str(), e))?;
        let meta = to_meta(path.clone(), &result.meta);
        let shown = path.as_str().to_owned();
        let stream = result
            .into_stream()
            .map_err(move |e| ArtifactError::backend("read", &shown, e))
            .boxed();
        Ok(Download { meta, stream })
    }

    /// Reads the whole file at `path` into memory. For small files only.
    pub async fn get_bytes(&self, path: &ArtifactPath) -> Result<Bytes, ArtifactError> {
        let key = path.to_object_path()?;
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| ArtifactError::backend("read", path.as_str(), e))?;
        result
            .bytes()
            .await
            .map_err(|e| ArtifactError::backend("read", path.as_str(), e))
    }

    /// Metadata of the file at `path`; [`ArtifactError::NotFound`] if there
    /// is no file there (directories included).
    pub async fn head(&self, path: &ArtifactPath) -> Result<ArtifactMeta, ArtifactError> {
        let key = path.to_object_path()?;
        let meta = self
            .store
            .head(&key)
            .await
            .map_err(|e| ArtifactError::backend("read", path.as_str(), e))?;
        Ok(to_meta(path.clone(), &meta))
    }

    /// Whether `path` names a file or a non-empty directory.
    pub async fn exists(&self, path: &ArtifactPath) -> Result<bool, ArtifactError> {
        match self.head(path).await {
            Ok(_) => return Ok(true),
            Err(ArtifactError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let key = path.to_object_path()?;
        let first = self.store.list(Some(&key)).try_next().await;
        first
            .map(|m| m.is_some())
            .map_err(|e| ArtifactError::backend("list", path.as_str(), e))
    }

    /// Lists one level of the directory at `path` (the root when `None`), as
    /// MLflow's proxy does: basenames, sorted, directories without size. A
    /// missing directory, or a path naming a file, gives an empty list.
    /// Entries a client could not address (the reserved `.slipway*`
    /// namespace, object_store's `#N` staging files) are never returned.
    pub async fn list_dir(
        &self,
        path: Option<&ArtifactPath>,
    ) -> Result<Vec<FileInfo>, ArtifactError> {
        let prefix = path.map(ArtifactPath::to_object_path).transpose()?;
        let shown = path.map_or("<root>", ArtifactPath::as_str);
        let listing = match self.store.list_with_delimiter(prefix.as_ref()).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(ArtifactError::backend("list", shown, e)),
        };
        let mut out = Vec::with_capacity(listing.common_prefixes.len() + listing.objects.len());
        for dir in &listing.common_prefixes {
            if let Some(name) = dir.filename().filter(|n| ArtifactPath::is_valid_segment(n)) {
                out.push(FileInfo {
                    path: name.to_owned(),
                    is_dir: true,
                    file_size: None,
                });
            }
        }
        for object in &listing.objects {
            // Some S3 front-ends list a directory's own marker ("dir/") inside it.
            if prefix.as_ref() == Some(&object.location) {
                continue;
            }
            if let Some(name) = object
                .location
                .filename()
                .filter(|n| ArtifactPath::is_valid_segment(n))
            {
                out.push(FileInfo {
                    path: name.to_owned(),
                    is_dir: false,
                    file_size: Some(object.size),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path).then(b.is_dir.cmp(&a.is_dir)));
        Ok(out)
    }

    /// Deletes the file at `path` and everything under `path/` (MLflow's
    /// `DELETE` on the proxy is recursive). Returns how many files were
    /// deleted; a missing path is not an error (0).
    pub async fn delete(&self, path: &ArtifactPath) -> Result<u64, ArtifactError> {
        let key = path.to_object_path()?;
        let err = |e| ArtifactError::backend("delete", path.as_str(), e);
        let mut locations: Vec<ObjectPath> = match self
            .store
            .list(Some(&key))
            .map_ok(|m| m.location)
            .try_collect()
            .await
        {
            Ok(locations) => locations,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(err(e)),
        };
        match self.store.head(&key).await {
            Ok(_) => locations.push(key.clone()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(err(e)),
        }
        let mut seen = HashSet::new();
        locations.retain(|l| seen.insert(l.clone()));
        let count = locations.len() as u64;
        if count == 0 {
            return Ok(0);
        }
        let deleted_locations = locations.clone();
        let stream = futures::stream::iter(locations.into_iter().map(Ok)).boxed();
        let mut deleted = self.store.delete_stream(stream);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err(e)),
            }
        }
        if matches!(self.backend, Backend::Remote) {
            self.delete_directory_entries(&key, &deleted_locations)
                .await;
        }
        tracing::debug!(path = %path, count, "artifacts deleted");
        Ok(count)
    }

    /// S3 has no directories, but S3 front-ends over a file system (SeaweedFS)
    /// keep the emptied ones and list them for a while. Deleting the key of
    /// each emptied directory inside the deleted tree, deepest first, removes
    /// them there and is a no-op on S3 proper. Keys outside `root/**` are never
    /// touched (on S3 a file may share its name with a directory). Best effort.
    async fn delete_directory_entries(&self, root: &ObjectPath, deleted: &[ObjectPath]) {
        let mut dirs: Vec<ObjectPath> = Vec::new();
        let mut seen = HashSet::new();
        for location in deleted {
            let parts: Vec<_> = location.parts().collect();
            for depth in (1..parts.len()).rev() {
                let dir: ObjectPath = parts[..depth].iter().cloned().collect();
                if !dir.prefix_matches(root) {
                    break;
                }
                if seen.insert(dir.clone()) {
                    dirs.push(dir);
                }
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.parts().count()));
        for dir in dirs {
            if let Err(e) = self.store.delete(&dir).await {
                if !matches!(e, object_store::Error::NotFound { .. }) {
                    tracing::debug!(dir = %dir, error = %e, "could not remove directory entry");
                }
            }
        }
    }

    /// Deletes leftovers of interrupted uploads under `.slipway-tmp/` last
    /// modified more than `older_than` ago; returns how many were removed.
    /// Call at start-up (with `Duration::ZERO` only when no upload can be in
    /// flight). Incomplete S3 multipart uploads are not visible through the
    /// object-store API; expire them with a bucket lifecycle rule
    /// (`AbortIncompleteMultipartUpload`).
    pub async fn cleanup_stale_uploads(&self, older_than: Duration) -> Result<u64, ArtifactError> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let removed = match &self.backend {
            Backend::Local(root) => {
                let dir = root.join(TEMP_DIR);
                let local_err = |source: BoxError| {
                    let source = object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source,
                    };
                    ArtifactError::backend("clean", TEMP_DIR, source)
                };
                tokio::task::spawn_blocking(move || cleanup_local_temp(&dir, cutoff))
                    .await
                    .map_err(|e| local_err(Box::new(e)))?
                    .map_err(|e| local_err(Box::new(e)))?
            }
            Backend::Remote => {
                let cutoff_ms = cutoff
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0);
                let temp = ObjectPath::from(TEMP_DIR);
                let stale: Vec<ObjectPath> = self
                    .store
                    .list(Some(&temp))
                    .try_filter(|m| {
                        futures::future::ready(m.last_modified.timestamp_millis() < cutoff_ms)
                    })
                    .map_ok(|m| m.location)
                    .try_collect()
                    .await
                    .map_err(|e| ArtifactError::backend("clean", TEMP_DIR, e))?;
                let count = stale.len() as u64;
                if count > 0 {
                    let stream = futures::stream::iter(stale.into_iter().map(Ok)).boxed();
                    let mut deleted = self.store.delete_stream(stream);
                    while let Some(result) = deleted.next().await {
                        match result {
                            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(ArtifactError::backend("clean", TEMP_DIR, e)),
                        }
                    }
                }
                count
            }
        };
        if removed > 0 {
            tracing::info!(removed, location = %self.location, "removed stale partial uploads");
        }
        Ok(removed)
    }
}

/// A temporary key for one upload: `.slipway-tmp/<uuid>`.
fn temp_key() -> ObjectPath {
    ObjectPath::from_iter([TEMP_DIR.to_owned(), uuid::Uuid::new_v4().to_string()])
}

fn to_meta(path: ArtifactPath, meta: &object_store::ObjectMeta) -> ArtifactMeta {
    ArtifactMeta {
        path,
        size: meta.size,
        last_modified_ms: meta.last_modified.timestamp_millis(),
        e_tag: meta.e_tag.clone(),
    }
}

/// An upload not yet committed. Discarded explicitly on error, or from `Drop`
/// (in a background task) when the upload future is cancelled.
struct PendingUpload {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    /// Whether `key` is a temporary key to delete (never the final key).
    delete_key_on_discard: bool,
    writer: Option<WriteMultipart>,
    armed: bool,
}

impl PendingUpload {
    async fn discard(&mut self) {
        self.armed = false;
        discard(
            Arc::clone(&self.store),
            self.key.clone(),
            self.delete_key_on_discard,
            self.writer.take(),
        )
        .await;
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, key, delete, writer) = (
            Arc::clone(&self.store),
            self.key.clone(),
            self.delete_key_on_discard,
            self.writer.take(),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(discard(store, key, delete, writer));
            }
            Err(_) => {
                tracing::warn!(key = %key, "upload dropped outside a runtime; partial upload left for cleanup")
            }
        }
    }
}

async fn discard(
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    delete: bool,
    writer: Option<WriteMultipart>,
) {
    if let Some(writer) = writer {
        if let Err(e) = writer.abort().await {
            tracing::warn!(key = %key, error = %e, "could not abort multipart upload");
        }
    }
    if delete {
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key = %key, error = %e, "could not delete partial upload"),
        }
    }
}

fn open_local(dir: &FsPath) -> Result<(LocalFileSystem, PathBuf), ArtifactError> {
    let cfg_err = |what: &str, e: &dyn fmt::Display| {
        ArtifactError::Config(format!(
            "artifact directory '{}': {what}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| cfg_err("cannot create", &e))?;
    let canonical = std::fs::canonicalize(dir).map_err(|e| cfg_err("cannot resolve", &e))?;
    let store = LocalFileSystem::new_with_prefix(&canonical)
        .map_err(|e| cfg_err("cannot open", &e))?
        .with_automatic_cleanup(true);
    Ok((store, canonical))
}

/// An opened S3 store: the store, its location and the endpoint in use.
type OpenedS3 = (Arc<dyn ObjectStore>, String, Option<String>);

fn open_s3(rest: &str, cfg: &ArtifactStoreConfig) -> Result<OpenedS3, ArtifactError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    if bucket.is_empty() {
        return Err(ArtifactError::Config(format!(
            "artifact root 's3://{rest}' names no bucket"
        )));
    }
    let prefix_path = ObjectPath::parse(prefix).map_err(|e| {
        ArtifactError::Config(format!(
            "artifact root 's3://{rest}' has an invalid prefix: {e}"
        ))
    })?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = cfg
        .s3_endpoint
        .clone()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var(S3_ENDPOINT_ENV)
                .ok()
                .filter(|e| !e.trim().is_empty())
        });
    let endpoint = endpoint
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint))
        .map(|e| e.trim().trim_end_matches('/').to_owned());
    if let Some(endpoint) = &endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_endpoint(endpoint.clone());
    }
    if let Some(region) = cfg.s3_region.as_deref().filter(|r| !r.is_empty()) {
        builder = builder.with_region(region);
    } else if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
    {
        builder = builder.with_region(DEFAULT_S3_REGION);
    }
    let s3 = builder
        .build()
        .map_err(|e| ArtifactError::Config(format!("artifact root 's3://{rest}': {e}")))?;
    let location = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(PrefixStore::new(s3, prefix_path))
    };
    Ok((store, location, endpoint))
}

/// Removes entries of the local temp directory older than `cutoff`,
/// including object_store's `<uuid>#N` staging files, which its API hides.
fn cleanup_local_temp(dir: &FsPath, cutoff: SystemTime) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if meta.modified()? > cutoff {
            continue;
        }
        let result = if meta.is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Compile-time check: HTTP handlers can hold these futures across awaits.
    #[allow(dead_code)]
    fn futures_are_send(store: &ArtifactStore, path: &ArtifactPath) {
        fn is_send<T: Send>(_: &T) {}
        let body = futures::stream::empty::<Result<Bytes, std::io::Error>>();
        is_send(&store.put_stream(path, body, 1));
        is_send(&store.get(path));
        is_send(&store.list_dir(Some(path)));
        is_send(&store.delete(path));
        is_send(&store.cleanup_stale_uploads(Duration::ZERO));
    }

    #[test]
    fn open_rejects_bad_roots() {
        for root in ["", "gs://bucket/x", "s3://", "s3:///prefix"] {
            let err = ArtifactStore::open(&ArtifactStoreConfig::new(root)).unwrap_err();
            assert!(matches!(err, ArtifactError::Config(_)), "{root}: {err:?}");
        }
    }

    #[test]
    fn open_s3_builds_without_network() {
        let mut cfg = ArtifactStoreConfig::new("s3://bucket/some/prefix/");
        cfg.s3_endpoint = Some("http://127.0.0.1:1".to_owned());
        let store = ArtifactStore::open(&cfg).unwrap();
        assert_eq!(store.location(), "s3://bucket/some/prefix");
        assert_eq!(store.commit_mode(), CommitMode::Direct);
    }

    #[test]
    fn open_local_creates_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b");
        let store = ArtifactStore::open(&ArtifactStoreConfig::new(root.to_str().unwrap())).unwrap();
        assert!(root.is_dir());
        assert_eq!(store.commit_mode(), CommitMode::StageAndRename);
        let url = format!("file://{}", root.display());
        assert!(ArtifactStore::open(&ArtifactStoreConfig::new(url)).is_ok());
    }
}
