//! Reading the log back: `limit` keeps the oldest rows, or with
//! `newest_first` the newest, even when the files of several writers
//! overlap in time.

use crate::common::{monitor, prediction, settings, Registry, MLMODEL_ONNX};
use slipway_monitor::frame::Cell;
use slipway_monitor::PredictionQuery;
use slipway_serving::{DeploymentSpec, PredictionSink};
use std::time::{Duration, SystemTime};

fn query(limit: usize, newest_first: bool) -> PredictionQuery {
    PredictionQuery {
        start_ms: 0,
        end_ms: i64::MAX,
        version: None,
        limit,
        newest_first,
    }
}

/// The request ids of the rows, in the order they came back.
fn ids(rows: &slipway_monitor::PredictionRows) -> Vec<String> {
    let c = rows
        .frame
        .columns
        .iter()
        .position(|(n, _)| n == "request_id")
        .expect("a request_id column");
    rows.frame
        .rows
        .iter()
        .map(|r| match &r[c] {
            Cell::Str(s) => s.clone(),
            other => panic!("request_id holds {other:?}"),
        })
        .collect()
}

fn expected(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("req-{i}")).collect()
}

#[tokio::test]
async fn the_limit_keeps_the_oldest_or_the_newest_rows_of_overlapping_files() {
    let reg = Registry::new().await;
    let v = reg.version_with("m", MLMODEL_ONNX).await;
    let mgr = reg.registry_manager();
    mgr.put("d", DeploymentSpec::pinned("m", &v)).await.unwrap();
    let m = monitor(&reg, &mgr, settings(100_000));
    // 30 one-row requests a second apart, written as three files that
    // overlap in time as two replicas' files do: even, odd, then the
    // ten newest
    let base = SystemTime::now() - Duration::from_secs(120);
    let at = |i: usize| {
        let mut p = prediction("d", i, 1);
        p.time = base + Duration::from_secs(i as u64);
        p
    };
    for i in (0..20).step_by(2) {
        m.log().submit(at(i));
    }
    m.log().flush(None).await;
    for i in (1..20).step_by(2) {
        m.log().submit(at(i));
    }
    m.log().flush(None).await;
    for i in 20..30 {
        m.log().submit(at(i));
    }
    m.log().flush(None).await;

    let newest = m.predictions("d", query(5, true)).await.unwrap();
    assert_eq!(ids(&newest), expected((25..30).rev()));
    assert!(newest.truncated);
    let newest = m.predictions("d", query(15, true)).await.unwrap();
    assert_eq!(ids(&newest), expected((15..30).rev()));
    let oldest = m.predictions("d", query(5, false)).await.unwrap();
    assert_eq!(ids(&oldest), expected(0..5));
    assert!(oldest.truncated);
    let all = m.predictions("d", query(100, true)).await.unwrap();
    assert_eq!(ids(&all), expected((0..30).rev()));
    assert!(!all.truncated);
}
