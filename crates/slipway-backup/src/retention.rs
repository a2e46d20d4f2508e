//! Retention: which backups to keep, and a prune that deletes the others
//! and the blobs no kept backup references.
//!
//! A policy keeps the `keep_last` newest complete backups, plus the newest
//! backup of each of the `keep_daily` most recent days that have one (UTC),
//! of each of the `keep_weekly` most recent ISO weeks, and of each of the
//! `keep_monthly` most recent months. The newest complete backup is always
//! kept, and a policy of all zeros keeps everything. Buckets are counted
//! among existing backups, not calendar days back from now: when backups
//! fail for a while, older ones are kept instead of aging out.
//!
//! The prune is safe against everything it cannot see:
//! - a backup's manifest is deleted before its other files, so it stops
//!   counting as complete before anything it needs goes;
//! - blobs are swept only when the artifact list of every kept backup could
//!   be read, no backup has a manifest this build cannot read, and no
//!   incomplete backup is younger than the grace period (it may be running
//!   and relying on blobs it found present); otherwise the sweep is skipped
//!   and the report says why;
//! - it runs under the backup lease when given one, so no backup of the
//!   store runs meanwhile.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono::Datelike;
use slipway_metadata::MetadataStore;

use crate::error::{BackupError, Result};
use crate::format::{backup_dir, blob_key, MANIFEST_FILE};
use crate::lease::HeldLease;
use crate::location::Location;
use crate::restore::{fetch_part, read_artifact_list, scratch_dir};
use crate::{Clock, Progress};

/// A retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Newest backups kept.
    pub keep_last: u32,
    /// Days (with a backup) whose newest backup is kept.
    pub keep_daily: u32,
    /// ISO weeks whose newest backup is kept.
    pub keep_weekly: u32,
    /// Months whose newest backup is kept.
    pub keep_monthly: u32,
}

impl Policy {
    /// Whether the policy keeps everything (all counts zero).
    pub fn keeps_everything(&self) -> bool {
        self.keep_last == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
    }

    /// The ids of `backups` (`(id, created_at_ms)`, any order) the policy keeps.
    pub fn select(&self, backups: &[(String, i64)]) -> BTreeSet<String> {
        let mut sorted: Vec<&(String, i64)> = backups.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        if self.keeps_everything() {
            return sorted.iter().map(|(id, _)| id.clone()).collect();
        }
        let mut keep: BTreeSet<String> = BTreeSet::new();
        if let Some((newest, _)) = sorted.first() {
            keep.insert(newest.clone());
        }
        for (id, _) in sorted.iter().take(self.keep_last as usize) {
            keep.insert(id.clone());
        }
        let date = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .date_naive()
        };
        let mut bucketed = |n: u32, bucket: &dyn Fn(i64) -> (i32, u32, u32)| {
            let mut seen = HashSet::new();
            for (id, at) in &sorted {
                if seen.len() >= n as usize {
                    break;
                }
                if seen.insert(bucket(*at)) {
                    keep.insert(id.clone());
                }
            }
        };
        bucketed(self.keep_daily, &|ms| {
            let d = date(ms);
            (d.year(), d.month(), d.day())
        });
        bucketed(self.keep_weekly, &|ms| {
            let w = date(ms).iso_week();
            (w.year(), w.week(), 0)
        });
        bucketed(self.keep_monthly, &|ms| {
            let d = date(ms);
            (d.year(), d.month(), 0)
        });
        keep
    }
}

/// How to prune.
#[derive(Clone, Default)]
pub struct PruneOptions {
    /// Report what would go without deleting anything.
    pub dry_run: bool,
    /// Incomplete backups younger than this (ms) are left alone, and while
    /// one exists no blob is swept: it may be running elsewhere.
    pub incomplete_grace_ms: i64,
    /// Hold the store's backup lease (metadata store and holder id) while pruning.
    pub lease: Option<(Arc<dyn MetadataStore>, String)>,
}

impl std::fmt::Debug for PruneOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PruneOptions")
            .field("dry_run", &self.dry_run)
            .field("incomplete_grace_ms", &self.incomplete_grace_ms)
            .field("lease", &self.lease.as_ref().map(|(_, h)| h))
            .finish()
    }
}

/// Default grace for incomplete backups: a day.
pub const DEFAULT_INCOMPLETE_GRACE_MS: i64 = 24 * 3600 * 1000;

/// What a prune did (or would do, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Complete backups kept.
    pub kept: Vec<String>,
    /// Complete backups deleted.
    pub removed: Vec<String>,
    /// Incomplete backups deleted.
    pub removed_incomplete: Vec<String>,
    /// Blobs deleted.
    pub removed_blobs: u64,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Why the blob sweep did not run, when it did not.
    pub sweep_skipped: Option<String>,
}

impl PruneReport {
    /// The report printed by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kept": self.kept,
            "removed": self.removed,
            "removed_incomplete": self.removed_incomplete,
            "removed_blobs": self.removed_blobs,
            "freed_bytes": self.freed_bytes,
            "sweep_skipped": self.sweep_skipped,
        })
    }
}

/// Applies `policy` to the backups at `location`. See the module docs.
pub async fn prune(
    location: &Location,
    policy: &Policy,
    opts: &PruneOptions,
    clock: &dyn Clock,
) -> Result<PruneReport> {
    let lease = match &opts.lease {
        Some((store, holder)) => Some(HeldLease::acquire(store.clone(), holder).await?),
        None => None,
    };
    let res = prune_locked(location, policy, opts, clock, lease.as_ref()).await;
    if let Some(l) = lease {
        l.release().await;
    }
    res
}

async fn prune_locked(
    location: &Location,
    policy: &Policy,
    opts: &PruneOptions,
    clock: &dyn Clock,
    lease: Option<&HeldLease>,
) -> Result<PruneReport> {
    let now = clock.now_ms();
    let infos = location.list().await?;
    let mut report = PruneReport::default();
    let complete: Vec<(String, i64)> = infos
        .iter()
        .filter_map(|i| i.manifest.as_ref().map(|m| (i.id.clone(), m.created_at_ms)))
        .collect();
    let kept = policy.select(&complete);
    report.kept = kept.iter().cloned().collect();
    report.removed = complete
        .iter()
        .filter(|(id, _)| !kept.contains(id))
        .map(|(id, _)| id.clone())
        .collect();
    let mut skip: Option<String> = None;
    for info in &infos {
        if let Some(e) = &info.manifest_error {
            skip.get_or_insert(format!(
                "backup {} has a manifest this build cannot read ({e}); its blobs are unknown",
                info.id
            ));
        } else if info.manifest.is_none() {
            let old = info
                .created_at_ms
                .is_none_or(|t| now - t > opts.incomplete_grace_ms);
            if old {
                report.removed_incomplete.push(info.id.clone());
            } else {
                skip.get_or_insert(format!(
                    "incomplete backup {} is younger than the grace period (it may still be running)",
                    info.id
                ));
            }
        }
    }
    if !opts.dry_run {
        for id in &report.removed {
            if let Some(l) = lease {
                l.check()?;
            }
            // The manifest first: the backup stops being complete before
            // anything it references goes.
            location
                .delete(&format!("{}/{MANIFEST_FILE}", backup_dir(id)))
                .await?;
            location.delete(&backup_dir(id)).await?;
            tracing::info!(backup_id = %id, "pruned backup");
        }
        for id in &report.removed_incomplete {
            location.delete(&backup_dir(id)).await?;
            tracing::info!(backup_id = %id, "removed incomplete backup");
        }
    }

    // ---- blobs no kept backup references
    if skip.is_none() {
        let scratch = scratch_dir(None)?;
        let progress = Progress::default();
        let mut referenced: HashSet<String> = HashSet::new();
        for info in infos.iter().filter(|i| kept.contains(&i.id)) {
            let Some(m) = &info.manifest else { continue };
            let listed = async {
                let local =
                    fetch_part(location, m, &m.artifacts.file, scratch.path(), &progress).await?;
                read_artifact_list(&local, &m.artifacts.file.path).await
            }
            .await;
            match listed {
                Ok(entries) => {
                    referenced.extend(entries.into_iter().filter(|e| !e.missing).map(|e| e.sha256))
                }
                Err(e) => {
                    skip = Some(format!(
                        "the artifact list of kept backup {} cannot be read ({e})",
                        info.id
                    ));
                    break;
                }
            }
        }
        if skip.is_none() {
            for (sha, size) in location.blobs().await? {
                if referenced.contains(&sha) {
                    continue;
                }
                if !opts.dry_run {
                    if let Some(l) = lease {
                        l.check()?;
                    }
                    location.delete(&blob_key(&sha)).await?;
                }
                report.removed_blobs += 1;
                report.freed_bytes += size;
            }
        }
    }
    if let Some(why) = &skip {
        tracing::info!(reason = %why, "blob sweep skipped");
    }
    report.sweep_skipped = skip;
    Ok(report)
}

impl From<chrono::ParseError> for BackupError {
    fn from(e: chrono::ParseError) -> Self {
        BackupError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DAY: i64 = 86_400_000;

    fn ids(v: &BTreeSet<String>) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn keep_last_and_buckets() {
        // Two backups a day for ten days, starting Monday 2026-11-30.
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .unwrap()
            .and_hms_opt(1, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let backups: Vec<(String, i64)> = (0..20)
            .map(|i| {
                (
                    format!("b{i:02}"),
                    start + (i / 2) * DAY + (i % 2) * 3_600_000,
                )
            })
            .collect();
        let p = Policy {
            keep_last: 2,
            ..Default::default()
        };
        assert_eq!(ids(&p.select(&backups)), ["b18", "b19"]);
        let p = Policy {
            keep_daily: 3,
            ..Default::default()
        };
        // The newest of each of the last three days.
        assert_eq!(ids(&p.select(&backups)), ["b15", "b17", "b19"]);
        let p = Policy {
            keep_weekly: 2,
            ..Default::default()
        };
        // Weeks: 30 Nov–6 Dec (b00..b13) and 7–9 Dec (b14..b19).
        assert_eq!(ids(&p.select(&backups)), ["b13", "b19"]);
        let p = Policy {
            keep_monthly: 5,
            ..Default::default()
        };
        // November (b00, b01) and December.
        assert_eq!(ids(&p.select(&backups)), ["b01", "b19"]);
        assert_eq!(Policy::default().select(&backups).len(), 20);
        assert!(Policy {
            keep_last: 1,
            ..Default::default()
        }
        .select(&[])
        .is_empty());
    }
}
