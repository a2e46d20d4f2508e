//! Scheduled backups: one replica per scheduled time, measured in
//! `/metrics`; the scheduler itself takes backups on its schedule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_server::backups::{run_slot, RunResult};

use crate::helpers::{spawn_with, ADMIN};

fn artifacts(dir: &std::path::Path) -> Arc<slipway_artifacts::ArtifactStore> {
    let cfg = slipway_artifacts::ArtifactStoreConfig::new(dir.join("artifacts").to_str().unwrap());
    Arc::new(slipway_artifacts::ArtifactStore::open(&cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_take_one_backup_per_scheduled_time() {
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().to_str().unwrap().to_string();
    let mut config = None;
    let app = spawn_with(|c| {
        c.backup_to = Some(dest.clone());
        c.backup_schedule = "0 0 1 1 *".into(); // not during this test
        config = Some(c.clone());
    })
    .await;
    let config = config.unwrap();
    app.store
        .create_experiment("something", None, &[])
        .await
        .unwrap();
    let store = app.store.clone();
    let arts = artifacts(&config.data_dir);
    let slot = 1_900_000_000_000;
    let (a, b) = tokio::join!(
        run_slot(&config, &store, &arts, slot, "replica-a"),
        run_slot(&config, &store, &arts, slot, "replica-b")
    );
    let mut results = [a, b];
    results.sort_by_key(|r| matches!(r, RunResult::Skipped(_)));
    assert_eq!(results[0], RunResult::Success, "{results:?}");
    assert!(matches!(results[1], RunResult::Skipped(_)), "{results:?}");
    // Later, the same time again: done already.
    let again = run_slot(&config, &store, &arts, slot, "replica-b").await;
    assert!(
        matches!(&again, RunResult::Skipped(why) if why.contains("took this backup")),
        "{again:?}"
    );
    // The next time runs.
    assert_eq!(
        run_slot(&config, &store, &arts, slot + 1, "replica-b").await,
        RunResult::Success
    );
    let loc = slipway_backup::Location::open(&dest, &Default::default(), false).unwrap();
    let listed = loc.list().await.unwrap();
    assert_eq!(listed.iter().filter(|b| b.is_complete()).count(), 2);
    assert!(
        listed
            .iter()
            .all(|b| b.verification.as_ref().is_some_and(|v| v.ok)),
        "scheduled backups are verified"
    );

    let resp = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    // The two runs that took place are recorded in the store and exported
    // from there (skipped ones are not runs).
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{text}"))
    };
    assert_eq!(value("slipway_backup_runs_total{result=\"success\"}"), 2.0);
    assert_eq!(value("slipway_backup_runs_total{result=\"failure\"}"), 0.0);
    assert_eq!(value("slipway_backup_last_run_success"), 1.0);
    assert_eq!(value("slipway_backup_last_verify_ok"), 1.0);
    let now = slipway_core::now_millis() as f64 / 1000.0;
    let last = value("slipway_backup_last_success_timestamp_seconds");
    assert!((now - 120.0..=now + 1.0).contains(&last), "{last} vs {now}");
    assert!(value("slipway_backup_last_duration_seconds") >= 0.0);
    assert!(value("slipway_backup_last_size_bytes") > 0.0);
    assert!(!text.contains("result=\"skipped\""), "{text}");
    let runs = app.store.backup_run_summary().await.unwrap();
    assert_eq!((runs.successes, runs.failures), (2, 0));
    assert_eq!(runs.last.unwrap().started_by, "schedule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_backs_up_on_its_schedule_and_prunes() {
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().to_str().unwrap().to_string();
    let _app = spawn_with(|c| {
        c.backup_to = Some(dest.clone());
        c.backup_schedule = "@every 1s".into();
        c.backup_keep_last = 2;
        c.backup_keep_daily = 0;
        c.backup_keep_weekly = 0;
        c.backup_keep_monthly = 0;
        c.backup_verify = false;
    })
    .await;
    let loc = slipway_backup::Location::open(&dest, &Default::default(), true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let complete = loc
            .list()
            .await
            .unwrap()
            .iter()
            .filter(|b| b.is_complete())
            .count();
        // Three runs happened once two remain after a prune removed one.
        let runs = std::fs::read_dir(backups.path().join("backups"))
            .map(|d| d.count())
            .unwrap_or(0);
        if complete == 2 && runs == 2 {
            let blobs = loc.blobs().await.unwrap();
            assert!(
                blobs.is_empty(),
                "no artifacts in this store, so no blobs: {blobs:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled backups within 30 s (complete: {complete})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
