//! Logs, request ids and Prometheus metrics.
//!
//! Logs are JSON lines (or text) through `tracing`; each request gets an
//! `x-request-id` (kept if the client sent one) that appears in its log span
//! and in the response. HTTP metrics are recorded per matched route, never per
//! raw path, so cardinality stays bounded.

use crate::config::{Config, LogFormat};
use axum::extract::MatchedPath;
use axum::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
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

/// Counts a finished request and observes its latency, per method, matched
/// route (`None`: unmatched) and status. Called by the router's one
/// per-route middleware ([`crate::routes::router`]).
pub fn record_http(method: &Method, route: Option<&MatchedPath>, status: u16, start: Instant) {
    record_http_route(
        method,
        route.map_or("unmatched", MatchedPath::as_str),
        status,
        start,
    );
}

/// [`record_http`] for a route pattern known without the router (the
/// inference lane, `crate::routes::lane`).
pub fn record_http_route(method: &Method, route: &str, status: u16, start: Instant) {
    let h = http_handles(method, route, status);
    h.requests.increment(1);
    h.duration.record(start.elapsed().as_secs_f64());
}

/// The HTTP metrics of one method, route and status.
#[derive(Clone)]
struct HttpHandles {
    method: Method,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Handles by route, resolved once per (method, route, status): a request
/// then costs a read lock and a lookup, not three label strings and the
/// recorder's map. Bounded by the route table (routes are matched paths,
/// never raw ones) times the methods and statuses seen.
fn http_handles(method: &Method, route: &str, status: u16) -> HttpHandles {
    type ByRoute = RwLock<HashMap<String, Vec<HttpHandles>>>;
    static CACHE: OnceLock<ByRoute> = OnceLock::new();
    let cache = CACHE.get_or_init(ByRoute::default);
    let find = |v: &[HttpHandles]| {
        v.iter()
            .find(|h| h.status == status && h.method == *method)
            .cloned()
    };
    {
        let by_route = cache.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = by_route.get(route).and_then(|v| find(v)) {
            return h;
        }
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    let h = HttpHandles {
        method: method.clone(),
        status,
        requests: metrics::counter!("slipway_http_requests_total", &labels),
        duration: metrics::histogram!("slipway_http_request_duration_seconds", &labels),
    };
    let mut by_route = cache.write().unwrap_or_else(PoisonError::into_inner);
    let v = by_route.entry(route.to_string()).or_default();
    if find(v).is_none() {
        v.push(h.clone());
    }
    h
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
