//! Records of backup runs. Every run of `backup create` (by hand, from a
//! CronJob) and of a server's schedule ends with one row in the store it
//! backed up ([`MetadataStore::record_backup_run`]): when it started and
//! ended, how it ended, the backup it wrote, its size, what it copied and
//! pruned, the verification's verdict and the error. Servers export the
//! `slipway_backup_*` metrics from these rows when they are scraped, so a
//! backup taken by any process shows on every replica, and the alerts on
//! failed, stale and missing backups see every way of taking one.
//!
//! A run that was refused because another backup of the store was running
//! is not a run and is not recorded. A run that cannot be recorded (the
//! store is unreachable, or its schema predates the table) is logged; the
//! backup's own result stands.

use std::time::Instant;

use slipway_metadata::MetadataStore;
pub use slipway_metadata::{BackupRunRecord, BackupRunResult, BackupRunSummary};

use crate::{Clock, CreateSummary, PruneReport, VerifyReport};

/// Longest error text kept in a record.
const MAX_ERROR_CHARS: usize = 4000;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    /// `slipway backup create` (by hand or from a CronJob).
    Cli,
    /// A server's `backup_schedule`.
    Schedule,
}

impl StartedBy {
    /// `cli` or `schedule`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Schedule => "schedule",
        }
    }
}

/// A run in progress: what it did so far, recorded by [`RunTracker::finish`].
#[derive(Debug)]
pub struct RunTracker {
    record: BackupRunRecord,
    started: Instant,
}

impl RunTracker {
    /// Starts tracking a run by `holder` (the process) to `location`.
    pub fn start(started_by: StartedBy, holder: &str, location: &str, clock: &dyn Clock) -> Self {
        let now = clock.now_ms();
        Self {
            record: BackupRunRecord {
                id: uuid::Uuid::new_v4().simple().to_string(),
                started_at: now,
                finished_at: now,
                result: BackupRunResult::Failure,
                started_by: started_by.as_str().to_string(),
                holder: holder.to_string(),
                location: location.to_string(),
                backup_id: None,
                size_bytes: None,
                copied_bytes: 0,
                pruned: 0,
                verified: None,
                error: None,
            },
            started: Instant::now(),
        }
    }

    /// The backup was written.
    pub fn backed_up(&mut self, summary: &CreateSummary) {
        let m = &summary.manifest;
        self.record.backup_id = Some(m.backup_id.clone());
        self.record.size_bytes = Some(i64::try_from(m.total_bytes()).unwrap_or(i64::MAX));
        self.record.copied_bytes = i64::try_from(m.artifacts.copied_bytes).unwrap_or(i64::MAX);
    }

    /// The backup was verified, with this verdict.
    pub fn verified(&mut self, report: &VerifyReport) {
        self.record.verified = Some(report.ok());
    }

    /// Retention ran after the backup.
    pub fn pruned(&mut self, report: &PruneReport) {
        self.record.pruned = i64::try_from(report.removed.len()).unwrap_or(i64::MAX);
    }

    /// Ends the run, a success unless `error`, and records it in `store`.
    /// Returns the record (also when recording it failed: that is logged).
    pub async fn finish(
        mut self,
        store: &dyn MetadataStore,
        error: Option<String>,
        clock: &dyn Clock,
    ) -> BackupRunRecord {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let r = &mut self.record;
        // The monotonic duration, so a clock step during the run does not show.
        r.finished_at = clock.now_ms().max(r.started_at.saturating_add(elapsed));
        r.result = if error.is_some() {
            BackupRunResult::Failure
        } else {
            BackupRunResult::Success
        };
        r.error = error.map(|e| {
            if e.chars().count() > MAX_ERROR_CHARS {
                let cut: String = e.chars().take(MAX_ERROR_CHARS).collect();
                format!("{cut}…")
            } else {
                e
            }
        });
        if let Err(e) = store.record_backup_run(r).await {
            tracing::warn!(
                error = %e,
                run = %r.id,
                "could not record the backup run in the metadata store; the slipway_backup_* metrics will not show it"
            );
        }
        self.record
    }
}
