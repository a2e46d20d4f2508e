//! MLflow 3 logged models: create, get, finalize, tags, delete and search.
//!
//! `mlflow.<flavor>.log_model(...)` creates a logged model, uploads its files
//! to the model's artifact URI through the artifact proxy, then finalizes it.

use crate::error::ApiResult;
use crate::extract::{de_one_or_many, required, MlflowRequest};
use crate::routes::experiments::{de_enum_text, validate_tag};
use crate::routes::table::{Routes, READ, WRITE};
use crate::routes::{empty, page_size, paged};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_core::proto_json::de_opt_i64;
use slipway_core::{Error, LoggedModelStatus, Param, Tag};
use slipway_metadata::{NewLoggedModel, SearchQuery};

/// Routes of this module, relative to the MLflow prefix.
pub fn routes() -> Routes {
    Routes::new()
        .post("/logged-models", WRITE, create)
        .post("/logged-models/search", READ, search)
        .get("/logged-models/{model_id}", READ, get_model)
        .patch("/logged-models/{model_id}", WRITE, finalize)
        .delete("/logged-models/{model_id}", WRITE, delete_model)
        .patch("/logged-models/{model_id}/tags", WRITE, set_tags)
        .delete("/logged-models/{model_id}/tags/{key}", WRITE, delete_tag)
}

#[derive(Deserialize)]
struct Create {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<Param>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn create(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Create>,
) -> ApiResult<Json<Value>> {
    let experiment_id = required(&req.experiment_id, "experiment_id")?.to_string();
    for t in &req.tags {
        validate_tag(&t.key, &t.value)?;
    }
    if let Some(name) = req.name.as_deref() {
        if name.contains('/') || name.contains(':') || name.len() > 256 {
            return Err(Error::invalid(format!(
                "Invalid logged model name '{name}': it may not contain '/' or ':' and is at most 256 characters"
            ))
            .into());
        }
    }
    let model = s
        .store
        .create_logged_model(NewLoggedModel {
            experiment_id,
            name: req.name.filter(|n| !n.is_empty()),
            model_type: req.model_type.filter(|n| !n.is_empty()),
            source_run_id: req.source_run_id.filter(|n| !n.is_empty()),
            params: req.params,
            tags: req.tags,
            creator_id: None,
        })
        .await?;
    Ok(Json(json!({"model": model})))
}

async fn get_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"model": s.store.get_logged_model(&model_id).await?}),
    ))
}

#[derive(Deserialize)]
struct Finalize {
    #[serde(default, deserialize_with = "de_enum_text")]
    status: Option<String>,
}

async fn finalize(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(req): MlflowRequest<Finalize>,
) -> ApiResult<Json<Value>> {
    let status_text = required(&req.status, "status")?;
    let status = LoggedModelStatus::parse(status_text).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid value '{status_text}' for parameter 'status': expected LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"
        ))
    })?;
    Ok(Json(
        json!({"model": s.store.finalize_logged_model(&model_id, status).await?}),
    ))
}

async fn delete_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<Response> {
    s.store.delete_logged_model(&model_id).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct SetTags {
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn set_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(req): MlflowRequest<SetTags>,
) -> ApiResult<Response> {
    for t in &req.tags {
        validate_tag(&t.key, &t.value)?;
    }
    s.store.set_logged_model_tags(&model_id, &req.tags).await?;
    Ok(empty())
}

async fn delete_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.store.delete_logged_model_tag(&model_id, &key).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct OrderBy {
    field_name: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::de_opt_bool")]
    ascending: Option<bool>,
}

#[derive(Deserialize)]
struct Search {
    #[serde(default, deserialize_with = "de_one_or_many")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    page_token: Option<String>,
}

async fn search(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Search>,
) -> ApiResult<Json<Value>> {
    if req.experiment_ids.is_empty() {
        return Err(
            Error::invalid("Missing value for required parameter 'experiment_ids'.").into(),
        );
    }
    let order_by = req
        .order_by
        .iter()
        .filter_map(|o| {
            let field = o.field_name.as_deref().filter(|f| !f.is_empty())?;
            Some(format!(
                "{field} {}",
                if o.ascending.unwrap_or(true) {
                    "ASC"
                } else {
                    "DESC"
                }
            ))
        })
        .collect();
    let query = SearchQuery {
        filter: req.filter.unwrap_or_default(),
        order_by,
        max_results: page_size(&s, req.max_results, 100)?,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        ..Default::default()
    };
    let page = s
        .store
        .search_logged_models(&req.experiment_ids, &query)
        .await?;
    Ok(Json(paged("models", page)))
}
