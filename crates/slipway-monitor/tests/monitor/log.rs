//! The prediction log's buffer: full means dropped and counted, never
//! waiting; a graceful shutdown writes what is buffered.

use crate::common::{logged_rows, monitor, prediction, settings, Registry};
use metrics_exporter_prometheus::PrometheusBuilder;
use slipway_serving::PredictionSink;
use std::time::{Duration, Instant};

/// The value of `slipway_prediction_log_dropped_rows_total` for the labels in
/// `rendered` (Prometheus text), 0 when absent.
fn dropped(rendered: &str, deployment: &str, reason: &str) -> f64 {
    rendered
        .lines()
        .filter(|l| l.starts_with("slipway_prediction_log_dropped_rows_total{"))
        .filter(|l| {
            l.contains(&format!("deployment=\"{deployment}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts_rows_without_waiting() {
    let reg = Registry::new().await;
    let mgr = reg.registry_manager();
    // room for 10 rows; requests of 3 rows
    let m = monitor(&reg, &mgr, settings(10));
    let log = m.log().clone();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let started = Instant::now();
    metrics::with_local_recorder(&recorder, || {
        for id in 0..1000 {
            log.submit(prediction("full", id, 3));
        }
    });
    let took = started.elapsed();
    // 3 requests (9 rows) fit, the other 997 are dropped
    assert_eq!(log.buffered_rows(), 9);
    assert_eq!(dropped(&handle.render(), "full", "buffer_full"), 2991.0);
    // submitting never waits for the writer: 1,000 submits are a few
    // microseconds each, far below one write of a file
    assert!(took < Duration::from_secs(2), "1,000 submits took {took:?}");
    // the accepted rows are written, and the room is free again
    log.flush(None).await;
    assert_eq!(logged_rows(&reg.artifacts, "full").await, 9);
    assert_eq!(log.buffered_rows(), 0);
    metrics::with_local_recorder(&recorder, || log.submit(prediction("full", 1000, 3)));
    assert_eq!(log.buffered_rows(), 3);
    assert_eq!(dropped(&handle.render(), "full", "buffer_full"), 2991.0);
}

#[tokio::test]
async fn shutdown_writes_rows_not_yet_due() {
    let reg = Registry::new().await;
    let mgr = reg.registry_manager();
    let m = monitor(&reg, &mgr, settings(100_000));
    for id in 0..40 {
        m.log().submit(prediction("due", id, 1 + id % 4));
    }
    let sent: usize = (0..40).map(|id| 1 + id % 4).sum();
    // neither an hour old nor a million rows: nothing is written by itself
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(logged_rows(&reg.artifacts, "due").await, 0);
    m.shutdown().await;
    assert_eq!(logged_rows(&reg.artifacts, "due").await, sent);
    assert_eq!(m.log().buffered_rows(), 0);
}
