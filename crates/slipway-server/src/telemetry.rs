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
