//! `/api/v1/deployments/{name}/rollouts`: start, read and act on rollouts.
//! The lifecycle itself lives in `slipway_serving` (controller, analysis);
//! these routes only translate HTTP.

use crate::error::ApiResult;
use crate::extract::MlflowRequest;
use crate::routes::table::{Routes, READ, WRITE};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use slipway_serving::controller::view;
use slipway_serving::{Action, RolloutPlan};

const BASE: &str = "/api/v1/deployments/{name}/rollouts";

/// Every rollout route (registry and all-in-one roles).
pub fn routes() -> Routes {
    read_routes()
        .post(BASE, WRITE, start)
        .post(&format!("{BASE}/{{id}}/promote"), WRITE, promote)
        .post(&format!("{BASE}/{{id}}/abort"), WRITE, abort)
        .post(&format!("{BASE}/{{id}}/pause"), WRITE, pause)
        .post(&format!("{BASE}/{{id}}/resume"), WRITE, resume)
}

/// The read-only rollout routes (serving replicas too).
pub fn read_routes() -> Routes {
    Routes::new()
        .get(BASE, READ, list)
        .get(&format!("{BASE}/{{id}}"), READ, get_one)
}

async fn start(
    State(s): State<AppState>,
    Path(name): Path<String>,
    MlflowRequest(plan): MlflowRequest<RolloutPlan>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.serving.start_rollout(&name, plan).await?))
}

async fn list(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    s.serving.view(&name).await?;
    let all: Vec<Value> = s.serving.rollouts(&name).await?.iter().map(view).collect();
    Ok(Json(json!({ "rollouts": all })))
}

async fn get_one(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let mut v = view(&s.serving.rollout(&name, &id).await?);
    v["controller"] = s.serving.controller_holder().await.into();
    Ok(Json(v))
}

async fn act(s: AppState, name: String, id: String, action: Action) -> ApiResult<Json<Value>> {
    Ok(Json(s.serving.rollout_action(&name, &id, action).await?))
}

async fn promote(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    act(s, name, id, Action::Promote).await
}

async fn abort(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    act(s, name, id, Action::Abort).await
}

async fn pause(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    act(s, name, id, Action::Pause).await
}

async fn resume(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    act(s, name, id, Action::Resume).await
}
