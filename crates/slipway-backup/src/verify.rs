//! `backup verify`: proves a backup restorable by restoring it.
//!
//! The metadata is imported into a scratch SQLite store (the same import a
//! restore runs), its row counts are compared with the manifest, every blob
//! is read back and hashed, and the restored registry is asked, model
//! version by model version and deployment by deployment, for the files it
//! needs; each must be in the backup with intact content. Every problem is
//! named (the file, the artifact, the model version) and all of them are
//! reported, not just the first. The result is recorded next to the
//! manifest (`verification.json`), where `backup list` shows it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::{MetadataStore, SearchQuery, ViewType};

use crate::error::{BackupError, Result};
use crate::format::{
    backup_dir, blob_key, ArtifactEntry, Manifest, VerificationRecord, VERIFICATION_FILE,
};
use crate::location::{key, Location};
use crate::restore::{fetch_part, import_tables, read_artifact_list, scratch_dir, LocalParts};
use crate::transfer::{self, CopyError};
use crate::{Clock, Progress};

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Where the scratch store and parts go (system temporary directory when `None`).
    pub scratch_dir: Option<PathBuf>,
    /// Write the result to `verification.json` next to the manifest.
    pub record: bool,
    /// Blobs hashed at once.
    pub concurrency: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            scratch_dir: None,
            record: true,
            concurrency: 4,
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The backup verified.
    pub backup_id: String,
    /// Problems: each makes the backup unfit (exit status non-zero).
    pub problems: Vec<String>,
    /// Things worth knowing that do not (e.g. artifacts the source itself lacked).
    pub warnings: Vec<String>,
    /// Rows imported into the scratch store.
    pub rows: u64,
    /// Blobs read back and hashed.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Model versions whose files were checked.
    pub model_versions: u64,
    /// Deployments checked.
    pub deployments: u64,
    /// Duration in ms.
    pub duration_ms: u64,
}

impl VerifyReport {
    /// Whether the backup passed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report printed by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "backup_id": self.backup_id,
            "ok": self.ok(),
            "problems": self.problems,
            "warnings": self.warnings,
            "rows": self.rows,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "model_versions": self.model_versions,
            "deployments": self.deployments,
            "duration_ms": self.duration_ms,
        })
    }
}

/// Verifies the backup `manifest` describes. Errors are reserved for not
/// being able to verify at all (scratch space, an unreachable location);
/// everything wrong with the backup itself is a problem in the report.
pub async fn verify(
    location: &Location,
    manifest: &Manifest,
    opts: &VerifyOptions,
    progress: &Progress,
    clock: &dyn Clock,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let mut report = VerifyReport {
        backup_id: manifest.backup_id.clone(),
        ..Default::default()
    };
    let scratch = scratch_dir(opts.scratch_dir.as_deref())?;
    let dir = backup_dir(&manifest.backup_id);

    // ---- every part, checked
    progress.phase("metadata files");
    let mut tables = Vec::new();
    let mut parts_ok = true;
    for t in &manifest.tables {
        match fetch_part(location, manifest, &t.file, scratch.path(), progress).await {
            Ok(local) => tables.push((t.name.clone(), local)),
            Err(e) => {
                parts_ok = false;
                report.problems.push(e.to_string());
            }
        }
    }
    let entries: Option<Vec<ArtifactEntry>> = match fetch_part(
        location,
        manifest,
        &manifest.artifacts.file,
        scratch.path(),
        progress,
    )
    .await
    {
        Ok(local) => {
            match read_artifact_list(&local, &format!("{dir}/{}", manifest.artifacts.file.path))
                .await
            {
                Ok(e) => Some(e),
                Err(e) => {
                    report.problems.push(e.to_string());
                    None
                }
            }
        }
        Err(e) => {
            report.problems.push(e.to_string());
            None
        }
    };

    // ---- restore the metadata into a scratch store
    progress.phase("scratch restore");
    let mut restored: Option<SqlStore> = None;
    if parts_ok {
        let url = format!("sqlite://{}/verify.db", scratch.path().display());
        let store = SqlStore::connect(&url, SqlOptions::default())
            .await
            .map_err(|e| {
                BackupError::Store(format!("creating the scratch store: {}", e.message))
            })?;
        let parts = LocalParts {
            tables,
            artifacts: PathBuf::new(),
        };
        let imported = import_into(&store, manifest, &parts, progress).await;
        match imported {
            Ok(rows) => {
                report.rows = rows;
                let contents = store.contents().await?;
                for t in &manifest.tables {
                    let n = contents.rows.get(&t.name).copied().unwrap_or(-1);
                    if n != t.rows as i64 {
                        report.problems.push(format!(
                            "table {}: {n} rows after restore, the manifest says {}",
                            t.name, t.rows
                        ));
                    }
                }
                restored = Some(store);
            }
            Err(e) => report
                .problems
                .push(format!("the metadata does not restore: {e}")),
        }
    }

    // ---- every blob, read back
    let mut bad_blobs: HashMap<String, String> = HashMap::new();
    if let Some(entries) = &entries {
        progress.phase("artifacts");
        let mut blobs: BTreeMap<&str, (u64, Vec<&str>)> = BTreeMap::new();
        for e in entries.iter().filter(|e| !e.missing) {
            blobs
                .entry(e.sha256.as_str())
                .or_insert_with(|| (e.size, Vec::new()))
                .1
                .push(e.path.as_str());
        }
        progress
            .files_total
            .store(blobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        progress.bytes_total.store(
            blobs.values().map(|(s, _)| *s).sum(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut hashes = Vec::with_capacity(blobs.len());
        for (sha, (size, paths)) in blobs {
            let sha = sha.to_string();
            let paths: Vec<String> = paths.into_iter().map(str::to_string).collect();
            hashes.push(async move {
                let r = match key(&blob_key(&sha)) {
                    Ok(k) => transfer::hash(location.store(), &k, Some(progress)).await,
                    Err(_) => Err(CopyError::NotFound),
                };
                Progress::add(&progress.files_done, 1);
                (sha, size, paths, r)
            });
        }
        let checked = crate::bounded(hashes, opts.concurrency).await;
        for (sha, size, paths, r) in checked {
            let named = describe_paths(&paths.iter().map(String::as_str).collect::<Vec<_>>());
            let problem = match r {
                Ok((actual, n)) if actual == sha && n == size => {
                    report.blobs += 1;
                    report.bytes += n;
                    None
                }
                Ok((actual, n)) => Some(format!(
                    "blob {} ({named}) is corrupt: {n} bytes with SHA-256 {actual}, expected {size} bytes with {sha}",
                    blob_key(&sha)
                )),
                Err(CopyError::NotFound) => Some(format!("blob {} ({named}) is missing", blob_key(&sha))),
                Err(CopyError::Mismatch { .. }) => None,
                Err(CopyError::Store(e)) => Some(format!("blob {} ({named}) cannot be read: {e}", blob_key(&sha))),
            };
            if let Some(p) = problem {
                report.problems.push(p.clone());
                bad_blobs.insert(sha, p);
            }
        }
        let missing: Vec<&ArtifactEntry> = entries.iter().filter(|e| e.missing).collect();
        if !missing.is_empty() {
            report.warnings.push(format!(
                "{} artifact(s) had a recorded digest but were absent from the source store at backup time, e.g. {}",
                missing.len(),
                describe_paths(&missing.iter().map(|e| e.path.as_str()).collect::<Vec<_>>())
            ));
        }
    }

    // ---- what the registry and the deployments need
    if let (Some(store), Some(entries)) = (&restored, &entries) {
        progress.phase("model versions");
        check_registry(store, entries, &bad_blobs, &mut report).await?;
    }
    if let Some(store) = restored {
        store.close().await;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    if opts.record {
        let record = VerificationRecord {
            format_version: 1,
            backup_id: manifest.backup_id.clone(),
            verified_at_ms: clock.now_ms(),
            ok: report.ok(),
            problems: report.problems.clone(),
            slipway_version: env!("CARGO_PKG_VERSION").into(),
        };
        let body = serde_json::to_vec_pretty(&record).unwrap_or_default();
        if let Err(e) = location
            .put(&format!("{dir}/{VERIFICATION_FILE}"), body)
            .await
        {
            report
                .warnings
                .push(format!("could not record the verification: {e}"));
        }
    }
    tracing::info!(
        backup_id = %manifest.backup_id,
        ok = report.ok(),
        problems = report.problems.len(),
        duration_ms = report.duration_ms,
        "backup verified"
    );
    Ok(report)
}

async fn import_into(
    store: &SqlStore,
    manifest: &Manifest,
    parts: &LocalParts,
    progress: &Progress,
) -> Result<u64> {
    let mut import = store.begin_import().await?;
    import_tables(&mut import, manifest, parts, progress).await?;
    Ok(import.commit().await?)
}

fn describe_paths(paths: &[&str]) -> String {
    let mut s = paths
        .iter()
        .take(3)
        .map(|p| format!("artifact {p}"))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > 3 {
        s.push_str(&format!(" and {} more", paths.len() - 3));
    }
    s
}

async fn check_registry(
    store: &SqlStore,
    entries: &[ArtifactEntry],
    bad_blobs: &HashMap<String, String>,
    report: &mut VerifyReport,
) -> Result<()> {
    let by_path: BTreeMap<&str, &ArtifactEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut token = None;
    loop {
        let page = store
            .search_model_versions(&SearchQuery {
                max_results: 1000,
                page_token: token.take(),
                view_type: ViewType::All,
                ..Default::default()
            })
            .await?;
        for mv in &page.items {
            report.model_versions += 1;
            let who = format!("model version {} of '{}'", mv.version, mv.name);
            let uri = match slipway_metadata::registry::resolve_download_uri(
                store,
                &mv.name,
                &mv.version,
            )
            .await
            {
                Ok(u) => u,
                Err(e) => {
                    report.problems.push(format!(
                        "{who}: its source {} does not resolve: {}",
                        mv.source, e.message
                    ));
                    continue;
                }
            };
            let Some(prefix) = uri.strip_prefix("mlflow-artifacts:") else {
                report.warnings.push(format!(
                    "{who}: its files are at {uri}, outside Slipway's artifact store, so not in the backup"
                ));
                continue;
            };
            let prefix = format!("{}/", prefix.trim_matches('/'));
            let files: Vec<&&ArtifactEntry> = by_path
                .range(prefix.as_str()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .map(|(_, e)| e)
                .collect();
            if files.is_empty() {
                report
                    .problems
                    .push(format!("{who}: no files under {prefix} in the backup"));
            }
            for e in files {
                if e.missing {
                    report.problems.push(format!(
                        "{who} needs artifact {}, which was absent from the source store at backup time",
                        e.path
                    ));
                } else if bad_blobs.contains_key(&e.sha256) {
                    report.problems.push(format!(
                        "{who} needs artifact {}, whose blob is bad",
                        e.path
                    ));
                }
            }
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    for d in store.list_deployments().await? {
        report.deployments += 1;
        let model = d
            .spec
            .get("model")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        let res = match (
            d.spec.get("alias").and_then(|a| a.as_str()),
            d.spec.get("version").and_then(|v| v.as_str()),
        ) {
            (Some(alias), _) => store
                .get_model_version_by_alias(model, alias)
                .await
                .map(|_| ()),
            (None, Some(v)) => store.get_model_version(model, v).await.map(|_| ()),
            (None, None) => Err(slipway_core::Error::invalid(
                "its spec names no alias or version",
            )),
        };
        if let Err(e) = res {
            report
                .problems
                .push(format!("deployment {}: {}", d.name, e.message));
        }
    }
    Ok(())
}
