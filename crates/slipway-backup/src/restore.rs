//! `backup restore`: a complete backup into a store.
//!
//! Nothing is written until every metadata part has been downloaded and its
//! SHA-256 checked (a truncated or corrupt backup fails first). Then the
//! artifacts are copied to their paths, each checked against its digest on
//! the way, and finally all metadata is imported in ONE transaction (with
//! the setting `restored_from` naming the backup): a restore that fails or
//! is killed leaves the metadata as it was. Its artifacts may remain; a
//! second attempt then needs `force`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use slipway_artifacts::ArtifactStore;
use slipway_metadata::sql::snapshot::{ColumnKind, Import, Value};
use slipway_metadata::sql::SqlStore;
use tokio::io::AsyncWriteExt;

use crate::error::{BackupError, Result};
use crate::format::{
    backup_dir, blob_key, ArtifactEntry, Manifest, PartFile, PartReader, TableHeader,
};
use crate::location::{key, Location};
use crate::transfer::{self, Checks, CopyError};
use crate::Progress;

/// Setting written by a restore: the id of the backup restored.
pub const RESTORED_FROM: &str = "restored_from";

/// The stores to restore into.
#[derive(Debug, Clone)]
pub struct Target {
    /// The metadata store (migrated to this build's schema).
    pub store: SqlStore,
    /// The artifact store.
    pub artifacts: ArtifactStore,
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore into stores that already hold data: every metadata table is
    /// replaced, artifacts at the same paths are overwritten, other files
    /// stay.
    pub force: bool,
    /// Artifact copies in flight at once.
    pub concurrency: usize,
    /// Where parts are downloaded to (the system temporary directory when `None`).
    pub scratch_dir: Option<PathBuf>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            force: false,
            concurrency: 4,
            scratch_dir: None,
        }
    }
}

/// The outcome of a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The backup restored.
    pub backup_id: String,
    /// Metadata rows imported.
    pub rows: u64,
    /// Artifact files written.
    pub artifacts: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Duration in ms.
    pub duration_ms: u64,
}

impl RestoreSummary {
    /// The summary printed by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "backup_id": self.backup_id,
            "rows": self.rows,
            "artifacts": self.artifacts,
            "bytes": self.bytes,
            "duration_ms": self.duration_ms,
        })
    }
}

/// What a target holds, in words, or `None` when it is empty.
pub async fn describe_contents(target: &Target) -> Result<Option<String>> {
    let contents = target.store.contents().await?;
    let mut held: Vec<String> = contents
        .non_empty()
        .into_iter()
        .map(|(t, n)| format!("{n} rows in {t}"))
        .collect();
    let files = target
        .artifacts
        .list_dir(None)
        .await
        .map_err(BackupError::artifacts("listing the target artifact store"))?;
    if !files.is_empty() {
        held.push(format!(
            "files in the artifact store {} ({})",
            target.artifacts.location(),
            files
                .iter()
                .take(3)
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok((!held.is_empty()).then(|| held.join("; ")))
}

/// Restores the backup `manifest` describes from `location` into `target`.
pub async fn restore(
    location: &Location,
    manifest: &Manifest,
    target: &Target,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    let ours = slipway_metadata::sql::schema_version();
    if manifest.schema_version > ours {
        return Err(BackupError::Unsupported(format!(
            "backup {} holds metadata of schema version {}, newer than this build's {ours}: restore it with a newer slipway",
            manifest.backup_id, manifest.schema_version
        )));
    }
    if !opts.force {
        if let Some(what) = describe_contents(target).await? {
            return Err(BackupError::TargetNotEmpty(format!(
                "the target stores are not empty ({what}); restore into an empty data dir / database and artifact prefix, or pass --force to replace the metadata and overwrite artifacts"
            )));
        }
    }
    let scratch = scratch_dir(opts.scratch_dir.as_deref())?;
    progress.phase("downloading metadata");
    let parts = fetch_parts(location, manifest, scratch.path(), progress).await?;
    let entries = read_artifact_list(&parts.artifacts, &manifest.artifacts.file.path).await?;

    progress.phase("artifacts");
    let todo: Vec<&ArtifactEntry> = entries.iter().filter(|e| !e.missing).collect();
    progress
        .files_total
        .store(todo.len() as u64, std::sync::atomic::Ordering::Relaxed);
    progress.bytes_total.store(
        todo.iter().map(|e| e.size).sum(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let copies: Vec<_> = todo
        .into_iter()
        .map(|e| async move {
            let checks = Checks {
                sha256: &e.sha256,
                size: e.size,
                progress: Some(progress),
                rate: None,
            };
            let r = transfer::copy_verified(
                location.store(),
                &key(&blob_key(&e.sha256))?,
                &target.artifacts,
                &key(&e.path)?,
                checks,
            )
            .await;
            Progress::add(&progress.files_done, 1);
            r.map_err(|err| match err {
                CopyError::NotFound => BackupError::NotFound(format!(
                    "blob {} of artifact {} is missing at {}",
                    blob_key(&e.sha256),
                    e.path,
                    location.uri()
                )),
                CopyError::Mismatch { actual, .. } => BackupError::DigestMismatch {
                    what: format!("blob {} of artifact {} (corrupt backup: run `slipway backup verify`, restore an older backup)", blob_key(&e.sha256), e.path),
                    expected: e.sha256.clone(),
                    actual,
                },
                CopyError::Store(source) => BackupError::Artifacts {
                    context: format!("restoring artifact {}", e.path),
                    source: Box::new(source),
                },
            })
        })
        .collect();
    let results: Vec<Result<u64>> = crate::bounded(copies, opts.concurrency).await;
    let mut artifacts = 0u64;
    let mut bytes = 0u64;
    for r in results {
        bytes += r?;
        artifacts += 1;
    }

    progress.phase("metadata");
    let mut import = target.store.begin_import().await?;
    import_tables(&mut import, manifest, &parts, progress).await?;
    import
        .set_setting(RESTORED_FROM, &manifest.backup_id)
        .await?;
    let rows = import.commit().await?;
    let duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        backup_id = %manifest.backup_id,
        rows,
        artifacts,
        bytes,
        duration_ms,
        "restore complete"
    );
    Ok(RestoreSummary {
        backup_id: manifest.backup_id.clone(),
        rows,
        artifacts,
        bytes,
        duration_ms,
    })
}

pub(crate) fn scratch_dir(dir: Option<&Path>) -> Result<tempfile::TempDir> {
    let root = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root).map_err(BackupError::io(format!(
        "creating the scratch directory {}",
        root.display()
    )))?;
    tempfile::Builder::new()
        .prefix("slipway-restore-")
        .tempdir_in(&root)
        .map_err(BackupError::io(format!(
            "creating a scratch directory in {}",
            root.display()
        )))
}

/// The parts of a backup, downloaded and checked.
pub(crate) struct LocalParts {
    /// Table name → local file, in manifest order.
    pub tables: Vec<(String, PathBuf)>,
    /// The artifact list.
    pub artifacts: PathBuf,
}

/// Downloads every part named by the manifest into `dir`, checking size
/// and SHA-256 of each; the first bad one is an error naming it.
pub(crate) async fn fetch_parts(
    location: &Location,
    manifest: &Manifest,
    dir: &Path,
    progress: &Progress,
) -> Result<LocalParts> {
    let mut tables = Vec::new();
    for t in &manifest.tables {
        let local = fetch_part(location, manifest, &t.file, dir, progress).await?;
        tables.push((t.name.clone(), local));
    }
    let artifacts = fetch_part(location, manifest, &manifest.artifacts.file, dir, progress).await?;
    Ok(LocalParts { tables, artifacts })
}

/// Downloads one part, checking it; the error names the file and says
/// whether it is missing, truncated or corrupt.
pub(crate) async fn fetch_part(
    location: &Location,
    manifest: &Manifest,
    part: &PartFile,
    dir: &Path,
    progress: &Progress,
) -> Result<PathBuf> {
    let remote = format!("{}/{}", backup_dir(&manifest.backup_id), part.path);
    let local = dir.join(part.path.replace('/', "__"));
    let mut download = match location.store().get(&key(&remote)?).await {
        Ok(d) => d,
        Err(slipway_artifacts::ArtifactError::NotFound(_)) => {
            return Err(BackupError::format(
                &remote,
                "missing (the manifest names it)",
            ))
        }
        Err(e) => {
            return Err(BackupError::Artifacts {
                context: format!("reading {remote}"),
                source: Box::new(e),
            })
        }
    };
    let mut file = tokio::fs::File::create(&local)
        .await
        .map_err(BackupError::io(format!("creating {}", local.display())))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = download.stream.next().await {
        let chunk = chunk.map_err(BackupError::artifacts(format!("reading {remote}")))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        Progress::add(&progress.bytes_done, chunk.len() as u64);
        file.write_all(&chunk)
            .await
            .map_err(BackupError::io(format!("writing {}", local.display())))?;
    }
    file.flush()
        .await
        .map_err(BackupError::io(format!("writing {}", local.display())))?;
    if size != part.bytes {
        return Err(BackupError::format(
            &remote,
            format!(
                "{size} bytes, the manifest says {} ({})",
                part.bytes,
                if size < part.bytes {
                    "truncated"
                } else {
                    "corrupt"
                }
            ),
        ));
    }
    let actual = hex::encode(hasher.finalize());
    if actual != part.sha256 {
        return Err(BackupError::DigestMismatch {
            what: format!("{remote} (corrupt backup file)"),
            expected: part.sha256.clone(),
            actual,
        });
    }
    Ok(local)
}

/// Reads the artifact list from a checked local part.
pub(crate) async fn read_artifact_list(file: &Path, name: &str) -> Result<Vec<ArtifactEntry>> {
    let (file, name) = (file.to_path_buf(), name.to_string());
    tokio::task::spawn_blocking(move || -> Result<Vec<ArtifactEntry>> {
        let f = std::fs::File::open(&file)
            .map_err(BackupError::io(format!("reading {}", file.display())))?;
        let mut r = PartReader::new(f, &name);
        let header = r.next_json()?;
        if header
            .as_ref()
            .and_then(|h| h.get("part"))
            .and_then(|p| p.as_str())
            != Some("artifacts")
        {
            return Err(BackupError::format(&name, "not an artifact list"));
        }
        let mut out = Vec::new();
        while let Some(e) = r.next_value::<ArtifactEntry>()? {
            if !crate::format::is_sha256_hex(&e.sha256) {
                return Err(BackupError::format(
                    &name,
                    format!("artifact {} has an invalid digest '{}'", e.path, e.sha256),
                ));
            }
            out.push(e);
        }
        Ok(out)
    })
    .await
    .map_err(|e| BackupError::io("reading the artifact list")(std::io::Error::other(e)))?
}

/// Imports every table part into `import`, in manifest order, checking each
/// part's header and row count against the manifest.
pub(crate) async fn import_tables(
    import: &mut Import,
    manifest: &Manifest,
    parts: &LocalParts,
    progress: &Progress,
) -> Result<()> {
    for (t, (_, local)) in manifest.tables.iter().zip(&parts.tables) {
        let kinds: Vec<ColumnKind> = t
            .columns
            .iter()
            .map(|c| ColumnKind::parse(&c.kind).unwrap_or(ColumnKind::Text))
            .collect();
        let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        let name = format!("{}/{}", backup_dir(&manifest.backup_id), t.file.path);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Vec<Value>>>>(4);
        let reader = {
            let (local, name, table, columns) =
                (local.clone(), name.clone(), t.name.clone(), columns.clone());
            tokio::task::spawn_blocking(move || {
                let run = || -> Result<u64> {
                    let f = std::fs::File::open(&local)
                        .map_err(BackupError::io(format!("reading {}", local.display())))?;
                    let mut r = PartReader::new(f, &name);
                    let header: Option<TableHeader> = r.next_value()?;
                    match header {
                        Some(h)
                            if h.part == "table" && h.table == table && h.columns == columns => {}
                        _ => {
                            return Err(BackupError::format(
                                &name,
                                format!(
                                "its header does not describe table {table} as the manifest does"
                            ),
                            ))
                        }
                    }
                    let mut n = 0u64;
                    let mut batch = Vec::with_capacity(200);
                    while let Some(row) = r.next_row(&kinds)? {
                        n += 1;
                        batch.push(row);
                        if batch.len() == 200
                            && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err()
                        {
                            return Ok(n);
                        }
                    }
                    if !batch.is_empty() {
                        let _ = tx.blocking_send(Ok(batch));
                    }
                    Ok(n)
                };
                let res = run();
                if let Err(e) = &res {
                    let _ = tx.blocking_send(Err(BackupError::format(&name, e.to_string())));
                }
                res
            })
        };
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            import.insert(&t.name, &columns, &batch).await?;
            Progress::add(&progress.rows, batch.len() as u64);
        }
        let n = reader
            .await
            .map_err(|e| BackupError::io("the part reader thread")(std::io::Error::other(e)))??;
        if n != t.rows {
            return Err(BackupError::format(
                &name,
                format!("holds {n} rows, the manifest says {}", t.rows),
            ));
        }
    }
    Ok(())
}
