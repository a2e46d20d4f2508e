//! Scheduled backups: with `backup_to` set, registry and all-in-one
//! replicas wake at each time of `backup_schedule`, and one of them takes
//! the backup, verifies it (`backup_verify`) and applies the retention
//! policy (`backup_keep_*`).
//!
//! One replica per scheduled time: every replica wakes at the same instants
//! (schedules are absolute), takes the lease `backup:schedule` and, under
//! it, compares the time with the last one done (setting
//! `backup_schedule_last`): whoever comes second finds it done. The backup
//! itself runs under the store's `backup` lease, so a `slipway backup
//! create` started by hand at the same time is refused, not interleaved.
//!
//! Every run logs one line (`backup complete`, `backup failed`, or
//! `backup skipped`) with its duration and result; a run that took place
//! (not a skipped one) is recorded in the metadata store
//! ([`slipway_backup::runs`]), as `slipway backup create` records its runs.
//! [`export_metrics`] turns those records into the `slipway_backup_*`
//! metrics whenever `/metrics` is scraped, on every replica alike: a backup
//! taken by a CronJob or by hand shows exactly as a scheduled one does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_artifacts::ArtifactStore;
use slipway_backup::retention::{PruneOptions, DEFAULT_INCOMPLETE_GRACE_MS};
use slipway_backup::runs::BackupRunResult;
use slipway_backup::{
    BackupError, CreateOptions, HeldLease, Location, Progress, RunTracker, Schedule, Source,
    StartedBy, SystemClock, VerifyOptions,
};
use slipway_metadata::MetadataStore;

use crate::config::{Config, Role};

/// Lease held by the replica running a scheduled time.
pub const SCHEDULE_LEASE: &str = "backup:schedule";
/// Setting holding the last scheduled time done, ms since epoch.
pub const LAST_SLOT: &str = "backup_schedule_last";
/// How long a scrape waits for the backup records before showing the
/// metrics as they were.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// What one scheduled run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// A backup was taken (and verified, if asked, without problems).
    Success,
    /// The backup, its verification or the prune failed.
    Failure(String),
    /// Another replica had it, or it was done already.
    Skipped(String),
}

/// Whether this replica runs scheduled backups (`backup_to` set, not a
/// serving replica).
pub fn scheduled_here(config: &Config) -> bool {
    config.backup_to.is_some() && config.role != Role::Serving
}

/// Starts the scheduler when this replica should run one; `None` otherwise.
pub fn spawn(
    config: Arc<Config>,
    store: Arc<dyn MetadataStore>,
    artifacts: Arc<ArtifactStore>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !scheduled_here(&config) {
        return None;
    }
    let to = config.backup_to.clone()?;
    let schedule: Schedule = match config.backup_schedule.parse() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "backup_schedule is invalid; no scheduled backups");
            return None;
        }
    };
    tracing::info!(to = %to, schedule = %schedule, "scheduled backups on");
    Some(tokio::spawn(async move {
        loop {
            let now = slipway_core::now_millis();
            let Some(slot) = schedule.next_after(now) else {
                tracing::error!(schedule = %schedule, "the backup schedule has no next time; scheduled backups stop");
                return;
            };
            tokio::time::sleep(Duration::from_millis((slot - now).max(0) as u64)).await;
            run_slot(
                &config,
                &store,
                &artifacts,
                slot,
                &crate::bootstrap::holder_id(),
            )
            .await;
        }
    }))
}

/// Runs the scheduled time `slot` (ms since epoch) unless another replica
/// has it or has done it; `holder` names this replica in leases.
pub async fn run_slot(
    config: &Config,
    store: &Arc<dyn MetadataStore>,
    artifacts: &Arc<ArtifactStore>,
    slot: i64,
    holder: &str,
) -> RunResult {
    let started = Instant::now();
    let lease = match HeldLease::acquire_named(store.clone(), SCHEDULE_LEASE, holder).await {
        Ok(l) => l,
        Err(BackupError::Busy { holder, .. }) => {
            return log(
                RunResult::Skipped(format!("replica {holder} runs it")),
                started,
                None,
            );
        }
        Err(e) => return log(RunResult::Failure(e.to_string()), started, None),
    };
    let done = store
        .get_setting(LAST_SLOT)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|last| last >= slot);
    let (result, summary) = if done {
        (
            RunResult::Skipped("another replica took this backup".into()),
            None,
        )
    } else {
        let r = run_backup(config, store, artifacts, holder).await;
        if !matches!(r.0, RunResult::Skipped(_)) {
            if let Err(e) = store.set_setting(LAST_SLOT, &slot.to_string()).await {
                tracing::warn!(error = %e, "could not record the scheduled backup time");
            }
        }
        r
    };
    lease.release().await;
    log(result, started, summary)
}

fn log(result: RunResult, started: Instant, summary: Option<serde_json::Value>) -> RunResult {
    let duration_ms = started.elapsed().as_millis() as u64;
    let summary = summary.unwrap_or(serde_json::Value::Null);
    match &result {
        RunResult::Success => {
            tracing::info!(result = "success", duration_ms, summary = %summary, "backup complete");
        }
        RunResult::Failure(e) => {
            tracing::error!(result = "failure", duration_ms, error = %e, summary = %summary, "backup failed");
        }
        RunResult::Skipped(why) => {
            tracing::info!(result = "skipped", reason = %why, "backup skipped");
        }
    }
    result
}

/// Takes, verifies and prunes one scheduled backup, and records the run.
async fn run_backup(
    config: &Config,
    store: &Arc<dyn MetadataStore>,
    artifacts: &Arc<ArtifactStore>,
    holder: &str,
) -> (RunResult, Option<serde_json::Value>) {
    let Some(to) = &config.backup_to else {
        return (RunResult::Skipped("backup_to is unset".into()), None);
    };
    let mut run = RunTracker::start(StartedBy::Schedule, holder, to, &SystemClock);
    let (result, json) = backup_verify_prune(config, store, artifacts, holder, to, &mut run).await;
    match &result {
        RunResult::Skipped(_) => {}
        RunResult::Success => {
            run.finish(store.as_ref(), None, &SystemClock).await;
        }
        RunResult::Failure(e) => {
            run.finish(store.as_ref(), Some(e.clone()), &SystemClock)
                .await;
        }
    }
    (result, json)
}

async fn backup_verify_prune(
    config: &Config,
    store: &Arc<dyn MetadataStore>,
    artifacts: &Arc<ArtifactStore>,
    holder: &str,
    to: &str,
    run: &mut RunTracker,
) -> (RunResult, Option<serde_json::Value>) {
    let dest = match Location::open(to, &config.s3_options(), true) {
        Ok(d) => d,
        Err(e) => return (RunResult::Failure(e.to_string()), None),
    };
    let source = Source {
        metadata_url: config.metadata_url(),
        store: store.clone(),
        artifacts: (**artifacts).clone(),
    };
    let opts = CreateOptions {
        scratch_dir: config.backup_scratch_dir.clone(),
        holder: holder.to_string(),
        ..Default::default()
    };
    let progress = Progress::default();
    let summary = match slipway_backup::create(&source, &dest, &opts, &progress, &SystemClock).await
    {
        Ok(s) => s,
        Err(BackupError::Busy { holder, .. }) => {
            return (
                RunResult::Skipped(format!(
                    "a backup of this store is already running ({holder})"
                )),
                None,
            )
        }
        Err(e) => return (RunResult::Failure(e.to_string()), None),
    };
    run.backed_up(&summary);
    let mut json = summary.to_json();
    let mut failure = None;
    if config.backup_verify {
        let v = slipway_backup::verify(
            &dest,
            &summary.manifest,
            &VerifyOptions {
                scratch_dir: config.backup_scratch_dir.clone(),
                ..Default::default()
            },
            &Progress::default(),
            &SystemClock,
        )
        .await;
        match v {
            Ok(report) => {
                run.verified(&report);
                if !report.ok() {
                    failure = Some(format!(
                        "verification failed: {}",
                        report.problems.join("; ")
                    ));
                }
                json["verification"] = report.to_json();
            }
            Err(e) => failure = Some(format!("verification could not run: {e}")),
        }
    }
    let prune = slipway_backup::prune(
        &dest,
        &config.backup_policy(),
        &PruneOptions {
            dry_run: false,
            incomplete_grace_ms: DEFAULT_INCOMPLETE_GRACE_MS,
            lease: Some((store.clone(), holder.to_string())),
        },
        &SystemClock,
    )
    .await;
    match prune {
        Ok(r) => {
            run.pruned(&r);
            json["prune"] = r.to_json();
        }
        Err(e) => {
            failure.get_or_insert(format!("prune failed: {e}"));
        }
    }
    match failure {
        Some(f) => (RunResult::Failure(f), Some(json)),
        None => (RunResult::Success, Some(json)),
    }
}

/// Sets the `slipway_backup_*` metrics from the backup runs recorded in the
/// store: called when `/metrics` is scraped, by every replica, so every
/// replica shows the same figures whoever took the backups. Nothing is
/// exported while no run is recorded, unless this replica schedules backups
/// (then the run counters show 0, and SlipwayBackupMissing can fire). When
/// the store does not answer within two seconds the metrics stay as the
/// last scrape left them.
pub async fn export_metrics(config: &Config, store: &dyn MetadataStore) {
    let summary = match tokio::time::timeout(EXPORT_TIMEOUT, store.backup_run_summary()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "backup metrics: cannot read the backup runs");
            return;
        }
        Err(_) => {
            tracing::debug!("backup metrics: the metadata store did not answer in time");
            return;
        }
    };
    if summary.last.is_none() && !scheduled_here(config) {
        return;
    }
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    for (result, n) in [
        (BackupRunResult::Success, summary.successes),
        (BackupRunResult::Failure, summary.failures),
    ] {
        metrics::counter!("slipway_backup_runs_total", "result" => result.as_str())
            .absolute(count(n));
    }
    metrics::counter!("slipway_backup_copied_bytes_total").absolute(count(summary.copied_bytes));
    metrics::counter!("slipway_backup_pruned_total").absolute(count(summary.pruned));
    let seconds = |ms: i64| ms as f64 / 1000.0;
    if let Some(last) = &summary.last {
        metrics::gauge!("slipway_backup_last_run_timestamp_seconds").set(seconds(last.finished_at));
        metrics::gauge!("slipway_backup_last_duration_seconds")
            .set(seconds(last.finished_at - last.started_at));
        metrics::gauge!("slipway_backup_last_run_success").set(
            if last.result == BackupRunResult::Success {
                1.0
            } else {
                0.0
            },
        );
    }
    if let Some(ok) = &summary.last_success {
        metrics::gauge!("slipway_backup_last_success_timestamp_seconds")
            .set(seconds(ok.finished_at));
        metrics::gauge!("slipway_backup_last_size_bytes").set(ok.size_bytes.unwrap_or(0) as f64);
    }
    if let Some(v) = summary.last_verified.as_ref().and_then(|r| r.verified) {
        metrics::gauge!("slipway_backup_last_verify_ok").set(if v { 1.0 } else { 0.0 });
    }
}

/// What `slipway up --restore-from` did before starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRestore {
    /// Restored this backup into the empty stores.
    Restored(slipway_backup::RestoreSummary),
    /// The stores were restored from this backup by an earlier start.
    AlreadyRestored(String),
}

/// `slipway up --restore-from SRC`: restores the backup SRC names (a
/// location's newest complete backup, or `<location>/backups/<id>`) into
/// the configured stores when they are empty, under the start-up lease
/// `startup:restore` so that replicas starting together restore once.
/// Stores already restored from a backup (setting `restored_from`) are
/// left alone, so a restarted pod simply starts; a metadata store holding
/// other data is an error: no metadata is overwritten at start-up. Files in
/// the artifact store without metadata (a restore that died before its
/// metadata transaction) do not count: the restore writes over them.
pub async fn restore_before_start(
    config: &Config,
    src: &str,
    progress: &Progress,
) -> anyhow::Result<StartRestore> {
    let store = crate::open_sql_store(config, slipway_metadata::sql::SqlOptions::default()).await?;
    let artifacts = crate::open_artifact_store(config).await?;
    crate::check_artifact_store(&artifacts)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let lease = crate::bootstrap::StartupLease::acquire(&store, "startup:restore").await?;
    let res = async {
        if let Some(id) = store.get_setting(slipway_backup::restore::RESTORED_FROM).await? {
            return Ok(StartRestore::AlreadyRestored(id));
        }
        let target = slipway_backup::Target {
            store: store.clone(),
            artifacts,
        };
        // The metadata decides: files without metadata (say, from a restore
        // that died before its metadata transaction) are overwritten by the
        // backup's where paths meet.
        let contents = target.store.contents().await?;
        if !contents.is_empty() {
            let what: Vec<String> = contents
                .non_empty()
                .into_iter()
                .map(|(t, n)| format!("{n} rows in {t}"))
                .collect();
            anyhow::bail!(
                "--restore-from {src}: the configured stores already hold data ({}); start without --restore-from, or restore over them with `slipway backup restore {src} --force`",
                what.join(", ")
            );
        }
        let (location, id) = slipway_backup::split_source(src);
        let location = Location::open(&location, &config.s3_options(), false)?;
        let manifest = location.resolve(id.as_deref()).await?;
        tracing::info!(backup_id = %manifest.backup_id, location = %location.uri(), "restoring before start");
        let opts = slipway_backup::RestoreOptions {
            scratch_dir: config.backup_scratch_dir.clone(),
            force: true, // the metadata is empty (checked above)
            ..Default::default()
        };
        let summary = slipway_backup::restore(&location, &manifest, &target, &opts, progress).await?;
        Ok(StartRestore::Restored(summary))
    }
    .await;
    lease.release(&store).await;
    store.close().await;
    res
}
