//! Entities of tracking and the model registry, in MLflow's JSON wire shape.
//!
//! Field names follow the protos (`service.proto`, `model_registry.proto`).
//! Optional fields are skipped when absent, as protobuf JSON does.

use crate::proto_json::{de_f64, de_i64, ser_f64};
use serde::{Deserialize, Serialize};

/// `active` or `deleted`, as MLflow names an experiment's or run's lifecycle.
pub const LIFECYCLE_ACTIVE: &str = "active";
/// The deleted lifecycle stage.
pub const LIFECYCLE_DELETED: &str = "deleted";

/// A key/value tag; the shape of every `*Tag` message in MLflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value; MLflow allows empty values.
    #[serde(default)]
    pub value: String,
}

/// An experiment: a named group of runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    /// Decimal id, as a string.
    pub experiment_id: String,
    /// Unique name.
    pub name: String,
    /// Root URI of the artifacts of its runs.
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Last change, ms since epoch.
    pub last_update_time: i64,
    /// Creation, ms since epoch.
    pub creation_time: i64,
    /// Experiment tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Running.
    Running,
    /// Scheduled, not yet started.
    Scheduled,
    /// Finished successfully.
    Finished,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

impl RunStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RUNNING" => Self::Running,
            "SCHEDULED" => Self::Scheduled,
            "FINISHED" => Self::Finished,
            "FAILED" => Self::Failed,
            "KILLED" => Self::Killed,
            _ => return None,
        })
    }
}

/// Metadata of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Run id (32 hex).
    pub run_id: String,
    /// Same as `run_id`; kept for older clients.
    pub run_uuid: String,
    /// Display name.
    pub run_name: String,
    /// Owning experiment.
    pub experiment_id: String,
    /// User who created it.
    pub user_id: String,
    /// Current status.
    pub status: RunStatus,
    /// Start, ms since epoch.
    pub start_time: i64,
    /// End, ms since epoch, once terminated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Root URI of its artifacts (`mlflow-artifacts:/<exp>/<run>/artifacts`).
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name.
    pub key: String,
    /// Value; NaN and infinities are allowed.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub value: f64,
    /// Observation time, ms since epoch.
    #[serde(deserialize_with = "de_i64")]
    pub timestamp: i64,
    /// Training step.
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
    /// Logged model this metric belongs to, if any (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Dataset the metric was computed on, if any (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// Digest of that dataset (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// Run that logged it; set on logged-model metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// A run parameter (immutable once logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Name.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// Metrics (latest value per key), params and tags of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RunData {
    /// Latest value of each metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// A dataset referenced by a run input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Name.
    pub name: String,
    /// Content digest.
    pub digest: String,
    /// Kind of source (`local`, `http`, `code`, ...).
    pub source_type: String,
    /// Source description (JSON text).
    pub source: String,
    /// Schema (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Profile (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A dataset used by a run, with input tags (e.g. `mlflow.data.context`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Input tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The dataset.
    pub dataset: Dataset,
}

/// A logged model used as input by a run (MLflow 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    /// Logged model id.
    pub model_id: String,
}

/// A logged model produced by a run (MLflow 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// Logged model id.
    pub model_id: String,
    /// Step at which it was produced.
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
}

/// Inputs of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RunInputs {
    /// Datasets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<DatasetInput>,
    /// Logged models used as inputs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<ModelInput>,
}

/// Outputs of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RunOutputs {
    /// Logged models produced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

/// A run with everything logged to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Metrics, params, tags.
    pub data: RunData,
    /// Dataset and model inputs.
    pub inputs: RunInputs,
    /// Model outputs.
    pub outputs: RunOutputs,
}

/// An alias pointing at a version of a registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredModelAlias {
    /// Alias name, e.g. `champion`.
    pub alias: String,
    /// Version number, as a string.
    pub version: String,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredModel {
    /// Unique name.
    pub name: String,
    /// Creation, ms since epoch.
    pub creation_timestamp: i64,
    /// Last change, ms since epoch.
    pub last_updated_timestamp: i64,
    /// Creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Latest version per stage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<ModelVersion>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Aliases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<RegisteredModelAlias>,
}

/// Stages of MLflow's legacy stage workflow.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// Canonical spelling of a stage name, case-insensitively, or `None` if unknown.
pub fn canonical_stage(s: &str) -> Option<&'static str> {
    STAGES.iter().copied().find(|st| st.eq_ignore_ascii_case(s))
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// Version number, as a string.
    pub version: String,
    /// Creation, ms since epoch.
    pub creation_timestamp: i64,
    /// Last change, ms since epoch.
    pub last_updated_timestamp: i64,
    /// Creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Legacy stage (`None`, `Staging`, `Production`, `Archived`).
    pub current_stage: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the model's files are (`models:/m-<id>` or an artifact URI).
    pub source: String,
    /// Run that produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Always `READY` once created.
    pub status: String,
    /// Status detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Link to the run, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    /// Aliases pointing at this version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Logged model id (MLflow 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// Status of a logged model (MLflow 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoggedModelStatus {
    /// Created; artifacts still uploading.
    #[serde(rename = "LOGGED_MODEL_PENDING")]
    Pending,
    /// Finalized and usable.
    #[serde(rename = "LOGGED_MODEL_READY")]
    Ready,
    /// Upload failed.
    #[serde(rename = "LOGGED_MODEL_UPLOAD_FAILED")]
    UploadFailed,
}

impl LoggedModelStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "LOGGED_MODEL_PENDING",
            Self::Ready => "LOGGED_MODEL_READY",
            Self::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }
    /// Parses the wire name; accepts the proto enum number as text too.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "LOGGED_MODEL_PENDING" | "1" => Self::Pending,
            "LOGGED_MODEL_READY" | "2" => Self::Ready,
            "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Self::UploadFailed,
            _ => return None,
        })
    }
}

/// Metadata of a logged model (MLflow 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedModelInfo {
    /// `m-<32 hex>`.
    pub model_id: String,
    /// Owning experiment.
    pub experiment_id: String,
    /// Name given at logging time.
    pub name: String,
    /// Creation, ms since epoch.
    pub creation_timestamp_ms: i64,
    /// Last change, ms since epoch.
    pub last_updated_timestamp_ms: i64,
    /// `mlflow-artifacts:/<exp>/models/<model_id>/artifacts`.
    pub artifact_uri: String,
    /// Upload status.
    pub status: LoggedModelStatus,
    /// Creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<String>,
    /// Flavor-defined type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// Run that logged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    /// Status detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// Params and metrics of a logged model.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LoggedModelData {
    /// Parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Metrics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// A logged model (MLflow 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedModel {
    /// Metadata.
    pub info: LoggedModelInfo,
    /// Params and metrics.
    pub data: LoggedModelData,
}
