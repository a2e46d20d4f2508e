//! Retention over a simulated year of daily backups (an injectable clock,
//! an in-memory location): exactly what the policy says is kept, and the
//! blob sweep never deletes a blob a kept backup references.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use object_store::memory::InMemory;
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactStore, CommitMode};
use slipway_backup::format::{
    backup_dir, blob_key, ArtifactEntry, ArtifactsInfo, Manifest, PartFile, PartWriter,
    SnapshotInfo, SourceInfo, ARTIFACTS_FILE, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE,
};
use slipway_backup::retention::{prune, Policy, PruneOptions};
use slipway_backup::{new_backup_id, rfc3339, Location};

use crate::common::FakeClock;

const HOUR: i64 = 3_600_000;

fn sha(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// Writes a backup made at `at_ms` whose artifacts have `contents`; with
/// `complete = false` it stops before the manifest, as a killed backup does.
async fn fake_backup(loc: &Location, at_ms: i64, contents: &[String], complete: bool) -> String {
    let id = new_backup_id(at_ms);
    let mut w = PartWriter::new(Vec::new(), &serde_json::json!({"part": "artifacts"})).unwrap();
    for (i, c) in contents.iter().enumerate() {
        loc.put(&blob_key(&sha(c)), c.clone().into_bytes())
            .await
            .unwrap();
        w.line(&ArtifactEntry {
            path: format!("f{i}"),
            sha256: sha(c),
            size: c.len() as u64,
            recorded: true,
            missing: false,
        })
        .unwrap();
    }
    let (bytes, part_sha, size) = w.finish().unwrap();
    loc.put(&format!("{}/{ARTIFACTS_FILE}", backup_dir(&id)), bytes)
        .await
        .unwrap();
    if !complete {
        return id;
    }
    let m = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        backup_id: id.clone(),
        created_at: rfc3339(at_ms),
        created_at_ms: at_ms,
        completed_at_ms: at_ms + 1000,
        slipway_version: "test".into(),
        source: SourceInfo {
            engine: "sqlite".into(),
            metadata_url: "sqlite://x".into(),
            artifact_root: "/x".into(),
        },
        schema_version: 2,
        snapshot: SnapshotInfo {
            method: "sqlite-vacuum-into".into(),
            started_at_ms: at_ms,
            taken_at_ms: at_ms,
        },
        tables: vec![],
        artifacts: ArtifactsInfo {
            file: PartFile {
                path: ARTIFACTS_FILE.into(),
                bytes: size,
                sha256: part_sha,
            },
            files: contents.len() as u64,
            bytes: contents.iter().map(|c| c.len() as u64).sum(),
            blobs: contents.len() as u64,
            copied_blobs: 0,
            copied_bytes: 0,
            unrecorded_files: 0,
            missing_files: 0,
            missing: vec![],
            changed_during_backup: vec![],
        },
    };
    loc.put(&format!("{}/{MANIFEST_FILE}", backup_dir(&id)), m.to_json())
        .await
        .unwrap();
    id
}

fn day_of(id: &str) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(slipway_backup::id_time_ms(id).unwrap())
        .unwrap()
        .date_naive()
}

#[tokio::test]
async fn a_year_of_daily_backups_keeps_exactly_the_policy() {
    let loc = Location::from_store(ArtifactStore::from_object_store(
        Arc::new(InMemory::new()),
        CommitMode::Direct,
    ));
    let policy = Policy {
        keep_last: 2,
        keep_daily: 7,
        keep_weekly: 4,
        keep_monthly: 6,
    };
    let clock = FakeClock::default();
    let opts = PruneOptions {
        incomplete_grace_ms: 24 * HOUR,
        ..Default::default()
    };
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut contents_of: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut killed = None;
    for n in 0..365 {
        let day = first + chrono::Duration::days(n);
        let at = day
            .and_hms_opt(3, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let week = day.iso_week().week();
        let contents = vec![
            "shared".to_string(),
            format!("day {day}"),
            format!("week {week}"),
        ];
        clock.set(at);
        let id = fake_backup(&loc, at, &contents, true).await;
        contents_of.insert(id, contents);
        if n == 100 {
            // A backup killed right after this one: incomplete, with a blob of its own.
            killed = Some(fake_backup(&loc, at + 60_000, &["killed".to_string()], false).await);
        }
        clock.set(at + 5 * 60_000);
        let report = prune(&loc, &policy, &opts, &clock).await.unwrap();
        let blobs: HashSet<String> = loc.blobs().await.unwrap().into_keys().collect();
        let kept: HashSet<String> = report.kept.iter().cloned().collect();
        for id in &kept {
            for c in &contents_of[id] {
                assert!(
                    blobs.contains(&sha(c)),
                    "day {day}: blob of kept backup {id} was deleted"
                );
            }
        }
        if n == 100 {
            assert!(
                report
                    .sweep_skipped
                    .as_deref()
                    .unwrap_or("")
                    .contains("younger than the grace"),
                "{report:?}"
            );
            assert!(blobs.contains(&sha("killed")));
        } else {
            assert_eq!(report.sweep_skipped, None, "day {day}");
            let wanted: HashSet<String> = kept
                .iter()
                .flat_map(|id| contents_of[id].iter().map(|c| sha(c)))
                .collect();
            assert_eq!(
                blobs, wanted,
                "day {day}: exactly the kept backups' blobs remain"
            );
        }
        if n == 101 {
            assert_eq!(report.removed_incomplete, vec![killed.clone().unwrap()]);
        }
    }
    let kept: BTreeSet<NaiveDate> = loc
        .list()
        .await
        .unwrap()
        .iter()
        .map(|b| {
            assert!(b.is_complete());
            day_of(&b.id)
        })
        .collect();
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
    let expected: BTreeSet<NaiveDate> = [
        // last 2 and 7 daily: 25–31 December
        d(12, 25),
        d(12, 26),
        d(12, 27),
        d(12, 28),
        d(12, 29),
        d(12, 30),
        d(12, 31),
        // 4 weekly (ISO weeks 53, 52, 51, 50): 31, 27, 20, 13 December
        d(12, 20),
        d(12, 13),
        // 6 monthly: the last day of December back to July
        d(11, 30),
        d(10, 31),
        d(9, 30),
        d(8, 31),
        d(7, 31),
    ]
    .into_iter()
    .collect();
    assert_eq!(kept, expected);
}

#[tokio::test]
async fn a_dry_run_deletes_nothing_and_unreadable_manifests_stop_the_sweep() {
    let loc = Location::from_store(ArtifactStore::from_object_store(
        Arc::new(InMemory::new()),
        CommitMode::Direct,
    ));
    let clock = FakeClock::at(1_800_000_000_000);
    for i in 0..3 {
        fake_backup(
            &loc,
            1_700_000_000_000 + i * 86_400_000,
            &[format!("c{i}")],
            true,
        )
        .await;
    }
    let policy = Policy {
        keep_last: 1,
        ..Default::default()
    };
    let dry = PruneOptions {
        dry_run: true,
        ..Default::default()
    };
    let r = prune(&loc, &policy, &dry, &clock).await.unwrap();
    assert_eq!((r.removed.len(), r.removed_blobs), (2, 2));
    assert_eq!(loc.list().await.unwrap().len(), 3);
    assert_eq!(loc.blobs().await.unwrap().len(), 3);
    // A manifest from a future format: never deleted, and no blob is swept.
    let id = new_backup_id(1_750_000_000_000);
    loc.put(
        &format!("{}/{MANIFEST_FILE}", backup_dir(&id)),
        br#"{"format":"slipway-backup","format_version":99}"#.to_vec(),
    )
    .await
    .unwrap();
    let r = prune(&loc, &policy, &PruneOptions::default(), &clock)
        .await
        .unwrap();
    assert!(r.sweep_skipped.unwrap().contains("cannot read"));
    assert_eq!(r.removed_blobs, 0);
    assert_eq!(loc.blobs().await.unwrap().len(), 3);
    assert!(loc.list().await.unwrap().iter().any(|b| b.id == id));
}
