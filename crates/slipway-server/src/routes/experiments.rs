//! MLflow experiments: create, get, get-by-name, search, update, delete,
//! restore and experiment tags.

use crate::error::{ApiError, ApiResult};
use crate::extract::{de_one_or_many, required, MlflowRequest};
use crate::routes::{empty, page_size, paged};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_core::proto_json::de_opt_i64;
use slipway_core::{Error, Tag};
use slipway_metadata::{SearchQuery, ViewType};

/// Routes of this module, relative to the MLflow prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_by_name))
        .route("/experiments/search", post(search).get(search))
        .route("/experiments/list", get(search))
        .route("/experiments/update", post(update))
        .route("/experiments/delete", post(delete))
        .route("/experiments/restore", post(restore))
        .route("/experiments/set-experiment-tag", post(set_tag))
        .route("/experiments/delete-experiment-tag", post(delete_tag))
}

/// Longest experiment name accepted.
const MAX_NAME: usize = 500;

/// The first 50 characters of a long value, for error messages.
pub fn preview(s: &str) -> String {
    s.chars().take(50).collect()
}

/// Validates a tag key/value pair of any entity.
pub fn validate_tag(key: &str, value: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::invalid("Tag key must not be empty"));
    }
    if key.len() > 250 {
        return Err(Error::invalid(format!(
            "Tag key '{}...' exceeds 250 characters",
            preview(key)
        )));
    }
    if value.len() > 8000 {
        return Err(Error::invalid(format!(
            "Tag value for key '{key}' exceeds 8000 characters"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Create {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn create(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Create>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?;
    if name.len() > MAX_NAME {
        return Err(
            Error::invalid(format!("Experiment name exceeds {MAX_NAME} characters")).into(),
        );
    }
    let location = req.artifact_location.as_deref().filter(|l| !l.is_empty());
    if let Some(l) = location {
        if !l.starts_with("mlflow-artifacts:") {
            return Err(Error::invalid(format!(
                "artifact_location '{l}' is not supported: Slipway stores artifacts itself; omit artifact_location or use an mlflow-artifacts:/ URI"
            ))
            .into());
        }
    }
    for t in &req.tags {
        validate_tag(&t.key, &t.value)?;
    }
    let id = s.store.create_experiment(name, location, &req.tags).await?;
    Ok(Json(json!({"experiment_id": id})))
}

#[derive(Deserialize)]
struct ById {
    experiment_id: Option<String>,
}

async fn get_experiment(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ById>,
) -> ApiResult<Json<Value>> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let exp = s.store.get_experiment(id).await?;
    Ok(Json(json!({"experiment": exp})))
}

#[derive(Deserialize)]
struct ByName {
    experiment_name: Option<String>,
}

async fn get_by_name(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ByName>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.experiment_name, "experiment_name")?;
    match s.store.get_experiment_by_name(name).await? {
        Some(exp) => Ok(Json(json!({"experiment": exp}))),
        None => Err(ApiError(Error::not_found(format!(
            "Could not find experiment with name '{name}'"
        )))),
    }
}

/// Parses MLflow's `view_type`/`run_view_type` (name or number).
pub fn parse_view_type(v: Option<&str>) -> Result<ViewType, Error> {
    match v {
        None | Some("") => Ok(ViewType::ActiveOnly),
        Some(s) => ViewType::parse(s).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid view type '{s}'; expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))
        }),
    }
}

/// A string or number given for an enum field, as text.
pub fn de_enum_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, got {other}"
            )))
        }
    })
}

#[derive(Deserialize)]
struct Search {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_one_or_many")]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "de_enum_text")]
    view_type: Option<String>,
}

async fn search(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Search>,
) -> ApiResult<Json<Value>> {
    let query = SearchQuery {
        filter: req.filter.unwrap_or_default(),
        order_by: req.order_by,
        max_results: page_size(&s, req.max_results, 1000)?,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        view_type: parse_view_type(req.view_type.as_deref())?,
    };
    let page = s.store.search_experiments(&query).await?;
    Ok(Json(paged("experiments", page)))
}

#[derive(Deserialize)]
struct Update {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

async fn update(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Update>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    if let Some(name) = req.new_name.as_deref().filter(|n| !n.is_empty()) {
        if name.len() > MAX_NAME {
            return Err(
                Error::invalid(format!("Experiment name exceeds {MAX_NAME} characters")).into(),
            );
        }
        s.store.rename_experiment(id, name).await?;
    } else {
        s.store.get_experiment(id).await?;
    }
    Ok(empty())
}

async fn delete(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ById>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    if id == "0" {
        return Err(Error::invalid(
            "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
        )
        .into());
    }
    s.store.delete_experiment(id).await?;
    Ok(empty())
}

async fn restore(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ById>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    s.store.restore_experiment(id).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct SetTag {
    experiment_id: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

async fn set_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<SetTag>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    validate_tag(key, &req.value)?;
    s.store.set_experiment_tag(id, key, &req.value).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct DeleteTag {
    experiment_id: Option<String>,
    key: Option<String>,
}

async fn delete_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<DeleteTag>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    s.store.delete_experiment_tag(id, key).await?;
    Ok(empty())
}
