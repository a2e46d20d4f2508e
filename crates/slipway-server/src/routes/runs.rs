//! MLflow runs: lifecycle, logging (metrics, params, tags, batches, inputs,
//! outputs), metric history and search.

use crate::error::ApiResult;
use crate::extract::{de_one_or_many, required, MlflowRequest};
use crate::routes::experiments::{de_enum_text, parse_view_type, preview, validate_tag};
use crate::routes::table::{Routes, READ, WRITE};
use crate::routes::{empty, page_size, paged};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_core::proto_json::{de_f64, de_opt_i64};
use slipway_core::{DatasetInput, Error, Metric, ModelInput, ModelOutput, Param, RunStatus, Tag};
use slipway_metadata::{NewRun, SearchQuery};

/// Routes of this module, relative to the MLflow prefix.
pub fn routes() -> Routes {
    Routes::new()
        .post("/runs/create", WRITE, create)
        .get("/runs/get", READ, get_run)
        .post("/runs/update", WRITE, update)
        .post("/runs/delete", WRITE, delete)
        .post("/runs/restore", WRITE, restore)
        .post("/runs/log-metric", WRITE, log_metric)
        .post("/runs/log-parameter", WRITE, log_param)
        .post("/runs/set-tag", WRITE, set_tag)
        .post("/runs/delete-tag", WRITE, delete_tag)
        .post("/runs/log-batch", WRITE, log_batch)
        .post("/runs/log-inputs", WRITE, log_inputs)
        .post("/runs/outputs", WRITE, log_outputs)
        .post("/runs/log-model", WRITE, log_model)
        .post("/runs/search", READ, search)
        .get("/metrics/get-history", READ, metric_history)
}

/// Routes MLflow's server adds for its UI, under `/ajax-api/2.0/mlflow` only.
pub fn ajax_routes() -> Routes {
    Routes::new().get(
        "/metrics/get-history-bulk-interval",
        READ,
        history_bulk_interval,
    )
}

#[derive(Deserialize)]
struct BulkInterval {
    #[serde(default, deserialize_with = "de_one_or_many")]
    run_ids: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_step: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_step: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

async fn history_bulk_interval(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<BulkInterval>,
) -> ApiResult<Json<Value>> {
    let query = slipway_metadata::history::IntervalQuery::from_params(
        req.run_ids,
        req.metric_key,
        req.start_step,
        req.end_step,
        req.max_results,
    )?;
    let metrics = slipway_metadata::history::bulk_interval(s.store.as_ref(), &query).await?;
    if metrics.is_empty() {
        return Ok(Json(json!({})));
    }
    Ok(Json(json!({ "metrics": metrics })))
}

/// MLflow's limits for one `log-batch` request.
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
const MAX_BATCH_TOTAL: usize = 1000;
const MAX_PARAM_VALUE: usize = 6000;
const MAX_KEY: usize = 250;

fn run_id(run_id: &Option<String>, run_uuid: &Option<String>) -> Result<String, Error> {
    run_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(run_uuid.as_deref().filter(|s| !s.is_empty()))
        .map(str::to_string)
        .ok_or_else(|| Error::invalid("Missing value for required parameter 'run_id'."))
}

fn validate_key(kind: &str, key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::invalid(format!("{kind} name must not be empty")));
    }
    if key.len() > MAX_KEY {
        return Err(Error::invalid(format!(
            "{kind} name '{}...' exceeds {MAX_KEY} characters",
            preview(key)
        )));
    }
    if key.starts_with('/') || key.split('/').any(|seg| seg == "..") {
        return Err(Error::invalid(format!(
            "Invalid {kind} name '{key}': names may not be absolute or contain '..' segments"
        )));
    }
    Ok(())
}

fn validate_metric(m: &Metric) -> Result<(), Error> {
    validate_key("Metric", &m.key)
}

fn validate_param(p: &Param) -> Result<(), Error> {
    validate_key("Param", &p.key)?;
    if p.value.len() > MAX_PARAM_VALUE {
        return Err(Error::invalid(format!(
            "Param value for key '{}' exceeds {MAX_PARAM_VALUE} characters",
            p.key
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Create {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn create(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Create>,
) -> ApiResult<Json<Value>> {
    for t in &req.tags {
        validate_tag(&t.key, &t.value)?;
    }
    let run = s
        .store
        .create_run(NewRun {
            experiment_id: req
                .experiment_id
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "0".into()),
            user_id: req.user_id.unwrap_or_default(),
            run_name: req.run_name.filter(|n| !n.is_empty()),
            start_time: req.start_time.unwrap_or_else(slipway_core::now_millis),
            tags: req.tags,
        })
        .await?;
    Ok(Json(json!({"run": run})))
}

#[derive(Deserialize)]
struct ById {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

async fn get_run(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ById>,
) -> ApiResult<Json<Value>> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    Ok(Json(json!({"run": s.store.get_run(&id).await?})))
}

#[derive(Deserialize)]
struct Update {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "de_enum_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

fn parse_status(s: &str) -> Result<RunStatus, Error> {
    let by_number = match s {
        "1" => Some(RunStatus::Running),
        "2" => Some(RunStatus::Scheduled),
        "3" => Some(RunStatus::Finished),
        "4" => Some(RunStatus::Failed),
        "5" => Some(RunStatus::Killed),
        _ => None,
    };
    by_number.or_else(|| RunStatus::parse(s)).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid run status '{s}'; expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
        ))
    })
}

async fn update(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<Update>,
) -> ApiResult<Json<Value>> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let status = req
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_status)
        .transpose()?;
    let name = req.run_name.as_deref().filter(|n| !n.is_empty());
    let info = s.store.update_run(&id, status, req.end_time, name).await?;
    Ok(Json(json!({"run_info": info})))
}

async fn delete(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ById>,
) -> ApiResult<Response> {
    s.store
        .delete_run(&run_id(&req.run_id, &req.run_uuid)?)
        .await?;
    Ok(empty())
}

async fn restore(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<ById>,
) -> ApiResult<Response> {
    s.store
        .restore_run(&run_id(&req.run_id, &req.run_uuid)?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct LogMetric {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

fn de_opt_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => de_f64(v).map(Some).map_err(serde::de::Error::custom),
    }
}

async fn log_metric(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogMetric>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?.to_string();
    let value = req
        .value
        .ok_or_else(|| Error::invalid("Missing value for required parameter 'value'."))?;
    let timestamp = req
        .timestamp
        .ok_or_else(|| Error::invalid("Missing value for required parameter 'timestamp'."))?;
    let metric = Metric {
        key,
        value,
        timestamp,
        step: req.step.unwrap_or(0),
        model_id: req.model_id.filter(|m| !m.is_empty()),
        dataset_name: req.dataset_name.filter(|m| !m.is_empty()),
        dataset_digest: req.dataset_digest.filter(|m| !m.is_empty()),
        run_id: None,
    };
    validate_metric(&metric)?;
    s.store.log_batch(&id, &[metric], &[], &[]).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct LogParam {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn log_param(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogParam>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let param = Param {
        key: required(&req.key, "key")?.to_string(),
        value: req.value.unwrap_or_default(),
    };
    validate_param(&param)?;
    s.store.log_batch(&id, &[], &[param], &[]).await?;
    Ok(empty())
}

async fn set_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogParam>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let tag = Tag {
        key: required(&req.key, "key")?.to_string(),
        value: req.value.unwrap_or_default(),
    };
    validate_tag(&tag.key, &tag.value)?;
    s.store.log_batch(&id, &[], &[], &[tag]).await?;
    Ok(empty())
}

async fn delete_tag(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogParam>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    s.store
        .delete_run_tag(&id, required(&req.key, "key")?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct LogBatch {
    run_id: Option<String>,
    #[serde(default)]
    metrics: Vec<Metric>,
    #[serde(default)]
    params: Vec<Param>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn log_batch(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogBatch>,
) -> ApiResult<Response> {
    let id = required(&req.run_id, "run_id")?;
    let (m, p, t) = (req.metrics.len(), req.params.len(), req.tags.len());
    if m > MAX_BATCH_METRICS
        || p > MAX_BATCH_PARAMS
        || t > MAX_BATCH_TAGS
        || m + p + t > MAX_BATCH_TOTAL
    {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics, {MAX_BATCH_PARAMS} params, \
             {MAX_BATCH_TAGS} tags and {MAX_BATCH_TOTAL} entities in total; got {m} metrics, {p} params, {t} tags"
        ))
        .into());
    }
    for metric in &req.metrics {
        validate_metric(metric)?;
    }
    for param in &req.params {
        validate_param(param)?;
    }
    for tag in &req.tags {
        validate_tag(&tag.key, &tag.value)?;
    }
    s.store
        .log_batch(id, &req.metrics, &req.params, &req.tags)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct LogInputs {
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInput>,
    #[serde(default)]
    models: Vec<ModelInput>,
}

async fn log_inputs(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogInputs>,
) -> ApiResult<Response> {
    let id = required(&req.run_id, "run_id")?;
    s.store.log_inputs(id, &req.datasets, &req.models).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct LogOutputs {
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<ModelOutput>,
}

async fn log_outputs(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogOutputs>,
) -> ApiResult<Response> {
    let id = required(&req.run_id, "run_id")?;
    s.store.log_outputs(id, &req.models).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct LogModel {
    run_id: Option<String>,
    model_json: Option<String>,
}

/// MLflow 2's `log-model`: appends to the run's `mlflow.log-model.history` tag.
async fn log_model(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<LogModel>,
) -> ApiResult<Response> {
    let id = required(&req.run_id, "run_id")?;
    let model_json = required(&req.model_json, "model_json")?;
    let model: Value = serde_json::from_str(model_json).map_err(|e| {
        Error::invalid(format!(
            "Invalid value for parameter 'model_json': not JSON ({e})"
        ))
    })?;
    let run = s.store.get_run(id).await?;
    let key = "mlflow.log-model.history";
    let mut history: Vec<Value> = run
        .data
        .tags
        .iter()
        .find(|t| t.key == key)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(model);
    let value = serde_json::to_string(&history).map_err(|e| Error::internal(e.to_string()))?;
    if value.len() > 8000 {
        return Ok(empty());
    }
    s.store
        .log_batch(
            id,
            &[],
            &[],
            &[Tag {
                key: key.into(),
                value,
            }],
        )
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct Search {
    #[serde(default, deserialize_with = "de_one_or_many")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_enum_text")]
    run_view_type: Option<String>,
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
        max_results: page_size(&s, req.max_results, 1000)?,
        page_token: req.page_token.filter(|t| !t.is_empty()),
        view_type: parse_view_type(req.run_view_type.as_deref())?,
    };
    let page = s.store.search_runs(&req.experiment_ids, &query).await?;
    Ok(Json(paged("runs", page)))
}

#[derive(Deserialize)]
struct History {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

async fn metric_history(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<History>,
) -> ApiResult<Json<Value>> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let key = required(&req.metric_key, "metric_key")?;
    let max = match req.max_results {
        None => 25_000_000,
        Some(_) => page_size(&s, req.max_results, 25_000)?,
    };
    let page = s
        .store
        .get_metric_history(
            &id,
            key,
            max,
            req.page_token.as_deref().filter(|t| !t.is_empty()),
        )
        .await?;
    Ok(Json(paged("metrics", page)))
}
