//! Retention deletes the log's and the feedback's hours older than the
//! configured age, and keeps the rest.

use crate::common::{monitor, settings, Registry};
use slipway_monitor::files::{self, partition};
use slipway_monitor::monitor::now_ms;
use slipway_monitor::retention::delete_before;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Puts one file in the hour of `ms` under the log (deployment `d`,
/// version 1) and under the feedback; returns the log file's path.
async fn file_at(store: &slipway_artifacts::ArtifactStore, d: &str, ms: i64) -> String {
    let (date, hour) = partition(ms);
    let name = files::file_name(ms, ms);
    let log = format!("predictions/deployment={d}/version=1/date={date}/hour={hour}/{name}");
    files::put(store, &log, b"PAR1".to_vec()).await.unwrap();
    let fb = format!("feedback/deployment={d}/date={date}/hour={hour}/{name}");
    files::put(store, &fb, b"PAR1".to_vec()).await.unwrap();
    log
}

async fn exists(store: &slipway_artifacts::ArtifactStore, path: &str) -> bool {
    files::get(store, path).await.unwrap().is_some()
}

#[tokio::test]
async fn hours_before_the_cutoff_are_deleted_and_later_ones_kept() {
    let reg = Registry::new().await;
    let store = &reg.artifacts;
    // 2026-12-01T00:00:00Z, and a cutoff at 14:30 that day
    let day = 1_796_083_200_000;
    let cutoff = day + 14 * HOUR + 30 * 60_000;
    let old_day = file_at(store, "r", day - 3 * DAY + 5 * HOUR).await;
    let old_hour = file_at(store, "r", day + 13 * HOUR + 59 * 60_000).await;
    let straddling = file_at(store, "r", day + 14 * HOUR + 10 * 60_000).await;
    let new_hour = file_at(store, "r", day + 15 * HOUR).await;
    let next_day = file_at(store, "r", day + DAY + HOUR).await;
    // two files in each of two old hours: log and feedback
    assert_eq!(delete_before(store, cutoff).await.unwrap(), 4);
    assert!(!exists(store, &old_day).await);
    assert!(!exists(store, &old_hour).await);
    assert!(
        !exists(
            store,
            &old_hour
                .replace("predictions/", "feedback/")
                .replace("/version=1", "")
        )
        .await
    );
    // the hour the cutoff falls in has rows after it: kept
    for kept in [&straddling, &new_hour, &next_day] {
        assert!(exists(store, kept).await, "{kept} was deleted");
        let fb = kept
            .replace("predictions/", "feedback/")
            .replace("/version=1", "");
        assert!(exists(store, &fb).await, "{fb} was deleted");
    }
    // idempotent
    assert_eq!(delete_before(store, cutoff).await.unwrap(), 0);
}

#[tokio::test]
async fn the_monitor_keeps_its_configured_days() {
    let reg = Registry::new().await;
    let mgr = reg.registry_manager();
    let m = monitor(&reg, &mgr, settings(1000)); // retention_days: 30
    let now = now_ms();
    let old = file_at(&reg.artifacts, "m", now - 31 * DAY).await;
    let recent = file_at(&reg.artifacts, "m", now - 29 * DAY).await;
    assert_eq!(m.retention().await.unwrap(), 2);
    assert!(!exists(&reg.artifacts, &old).await);
    assert!(exists(&reg.artifacts, &recent).await);
}
