//! `/api/v1/deployments`: create, read, list and delete deployments, and the
//! MLflow scoring protocol at `/api/v1/deployments/{name}/invocations`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{read_body, MlflowRequest};
use crate::routes::empty;
use crate::routes::inference::{observe, observe_flags, resolve, runtime_failure};
use crate::serving::DeploymentSpec;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use slipway_core::Error;
use slipway_protocol::mlflow;
use std::time::Instant;

/// Routes of this module (absolute paths).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", get(list))
        .route(
            "/api/v1/deployments/{name}",
            get(get_one).put(put).delete(delete),
        )
        .route("/api/v1/deployments/{name}/invocations", post(invocations))
}

/// Routes a serving-only replica exposes (no management).
pub fn serving_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", get(list))
        .route("/api/v1/deployments/{name}", get(get_one))
        .route("/api/v1/deployments/{name}/invocations", post(invocations))
}

async fn list(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"deployments": s.serving.list().iter().map(|d| d.view()).collect::<Vec<_>>()}))
}

async fn get_one(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let dep = s
        .serving
        .get(&name)
        .ok_or_else(|| ApiError(Error::not_found(format!("Deployment '{name}' not found"))))?;
    Ok(Json(dep.view()))
}

async fn put(
    State(s): State<AppState>,
    Path(name): Path<String>,
    MlflowRequest(spec): MlflowRequest<DeploymentSpec>,
) -> ApiResult<Json<Value>> {
    let dep = s.serving.put(&name, spec).await?;
    Ok(Json(dep.view()))
}

async fn delete(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    s.serving.delete(&name).await?;
    Ok(empty())
}

async fn invocations(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (_dep, loaded) = match resolve(&s, &name, None) {
        Ok(x) => x,
        Err(e) => return scoring_error(e.status, e.message),
    };
    let resp = score(&s, &name, &loaded, &headers, body).await;
    observe(
        &name,
        &loaded.version,
        "mlflow",
        resp.status().as_u16(),
        started,
    );
    resp
}

async fn score(
    s: &AppState,
    name: &str,
    loaded: &crate::serving::LoadedVersion,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_body(body, s.config.max_json_body_bytes as usize).await {
        Ok(b) => b,
        Err(e) => return scoring_error(e.0.code.http_status(), e.0.message),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let req = match mlflow::parse_request(content_type, &bytes, loaded.worker.signature()) {
        Ok(r) => r,
        Err(e) => return scoring_error(e.http_status(), e.to_string()),
    };
    let result = match loaded.worker.infer(req.inputs).await {
        Ok(r) => r,
        Err(e) => {
            let (status, message) = runtime_failure(name, &e);
            return scoring_error(status, message);
        }
    };
    observe_flags(name, &loaded.version, result.validation.flagged);
    match mlflow::encode_predictions(req.format, &result.outputs) {
        Ok(v) => {
            let mut resp = (StatusCode::OK, Json(v)).into_response();
            if let Ok(h) = HeaderValue::from_str(&loaded.version) {
                resp.headers_mut().insert("x-slipway-model-version", h);
            }
            resp
        }
        Err(e) => scoring_error(e.http_status(), e.to_string()),
    }
}

/// An error in the shape of MLflow's scoring server: `{"error_code", "message"}`.
fn scoring_error(status: u16, message: impl Into<String>) -> Response {
    let code = match status {
        400 | 415 => "BAD_REQUEST",
        404 => "RESOURCE_DOES_NOT_EXIST",
        413 | 429 => "REQUEST_LIMIT_EXCEEDED",
        503 => "TEMPORARILY_UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    crate::error::with_retry_after(
        (
            status,
            Json(json!({"error_code": code, "message": message.into()})),
        )
            .into_response(),
    )
}
