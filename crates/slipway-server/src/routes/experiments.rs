//! MLflow experiments: create, get, get-by-name, search, update, delete,
//! restore and experiment tags.

use crate::error::{ApiError, ApiResult};
use crate::extract::{de_one_or_many, required, MlflowRequest};
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
use slipway_metadata::{SearchQuery, ViewType};

/// Routes of this module, relative to the MLflow prefix.
pub fn routes() -> Routes {
    Routes::new()
        .post("/experiments/create", WRITE, create)
        .get("/experiments/get", READ, get_experiment)
        .get("/experiments/get-by-name", READ, get_by_name)
        .post("/experiments/search", READ, search)
        .get("/experiments/search", READ, search)
        .get("/experiments/list", READ, search)
        .post("/experiments/update", WRITE, update)
        .post("/experiments/delete", WRITE, delete)
        .post("/experiments/restore", WRITE, restore)
        .post("/experiments/set-experiment-tag", WRITE, set_tag)
        .post("/experiments/delete-experiment-tag", WRITE, delete_tag)
}

/// Routes MLflow's server adds for its UI, under `/ajax-api/2.0/mlflow` only.
pub fn ajax_routes() -> Routes {
    Routes::new().post("/experiments/search-datasets", READ, search_datasets)
}

#[derive(Deserialize)]
struct SearchDatasets {
    #[serde(default, deserialize_with = "crate::extract::de_one_or_many")]
    experiment_ids: Vec<String>,
}

/// Most experiments one `search-datasets` request may name (MLflow's limit).
const MAX_DATASET_EXPERIMENTS: usize = 20;
/// Most summaries returned (MLflow's `MAX_DATASET_SUMMARIES_RESULTS`).
const MAX_DATASET_SUMMARIES: usize = 1000;
/// Runs read at most to find them.
const MAX_DATASET_RUNS: usize = 10_000;

/// The distinct datasets (name, digest, `mlflow.data.context` tag) the runs
/// of some experiments used: the run table's dataset filter.
async fn search_datasets(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<SearchDatasets>,
) -> ApiResult<Json<Value>> {
    if req.experiment_ids.is_empty() {
        return Err(Error::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        )
        .into());
    }
    if req.experiment_ids.len() > MAX_DATASET_EXPERIMENTS {
        return Err(Error::invalid(format!(
            "SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} experiment_ids. Received {} experiment_ids.",
            req.experiment_ids.len()
        ))
        .into());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut summaries = Vec::new();
    let mut token: Option<String> = None;
    let mut read = 0;
    'pages: loop {
        let query = SearchQuery {
            max_results: 1000,
            page_token: token.take(),
            ..Default::default()
        };
        let page = s.store.search_runs(&req.experiment_ids, &query).await?;
        read += page.items.len();
        for run in &page.items {
            for input in &run.inputs.dataset_inputs {
                let context = input
                    .tags
                    .iter()
                    .find(|t| t.key == "mlflow.data.context")
                    .map(|t| t.value.clone());
                let key = (
                    run.info.experiment_id.clone(),
                    input.dataset.name.clone(),
                    input.dataset.digest.clone(),
                    context.clone(),
                );
                if seen.insert(key) {
                    let mut summary = json!({
                        "experiment_id": run.info.experiment_id,
                        "name": input.dataset.name,
                        "digest": input.dataset.digest,
                    });
                    if let Some(c) = context {
                        summary["context"] = Value::String(c);
                    }
                    summaries.push(summary);
                    if summaries.len() >= MAX_DATASET_SUMMARIES {
                        break 'pages;
                    }
                }
            }
        }
        match page.next_page_token {
            Some(t) if read < MAX_DATASET_RUNS => token = Some(t),
            _ => break,
        }
    }
    if summaries.is_empty() {
        return Ok(Json(json!({})));
    }
    Ok(Json(json!({ "dataset_summaries": summaries })))
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
