//! MLflow model versions: create, get, update, delete, search, tags, stage
//! transitions and download URIs.

use crate::error::ApiResult;
use crate::extract::{de_one_or_many, de_opt_bool, required, MlflowRequest};
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
use slipway_metadata::registry::{
    logged_model_id, resolve_download_uri, validate_source, SourcePolicy,
};
use slipway_metadata::{NewModelVersion, SearchQuery};

/// Routes of this module, relative to the MLflow prefix.
pub fn routes() -> Routes {
    Routes::new()
        .post("/model-versions/create", WRITE, create)
        .get("/model-versions/get", READ, get_version)
        .patch("/model-versions/update", WRITE, update)
        .delete("/model-versions/delete", WRITE, delete_version)
        .get("/model-versions/search", READ, search)
        .get("/model-versions/get-download-uri", READ, download_uri)
        .post("/model-versions/transition-stage", WRITE, transition)
        .post("/model-versions/set-tag", WRITE, set_tag)
        .delete("/model-versions/delete-tag", WRITE, delete_tag)
}

/// The source policy of this server: its artifact store and the operator's
/// extra prefixes.
pub fn source_policy(s: &AppState) -> SourcePolicy {
    SourcePolicy {
        artifact_root: s.artifacts.location().to_string(),
        allowed_prefixes: s.config.model_source_prefixes.clone(),
    }
}

#[derive(Deserialize)]
struct Create {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Create>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?.to_string();
    let source = required(&req.source, "source")?.to_string();
    validate_source(&source, &source_policy(&s))?;
    for t in &req.tags {
        validate_tag(&t.key, &t.value)?;
    }
    let mut model_id = req.model_id.filter(|m| !m.is_empty());
    if model_id.is_none() {
        model_id = logged_model_id(&source).map(str::to_string);
    }
    let mut run_id = req.run_id.filter(|r| !r.is_empty());
    if let Some(id) = &model_id {
        let lm = s.store.get_logged_model(id).await?;
        if run_id.is_none() {
            run_id = lm.info.source_run_id.clone();
        }
    } else if let Some(r) = &run_id {
        s.store.get_run(r).await?;
    }
    let mv = s
        .store
        .create_model_version(NewModelVersion {
            name: name.clone(),
            source,
            run_id,
            tags: req.tags,
            run_link: req.run_link.filter(|l| !l.is_empty()),
            description: req.description.filter(|d| !d.is_empty()),
            model_id: model_id.clone(),
            user_id: None,
        })
        .await?;
    if let Some(id) = &model_id {
        record_version_on_logged_model(&s, id, &name, &mv.version).await;
    }
    Ok(Json(json!({"model_version": mv})))
}

/// Adds `{name, version}` to the logged model's `mlflow.modelVersions` tag, as MLflow does.
async fn record_version_on_logged_model(s: &AppState, model_id: &str, name: &str, version: &str) {
    const KEY: &str = "mlflow.modelVersions";
    let Ok(lm) = s.store.get_logged_model(model_id).await else {
        return;
    };
    let mut list: Vec<Value> = lm
        .info
        .tags
        .iter()
        .find(|t| t.key == KEY)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    list.push(json!({"name": name, "version": version}));
    let value = Value::Array(list).to_string();
    if let Err(e) = s
        .store
        .set_logged_model_tags(
            model_id,
            &[Tag {
                key: KEY.into(),
                value,
            }],
        )
        .await
    {
        tracing::warn!(error = %e, model_id, "could not tag logged model with its model version");
    }
}

#[derive(Deserialize)]
struct ByVersion {
    name: Option<String>,
    version: Option<String>,
}

async fn get_version(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ByVersion>,
) -> ApiResult<Json<Value>> {
    let mv = s
        .store
        .get_model_version(
            required(&req.name, "name")?,
            required(&req.version, "version")?,
        )
        .await?;
    Ok(Json(json!({"model_version": mv})))
}

#[derive(Deserialize)]
struct Update {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
}

async fn update(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Update>,
) -> ApiResult<Json<Value>> {
    let mv = s
        .store
        .update_model_version(
            required(&req.name, "name")?,
            required(&req.version, "version")?,
            req.description.as_deref(),
        )
        .await?;
    Ok(Json(json!({"model_version": mv})))
}

async fn delete_version(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ByVersion>,
) -> ApiResult<Response> {
    s.store
        .delete_model_version(
            required(&req.name, "name")?,
            required(&req.version, "version")?,
        )
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
        max_results: page_size(&s, req.max_results, 10_000)?,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        ..Default::default()
    };
    let page = s.store.search_model_versions(&query).await?;
    Ok(Json(paged("model_versions", page)))
}

async fn download_uri(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ByVersion>,
) -> ApiResult<Json<Value>> {
    let uri = resolve_download_uri(
        s.store.as_ref(),
        required(&req.name, "name")?,
        required(&req.version, "version")?,
    )
    .await?;
    // versions stored before sources were checked must not hand out
    // locations outside the store either
    validate_source(&uri, &source_policy(&s))?;
    Ok(Json(json!({"artifact_uri": uri})))
}

#[derive(Deserialize)]
struct Transition {
    name: Option<String>,
    version: Option<String>,
    stage: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    archive_existing_versions: Option<bool>,
}

async fn transition(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Transition>,
) -> ApiResult<Json<Value>> {
    let stage = required(&req.stage, "stage")?;
    let canonical = slipway_core::canonical_stage(stage).ok_or_else(|| {
        Error::invalid(format!("Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."))
    })?;
    let mv = s
        .store
        .transition_model_version_stage(
            required(&req.name, "name")?,
            required(&req.version, "version")?,
            canonical,
            req.archive_existing_versions.unwrap_or(false),
        )
        .await?;
    Ok(Json(json!({"model_version": mv})))
}

#[derive(Deserialize)]
struct SetTag {
    name: Option<String>,
    version: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

async fn set_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<SetTag>,
) -> ApiResult<Response> {
    let key = required(&req.key, "key")?;
    validate_tag(key, &req.value)?;
    s.store
        .set_model_version_tag(
            required(&req.name, "name")?,
            required(&req.version, "version")?,
            key,
            &req.value,
        )
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct DeleteTag {
    name: Option<String>,
    version: Option<String>,
    key: Option<String>,
}

async fn delete_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<DeleteTag>,
) -> ApiResult<Response> {
    s.store
        .delete_model_version_tag(
            required(&req.name, "name")?,
            required(&req.version, "version")?,
            required(&req.key, "key")?,
        )
        .await?;
    Ok(empty())
}
