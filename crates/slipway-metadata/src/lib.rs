//! The metadata store: experiments, runs, the model registry, logged models,
//! artifact digests, API tokens, browser sessions and deployments.
//!
//! [`MetadataStore`] is the one trait the server talks to. [`sql::SqlStore`]
//! implements it over SQLite (WAL; the embedded default) and PostgreSQL with
//! the same SQL, and [`conformance`] is the single test suite both must pass.
//! This crate validates what the store must guarantee (existence, uniqueness,
//! immutability of params, lifecycle rules) but knows nothing about HTTP.

pub mod conformance;
pub mod history;
pub mod registry;
pub mod search;
pub mod sql;

use async_trait::async_trait;
use slipway_core::{
    DatasetInput, Experiment, LoggedModel, LoggedModelStatus, Metric, ModelInput, ModelOutput,
    ModelVersion, Param, RegisteredModel, Run, RunInfo, RunStatus, Tag,
};

pub use slipway_core::error::Result;
pub use slipway_core::{Error, ErrorCode};

/// Which lifecycle stages a search returns (MLflow's `ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    /// Only active entities (the default).
    #[default]
    ActiveOnly,
    /// Only deleted entities.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Parses `ACTIVE_ONLY`, `DELETED_ONLY`, `ALL` (or the proto numbers 1, 2, 3).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE_ONLY" | "1" => Self::ActiveOnly,
            "DELETED_ONLY" | "2" => Self::DeletedOnly,
            "ALL" | "3" => Self::All,
            _ => return None,
        })
    }
}

/// A page of results and the opaque token for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items in this page.
    pub items: Vec<T>,
    /// Token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Common search parameters: MLflow filter string, order, page size and token.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// MLflow filter expression (`metrics.acc > 0.9 AND tags.x = 'y'`); empty for all.
    pub filter: String,
    /// `order_by` clauses (`metrics.acc DESC`, `attributes.start_time ASC`).
    pub order_by: Vec<String>,
    /// Page size; the caller has already capped it to the configured maximum.
    pub max_results: usize,
    /// Token from a previous page.
    pub page_token: Option<String>,
    /// Lifecycle filter (ignored where it does not apply).
    pub view_type: ViewType,
}

/// Arguments of `create_run`.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// Experiment to create the run in (must be active).
    pub experiment_id: String,
    /// Creator.
    pub user_id: String,
    /// Name; a generated name when empty (and `mlflow.runName` tag absent).
    pub run_name: Option<String>,
    /// Start, ms since epoch.
    pub start_time: i64,
    /// Initial tags (e.g. `mlflow.parentRunId`, `mlflow.source.name`).
    pub tags: Vec<Tag>,
}

/// Arguments of `create_model_version`.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    /// Registered model (must exist).
    pub name: String,
    /// Model source URI.
    pub source: String,
    /// Producing run.
    pub run_id: Option<String>,
    /// Initial tags.
    pub tags: Vec<Tag>,
    /// Link to the run.
    pub run_link: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Logged model id (MLflow 3), when the source is a logged model.
    pub model_id: Option<String>,
    /// Creator.
    pub user_id: Option<String>,
}

/// Arguments of `create_logged_model`.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    /// Owning experiment (must exist).
    pub experiment_id: String,
    /// Name; generated when empty.
    pub name: Option<String>,
    /// Flavor-defined type.
    pub model_type: Option<String>,
    /// Run that logs it.
    pub source_run_id: Option<String>,
    /// Params.
    pub params: Vec<Param>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Creator.
    pub creator_id: Option<String>,
}

/// SHA-256 digest of one stored artifact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDigest {
    /// Path relative to the artifact root (`<exp>/models/m-<id>/artifacts/model.onnx`).
    pub path: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
}

/// An API token as stored: only the hash of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id (shown in listings, used to revoke).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Scopes (`read`, `write`, `predict`, `admin`).
    pub scopes: Vec<String>,
    /// Creation, ms since epoch.
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// A browser session opened by signing in with a token. Only the SHA-256 of
/// the session id (the cookie value) is stored; the session grants what its
/// token grants, and ends with the token's revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Lowercase hex SHA-256 of the session id.
    pub id_hash: String,
    /// Id of the token that opened the session.
    pub token_id: String,
    /// Creation, ms since epoch.
    pub created_at: i64,
    /// Expiry, ms since epoch.
    pub expires_at: i64,
}

/// A deployment: a named binding of a registered model (by alias or version)
/// to the serving path. Stored as a JSON spec so the serving layer owns its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    /// Deployment name (unique).
    pub name: String,
    /// JSON spec, owned by the serving layer.
    pub spec: serde_json::Value,
    /// Creation, ms since epoch.
    pub created_at: i64,
    /// Last change, ms since epoch.
    pub updated_at: i64,
}

/// A lease: a named, expiring claim that one process holds at a time
/// (start-up steps, the rollout controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Lease name.
    pub name: String,
    /// Who holds it (an id unique per process).
    pub holder: String,
    /// When it expires unless renewed, ms since epoch.
    pub expires_at: i64,
}

/// How a backup run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupRunResult {
    /// The backup was written (and verified and pruned, when asked).
    Success,
    /// The backup, its verification or the prune failed.
    Failure,
}

impl BackupRunResult {
    /// `success` or `failure`: the stored text and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// One finished backup run, recorded by whoever ran it (`slipway backup
/// create`, a CronJob, a server's schedule) in the store it backed up, so
/// that every replica exports the same backup metrics. Never part of a
/// backup (see `sql::snapshot::EXCLUDED_TABLES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRunRecord {
    /// Run id (unique).
    pub id: String,
    /// Start, ms since epoch.
    pub started_at: i64,
    /// End, ms since epoch.
    pub finished_at: i64,
    /// How it ended.
    pub result: BackupRunResult,
    /// What started it: `cli` or `schedule`.
    pub started_by: String,
    /// The process that ran it (host and pid).
    pub holder: String,
    /// The backup location (a directory or `s3://bucket/prefix`).
    pub location: String,
    /// The backup written, when one was.
    pub backup_id: Option<String>,
    /// Its size (metadata parts and referenced artifacts), when written.
    pub size_bytes: Option<i64>,
    /// Artifact bytes this run copied (new blobs only).
    pub copied_bytes: i64,
    /// Older backups this run's retention removed.
    pub pruned: i64,
    /// The verification's verdict, when the backup was verified.
    pub verified: Option<bool>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What the backup metrics show, over every recorded run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupRunSummary {
    /// The run that finished last.
    pub last: Option<BackupRunRecord>,
    /// The successful run that finished last.
    pub last_success: Option<BackupRunRecord>,
    /// The verified run that finished last (whatever the verdict).
    pub last_verified: Option<BackupRunRecord>,
    /// Runs that succeeded.
    pub successes: i64,
    /// Runs that failed.
    pub failures: i64,
    /// Artifact bytes copied by all runs.
    pub copied_bytes: i64,
    /// Backups removed by all runs' retention.
    pub pruned: i64,
}

/// A rollout of a deployment. The serving layer owns the shape of `body`
/// (strategy, steps, decision record); the store keeps it, enforces at most
/// one active rollout per deployment, and versions each write (`revision`)
/// so that two controllers can never both apply a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    /// Rollout id (unique).
    pub id: String,
    /// The deployment it changes.
    pub deployment: String,
    /// State name (`progressing`, `paused`, `promoted`, ...).
    pub state: String,
    /// Whether it is still in progress (at most one per deployment).
    pub active: bool,
    /// Everything else, as JSON.
    pub body: serde_json::Value,
    /// Incremented by every update; updates name the revision they read.
    pub revision: i64,
    /// Creation, ms since epoch.
    pub created_at: i64,
    /// Last change, ms since epoch.
    pub updated_at: i64,
}

/// The metadata store. Every method is atomic: it either applies fully or not at all.
///
/// Errors use the domain [`Error`]: `RESOURCE_DOES_NOT_EXIST` for unknown ids,
/// `RESOURCE_ALREADY_EXISTS` for duplicates, `INVALID_PARAMETER_VALUE` for bad
/// arguments (filters, page tokens, changed params), `INVALID_STATE` for
/// operations on deleted entities, `INTERNAL_ERROR` for database faults.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Checks that the database answers (used by readiness).
    async fn ping(&self) -> Result<()>;

    // ---- experiments ----
    /// Creates an experiment; `artifact_location` defaults to `mlflow-artifacts:/<id>`.
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String>;
    /// Gets an experiment by id.
    async fn get_experiment(&self, id: &str) -> Result<Experiment>;
    /// Gets an experiment by name (active or deleted).
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;
    /// Searches experiments (filter on `name`, `tags.*`, `creation_time`, `last_update_time`).
    async fn search_experiments(&self, query: &SearchQuery) -> Result<Page<Experiment>>;
    /// Renames an experiment.
    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()>;
    /// Marks an experiment and its runs deleted.
    async fn delete_experiment(&self, id: &str) -> Result<()>;
    /// Restores a deleted experiment and its runs.
    async fn restore_experiment(&self, id: &str) -> Result<()>;
    /// Sets an experiment tag.
    async fn set_experiment_tag(&self, id: &str, key: &str, value: &str) -> Result<()>;
    /// Deletes an experiment tag.
    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()>;

    // ---- runs ----
    /// Creates a run; `artifact_uri` is `<experiment artifact_location>/<run_id>/artifacts`.
    async fn create_run(&self, run: NewRun) -> Result<Run>;
    /// Gets a run with its latest metrics, params, tags, inputs and outputs.
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    /// Updates status, end time and/or name.
    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo>;
    /// Marks a run deleted.
    async fn delete_run(&self, run_id: &str) -> Result<()>;
    /// Restores a deleted run.
    async fn restore_run(&self, run_id: &str) -> Result<()>;
    /// Logs metrics, params and tags in one transaction. A param logged again
    /// with a different value is `INVALID_PARAMETER_VALUE`; the run must be active.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()>;
    /// Deletes a run tag.
    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()>;
    /// Records dataset and model inputs (datasets deduplicated by name+digest per experiment).
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelInput],
    ) -> Result<()>;
    /// Records model outputs.
    async fn log_outputs(&self, run_id: &str, models: &[ModelOutput]) -> Result<()>;
    /// Full history of one metric, ordered by step then timestamp.
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: usize,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>>;
    /// Searches runs of the given experiments with MLflow's filter grammar.
    async fn search_runs(
        &self,
        experiment_ids: &[String],
        query: &SearchQuery,
    ) -> Result<Page<Run>>;

    // ---- registered models ----
    /// Creates a registered model.
    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        user_id: Option<&str>,
    ) -> Result<RegisteredModel>;
    /// Gets a registered model with latest versions, tags and aliases.
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    /// Renames a registered model (its versions follow).
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel>;
    /// Updates the description.
    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel>;
    /// Deletes a registered model with its versions, tags and aliases.
    async fn delete_registered_model(&self, name: &str) -> Result<()>;
    /// Searches registered models (filter on `name` with `=`, `LIKE`, `ILIKE`, and `tags.*`).
    async fn search_registered_models(&self, query: &SearchQuery) -> Result<Page<RegisteredModel>>;
    /// Sets a registered model tag.
    async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()>;
    /// Deletes a registered model tag.
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    /// Points an alias at a version (creating or moving it).
    async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()>;
    /// Deletes an alias.
    async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()>;
    /// Resolves an alias to its model version.
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;
    /// Latest version for each of `stages` (all stages when empty).
    async fn get_latest_versions(&self, name: &str, stages: &[String])
        -> Result<Vec<ModelVersion>>;

    // ---- model versions ----
    /// Creates the next version of a registered model.
    async fn create_model_version(&self, mv: NewModelVersion) -> Result<ModelVersion>;
    /// Gets a model version.
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion>;
    /// Updates the description.
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion>;
    /// Deletes a model version (and aliases pointing at it).
    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()>;
    /// Moves a version to a stage; with `archive_existing`, other versions in that stage go to `Archived`.
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion>;
    /// Searches versions (filter on `name`, `version_number`, `run_id`, `source_path`, `tags.*`).
    async fn search_model_versions(&self, query: &SearchQuery) -> Result<Page<ModelVersion>>;
    /// Sets a model version tag.
    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<()>;
    /// Deletes a model version tag.
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()>;

    // ---- logged models (MLflow 3) ----
    /// Creates a logged model in `PENDING` state, id `m-<32 hex>`, artifact URI
    /// `<experiment artifact_location>/models/<model_id>/artifacts`.
    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel>;
    /// Gets a logged model.
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel>;
    /// Sets the status (finalize).
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    /// Sets tags.
    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()>;
    /// Deletes a tag.
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    /// Deletes a logged model.
    async fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    /// Searches logged models of the given experiments.
    async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        query: &SearchQuery,
    ) -> Result<Page<LoggedModel>>;

    // ---- artifact digests ----
    /// Records (or replaces) the digest of an artifact file.
    async fn put_artifact_digest(&self, digest: &ArtifactDigest) -> Result<()>;
    /// Digests of all files whose path starts with `prefix`, ordered by path.
    async fn list_artifact_digests(&self, prefix: &str) -> Result<Vec<ArtifactDigest>>;

    // ---- tokens ----
    /// Stores a new token record.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// All tokens, revoked ones included, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Finds an unrevoked token by the hash of its secret.
    async fn find_token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>>;
    /// Revokes a token by id and ends its sessions; `RESOURCE_DOES_NOT_EXIST` when unknown.
    async fn revoke_token(&self, id: &str) -> Result<()>;

    // ---- browser sessions ----
    /// Stores a new session; its token must exist.
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session with this id hash that has not expired at `now` (ms since
    /// epoch), with the token that opened it; `None` when unknown, expired or
    /// when the token is revoked.
    async fn find_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<(SessionRecord, TokenRecord)>>;
    /// Ends a session (sign-out); unknown ids are not an error.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Deletes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64>;

    // ---- settings (small key/value facts, e.g. "admin token was bootstrapped") ----
    /// Reads a setting.
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Writes a setting.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    // ---- leases ----
    /// Takes the lease `name` for `holder` until `now + ttl_ms` when it is
    /// free, expired or already `holder`'s (a renewal); `true` when `holder`
    /// holds it afterwards. Expiry uses each caller's clock, so replicas'
    /// clocks must agree to well within the TTL.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool>;
    /// Gives the lease up if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// The current holder of a lease, if any (expired or not).
    async fn get_lease(&self, name: &str) -> Result<Option<LeaseRecord>>;

    // ---- backup runs ----
    /// Records a finished backup run; `RESOURCE_ALREADY_EXISTS` for a known id.
    async fn record_backup_run(&self, run: &BackupRunRecord) -> Result<()>;
    /// The latest runs and totals the backup metrics are made of.
    async fn backup_run_summary(&self) -> Result<BackupRunSummary>;

    // ---- rollouts ----
    /// Stores a new rollout; `RESOURCE_ALREADY_EXISTS` when the deployment
    /// already has an active one.
    async fn create_rollout(&self, rollout: &RolloutRecord) -> Result<()>;
    /// Gets a rollout by id.
    async fn get_rollout(&self, id: &str) -> Result<RolloutRecord>;
    /// A deployment's rollouts, newest first.
    async fn list_rollouts(&self, deployment: &str) -> Result<Vec<RolloutRecord>>;
    /// Every active rollout.
    async fn active_rollouts(&self) -> Result<Vec<RolloutRecord>>;
    /// Writes `rollout` (state, active, body) if its stored revision is
    /// still `rollout.revision`; returns the new record, or `INVALID_STATE`
    /// when someone else wrote it first.
    async fn update_rollout(&self, rollout: &RolloutRecord) -> Result<RolloutRecord>;
    /// Stores one replica's statistics of a rollout step (replacing its
    /// earlier ones for that step).
    async fn put_rollout_stats(
        &self,
        rollout_id: &str,
        step: i64,
        replica: &str,
        payload: &serde_json::Value,
    ) -> Result<()>;
    /// Every replica's statistics of a rollout step: `(replica, payload)`.
    async fn get_rollout_stats(
        &self,
        rollout_id: &str,
        step: i64,
    ) -> Result<Vec<(String, serde_json::Value)>>;

    // ---- deployments ----
    /// Creates or replaces a deployment.
    async fn put_deployment(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<DeploymentRecord>;
    /// Gets a deployment.
    async fn get_deployment(&self, name: &str) -> Result<DeploymentRecord>;
    /// All deployments, by name.
    async fn list_deployments(&self) -> Result<Vec<DeploymentRecord>>;
    /// Deletes a deployment; `RESOURCE_DOES_NOT_EXIST` when unknown.
    async fn delete_deployment(&self, name: &str) -> Result<()>;
}
