//! Open Inference Protocol (KServe V2) REST routes.
//!
//! `{name}` is a deployment; a `/versions/{v}` path addresses one loaded
//! version directly. Bodies are JSON or JSON + raw tensors (the binary tensor
//! extension, `Inference-Header-Content-Length`), decoded by
//! `slipway-protocol`; validation and inference happen in `slipway-runtime`
//! on the model's worker thread. Errors are `{"error": "..."}`, their status
//! from the one error table (`crate::error`): 400 for bad input, 404 for
//! unknown models, 413 for oversize bodies, 429 with `Retry-After` when the
//! deployment's queue is full, 503 when not ready.

use crate::error::{protocol_error, render, runtime_error, ApiError, Protocol};
use crate::extract::read_body_into;
use crate::routes::table::{Access, Routes, PREDICT};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use slipway_core::{Error, ErrorCode};
use slipway_protocol::v2::{self, ResponseMeta};
use slipway_runtime::{DataType, Signature};
use slipway_serving::{Deployment, LoadedVersion, Routed};
use std::sync::Arc;
use std::time::Instant;

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    Routes::new()
        .get("/v2", PREDICT, server_metadata)
        .get("/v2/health/live", Access::Public, || async {
            Json(json!({"live": true}))
        })
        .get("/v2/health/ready", Access::Public, server_ready)
        .get("/v2/models/{name}", PREDICT, model_metadata)
        .get("/v2/models/{name}/ready", PREDICT, model_ready)
        .get("/v2/models/{name}/config", PREDICT, model_config)
        .get("/v2/models/stats", PREDICT, all_stats)
        .get("/v2/models/{name}/stats", PREDICT, model_stats)
        .get(
            "/v2/models/{name}/versions/{version}/stats",
            PREDICT,
            version_stats,
        )
        .get(
            "/v2/models/{name}/versions/{version}/config",
            PREDICT,
            version_config,
        )
        .post("/v2/models/{name}/infer", PREDICT, infer)
        .get(
            "/v2/models/{name}/versions/{version}",
            PREDICT,
            version_metadata,
        )
        .get(
            "/v2/models/{name}/versions/{version}/ready",
            PREDICT,
            version_ready,
        )
        .post(
            "/v2/models/{name}/versions/{version}/infer",
            PREDICT,
            infer_version,
        )
}

/// A V2 error response (`{"error"}`, status and headers from the table).
pub fn v2_error(err: &Error) -> Response {
    render(Protocol::V2, err)
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "slipway",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_configuration", "statistics"],
    }))
}

async fn server_ready(State(s): State<AppState>) -> Response {
    let reasons = crate::routes::health::readiness(&s).await;
    if reasons.is_empty() {
        Json(json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "not_ready": reasons})),
        )
            .into_response()
    }
}

/// The deployment and its serving version; an unknown model or version is
/// `RESOURCE_DOES_NOT_EXIST` (404), one not ready `TEMPORARILY_UNAVAILABLE` (503).
pub fn resolve(
    s: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(Arc<Deployment>, Arc<LoadedVersion>), Error> {
    let Some(dep) = s.serving.get(name) else {
        return Err(Error::not_found(format!(
            "model '{name}' not found (no deployment of that name)"
        )));
    };
    let Some(active) = dep.active() else {
        let why = dep.status().error.unwrap_or_else(|| "still loading".into());
        return Err(Error::new(
            ErrorCode::TemporarilyUnavailable,
            format!("model '{name}' is not ready: {why}"),
        ));
    };
    if let Some(v) = version {
        return match dep.loaded(v) {
            Some(loaded) => Ok((dep, loaded)),
            None => Err(Error::not_found(format!(
                "version '{v}' of model '{name}' is not loaded (loaded: {})",
                dep.loaded_versions()
                    .iter()
                    .map(|l| l.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    Ok((dep, active))
}

/// Routes an inference request: to `version` when the path names one (any
/// version the deployment has loaded), else by the deployment's split — by
/// the hash of its sticky header's value when the request carries it.
pub fn route_request(
    s: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Arc<Deployment>, Routed), Error> {
    let (dep, loaded) = resolve(s, name, version)?;
    let routed = match version {
        Some(v) => dep.route_version(v),
        None => {
            let key = dep
                .sticky_header()
                .and_then(|h| headers.get(h.as_str()).map(|v| v.as_bytes().to_vec()));
            dep.route(key.as_deref())
        }
    };
    let mut routed = routed.unwrap_or_else(|| Routed::explicit(None, loaded));
    if routed.logged() {
        if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
            routed.set_request_id(id);
        }
    }
    Ok((dep, routed))
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
        Err(e) => v2_error(&e),
    }
}

async fn version_metadata(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match resolve(&s, &name, Some(&version)) {
        Ok((_, v)) => Json(metadata_body(&name, &v.version, v.worker.signature())).into_response(),
        Err(e) => v2_error(&e),
    }
}

fn ready_response(s: &AppState, name: &str, version: Option<&str>) -> Response {
    match resolve(s, name, version) {
        Ok(_) => Json(json!({"name": name, "ready": true})).into_response(),
        Err(e) if e.code == ErrorCode::TemporarilyUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"name": name, "ready": false})),
        )
            .into_response(),
        Err(e) => v2_error(&e),
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
    config_of(&s, &name, None)
}

/// `GET /v2/models/{name}/versions/{v}/config` (perf_analyzer `-x`).
async fn version_config(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    config_of(&s, &name, Some(&version))
}

fn stat_json(name: &str, v: &LoadedVersion) -> Value {
    let mut stat = serde_json::to_value(v.worker.stats()).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut stat {
        m.insert("name".into(), Value::String(name.to_string()));
        m.insert("version".into(), Value::String(v.version.clone()));
    }
    stat
}

/// `GET /v2/models/stats`: Triton's statistics extension for every loaded version.
async fn all_stats(State(s): State<AppState>) -> Response {
    let stats: Vec<Value> = s
        .serving
        .list()
        .iter()
        .filter_map(|d| d.active().map(|v| stat_json(&d.name, &v)))
        .collect();
    Json(json!({"model_stats": stats})).into_response()
}

/// `GET /v2/models/{name}/stats`.
async fn model_stats(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match resolve(&s, &name, None) {
        Ok((_, v)) => Json(json!({"model_stats": [stat_json(&name, &v)]})).into_response(),
        Err(e) => v2_error(&e),
    }
}

/// `GET /v2/models/{name}/versions/{v}/stats`.
async fn version_stats(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match resolve(&s, &name, Some(&version)) {
        Ok((_, v)) => Json(json!({"model_stats": [stat_json(&name, &v)]})).into_response(),
        Err(e) => v2_error(&e),
    }
}

fn config_of(s: &AppState, name: &str, version: Option<&str>) -> Response {
    let (dep, v) = match resolve(s, name, version) {
        Ok(x) => x,
        Err(e) => return v2_error(&e),
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

/// Records request count and latency for a deployment, version and role
/// (through the version's cached handles).
pub fn observe(
    deployment: &str,
    loaded: &slipway_serving::LoadedVersion,
    role: &'static str,
    protocol: &'static str,
    status: u16,
    started: Instant,
) {
    let h = loaded
        .request_metrics
        .get(deployment, &loaded.version, role, protocol, status);
    h.requests.increment(1);
    h.duration.record(started.elapsed().as_secs_f64());
}

/// Counts range flags of a request.
pub fn observe_flags(deployment: &str, version: &str, flagged: usize) {
    if flagged > 0 {
        metrics::counter!("slipway_inference_out_of_range_total", "deployment" => deployment.to_string(), "version" => version.to_string())
            .increment(flagged as u64);
    }
}

/// Runs a V2 inference request for deployment `name` (the routes' handlers,
/// also called by the inference lane, `crate::routes::lane`).
pub(crate) async fn run_infer(
    s: AppState,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (_dep, routed) = match route_request(&s, &name, version.as_deref(), &headers) {
        Ok(x) => x,
        Err(e) => return v2_error(&e),
    };
    let (loaded, role) = (routed.version.clone(), routed.role.as_str());
    let resp = infer_routed(&s, &name, routed, &headers, body).await;
    observe(&name, &loaded, role, "v2", resp.status().as_u16(), started);
    resp
}

/// Bodies and outputs up to this size are decoded and encoded on the
/// request task; larger ones on a blocking thread, under the decode budget.
pub const INLINE_CODEC_BYTES: usize = 256 * 1024;

/// Runs CPU-heavy codec work of about `size` bytes: inline when small,
/// otherwise on a codec thread (lower priority than the executor) while
/// holding `size` bytes of the decode budget (setting `max_decode_bytes`), so large JSON
/// never stalls the async executor and the bytes being decoded at once stay
/// bounded.
pub async fn offload<T: Send + 'static>(
    s: &AppState,
    size: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if size <= INLINE_CODEC_BYTES {
        return work();
    }
    let want = u32::try_from(size.min(s.codec.max_bytes)).unwrap_or(u32::MAX);
    let _bytes = s.codec.bytes.clone().acquire_many_owned(want).await;
    s.codec.run(work).await
}

/// Reads an inference request's body (see [`read_body_into`]). A large body
/// with a `Content-Length` is read into a buffer whose pages a codec thread
/// touched first: a fresh buffer's first write faults in (and the kernel
/// zeroes) every page, and for eight 16 MiB uploads at once that work on the
/// executor's threads was what delayed health checks.
pub async fn read_request_body(s: &AppState, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limit = usize::try_from(s.config.max_json_body_bytes).unwrap_or(usize::MAX);
    let exact = axum::body::HttpBody::size_hint(&body)
        .exact()
        .and_then(|n| usize::try_from(n).ok());
    let buf = match exact {
        Some(n) if n > INLINE_CODEC_BYTES && n <= limit => {
            s.codec
                .run(move || {
                    let mut buf = bytes::BytesMut::with_capacity(n);
                    buf.resize(n, 0);
                    buf.clear();
                    buf
                })
                .await
        }
        _ => bytes::BytesMut::new(),
    };
    read_body_into(body, &s.config, buf).await
}

/// Reads the `Inference-Header-Content-Length` header.
fn binary_header_length(headers: &HeaderMap) -> Result<Option<usize>, &'static str> {
    match headers.get("inference-header-content-length") {
        None => Ok(None),
        Some(v) => match v.to_str().ok().and_then(|t| t.trim().parse::<usize>().ok()) {
            Some(n) => Ok(Some(n)),
            None => Err("header Inference-Header-Content-Length must be a non-negative integer"),
        },
    }
}

async fn infer_routed(
    s: &AppState,
    name: &str,
    routed: Routed,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let loaded = routed.version.clone();
    let mirror = s.serving.mirror_queue();
    let bytes = match read_request_body(s, body).await {
        Ok(b) => b,
        Err(e) => return v2_error(&e.0),
    };
    let header_len = match binary_header_length(headers) {
        Ok(n) => n,
        Err(message) => return v2_error(&Error::new(ErrorCode::InvalidInput, message)),
    };
    // decode (checking declared shapes against the contract before any data
    // is read) and validate, off the executor when the body is large
    let worker_of = loaded.clone();
    let deployment = name.to_string();
    let size = bytes.len();
    let decoded = offload(s, size, move || {
        let worker = &worker_of.worker;
        let check = |input: &str, shape: &[i64]| {
            worker.check_shape(input, shape).map_err(|e| e.to_string())
        };
        let mut req = v2::decode_request_checked(&bytes, header_len, &check)
            .map_err(|e| protocol_error(&e))?;
        drop(bytes);
        let sig = worker.signature();
        let names: Vec<&str> = sig.outputs.iter().map(|o| o.name.as_str()).collect();
        req.check_outputs(&names).map_err(|e| protocol_error(&e))?;
        let inputs = std::mem::take(&mut req.inputs);
        let prepared = worker
            .prepare(inputs)
            .map_err(|e| runtime_error(&deployment, &e))?;
        Ok::<_, Error>((req, prepared))
    })
    .await;
    let (req, prepared) = match decoded {
        Ok(x) => x,
        Err(e) => {
            routed.rejected();
            return v2_error(&e);
        }
    };
    let mut routed = routed;
    // the V2 request's own id names it in the prediction log when given
    if let Some(id) = req
        .id
        .as_deref()
        .filter(|id| routed.logged() && !id.is_empty())
    {
        routed.set_request_id(id);
    }
    let copy = routed.wants_inputs().then(|| prepared.inputs().to_vec());
    let result = match loaded.worker.run_prepared(prepared).await {
        Ok(r) => r,
        Err(e) => {
            let mut resp = v2_error(&runtime_error(name, &e));
            routed.failed(copy);
            // the client learns which version failed, as it learns which answered
            if let Ok(v) = HeaderValue::from_str(&loaded.version) {
                resp.headers_mut().insert("x-slipway-model-version", v);
            }
            return resp;
        }
    };
    routed.answered(&result.outputs, copy, mirror);
    observe_flags(name, &loaded.version, result.validation.flagged);
    let out_size: usize = result
        .outputs
        .iter()
        .map(|o| o.tensor.element_count().saturating_mul(12))
        .sum();
    let model_name = name.to_string();
    let version = loaded.version.clone();
    let encoded = offload(s, out_size, move || {
        let mut outs = req
            .select_outputs(result.outputs)
            .map_err(|e| protocol_error(&e))?;
        let meta = ResponseMeta {
            model_name: &model_name,
            model_version: Some(&version),
            id: req.id.as_deref(),
            parameters: None,
        };
        v2::encode_response(meta, &mut outs).map_err(|e| protocol_error(&e))
    })
    .await;
    let encoded = match encoded {
        Ok(e) => e,
        Err(e) => return v2_error(&e),
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
