//! `/api/v1/deployments`: create, read, list and delete deployments, and the
//! MLflow scoring protocol at `/api/v1/deployments/{name}/invocations`, whose
//! errors are MLflow-shaped (`{"error_code", "message"}`) from the one error
//! table (`crate::error`), as MLflow's scoring server answers: `BAD_REQUEST`
//! for input that does not fit the model.

use crate::error::{protocol_error, render, runtime_error, ApiResult, Protocol};
use crate::extract::MlflowRequest;
use crate::routes::empty;
use crate::routes::inference::{observe, observe_flags, offload, route_request};
use crate::routes::table::{Routes, PREDICT, READ, WRITE};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use slipway_core::Error;
use slipway_protocol::mlflow;
use slipway_serving::{DeploymentSpec, Routed};
use std::time::Instant;

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    serving_routes()
        .put("/api/v1/deployments/{name}", WRITE, put)
        .delete("/api/v1/deployments/{name}", WRITE, delete)
}

/// Routes a serving-only replica exposes (no management).
pub fn serving_routes() -> Routes {
    Routes::new()
        .get("/api/v1/deployments", READ, list)
        .get("/api/v1/deployments/{name}", READ, get_one)
        .post(
            "/api/v1/deployments/{name}/invocations",
            PREDICT,
            invocations,
        )
}

/// Deployments as stored (read-after-write on any replica), each with this
/// replica's status.
async fn list(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"deployments": s.serving.views().await?})))
}

async fn get_one(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(s.serving.view(&name).await?))
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
    invoke(s, name, headers, body).await
}

/// Scores a request for deployment `name` (the route's handler, also
/// called by the inference lane, `crate::routes::lane`).
pub(crate) async fn invoke(s: AppState, name: String, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (_dep, routed) = match route_request(&s, &name, None, &headers) {
        Ok(x) => x,
        Err(e) => return scoring_error(&e),
    };
    let (loaded, role) = (routed.version.clone(), routed.role.as_str());
    let resp = score(&s, &name, routed, &headers, body).await;
    observe(
        &name,
        &loaded,
        role,
        "mlflow",
        resp.status().as_u16(),
        started,
    );
    resp
}

async fn score(
    s: &AppState,
    name: &str,
    routed: Routed,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let loaded = routed.version.clone();
    let mirror = s.serving.mirror_queue();
    let bytes = match crate::routes::inference::read_request_body(s, body).await {
        Ok(b) => b,
        Err(e) => return scoring_error(&e.0),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let worker_of = loaded.clone();
    let deployment = name.to_string();
    let parsed = offload(s, bytes.len(), move || {
        let worker = &worker_of.worker;
        let req = mlflow::parse_request(&content_type, &bytes, worker.signature())
            .map_err(|e| protocol_error(&e))?;
        drop(bytes);
        let format = req.format;
        let prepared = worker
            .prepare(req.inputs)
            .map_err(|e| runtime_error(&deployment, &e))?;
        Ok::<_, Error>((format, prepared))
    })
    .await;
    let (format, prepared) = match parsed {
        Ok(x) => x,
        Err(e) => {
            routed.rejected();
            return scoring_error(&e);
        }
    };
    let copy = routed.wants_inputs().then(|| prepared.inputs().to_vec());
    let result = match loaded.worker.run_prepared(prepared).await {
        Ok(r) => r,
        Err(e) => {
            routed.failed(copy);
            return scoring_error(&runtime_error(name, &e));
        }
    };
    routed.answered(&result.outputs, copy, mirror);
    observe_flags(name, &loaded.version, result.validation.flagged);
    let out_size: usize = result
        .outputs
        .iter()
        .map(|o| o.tensor.element_count().saturating_mul(12))
        .sum();
    let encoded = offload(s, out_size, move || {
        mlflow::encode_predictions(format, &result.outputs).map_err(|e| protocol_error(&e))
    })
    .await;
    match encoded {
        Ok(v) => {
            let mut resp = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                v,
            )
                .into_response();
            if let Ok(h) = HeaderValue::from_str(&loaded.version) {
                resp.headers_mut().insert("x-slipway-model-version", h);
            }
            resp
        }
        Err(e) => scoring_error(&e),
    }
}

/// An error in the shape of MLflow's scoring server: `{"error_code", "message"}`.
fn scoring_error(err: &Error) -> Response {
    render(Protocol::Mlflow, err)
}
