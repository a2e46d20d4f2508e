//! Open Inference Protocol (KServe V2) REST routes.
//!
//! `{name}` is a deployment; a `/versions/{v}` path addresses one loaded
//! version directly. Bodies are JSON or JSON + raw tensors (the binary tensor
//! extension, `Inference-Header-Content-Length`), decoded by
//! `slipway-protocol`; validation and inference happen in `slipway-runtime`
//! on the model's worker thread. Errors are `{"error": "..."}` with 400 for
//! bad input, 404 for unknown models, 413 for oversize bodies, 429 with
//! `Retry-After` when the deployment's queue is full, 503 when not ready.

use crate::extract::read_body;
use crate::serving::{Deployment, LoadedVersion};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use slipway_protocol::v2::{self, ResponseMeta};
use slipway_runtime::{DataType, RuntimeError, Signature};
use std::sync::Arc;
use std::time::Instant;

/// Routes of this module (absolute paths).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { Json(json!({"live": true})) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/config", get(model_config))
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
}

/// A V2 error response; 429 and 503 carry `Retry-After`.
pub fn v2_error(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    crate::error::with_retry_after((status, Json(json!({"error": message.into()}))).into_response())
}

/// Maps a runtime error to a V2 response, logging server-side faults.
pub fn runtime_error(deployment: &str, e: &RuntimeError) -> Response {
    let (status, message) = runtime_failure(deployment, e);
    v2_error(status, message)
}

/// Status and client-safe message for a runtime error: bad input and
/// overload are explained; server-side faults are logged and not detailed.
pub fn runtime_failure(deployment: &str, e: &RuntimeError) -> (u16, String) {
    let status = e.http_status();
    if status >= 500 && status != 503 {
        tracing::error!(deployment, error = %e, "inference failed");
        return (
            status,
            format!("inference failed for '{deployment}'; see server logs"),
        );
    }
    (status, e.to_string())
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "slipway",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_configuration"],
    }))
}

async fn server_ready(State(s): State<AppState>) -> Response {
    let store_ok = s.store.ping().await.is_ok();
    let failing = s.serving.probe().await;
    if store_ok && failing.is_empty() {
        Json(json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "not_ready": failing})),
        )
            .into_response()
    }
}

/// Why a request cannot be served: an HTTP status and a message.
#[derive(Debug, Clone)]
pub struct Unservable {
    /// 404 (unknown model or version) or 503 (not ready).
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl Unservable {
    /// As a V2 error response.
    pub fn into_v2(self) -> Response {
        v2_error(self.status, self.message)
    }
}

/// The deployment and its serving version.
pub fn resolve(
    s: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(Arc<Deployment>, Arc<LoadedVersion>), Unservable> {
    let Some(dep) = s.serving.get(name) else {
        return Err(Unservable {
            status: 404,
            message: format!("model '{name}' not found (no deployment of that name)"),
        });
    };
    let Some(active) = dep.active() else {
        let why = dep.status().error.unwrap_or_else(|| "still loading".into());
        return Err(Unservable {
            status: 503,
            message: format!("model '{name}' is not ready: {why}"),
        });
    };
    if let Some(v) = version {
        if active.version != v {
            return Err(Unservable {
                status: 404,
                message: format!(
                    "version '{v}' of model '{name}' is not loaded (serving version {})",
                    active.version
                ),
            });
        }
    }
    Ok((dep, active))
}

fn tensor_specs(specs: &[slipway_runtime::TensorSpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|t| json!({"name": t.name, "datatype": t.dtype.as_str(), "shape": t.shape}))
        .collect()
}

fn metadata_body(name: &str, version: &str, sig: &Signature) -> Value {
    json!({
        "name": name,
        "versions": [version],
        "platform": "onnxruntime_onnx",
        "inputs": tensor_specs(&sig.inputs),
        "outputs": tensor_specs(&sig.outputs),
    })
}

async fn model_metadata(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match resolve(&s, &name, None) {
        Ok((_, v)) => Json(metadata_body(&name, &v.version, v.worker.signature())).into_response(),
        Err(e) => e.into_v2(),
    }
}

async fn version_metadata(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match resolve(&s, &name, Some(&version)) {
        Ok((_, v)) => Json(metadata_body(&name, &v.version, v.worker.signature())).into_response(),
        Err(e) => e.into_v2(),
    }
}

fn ready_response(s: &AppState, name: &str, version: Option<&str>) -> Response {
    match resolve(s, name, version) {
        Ok(_) => Json(json!({"name": name, "ready": true})).into_response(),
        Err(e) if e.status == 503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"name": name, "ready": false})),
        )
            .into_response(),
        Err(e) => e.into_v2(),
    }
}

async fn model_ready(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    ready_response(&s, &name, None)
}

async fn version_ready(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    ready_response(&s, &name, Some(&version))
}

fn triton_type(dt: DataType) -> String {
    match dt.as_str() {
        "BYTES" => "TYPE_STRING".to_string(),
        other => format!("TYPE_{other}"),
    }
}

/// `GET /v2/models/{name}/config`: the Triton model configuration fields
/// perf_analyzer reads (batching, input and output names, types and dims).
async fn model_config(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let (dep, v) = match resolve(&s, &name, None) {
        Ok(x) => x,
        Err(e) => return e.into_v2(),
    };
    let sig = v.worker.signature();
    let batching = sig.supports_batching();
    let max_batch = if batching {
        v.worker.policy().max_batch_size.unwrap_or(0)
    } else {
        0
    };
    let dims = |shape: &[i64]| -> Vec<i64> {
        if batching && !shape.is_empty() {
            shape[1..].to_vec()
        } else {
            shape.to_vec()
        }
    };
    let io = |specs: &[slipway_runtime::TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|t| json!({"name": t.name, "data_type": triton_type(t.dtype), "dims": dims(&t.shape)}))
            .collect()
    };
    let spec = dep.spec();
    Json(json!({
        "name": name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": {"specific": {"versions": [v.version]}},
        "max_batch_size": max_batch,
        "input": io(&sig.inputs),
        "output": io(&sig.outputs),
        "dynamic_batching": {"max_queue_delay_microseconds": spec.max_queue_delay_us},
        "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
    }))
    .into_response()
}

async fn infer(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, name, None, headers, body).await
}

async fn infer_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, name, Some(version), headers, body).await
}

/// Records request count and latency for a deployment and version.
pub fn observe(
    deployment: &str,
    version: &str,
    protocol: &'static str,
    status: u16,
    started: Instant,
) {
    let labels = [
        ("deployment", deployment.to_string()),
        ("version", version.to_string()),
        ("protocol", protocol.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("slipway_inference_requests_total", &labels).increment(1);
    metrics::histogram!("slipway_inference_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
}

/// Counts range flags of a request.
pub fn observe_flags(deployment: &str, version: &str, flagged: usize) {
    if flagged > 0 {
        metrics::counter!("slipway_inference_out_of_range_total", "deployment" => deployment.to_string(), "version" => version.to_string())
            .increment(flagged as u64);
    }
}

async fn run_infer(
    s: AppState,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (_dep, loaded) = match resolve(&s, &name, version.as_deref()) {
        Ok(x) => x,
        Err(e) => return e.into_v2(),
    };
    let resp = infer_loaded(&s, &name, &loaded, &headers, body).await;
    observe(
        &name,
        &loaded.version,
        "v2",
        resp.status().as_u16(),
        started,
    );
    resp
}

async fn infer_loaded(
    s: &AppState,
    name: &str,
    loaded: &LoadedVersion,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(body, s.config.max_json_body_bytes as usize).await {
        Ok(b) => b,
        Err(e) => return v2_error(e.0.code.http_status(), e.0.message),
    };
    let header_len = match headers.get("inference-header-content-length") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|t| t.trim().parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => {
                return v2_error(
                    400,
                    "header Inference-Header-Content-Length must be a non-negative integer",
                )
            }
        },
    };
    let mut req = match v2::decode_request(&bytes, header_len) {
        Ok(r) => r,
        Err(e) => return v2_error(e.http_status(), e.to_string()),
    };
    let sig = loaded.worker.signature();
    let names: Vec<&str> = sig.outputs.iter().map(|o| o.name.as_str()).collect();
    if let Err(e) = req.check_outputs(&names) {
        return v2_error(e.http_status(), e.to_string());
    }
    let inputs = std::mem::take(&mut req.inputs);
    let result = match loaded.worker.infer(inputs).await {
        Ok(r) => r,
        Err(e) => return runtime_error(name, &e),
    };
    observe_flags(name, &loaded.version, result.validation.flagged);
    let mut outs = match req.select_outputs(result.outputs) {
        Ok(o) => o,
        Err(e) => return v2_error(e.http_status(), e.to_string()),
    };
    let meta = ResponseMeta {
        model_name: name,
        model_version: Some(&loaded.version),
        id: req.id.as_deref(),
        parameters: None,
    };
    let encoded = match v2::encode_response(meta, &mut outs) {
        Ok(e) => e,
        Err(e) => return v2_error(e.http_status(), e.to_string()),
    };
    let content_type = encoded.content_type();
    let header_length = encoded.header_length;
    let mut resp = (StatusCode::OK, encoded.body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(n) = header_length {
        h.insert("inference-header-content-length", HeaderValue::from(n));
    }
    if let Ok(v) = HeaderValue::from_str(&loaded.version) {
        h.insert("x-slipway-model-version", v);
    }
    resp
}
