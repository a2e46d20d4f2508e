//! `slipway doctor`: checks an installation without changing it and says,
//! for each finding, what to do.
//!
//! Each [`Check`] is OK, WARN or FAIL with a detail and, unless OK, a hint.
//! The checks: the configuration; the metadata store (reachable, a write
//! transaction that is rolled back); its migrations against this build's;
//! the database clock against this machine's; the artifact store (a probe
//! object written, read back and deleted); ONNX Runtime (the library
//! loads); free disk for the model cache; every model version a deployment
//! serves (its files present with the digests recorded at upload); the
//! artifact store against the recorded digests (files missing, files no
//! digest describes; monitoring's own files, which never have one, are
//! counted apart); and the last recorded backup run. Nothing is migrated or
//! left behind (a missing local artifact directory is created, as the
//! server itself would).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactPath, ArtifactStore, RESERVED_PREFIX, TEMP_DIR};
use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::MetadataStore;

use crate::config::{Config, ConfigError};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but deserves attention.
    Warn,
    /// Broken: `doctor` exits non-zero.
    Fail,
}

impl Status {
    /// `OK`, `WARN` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do (absent when OK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Ok,
        detail: detail.into(),
        hint: None,
    }
}

fn warn(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Warn,
        detail: detail.into(),
        hint: Some(hint.into()),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        hint: Some(hint.into()),
    }
}

/// Skew beyond which the clock check warns, and fails.
const SKEW_WARN_MS: i64 = 1_000;
const SKEW_FAIL_MS: i64 = 10_000;

/// Runs every check on the configuration `config` resolved to.
pub async fn run(config: Result<Config, ConfigError>) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match config {
        Ok(c) => {
            checks.push(ok(
                "configuration",
                format!(
                    "valid; metadata {}, artifacts {}",
                    crate::config::redact_url(&c.metadata_url()),
                    c.artifact_root()
                ),
            ));
            c
        }
        Err(e) => {
            checks.push(fail(
                "configuration",
                e.to_string(),
                "fix the setting named above (flags, SLIPWAY_* variables or the --config file); `slipway config check` prints the effective configuration",
            ));
            return checks;
        }
    };

    // ---- metadata store
    let url = config.metadata_url();
    let shown = crate::config::redact_url(&url);
    let store = match SqlStore::connect(
        &url,
        SqlOptions {
            create_if_missing: false,
            migrate: false,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(10),
            ..SqlOptions::default()
        },
    )
    .await
    {
        Ok(s) => Some(s),
        Err(e) => {
            checks.push(fail(
                "metadata store",
                format!("{shown}: {}", e.message),
                "check metadata_url, that the database server runs and that the credentials are right",
            ));
            None
        }
    };
    if let Some(store) = &store {
        checks.push(match store.probe_write().await {
            Ok(()) => ok(
                "metadata store",
                format!("{shown} answers; a write transaction succeeded (rolled back)"),
            ),
            Err(e) => fail(
                "metadata store",
                format!("{shown} answers but a write transaction failed: {e}"),
                "the database user needs INSERT/UPDATE/DELETE on Slipway's tables (and, for SQLite, write access to the file and its directory)",
            ),
        });
        checks.push(migrations(store).await);
        checks.push(clock(store).await);
    }

    // ---- artifact store
    let artifacts = match crate::open_artifact_store(&config).await {
        Ok(a) => Some(a),
        Err(e) => {
            checks.push(fail(
                "artifact store",
                e.to_string(),
                "check artifact_root (a directory or s3://bucket/prefix), s3_endpoint and the AWS_* credentials",
            ));
            None
        }
    };
    if let Some(a) = &artifacts {
        checks.push(probe_artifacts(a).await);
    }

    // ---- runtime and disk
    checks.push(onnx_runtime(&config));
    let deployed = match (&store, &artifacts) {
        (Some(s), Some(a)) => Some(deployments(s, a).await),
        _ => None,
    };
    checks.push(disk(
        &config.model_cache_dir(),
        deployed.as_ref().map_or(0, |d| d.bytes),
        config.model_cache_min_free_bytes,
    ));
    if let Some(d) = deployed {
        checks.push(d.check);
    }
    if let (Some(s), Some(a)) = (&store, &artifacts) {
        checks.push(artifact_consistency(s, a).await);
    }
    if let Some(s) = &store {
        checks.push(backups(s, slipway_core::now_millis()).await);
    }
    if let Some(s) = store {
        s.close().await;
    }
    checks
}

async fn migrations(store: &SqlStore) -> Check {
    let known = slipway_metadata::sql::known_migrations();
    let ours = slipway_metadata::sql::schema_version();
    match store.applied_migrations().await {
        Err(e) => fail(
            "migrations",
            format!("cannot read the migration ledger: {e}"),
            "check the database user's rights",
        ),
        Ok(applied) if applied.is_empty() => warn(
            "migrations",
            "the database has no Slipway tables yet",
            "start `slipway up` once to create them (or point metadata_url at the right database)",
        ),
        Ok(applied) => {
            let unknown: Vec<i64> = applied
                .iter()
                .copied()
                .filter(|v| !known.iter().any(|(k, _)| k == v))
                .collect();
            let pending: Vec<String> = known
                .iter()
                .filter(|(v, _)| !applied.contains(v))
                .map(|(v, n)| format!("{v:04}_{n}"))
                .collect();
            if !unknown.is_empty() {
                fail(
                    "migrations",
                    format!("the database has migrations this build does not know ({unknown:?}; this build has up to {ours})"),
                    "a newer Slipway migrated this database: run that version (downgrades are not supported)",
                )
            } else if !pending.is_empty() {
                warn(
                    "migrations",
                    format!("pending: {}", pending.join(", ")),
                    "`slipway up` applies them at start (replicas take turns under an advisory lock)",
                )
            } else {
                ok("migrations", format!("current (schema version {ours})"))
            }
        }
    }
}

async fn clock(store: &SqlStore) -> Check {
    if !store.is_postgres() {
        return ok("clock", "SQLite runs in this process: one clock");
    }
    match store.clock().await {
        Err(e) => warn(
            "clock",
            format!("cannot read the database clock: {e}"),
            "check the database connection",
        ),
        Ok(r) => {
            let skew = r.skew_ms.abs() - r.round_trip_ms / 2;
            let detail = format!(
                "database clock differs by {} ms (round trip {} ms)",
                r.skew_ms, r.round_trip_ms
            );
            let hint = "leases (start-up, backups, rollouts) and token revocation compare clocks across replicas: synchronise this machine and the database with NTP";
            if skew > SKEW_FAIL_MS {
                fail("clock", detail, hint)
            } else if skew > SKEW_WARN_MS {
                warn("clock", detail, hint)
            } else {
                ok("clock", detail)
            }
        }
    }
}

async fn probe_artifacts(a: &ArtifactStore) -> Check {
    if let Err(e) = crate::check_artifact_store(a).await {
        return fail(
            "artifact store",
            e,
            "fix the bucket, endpoint or credentials named above",
        );
    }
    let key = ObjectPath::from(format!("{TEMP_DIR}/doctor-{}", uuid::Uuid::new_v4()));
    let body = format!("slipway doctor probe {}", slipway_core::now_millis());
    let store = a.object_store();
    let step = async {
        store
            .put(&key, PutPayload::from(body.clone().into_bytes()))
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        let back = store
            .get(&key)
            .await
            .map_err(|e| format!("read failed: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if back.as_ref() != body.as_bytes() {
            return Err("the probe read back differs from what was written".to_string());
        }
        store
            .delete(&key)
            .await
            .map_err(|e| format!("delete failed: {e}"))?;
        match store.head(&key).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Ok(_) => Err("the probe is still there after delete".to_string()),
            Err(e) => Err(format!("check after delete failed: {e}")),
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), step).await {
        Ok(Ok(())) => ok("artifact store", format!("{}: a probe object was written, read back and deleted", a.location())),
        Ok(Err(e)) => fail(
            "artifact store",
            format!("{}: {e}", a.location()),
            "the credentials need to write, read and delete objects under the artifact root (S3: s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket)",
        ),
        Err(_) => fail("artifact store", format!("{}: no answer within 30 s", a.location()), "check the endpoint and the network"),
    }
}

fn onnx_runtime(config: &Config) -> Check {
    let cfg = slipway_runtime::OrtConfig {
        library_path: config.ort_lib.clone(),
        search_roots: crate::ort_search_roots(),
    };
    match slipway_runtime::OnnxRuntime::new(&cfg) {
        Ok(rt) => ok("onnx runtime", format!("loaded {}", rt.library_path().display())),
        Err(e) => fail(
            "onnx runtime",
            e.to_string(),
            "install the onnxruntime wheel (`pip install onnxruntime`) into .venv or point ort_lib / SLIPWAY_ORT_LIB at libonnxruntime.so (ONNX Runtime 1.31 or newer)",
        ),
    }
}

/// Free bytes on the file system holding `dir` (or its nearest existing ancestor).
fn free_bytes(dir: &Path) -> Option<(PathBuf, u64)> {
    let mut p = dir.to_path_buf();
    loop {
        if p.exists() {
            let st = rustix::fs::statvfs(&p).ok()?;
            return Some((p, st.f_bavail.saturating_mul(st.f_frsize)));
        }
        if !p.pop() {
            p = std::env::current_dir().ok()?;
            let st = rustix::fs::statvfs(&p).ok()?;
            return Some((p, st.f_bavail.saturating_mul(st.f_frsize)));
        }
    }
}

fn disk(cache: &Path, needed: u64, headroom: u64) -> Check {
    let name = "model cache disk";
    let Some((on, free)) = free_bytes(cache) else {
        return warn(
            name,
            format!("cannot measure free space for {}", cache.display()),
            "check that the directory is reachable",
        );
    };
    let detail = format!(
        "{} free on {} for {} (deployed models need {}, model_cache_min_free_bytes wants {} more)",
        slipway_backup::human_bytes(free),
        on.display(),
        cache.display(),
        slipway_backup::human_bytes(needed),
        slipway_backup::human_bytes(headroom)
    );
    if free < needed {
        fail(
            name,
            detail,
            "free space or move model_cache_dir: deployments cannot cache their models",
        )
    } else if free < needed.saturating_add(headroom) {
        warn(
            name,
            detail,
            format!(
                "less than {} would remain beside the deployed models (model_cache_min_free_bytes); free space or move model_cache_dir",
                slipway_backup::human_bytes(headroom)
            ),
        )
    } else {
        ok(name, detail)
    }
}

struct Deployed {
    check: Check,
    bytes: u64,
}

async fn deployments(store: &SqlStore, artifacts: &ArtifactStore) -> Deployed {
    let name = "deployments";
    let list = match store.list_deployments().await {
        Ok(l) => l,
        Err(e) => {
            return Deployed {
                check: fail(
                    name,
                    format!("cannot list deployments: {}", e.message),
                    "check the metadata store",
                ),
                bytes: 0,
            }
        }
    };
    let mut problems = Vec::new();
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut seen = HashSet::new();
    for d in &list {
        let model = d
            .spec
            .get("model")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let mv = match (
            d.spec.get("alias").and_then(|v| v.as_str()),
            d.spec.get("version").and_then(|v| v.as_str()),
        ) {
            (Some(alias), _) => store.get_model_version_by_alias(&model, alias).await,
            (None, Some(v)) => store.get_model_version(&model, v).await,
            (None, None) => Err(slipway_core::Error::invalid(
                "its spec names no alias or version",
            )),
        };
        let mv = match mv {
            Ok(mv) => mv,
            Err(e) => {
                problems.push(format!("deployment {}: {}", d.name, e.message));
                continue;
            }
        };
        if !seen.insert((mv.name.clone(), mv.version.clone())) {
            continue;
        }
        let who = format!(
            "deployment {} (model version {} of '{}')",
            d.name, mv.version, mv.name
        );
        let uri =
            match slipway_metadata::registry::resolve_download_uri(store, &mv.name, &mv.version)
                .await
            {
                Ok(u) => u,
                Err(e) => {
                    problems.push(format!("{who}: {}", e.message));
                    continue;
                }
            };
        let Some(prefix) = uri.strip_prefix("mlflow-artifacts:") else {
            problems.push(format!("{who}: files at {uri}, outside the artifact store"));
            continue;
        };
        let prefix = format!("{}/", prefix.trim_matches('/'));
        let digests = match store.list_artifact_digests(&prefix).await {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{who}: {}", e.message));
                continue;
            }
        };
        if digests.is_empty() {
            problems.push(format!("{who}: no recorded files under {prefix}"));
        }
        for dg in digests {
            let Ok(path) = ArtifactPath::parse(&dg.path) else {
                problems.push(format!("{who}: invalid artifact path {}", dg.path));
                continue;
            };
            match hash(artifacts, &path).await {
                Ok((sha, size)) if sha == dg.sha256 && size == dg.size as u64 => {
                    files += 1;
                    bytes += size;
                }
                Ok((sha, _)) => problems.push(format!(
                    "{who}: {} has SHA-256 {sha}, recorded {}",
                    dg.path, dg.sha256
                )),
                Err(e) => problems.push(format!("{who}: {}: {e}", dg.path)),
            }
        }
    }
    let check = if problems.is_empty() {
        ok(
            name,
            format!(
                "{} deployment(s); {files} model file(s) ({}) present with their recorded digests",
                list.len(),
                slipway_backup::human_bytes(bytes)
            ),
        )
    } else {
        fail(
            name,
            problems.join("; "),
            "re-register the model version from an intact copy (or restore its files from a backup: `slipway backup restore`), or point the deployment at a good version",
        )
    };
    Deployed { check, bytes }
}

async fn hash(a: &ArtifactStore, path: &ArtifactPath) -> Result<(String, u64), String> {
    let mut dl = a.get(path).await.map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = dl.stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// What the first segment of a stored path says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Slipway's own objects (`.slipway*`: temporary uploads, probes):
    /// never artifacts.
    Internal,
    /// Monitoring's prediction log, feedback and references: written by the
    /// server, never with a recorded digest.
    Monitoring,
    /// An artifact (uploaded through the API, or written outside Slipway).
    Artifact,
}

fn owner(path: &str) -> Owner {
    let top = path.split('/').next().unwrap_or_default();
    if top.starts_with(RESERVED_PREFIX) {
        Owner::Internal
    } else if slipway_monitor::files::OWNED_DIRS.contains(&top) {
        Owner::Monitoring
    } else {
        Owner::Artifact
    }
}

async fn artifact_consistency(store: &SqlStore, a: &ArtifactStore) -> Check {
    let name = "artifacts";
    let recorded = match store.list_artifact_digests("").await {
        Ok(d) => d,
        Err(e) => {
            return fail(
                name,
                format!("cannot read the recorded digests: {}", e.message),
                "check the metadata store",
            )
        }
    };
    let listed: Vec<object_store::ObjectMeta> =
        match a.object_store().list(None).try_collect().await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => {
                return fail(
                    name,
                    format!("cannot list {}: {e}", a.location()),
                    "check the artifact store",
                )
            }
        };
    let mut files: BTreeMap<String, u64> = BTreeMap::new();
    let mut parents = HashSet::new();
    let mut monitoring = 0usize;
    for m in listed {
        let p = m.location.to_string();
        match owner(&p) {
            Owner::Internal => continue,
            Owner::Monitoring => {
                monitoring += 1;
                continue;
            }
            Owner::Artifact => {}
        }
        let mut q = p.as_str();
        while let Some((parent, _)) = q.rsplit_once('/') {
            parents.insert(parent.to_string());
            q = parent;
        }
        files.insert(p, m.size);
    }
    files.retain(|p, _| !parents.contains(p));
    let recorded_paths: HashSet<&str> = recorded.iter().map(|d| d.path.as_str()).collect();
    let missing: Vec<&str> = recorded
        .iter()
        .map(|d| d.path.as_str())
        .filter(|p| !files.contains_key(*p))
        .collect();
    let orphaned: Vec<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|p| !recorded_paths.contains(p))
        .collect();
    let sample = |v: &[&str]| {
        let mut s = v.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        if v.len() > 5 {
            s.push_str(&format!(" and {} more", v.len() - 5));
        }
        s
    };
    let mut detail = format!("{} recorded, {} stored", recorded.len(), files.len());
    if monitoring > 0 {
        detail.push_str(&format!(
            " (and {monitoring} monitoring file(s): prediction log, feedback, references, which have no recorded digest by design)"
        ));
    }
    match (missing.is_empty(), orphaned.is_empty()) {
        (true, true) => ok(name, format!("{detail}; every recorded file is stored and every stored file recorded")),
        (false, _) => warn(
            name,
            format!(
                "{detail}; {} recorded but missing: {}{}",
                missing.len(),
                sample(&missing),
                if orphaned.is_empty() { String::new() } else { format!("; {} without a recorded digest: {}", orphaned.len(), sample(&orphaned)) }
            ),
            "missing files were deleted from the store (MLflow's artifact delete keeps their digests) or lost: restore them from a backup if a model version needs them (`slipway backup verify` names those); files without a digest were written outside Slipway and are backed up but never verified",
        ),
        (true, false) => warn(
            name,
            format!("{detail}; {} without a recorded digest: {}", orphaned.len(), sample(&orphaned)),
            "these were written outside Slipway's upload path: they are backed up but cannot be verified; upload them through the artifact API to record their digests",
        ),
    }
}

/// A backup older than this makes the check warn (a daily schedule plus
/// two hours, as SlipwayBackupStale).
const BACKUP_STALE_MS: i64 = 26 * 3600 * 1000;

fn ago(now: i64, then: i64) -> String {
    let s = (now - then).max(0) / 1000;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The last backup run recorded in the store (by `slipway backup create`,
/// a CronJob or a schedule): WARN when there is none, when it failed, or
/// when the last success is over 26 hours old.
async fn backups(store: &SqlStore, now: i64) -> Check {
    use slipway_metadata::BackupRunResult;
    let name = "backups";
    let summary = match store.backup_run_summary().await {
        Ok(s) => s,
        Err(e) => {
            return warn(
                name,
                format!("cannot read the recorded backup runs: {}", e.message),
                "a store whose migrations are pending has no backup records yet: `slipway up` applies them",
            )
        }
    };
    let Some(last) = &summary.last else {
        return warn(
            name,
            "no backup of this store is recorded",
            "take one: `slipway backup create --to DIR|s3://bucket/prefix` (or set backup_to, or the chart's backup.enabled); docs/operations.md#backups",
        );
    };
    let success = summary.last_success.as_ref().map_or_else(
        || "no backup has ever succeeded".to_string(),
        |s| {
            format!(
                "last success {} ago ({}, {})",
                ago(now, s.finished_at),
                s.backup_id.as_deref().unwrap_or("-"),
                slipway_backup::human_bytes(u64::try_from(s.size_bytes.unwrap_or(0)).unwrap_or(0))
            )
        },
    );
    if last.result == BackupRunResult::Failure {
        return warn(
            name,
            format!(
                "the last backup run ({}, to {}, {} ago) failed: {}; {success}",
                last.started_by,
                last.location,
                ago(now, last.finished_at),
                last.error.as_deref().unwrap_or("no error recorded")
            ),
            "fix the cause named above and take a backup (`slipway backup create`, or wait for the schedule / CronJob)",
        );
    }
    let detail = format!(
        "last run succeeded {} ago ({} to {}, backup {}{}); {} succeeded, {} failed in all",
        ago(now, last.finished_at),
        last.started_by,
        last.location,
        last.backup_id.as_deref().unwrap_or("-"),
        match last.verified {
            Some(true) => ", verified",
            Some(false) => ", verification FAILED",
            None => ", not verified",
        },
        summary.successes,
        summary.failures
    );
    if now - last.finished_at > BACKUP_STALE_MS {
        warn(
            name,
            detail,
            "the newest backup is over 26 hours old: check the schedule or CronJob, or take one now",
        )
    } else {
        ok(name, detail)
    }
}
