//! Deleting prediction-log and feedback hours older than the retention.

use crate::files::{self, FEEDBACK, PREDICTIONS};
use slipway_artifacts::ArtifactStore;
use slipway_core::Error;

/// Deletes every `date=…/hour=…` directory under the log and the feedback
/// whose hour ended before `cutoff_ms`; returns the files deleted.
pub async fn delete_before(store: &ArtifactStore, cutoff_ms: i64) -> Result<u64, Error> {
    let mut roots = Vec::new();
    for d in files::partitions(store, PREDICTIONS, "deployment").await? {
        let dep = format!("{PREDICTIONS}/deployment={d}");
        for v in files::partitions(store, &dep, "version").await? {
            roots.push(format!("{dep}/version={v}"));
        }
    }
    for d in files::partitions(store, FEEDBACK, "deployment").await? {
        roots.push(format!("{FEEDBACK}/deployment={d}"));
    }
    let mut deleted = 0;
    for root in roots {
        for date in files::partitions(store, &root, "date").await? {
            let Some(day) = files::start_of(&date, 0) else {
                continue;
            };
            if day + 86_400_000 <= cutoff_ms {
                deleted += files::delete(store, &format!("{root}/date={date}")).await?;
                continue;
            }
            if day >= cutoff_ms {
                continue;
            }
            let dir = format!("{root}/date={date}");
            for hour in files::partitions(store, &dir, "hour").await? {
                let Some(h) = hour
                    .parse::<u32>()
                    .ok()
                    .and_then(|h| files::start_of(&date, h))
                else {
                    continue;
                };
                if h + 3_600_000 <= cutoff_ms {
                    deleted += files::delete(store, &format!("{dir}/hour={hour}")).await?;
                }
            }
        }
    }
    if deleted > 0 {
        tracing::info!(files = deleted, "monitoring retention deleted old hours");
    }
    Ok(deleted)
}
