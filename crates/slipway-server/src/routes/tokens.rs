//! `/api/v1/tokens`: create, list and revoke API tokens (scope `admin`).

use crate::auth;
use crate::error::ApiResult;
use crate::extract::MlflowRequest;
use crate::routes::empty;
use crate::routes::table::{Routes, ADMIN};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_metadata::TokenRecord;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/tokens", ADMIN, list)
        .post("/api/v1/tokens", ADMIN, create)
        .delete("/api/v1/tokens/{id}", ADMIN, revoke)
}

#[derive(Deserialize)]
struct CreateToken {
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// JSON view of a token record (never the hash).
pub fn token_json(r: &TokenRecord) -> Value {
    json!({"id": r.id, "name": r.name, "scopes": r.scopes, "created_at": r.created_at, "revoked_at": r.revoked_at})
}

async fn create(
    State(state): State<AppState>,
    MlflowRequest(req): MlflowRequest<CreateToken>,
) -> ApiResult<Json<Value>> {
    let name = crate::extract::required(&req.name, "name")?;
    let (secret, record) = auth::create_token(state.store.as_ref(), name, &req.scopes).await?;
    let mut body = token_json(&record);
    body["token"] = Value::String(secret);
    Ok(Json(body))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let tokens = state.store.list_tokens().await?;
    Ok(Json(
        json!({"tokens": tokens.iter().map(token_json).collect::<Vec<_>>()}),
    ))
}

async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    state.store.revoke_token(&id).await?;
    state.auth.invalidate();
    Ok(empty())
}
