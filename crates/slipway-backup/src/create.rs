//! `backup create`: one consistent backup of a running installation.
//!
//! Order of work, and why:
//!
//! 1. the backup lease (one backup or prune per store at a time);
//! 2. the metadata snapshot ([`Snapshot::take`]): every table read at one
//!    point and written as a part; the snapshot is closed before artifacts
//!    are copied, so a PostgreSQL transaction is not held open for hours;
//! 3. the artifacts the snapshot's `artifact_digests` records: one blob per
//!    distinct SHA-256, copied only when the location lacks it, checked on
//!    the way against the recorded digest (a mismatching copy is never
//!    stored); files in the store without a recorded digest are hashed and
//!    copied too;
//! 4. the artifact list, then the manifest, written last and atomically.
//!
//! A file overwritten between the snapshot and its copy is copied with its
//! new content and digest (listed as changed in the manifest); a recorded
//! file absent from the store is listed as missing; a file whose content
//! matches neither its snapshot digest nor its current one is corrupt in the
//! source, and the backup fails naming it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value as Json;
use slipway_artifacts::{ArtifactPath, ArtifactStore, TEMP_DIR};
use slipway_metadata::sql::snapshot::{Snapshot, SnapshotError, Value};
use slipway_metadata::MetadataStore;

use crate::error::{BackupError, Result};
use crate::format::{
    self, backup_dir, blob_key, is_sha256_hex, ArtifactEntry, ArtifactsInfo, ColumnDef, Manifest,
    PartFile, SnapshotInfo, SourceInfo, TableHeader, TablePart, ARTIFACTS_FILE, FORMAT_NAME,
    FORMAT_VERSION, MANIFEST_FILE,
};
use crate::lease::HeldLease;
use crate::location::{key, Location};
use crate::transfer::{self, Checks, CopyError};
use crate::{new_backup_id, rfc3339, Clock, Progress, RateLimit};

/// How old (before the snapshot) a file without a recorded digest must be
/// to be backed up: younger ones may be uploads in flight.
pub const UNRECORDED_MIN_AGE_MS: i64 = 10 * 60 * 1000;

/// The installation to back up.
#[derive(Clone)]
pub struct Source {
    /// Its metadata database URL (`sqlite://…` or `postgres://…`).
    pub metadata_url: String,
    /// The same database as a store: leases and current digests.
    pub store: Arc<dyn MetadataStore>,
    /// Its artifact store.
    pub artifacts: ArtifactStore,
}

/// How to run a backup.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Where the SQLite snapshot copy and part files are staged (the system
    /// temporary directory when `None`); needs room for the compacted database.
    pub scratch_dir: Option<PathBuf>,
    /// Upper bound of artifact bytes copied per second.
    pub max_rate: Option<u64>,
    /// Artifact copies in flight at once.
    pub concurrency: usize,
    /// Who holds the backup lease (an id unique per process).
    pub holder: String,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            scratch_dir: None,
            max_rate: None,
            concurrency: 4,
            holder: format!("backup:{}", std::process::id()),
        }
    }
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct CreateSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// The location.
    pub location: String,
    /// How long it took, in ms.
    pub duration_ms: u64,
}

impl CreateSummary {
    /// The summary printed by `backup create --json` and logged by the scheduler.
    pub fn to_json(&self) -> Json {
        let m = &self.manifest;
        serde_json::json!({
            "backup_id": m.backup_id,
            "location": self.location,
            "path": format!("{}/{}", self.location.trim_end_matches('/'), backup_dir(&m.backup_id)),
            "created_at": m.created_at,
            "duration_ms": self.duration_ms,
            "schema_version": m.schema_version,
            "snapshot": m.snapshot,
            "counts": m.counts(),
            "artifacts": {
                "files": m.artifacts.files,
                "bytes": m.artifacts.bytes,
                "blobs": m.artifacts.blobs,
                "copied_blobs": m.artifacts.copied_blobs,
                "copied_bytes": m.artifacts.copied_bytes,
                "unrecorded_files": m.artifacts.unrecorded_files,
                "missing_files": m.artifacts.missing_files,
                "missing": m.artifacts.missing,
                "changed_during_backup": m.artifacts.changed_during_backup,
            },
            "size_bytes": m.total_bytes(),
        })
    }
}

/// Takes one backup of `source` into `dest`. See the module docs.
pub async fn create(
    source: &Source,
    dest: &Location,
    opts: &CreateOptions,
    progress: &Progress,
    clock: &dyn Clock,
) -> Result<CreateSummary> {
    let root = source.artifacts.location().trim_end_matches('/');
    let d = dest.uri().trim_end_matches('/');
    if d == root || d.starts_with(&format!("{root}/")) {
        return Err(BackupError::Location {
            location: dest.uri().into(),
            reason: format!("it lies inside the artifact store {root}; back up elsewhere"),
        });
    }
    let lease = HeldLease::acquire(source.store.clone(), &opts.holder).await?;
    let res = create_locked(source, dest, opts, progress, clock, &lease).await;
    lease.release().await;
    res
}

async fn create_locked(
    source: &Source,
    dest: &Location,
    opts: &CreateOptions,
    progress: &Progress,
    clock: &dyn Clock,
    lease: &HeldLease,
) -> Result<CreateSummary> {
    let started = Instant::now();
    let created_at_ms = clock.now_ms();
    let id = new_backup_id(created_at_ms);
    let dir = backup_dir(&id);
    let scratch_root = opts.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&scratch_root).map_err(BackupError::io(format!(
        "creating the scratch directory {}",
        scratch_root.display()
    )))?;
    let scratch = tempfile::Builder::new()
        .prefix("slipway-backup-")
        .tempdir_in(&scratch_root)
        .map_err(BackupError::io(format!(
            "creating a scratch directory in {}",
            scratch_root.display()
        )))?;
    tracing::info!(backup_id = %id, location = %dest.uri(), "backup started");

    // ---- metadata, at one consistent point
    progress.phase("metadata");
    let mut snapshot = Snapshot::take(&source.metadata_url, scratch.path()).await?;
    let point = snapshot.point().clone();
    let engine = snapshot.engine();
    let schema_version = snapshot.schema_version();
    let tables = snapshot.tables().to_vec();
    let mut parts = Vec::new();
    let mut digest_table = None;
    for table in &tables {
        if table.name == "artifact_digests" {
            let rows: Vec<Vec<Value>> = snapshot.rows(&table.name)?.try_collect().await?;
            Progress::add(&progress.rows, rows.len() as u64);
            digest_table = Some((table.clone(), rows));
            continue;
        }
        let header = TableHeader {
            part: "table".into(),
            table: table.name.clone(),
            columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let rows = snapshot.rows(&table.name)?.map_ok(|row| {
            Progress::add(&progress.rows, 1);
            Json::Array(row.iter().map(format::encode_cell).collect())
        });
        let file = format!("metadata/{}.ndjson.gz", table.name);
        let (part, lines) = write_part(scratch.path(), dest, &dir, &file, &header, rows).await?;
        parts.push(table_part(table, lines, part));
    }
    snapshot.close().await;
    let Some((digest_schema, mut digest_rows)) = digest_table else {
        return Err(BackupError::Unsupported(
            "the source database has no artifact_digests table".into(),
        ));
    };
    let col = |name: &str| {
        digest_schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                BackupError::Unsupported(format!("artifact_digests has no column {name}"))
            })
    };
    let (c_path, c_sha, c_size) = (col("path")?, col("sha256")?, col("size")?);

    // ---- artifacts
    progress.phase("artifacts");
    let mut recorded: Vec<(String, String, u64)> = Vec::with_capacity(digest_rows.len());
    for row in &digest_rows {
        let (Value::Text(p), Value::Text(s), Value::Integer(n)) =
            (&row[c_path], &row[c_sha], &row[c_size])
        else {
            return Err(BackupError::format(
                "artifact_digests",
                format!("unexpected row {row:?}"),
            ));
        };
        if !is_sha256_hex(s) {
            return Err(BackupError::format(
                "artifact_digests",
                format!("artifact {p} has an invalid recorded digest '{s}'"),
            ));
        }
        recorded.push((p.clone(), s.clone(), u64::try_from(*n).unwrap_or(0)));
    }
    let listing = list_files(&source.artifacts).await?;
    let mut have = dest.blobs().await?;
    let rate = opts.max_rate.map(RateLimit::new);
    let mut groups: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for (path, sha, size) in &recorded {
        groups
            .entry(sha.clone())
            .or_insert_with(|| (*size, Vec::new()))
            .1
            .push(path.clone());
    }
    let to_copy: Vec<(&String, &(u64, Vec<String>))> = groups
        .iter()
        .filter(|(sha, _)| !have.contains_key(*sha))
        .collect();
    progress
        .files_total
        .store(recorded.len() as u64, std::sync::atomic::Ordering::Relaxed);
    progress.bytes_total.store(
        to_copy.iter().map(|(_, (size, _))| *size).sum(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let reused: u64 = groups
        .iter()
        .filter(|(sha, _)| have.contains_key(*sha))
        .map(|(_, (size, paths))| {
            Progress::add(&progress.files_done, paths.len() as u64);
            *size
        })
        .sum();
    Progress::add(&progress.bytes_reused, reused);

    let rate_ref = rate.as_ref();
    let copies: Vec<_> = to_copy
        .into_iter()
        .map(|(sha, (size, paths))| {
            let (src, dst, listing) = (&source.artifacts, dest.store(), &listing);
            async move {
                let outcome =
                    copy_group(src, dst, sha, *size, paths, listing, progress, rate_ref).await;
                Progress::add(&progress.files_done, paths.len() as u64);
                (sha.clone(), outcome)
            }
        })
        .collect();
    let outcomes: Vec<(String, GroupOutcome)> = crate::bounded(copies, opts.concurrency).await;

    let mut copied_blobs = 0u64;
    let mut copied_bytes = 0u64;
    let mut missing: Vec<String> = Vec::new();
    let mut changed: Vec<String> = Vec::new();
    // path -> (sha256, size) replacing the snapshot's digest row
    let mut replaced: HashMap<String, (String, u64)> = HashMap::new();
    for (sha, outcome) in outcomes {
        match outcome {
            GroupOutcome::Copied(bytes) => {
                copied_blobs += 1;
                copied_bytes += bytes;
                have.insert(sha, bytes);
            }
            GroupOutcome::Failed(e) => return Err(e),
            GroupOutcome::NoCopy { mismatched, absent } => {
                missing.extend(absent);
                for (path, actual) in mismatched {
                    let live = current_digest(source.store.as_ref(), &path).await?;
                    match live {
                        Some((live_sha, live_size)) if live_sha != sha => {
                            if !have.contains_key(&live_sha) {
                                let bytes = copy_one(source, dest, &path, &live_sha, live_size, progress, rate.as_ref()).await?;
                                copied_blobs += 1;
                                copied_bytes += bytes;
                                have.insert(live_sha.clone(), bytes);
                            }
                            tracing::warn!(path = %path, "artifact overwritten during the backup; its new content is backed up");
                            changed.push(path.clone());
                            replaced.insert(path, (live_sha, live_size));
                        }
                        _ => {
                            return Err(BackupError::DigestMismatch {
                                what: format!(
                                    "artifact {path} in the source store (its content differs from the digest recorded at upload: corrupt or modified outside Slipway; run `slipway doctor`)"
                                ),
                                expected: sha,
                                actual,
                            })
                        }
                    }
                }
            }
        }
    }
    missing.sort();
    changed.sort();
    for row in &mut digest_rows {
        if let Value::Text(p) = &row[c_path] {
            if let Some((sha, size)) = replaced.get(p) {
                row[c_sha] = Value::Text(sha.clone());
                row[c_size] = Value::Integer(i64::try_from(*size).unwrap_or(i64::MAX));
            }
        }
    }
    let missing_set: HashSet<&String> = missing.iter().collect();
    let mut entries: Vec<ArtifactEntry> = Vec::with_capacity(recorded.len());
    for (path, sha, size) in &recorded {
        let (sha, size) = replaced.get(path).cloned().unwrap_or((sha.clone(), *size));
        entries.push(ArtifactEntry {
            missing: missing_set.contains(path),
            path: path.clone(),
            sha256: sha,
            size,
            recorded: true,
        });
    }

    // Files in the store with no recorded digest, present at the snapshot.
    let recorded_paths: HashSet<&str> = recorded.iter().map(|(p, _, _)| p.as_str()).collect();
    let unrecorded: Vec<(&String, &(u64, i64))> = listing
        .iter()
        .filter(|(p, (_, modified))| {
            !recorded_paths.contains(p.as_str())
                && *modified < point.started_at_ms - UNRECORDED_MIN_AGE_MS
        })
        .collect();
    if !unrecorded.is_empty() {
        progress.phase("unrecorded artifacts");
        progress.files_total.store(
            unrecorded.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    let mut unrecorded_files = 0u64;
    for (path, _) in unrecorded {
        let p = key(path)?;
        let (sha, size) = match transfer::hash(&source.artifacts, &p, Some(progress)).await {
            Ok(v) => v,
            Err(CopyError::NotFound) => continue, // deleted since the listing
            Err(e) => return Err(copy_err(path, e)),
        };
        if !have.contains_key(&sha) {
            match copy_one(source, dest, path, &sha, size, progress, rate.as_ref()).await {
                Ok(bytes) => {
                    copied_blobs += 1;
                    copied_bytes += bytes;
                    have.insert(sha.clone(), bytes);
                }
                // Changed or deleted since it was hashed: not part of this backup.
                Err(BackupError::DigestMismatch { .. }) | Err(BackupError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Progress::add(&progress.files_done, 1);
        unrecorded_files += 1;
        entries.push(ArtifactEntry {
            path: path.clone(),
            sha256: sha,
            size,
            recorded: false,
            missing: false,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));

    // ---- the digest table (with replaced rows) and the artifact list
    progress.phase("finishing");
    let header = TableHeader {
        part: "table".into(),
        table: digest_schema.name.clone(),
        columns: digest_schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect(),
    };
    let rows = futures::stream::iter(digest_rows.iter().map(|row| {
        Ok::<_, SnapshotError>(Json::Array(row.iter().map(format::encode_cell).collect()))
    }));
    let file = format!("metadata/{}.ndjson.gz", digest_schema.name);
    let (part, lines) = write_part(scratch.path(), dest, &dir, &file, &header, rows).await?;
    let digest_part = table_part(&digest_schema, lines, part);
    // Keep the manifest's tables in dependency order.
    let pos = tables
        .iter()
        .position(|t| t.name == digest_schema.name)
        .unwrap_or(parts.len());
    parts.insert(pos.min(parts.len()), digest_part);

    let list_rows = futures::stream::iter(
        entries
            .iter()
            .map(|e| serde_json::to_value(e).map_err(|e| SnapshotError::Schema(e.to_string()))),
    );
    let list_header = serde_json::json!({"part": "artifacts"});
    let (artifacts_file, _) = write_part(
        scratch.path(),
        dest,
        &dir,
        ARTIFACTS_FILE,
        &list_header,
        list_rows,
    )
    .await?;
    let blobs: HashSet<&str> = entries
        .iter()
        .filter(|e| !e.missing)
        .map(|e| e.sha256.as_str())
        .collect();
    let artifacts = ArtifactsInfo {
        file: artifacts_file,
        files: entries.iter().filter(|e| !e.missing).count() as u64,
        bytes: entries.iter().filter(|e| !e.missing).map(|e| e.size).sum(),
        blobs: blobs.len() as u64,
        copied_blobs,
        copied_bytes,
        unrecorded_files,
        missing_files: missing.len() as u64,
        missing: missing.iter().take(100).cloned().collect(),
        changed_during_backup: changed,
    };
    lease.check()?;
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        backup_id: id.clone(),
        created_at: rfc3339(created_at_ms),
        created_at_ms,
        completed_at_ms: clock.now_ms(),
        slipway_version: env!("CARGO_PKG_VERSION").into(),
        source: SourceInfo {
            engine: engine.into(),
            metadata_url: slipway_metadata::sql::redact(&source.metadata_url),
            artifact_root: source.artifacts.location().into(),
        },
        schema_version,
        snapshot: SnapshotInfo {
            method: point.method.into(),
            started_at_ms: point.started_at_ms,
            taken_at_ms: point.taken_at_ms,
        },
        tables: parts,
        artifacts,
    };
    // The manifest goes last: only now is the backup complete.
    dest.put(&format!("{dir}/{MANIFEST_FILE}"), manifest.to_json())
        .await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        backup_id = %id,
        location = %dest.uri(),
        duration_ms,
        rows = progress.rows.load(std::sync::atomic::Ordering::Relaxed),
        artifacts = manifest.artifacts.files,
        copied_bytes = manifest.artifacts.copied_bytes,
        missing = manifest.artifacts.missing_files,
        "backup complete"
    );
    Ok(CreateSummary {
        manifest,
        location: dest.uri().to_string(),
        duration_ms,
    })
}

fn table_part(
    table: &slipway_metadata::sql::snapshot::TableSchema,
    rows: u64,
    file: PartFile,
) -> TablePart {
    TablePart {
        name: table.name.clone(),
        columns: table
            .columns
            .iter()
            .map(|c| ColumnDef {
                name: c.name.clone(),
                kind: c.kind.name().into(),
            })
            .collect(),
        rows,
        file,
    }
}

enum GroupOutcome {
    /// The blob was copied (its size).
    Copied(u64),
    /// No path gave the recorded content: those that differ (with the
    /// digest read) and those that are absent.
    NoCopy {
        mismatched: Vec<(String, String)>,
        absent: Vec<String>,
    },
    Failed(BackupError),
}

#[allow(clippy::too_many_arguments)]
async fn copy_group(
    src: &ArtifactStore,
    dst: &ArtifactStore,
    sha: &str,
    size: u64,
    paths: &[String],
    listing: &HashMap<String, (u64, i64)>,
    progress: &Progress,
    rate: Option<&RateLimit>,
) -> GroupOutcome {
    let blob = match key(&blob_key(sha)) {
        Ok(k) => k,
        Err(e) => return GroupOutcome::Failed(e),
    };
    let mut mismatched = Vec::new();
    let mut absent = Vec::new();
    for path in paths {
        if !listing.contains_key(path) {
            absent.push(path.clone());
            continue;
        }
        let p = match ArtifactPath::parse(path) {
            Ok(p) => p,
            Err(e) => {
                return GroupOutcome::Failed(BackupError::format("artifact_digests", e.to_string()))
            }
        };
        let checks = Checks {
            sha256: sha,
            size,
            progress: Some(progress),
            rate,
        };
        match transfer::copy_verified(src, &p, dst, &blob, checks).await {
            Ok(bytes) => return GroupOutcome::Copied(bytes),
            Err(CopyError::NotFound) => absent.push(path.clone()),
            Err(CopyError::Mismatch { actual, .. }) => mismatched.push((path.clone(), actual)),
            Err(e) => return GroupOutcome::Failed(copy_err(path, e)),
        }
    }
    GroupOutcome::NoCopy { mismatched, absent }
}

async fn copy_one(
    source: &Source,
    dest: &Location,
    path: &str,
    sha: &str,
    size: u64,
    progress: &Progress,
    rate: Option<&RateLimit>,
) -> Result<u64> {
    let checks = Checks {
        sha256: sha,
        size,
        progress: Some(progress),
        rate,
    };
    match transfer::copy_verified(
        &source.artifacts,
        &key(path)?,
        dest.store(),
        &key(&blob_key(sha))?,
        checks,
    )
    .await
    {
        Ok(n) => Ok(n),
        Err(CopyError::NotFound) => Err(BackupError::NotFound(format!(
            "artifact {path} vanished during the backup"
        ))),
        Err(CopyError::Mismatch { actual, .. }) => Err(BackupError::DigestMismatch {
            what: format!(
                "artifact {path} (changed again during the backup; run the backup again)"
            ),
            expected: sha.into(),
            actual,
        }),
        Err(e) => Err(copy_err(path, e)),
    }
}

fn copy_err(path: &str, e: CopyError) -> BackupError {
    match e {
        CopyError::Store(source) => BackupError::Artifacts {
            context: format!("copying artifact {path}"),
            source: Box::new(source),
        },
        CopyError::NotFound => BackupError::NotFound(format!("artifact {path} not found")),
        CopyError::Mismatch { actual, .. } => BackupError::DigestMismatch {
            what: format!("artifact {path}"),
            expected: String::new(),
            actual,
        },
    }
}

/// The digest the live store records for `path` now.
async fn current_digest(store: &dyn MetadataStore, path: &str) -> Result<Option<(String, u64)>> {
    Ok(store
        .list_artifact_digests(path)
        .await?
        .into_iter()
        .find(|d| d.path == path)
        .map(|d| (d.sha256, u64::try_from(d.size).unwrap_or(0))))
}

/// Every file of an artifact store (in-flight uploads and directory markers
/// excluded): path → (size, last modified ms).
pub(crate) async fn list_files(store: &ArtifactStore) -> Result<HashMap<String, (u64, i64)>> {
    let metas: Vec<object_store::ObjectMeta> =
        match store.object_store().list(None).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => {
                return Err(BackupError::ObjectStore {
                    context: format!("listing the artifact store {}", store.location()),
                    source: Box::new(e),
                })
            }
        };
    let mut files: HashMap<String, (u64, i64)> = HashMap::new();
    let mut parents: HashSet<String> = HashSet::new();
    for m in metas {
        let path = m.location.as_ref().to_string();
        if path.split('/').next() == Some(TEMP_DIR) || ArtifactPath::parse(&path).is_err() {
            continue;
        }
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            parents.insert(parent.to_string());
            p = parent;
        }
        files.insert(path, (m.size, m.last_modified.timestamp_millis()));
    }
    // S3 front-ends over file systems list directories as empty objects.
    files.retain(|p, _| !parents.contains(p));
    Ok(files)
}

/// Writes one part: lines from `rows` go through a blocking thread that
/// compresses and hashes them into a scratch file, which is then uploaded
/// to `<dir>/<file>`.
async fn write_part<S>(
    scratch: &Path,
    dest: &Location,
    dir: &str,
    file: &str,
    header: &impl Serialize,
    rows: S,
) -> Result<(PartFile, u64)>
where
    S: Stream<Item = std::result::Result<Json, SnapshotError>> + Send,
{
    let local = scratch.join(file.replace('/', "__"));
    let header =
        serde_json::to_value(header).map_err(|e| BackupError::format(file, e.to_string()))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Json>>(16);
    let writer = {
        let local = local.clone();
        let file = file.to_string();
        tokio::task::spawn_blocking(move || -> Result<(String, u64, u64)> {
            let io = BackupError::io(format!("writing {file} in the scratch directory"));
            let f = std::fs::File::create(&local);
            let run = || -> std::io::Result<(String, u64, u64)> {
                let mut w = format::PartWriter::new(std::io::BufWriter::new(f?), &header)?;
                while let Some(batch) = rx.blocking_recv() {
                    for line in batch {
                        w.line(&line)?;
                    }
                }
                let lines = w.lines();
                let (_, sha, bytes) = w.finish()?;
                Ok((sha, bytes, lines))
            };
            run().map_err(io)
        })
    };
    let mut rows = std::pin::pin!(rows);
    let mut batch = Vec::with_capacity(256);
    let mut failed = None;
    while let Some(item) = rows.next().await {
        match item {
            Ok(line) => {
                batch.push(line);
                if batch.len() == 256 && tx.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if !batch.is_empty() && failed.is_none() {
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| BackupError::io("the part writer thread")(std::io::Error::other(e)))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let (sha256, bytes, lines) = written?;
    let f = tokio::fs::File::open(&local)
        .await
        .map_err(BackupError::io(format!("reading {}", local.display())))?;
    let body = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
    let target = format!("{dir}/{file}");
    dest.store()
        .put_stream(&key(&target)?, body, u64::MAX)
        .await
        .map_err(BackupError::artifacts(format!(
            "writing {target} at {}",
            dest.uri()
        )))?;
    let _ = tokio::fs::remove_file(&local).await;
    Ok((
        PartFile {
            path: file.to_string(),
            bytes,
            sha256,
        },
        lines,
    ))
}
