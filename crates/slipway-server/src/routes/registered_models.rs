//! MLflow registered models: create, get, rename, update, delete, search,
//! tags, aliases and latest versions.

use crate::error::ApiResult;
use crate::extract::{de_one_or_many, required, MlflowRequest};
use crate::routes::experiments::validate_tag;
use crate::routes::table::{Routes, READ, WRITE};
use crate::routes::{empty, page_size, paged};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_core::proto_json::de_opt_i64;
use slipway_core::{Error, Tag};
use slipway_metadata::SearchQuery;

/// Routes of this module, relative to the MLflow prefix.
pub fn routes() -> Routes {
    Routes::new()
        .post("/registered-models/create", WRITE, create)
        .get("/registered-models/get", READ, get_model)
        .post("/registered-models/rename", WRITE, rename)
        .patch("/registered-models/update", WRITE, update)
        .delete("/registered-models/delete", WRITE, delete_model)
        .get("/registered-models/search", READ, search)
        .get("/registered-models/list", READ, search)
        .post("/registered-models/get-latest-versions", READ, latest)
        .get("/registered-models/get-latest-versions", READ, latest)
        .post("/registered-models/set-tag", WRITE, set_tag)
        .delete("/registered-models/delete-tag", WRITE, delete_tag)
        .post("/registered-models/alias", WRITE, set_alias)
        .delete("/registered-models/alias", WRITE, delete_alias)
        .get("/registered-models/alias", READ, get_by_alias)
}

/// Validates a registered model name.
pub fn validate_model_name(name: &str) -> Result<(), Error> {
    if name.len() > 256 {
        return Err(Error::invalid(
            "Registered model name exceeds 256 characters",
        ));
    }
    if name.contains('/') || name.contains(':') || name.contains('@') {
        return Err(Error::invalid(format!(
            "Invalid registered model name '{name}': names may not contain '/', ':' or '@'"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Create {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    description: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Create>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?;
    validate_model_name(name)?;
    for t in &req.tags {
        validate_tag(&t.key, &t.value)?;
    }
    let rm = s
        .store
        .create_registered_model(name, req.description.as_deref(), &req.tags, None)
        .await?;
    Ok(Json(json!({"registered_model": rm})))
}

#[derive(Deserialize)]
struct ByName {
    name: Option<String>,
}

async fn get_model(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ByName>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?;
    Ok(Json(
        json!({"registered_model": s.store.get_registered_model(name).await?}),
    ))
}

#[derive(Deserialize)]
struct Rename {
    name: Option<String>,
    new_name: Option<String>,
}

async fn rename(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Rename>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?;
    let new_name = required(&req.new_name, "new_name")?;
    validate_model_name(new_name)?;
    Ok(Json(
        json!({"registered_model": s.store.rename_registered_model(name, new_name).await?}),
    ))
}

#[derive(Deserialize)]
struct Update {
    name: Option<String>,
    description: Option<String>,
}

async fn update(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Update>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?;
    Ok(Json(
        json!({"registered_model": s.store.update_registered_model(name, req.description.as_deref()).await?}),
    ))
}

async fn delete_model(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ByName>,
) -> ApiResult<Response> {
    s.store
        .delete_registered_model(required(&req.name, "name")?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct Search {
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_one_or_many")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

async fn search(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Search>,
) -> ApiResult<Json<Value>> {
    let query = SearchQuery {
        filter: req.filter.unwrap_or_default(),
        order_by: req.order_by,
        max_results: page_size(&s, req.max_results, 100)?,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        ..Default::default()
    };
    let page = s.store.search_registered_models(&query).await?;
    Ok(Json(paged("registered_models", page)))
}

#[derive(Deserialize)]
struct Latest {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_one_or_many")]
    stages: Vec<String>,
}

async fn latest(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Latest>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?;
    let mut stages = Vec::new();
    for st in &req.stages {
        let canonical = slipway_core::canonical_stage(st).ok_or_else(|| {
            Error::invalid(format!("Invalid Model Version stage: {st}. Value must be one of None, Staging, Production, Archived."))
        })?;
        stages.push(canonical.to_string());
    }
    Ok(Json(
        json!({"model_versions": s.store.get_latest_versions(name, &stages).await?}),
    ))
}

#[derive(Deserialize)]
struct SetTag {
    name: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

async fn set_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<SetTag>,
) -> ApiResult<Response> {
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    validate_tag(key, &req.value)?;
    s.store
        .set_registered_model_tag(name, key, &req.value)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct DeleteTag {
    name: Option<String>,
    key: Option<String>,
}

async fn delete_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<DeleteTag>,
) -> ApiResult<Response> {
    s.store
        .delete_registered_model_tag(required(&req.name, "name")?, required(&req.key, "key")?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct Alias {
    name: Option<String>,
    alias: Option<String>,
    version: Option<String>,
}

/// Validates an alias name as MLflow does (no version-like names, no `latest`).
pub fn validate_alias(alias: &str) -> Result<(), Error> {
    let lower = alias.to_ascii_lowercase();
    let version_like =
        lower.starts_with('v') && lower[1..].chars().all(|c| c.is_ascii_digit()) && lower.len() > 1;
    if alias.len() > 255
        || lower == "latest"
        || version_like
        || alias.chars().all(|c| c.is_ascii_digit())
    {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}': aliases cannot be 'latest', a version number or 'v<number>', and are at most 255 characters"
        )));
    }
    if !alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}': use letters, digits, '_' and '-' only"
        )));
    }
    Ok(())
}

async fn set_alias(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Alias>,
) -> ApiResult<Response> {
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let version = required(&req.version, "version")?;
    validate_alias(alias)?;
    s.store
        .set_registered_model_alias(name, alias, version)
        .await?;
    Ok(empty())
}

async fn delete_alias(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Alias>,
) -> ApiResult<Response> {
    s.store
        .delete_registered_model_alias(required(&req.name, "name")?, required(&req.alias, "alias")?)
        .await?;
    Ok(empty())
}

async fn get_by_alias(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Alias>,
) -> ApiResult<Json<Value>> {
    let mv = s
        .store
        .get_model_version_by_alias(required(&req.name, "name")?, required(&req.alias, "alias")?)
        .await?;
    Ok(Json(json!({"model_version": mv})))
}
