//! Logs, request ids and Prometheus metrics.
//!
//! Logs are JSON lines (or text) through `tracing`; each request gets an
//! `x-request-id` (kept if the client sent one) that appears in its log span
//! and in the response. HTTP metrics are recorded per matched route, never per
//! raw path, so cardinality stays bounded.

use crate::config::{Config, LogFormat};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber once; later calls are no-ops.
pub fn init_logging(config: &Config) {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let filter =
            EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match config.log_format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .try_init(),
            LogFormat::Text => builder.try_init(),
        };
    });
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A second Application in the same process (tests) reuses this one.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Request ids: a random per-process prefix and a counter. Unique, cheap (no
/// random-number syscall per request), and sortable within a process.
#[derive(Clone)]
pub struct MakeRequestId {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for MakeRequestId {
    fn default() -> Self {
        let bytes: [u8; 6] = rand::random();
        Self {
            prefix: hex::encode(bytes).into(),
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// Middleware: counts requests and observes latency per method, route and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("slipway_http_requests_total", &labels).increment(1);
    metrics::histogram!("slipway_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;
    use std::path::Path;

    /// Every `counter!` / `gauge!` / `histogram!` name in the workspace's
    /// sources, with its type.
    fn metrics_in_code() -> BTreeMap<String, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut out = BTreeMap::new();
        let mut stack = vec![root.join("crates")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    if !p.ends_with("target") {
                        stack.push(p);
                    }
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                for kind in ["counter", "gauge", "histogram"] {
                    let pat = format!("{kind}!(");
                    for (i, _) in text.match_indices(&pat) {
                        let rest = text[i + pat.len()..].trim_start();
                        if let Some(name) = rest
                            .strip_prefix('"')
                            .and_then(|r| r.split('"').next())
                            .filter(|n| n.starts_with("slipway_"))
                        {
                            out.insert(name.to_string(), kind.to_string());
                        }
                    }
                }
            }
        }
        out
    }

    /// deploy/prometheus/metrics.json lists exactly the metrics the code
    /// exports, with their types: the alert rules and the dashboard are
    /// checked against it (deploy/check-monitoring).
    #[test]
    fn the_metrics_catalog_matches_the_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let catalog: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("deploy/prometheus/metrics.json")).unwrap(),
        )
        .unwrap();
        let listed: BTreeMap<String, String> = catalog["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    m["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let code = metrics_in_code();
        let missing: Vec<&String> = code.keys().filter(|k| !listed.contains_key(*k)).collect();
        let stale: Vec<&String> = listed.keys().filter(|k| !code.contains_key(*k)).collect();
        assert!(
            missing.is_empty(),
            "exported but not in metrics.json: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "in metrics.json but not exported: {stale:?}"
        );
        for (name, kind) in &code {
            assert_eq!(&listed[name], kind, "type of {name}");
        }
    }
}
