//! [`Monitor`]: the prediction log of this process and every query over
//! the shared monitoring data (any replica answers the same, from the
//! artifact store).

use crate::background::Background;
use crate::columns::{
    mlflow_signature_columns, signature_column_names, signature_columns, Column, Side,
};
use crate::drift::{compare, ColumnWindows, Comparison, DriftOptions};
use crate::feedback::{self, Feedback, FeedbackReceipt, PerformanceReport};
use crate::files::{self, Skipped, REFERENCES};
use crate::frame::{self, Frame};
use crate::log::{ColumnNames, LogSettings, PredictionLog};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use serde::Serialize;
use slipway_artifacts::ArtifactStore;
use slipway_core::{Error, ErrorCode};
use slipway_runtime::MlflowSignature;
use slipway_serving::spec::validate_window;
use slipway_serving::{DeploymentManager, MonitoringSpec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Monitoring settings (the server's `prediction_log_*`, `drift_*`,
/// `performance_*` and `feedback_*` settings).
#[derive(Debug, Clone, Copy)]
pub struct MonitorSettings {
    /// The prediction log's buffer and flushing.
    pub log: LogSettings,
    /// Days of log and feedback kept (0: forever).
    pub retention_days: u64,
    /// Default drift window, seconds.
    pub drift_window_seconds: u64,
    /// Fewest rows in a drift window.
    pub drift_min_rows: u64,
    /// First logged rows that become a version's reference.
    pub drift_reference_rows: u64,
    /// Values per column kept exactly.
    pub drift_sample_limit: usize,
    /// Default performance window, seconds.
    pub performance_window_seconds: u64,
    /// Hours of log searched for feedback ids.
    pub feedback_lookback_hours: u64,
}

/// Where a version's reference comes from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReferenceInfo {
    /// `uploaded`, `model_version` or `logged`.
    pub source: &'static str,
    /// The file on the artifact store.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its columns.
    pub columns: Vec<String>,
}

struct Reference {
    info: ReferenceInfo,
    windows: ColumnWindows,
    /// Size and time of the file it was read from, to notice a new upload.
    stamp: (u64, i64),
}

/// `GET /api/v1/deployments/{name}/drift`.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// Deployment.
    pub deployment: String,
    /// Version judged.
    pub version: String,
    /// `ok`, `insufficient_data` (fewer rows than `min_rows` in the window)
    /// or `no_reference` (none uploaded or next to the model, and too few
    /// rows logged yet to take the first ones).
    pub status: &'static str,
    /// Why the status is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Window length, seconds.
    pub window_seconds: u64,
    /// Window start (RFC 3339).
    pub start: String,
    /// Window end.
    pub end: String,
    /// The reference used.
    pub reference: Option<ReferenceInfo>,
    /// Rows in the window (status 200).
    pub current_count: u64,
    /// Fewest rows judged.
    pub min_rows: u64,
    /// Share of drifted columns at which the dataset drifts.
    pub share_threshold: f64,
    /// Dataset drift.
    pub dataset_drift: bool,
    /// Share of drifted columns.
    pub drift_share: f64,
    /// Per column.
    pub features: Vec<crate::drift::ColumnDrift>,
    /// Columns present but not tested, and why.
    pub not_tested: Vec<String>,
    /// Log files that could not be read.
    pub skipped_files: Vec<Skipped>,
}

/// A read of the prediction log.
pub struct PredictionQuery {
    /// Rows at or after (ms since the epoch).
    pub start_ms: i64,
    /// Rows before.
    pub end_ms: i64,
    /// One version only.
    pub version: Option<String>,
    /// At most this many rows.
    pub limit: usize,
    /// Newest first.
    pub newest_first: bool,
}

/// Rows read back.
pub struct PredictionRows {
    /// The rows.
    pub frame: Frame,
    /// Whether `limit` cut them.
    pub truncated: bool,
    /// Files that could not be read.
    pub skipped: Vec<Skipped>,
}

/// Monitoring of this process's deployments.
pub struct Monitor {
    store: Arc<ArtifactStore>,
    serving: Weak<DeploymentManager>,
    settings: MonitorSettings,
    log: Arc<PredictionLog>,
    references: Mutex<HashMap<(String, String), Arc<Reference>>>,
}

/// Now, ms since the epoch.
pub fn now_ms() -> i64 {
    slipway_core::now_millis()
}

fn time_ok(batch: &RecordBatch, start_ms: i64, end_ms: i64) -> impl Fn(usize) -> bool + '_ {
    let time = batch
        .column_by_name("time")
        .filter(|c| {
            matches!(
                c.data_type(),
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _)
            )
        })
        .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone());
    move |r| {
        time.as_ref().is_none_or(|t| {
            let ms = t.value(r).div_euclid(1000);
            t.is_valid(r) && ms >= start_ms && ms < end_ms
        })
    }
}

fn served(batch: &RecordBatch) -> impl Fn(usize) -> bool + '_ {
    let status = batch
        .column_by_name("status")
        .filter(|c| c.data_type() == &DataType::Int32)
        .map(|c| c.as_primitive::<Int32Type>().clone());
    move |r| {
        status
            .as_ref()
            .is_none_or(|s| s.is_valid(r) && s.value(r) == 200)
    }
}

impl Monitor {
    /// Starts the prediction log and registers it with `serving`.
    pub fn start(
        store: Arc<ArtifactStore>,
        serving: &Arc<DeploymentManager>,
        settings: MonitorSettings,
    ) -> Arc<Monitor> {
        let weak = Arc::downgrade(serving);
        let names_of = weak.clone();
        let column_names: ColumnNames = Arc::new(move |dep: &str, version: &str| {
            let mgr = names_of.upgrade()?;
            let v = mgr.get(dep)?.loaded(version)?;
            signature_column_names(v.worker.signature())
        });
        let log = PredictionLog::start(store.clone(), settings.log, column_names);
        serving.set_prediction_sink(log.clone());
        Arc::new(Monitor {
            store,
            serving: weak,
            settings,
            log,
            references: Mutex::new(HashMap::new()),
        })
    }

    /// The prediction log.
    pub fn log(&self) -> &Arc<PredictionLog> {
        &self.log
    }

    /// The settings.
    pub fn settings(&self) -> &MonitorSettings {
        &self.settings
    }

    /// The artifact store.
    pub fn store(&self) -> &Arc<ArtifactStore> {
        &self.store
    }

    fn serving(&self) -> Result<Arc<DeploymentManager>, Error> {
        self.serving
            .upgrade()
            .ok_or_else(|| Error::new(ErrorCode::TemporarilyUnavailable, "shutting down"))
    }

    fn spec(&self, deployment: &str) -> Result<MonitoringSpec, Error> {
        let dep = self
            .serving()?
            .get(deployment)
            .ok_or_else(|| Error::not_found(format!("Deployment '{deployment}' does not exist")))?;
        Ok(dep.spec().monitoring.unwrap_or_default())
    }

    /// The version a query is about: the one given (it must have been
    /// served or loaded by the deployment), else the serving one.
    fn version_of(&self, deployment: &str, version: Option<&str>) -> Result<String, Error> {
        let dep = self
            .serving()?
            .get(deployment)
            .ok_or_else(|| Error::not_found(format!("Deployment '{deployment}' does not exist")))?;
        match version {
            Some(v) => {
                if v.is_empty() || v.parse::<u64>().is_err() {
                    return Err(Error::invalid(format!(
                        "Parameter 'version' must be a version number, got '{v}'"
                    )));
                }
                Ok(v.to_string())
            }
            None => dep
                .active()
                .map(|a| a.version.clone())
                .or_else(|| {
                    // a replica that does not serve (registry role) knows
                    // the version the deployment resolves to
                    let status = dep.status();
                    status.serving_version.or(status.target_version)
                })
                .ok_or_else(|| {
                    Error::invalid_state(format!(
                        "Deployment '{deployment}' serves no version yet; pass 'version'"
                    ))
                }),
        }
    }

    /// The log's columns for a loaded version of the deployment (`None`
    /// when it is not loaded on this replica).
    fn columns_of(&self, deployment: &str, version: &str) -> Option<Vec<Column>> {
        let mgr = self.serving.upgrade()?;
        let v = mgr.get(deployment)?.loaded(version)?;
        Some(signature_columns(v.worker.signature()))
    }

    /// The log's columns of a version, with whether its outputs are known:
    /// from the model when this replica has it loaded, else from the
    /// MLflow signature in the version's `MLmodel` (a registry replica, or
    /// a version still loading). `None` when neither names them.
    async fn known_columns(&self, deployment: &str, version: &str) -> Option<(Vec<Column>, bool)> {
        if let Some(cols) = self.columns_of(deployment, version) {
            return Some((cols, true));
        }
        let mgr = self.serving.upgrade()?;
        let model = mgr.get(deployment)?.spec().model;
        let files = match mgr.loader().inspect(&model, version).await {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(deployment, version, error = %e.message, "reference columns not checked: the version's files cannot be read");
                return None;
            }
        };
        let sig = match MlflowSignature::from_mlmodel_yaml(files.mlmodel.as_deref()?) {
            Ok(Some(sig)) => sig,
            Ok(None) => return None,
            Err(e) => {
                tracing::info!(deployment, version, error = %e, "reference columns not checked: the MLmodel signature cannot be read");
                return None;
            }
        };
        mlflow_signature_columns(&sig)
    }

    // ------------------------------------------------------------------ log

    /// Reads rows of the prediction log back.
    pub async fn predictions(
        &self,
        deployment: &str,
        q: PredictionQuery,
    ) -> Result<PredictionRows, Error> {
        self.spec(deployment)?;
        if let Some(v) = &q.version {
            self.version_of(deployment, Some(v))?;
        }
        self.log.flush(Some(deployment)).await;
        let mut found = files::prediction_files(
            &self.store,
            deployment,
            q.version.as_deref(),
            q.start_ms,
            q.end_ms,
        )
        .await?;
        // Files in the order their rows come: by earliest row oldest first,
        // by latest row newest first. Files of several replicas overlap in
        // time, so a file is read unless its whole range lies beyond the
        // last row kept; a file not named by Slipway (no range) is read
        // first, whole.
        if q.newest_first {
            found.sort_by_key(|f| std::cmp::Reverse(f.range.map_or(i64::MAX, |r| r.1)));
        } else {
            found.sort_by_key(|f| f.range.map_or(i64::MIN, |r| r.0));
        }
        let mut frame = Frame::default();
        let mut skipped = Vec::new();
        let mut truncated = false;
        for f in &found {
            if frame.rows.len() >= q.limit {
                if let (Some((first_ms, last_ms)), Some(edge)) = (f.range, frame.last_time()) {
                    let beyond = if q.newest_first {
                        last_ms.saturating_mul(1000).saturating_add(999) < edge
                    } else {
                        first_ms.saturating_mul(1000) > edge
                    };
                    if beyond {
                        truncated = true;
                        break;
                    }
                }
            }
            match files::read_file(&self.store, f, None).await {
                Ok(batches) => {
                    let constants = [
                        ("deployment", frame::Cell::Str(deployment.to_string())),
                        (
                            "version",
                            frame::Cell::Str(f.version.clone().unwrap_or_default()),
                        ),
                    ];
                    for b in &batches {
                        let ok = time_ok(b, q.start_ms, q.end_ms);
                        frame.extend_with(b, |_, r| ok(r), usize::MAX, &constants);
                    }
                }
                Err(s) => skipped.push(s),
            }
            // at most `limit` rows plus one file's are held at once
            frame.sort_by("time", q.newest_first);
            truncated |= frame.truncate(q.limit);
        }
        Ok(PredictionRows {
            frame,
            truncated,
            skipped,
        })
    }

    // ------------------------------------------------------------ reference

    fn uploaded_path(deployment: &str) -> String {
        format!("{REFERENCES}/deployment={deployment}/reference.parquet")
    }

    fn logged_path(deployment: &str, version: &str) -> String {
        format!("{REFERENCES}/deployment={deployment}/version={version}/logged.parquet")
    }

    /// Checks and stores a reference uploaded to the deployment (Parquet, or
    /// CSV with a header row): its columns must be columns of the log of the
    /// serving version (the target version on a replica that serves
    /// nothing), at least one of them an input. The columns come from the
    /// loaded model, else from the version's MLmodel signature; without
    /// either the upload is stored unchecked.
    pub async fn put_reference(
        &self,
        deployment: &str,
        body: Bytes,
        csv: bool,
    ) -> Result<ReferenceInfo, Error> {
        self.spec(deployment)?;
        let version = self.version_of(deployment, None)?;
        let batches = tokio::task::spawn_blocking(move || {
            if csv {
                frame::csv_to_batch(&body).map(|b| vec![b])
            } else {
                files::read_parquet(body, None)
                    .map_err(|e| format!("the body is not a readable Parquet file: {e}"))
            }
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
        .map_err(Error::invalid)?;
        let Some(first) = batches.first() else {
            return Err(Error::invalid("The reference has no rows"));
        };
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Err(Error::invalid("The reference has no rows"));
        }
        let schema = first.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        match self.known_columns(deployment, &version).await {
            Some((cols, outputs_known)) => {
                check_reference_columns(&schema, &cols, outputs_known, &version)?;
            }
            None => {
                tracing::info!(deployment, version, "reference columns not checked: the version is not loaded here and its MLmodel has no signature naming its inputs");
            }
        }
        let bytes = tokio::task::spawn_blocking(move || files::to_parquet_batches(&batches))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::internal)?;
        let path = Self::uploaded_path(deployment);
        files::put(&self.store, &path, bytes).await?;
        self.forget_references(deployment);
        Ok(ReferenceInfo {
            source: "uploaded",
            path,
            rows: rows as u64,
            columns: names,
        })
    }

    /// Removes an uploaded reference.
    pub async fn delete_reference(&self, deployment: &str) -> Result<bool, Error> {
        self.spec(deployment)?;
        let n = files::delete(&self.store, &Self::uploaded_path(deployment)).await?;
        self.forget_references(deployment);
        Ok(n > 0)
    }

    fn forget_references(&self, deployment: &str) {
        self.references
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(d, _), _| d != deployment);
    }

    /// The reference of a version: uploaded to the deployment, else
    /// `slipway.reference.parquet`/`.csv` next to its MLmodel, else its
    /// first logged rows (`Ok(None)` while fewer are logged).
    async fn reference(
        &self,
        deployment: &str,
        version: &str,
        reference_rows: u64,
    ) -> Result<Result<Arc<Reference>, String>, Error> {
        let key = (deployment.to_string(), version.to_string());
        let cached = self
            .references
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        // an upload replaces whatever was used before
        let uploaded = Self::uploaded_path(deployment);
        let upload_meta = match slipway_artifacts::ArtifactPath::parse(&uploaded) {
            Ok(p) => self.store.head(&p).await.ok(),
            Err(_) => None,
        };
        if let Some(c) = &cached {
            let fresh = match &upload_meta {
                Some(m) => c.info.source == "uploaded" && c.stamp == (m.size, m.last_modified_ms),
                None => c.info.source != "uploaded",
            };
            if fresh {
                return Ok(Ok(c.clone()));
            }
        }
        let limit = self.settings.drift_sample_limit;
        let built = if let Some(m) = upload_meta {
            let bytes = files::get(&self.store, &uploaded)
                .await?
                .unwrap_or_default();
            let r = build_reference(
                "uploaded",
                uploaded,
                bytes,
                false,
                limit,
                (m.size, m.last_modified_ms),
            )
            .await?;
            Ok(r)
        } else if let Some((path, bytes, csv)) = self.model_reference(deployment, version).await? {
            Ok(build_reference("model_version", path, bytes, csv, limit, (0, 0)).await?)
        } else {
            let path = Self::logged_path(deployment, version);
            match files::get(&self.store, &path).await? {
                Some(bytes) => {
                    Ok(build_reference("logged", path, bytes, false, limit, (0, 0)).await?)
                }
                None => {
                    self.collect_logged(deployment, version, reference_rows)
                        .await?
                }
            }
        };
        if let Ok(r) = &built {
            self.references
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, r.clone());
        }
        Ok(built)
    }

    /// `slipway.reference.parquet` (or `.csv`) next to the version's MLmodel.
    async fn model_reference(
        &self,
        deployment: &str,
        version: &str,
    ) -> Result<Option<(String, Bytes, bool)>, Error> {
        let mgr = self.serving()?;
        let Some(dep) = mgr.get(deployment) else {
            return Ok(None);
        };
        let model = dep.spec().model;
        let Ok(files) = mgr.loader().inspect(&model, version).await else {
            return Ok(None);
        };
        for (name, csv) in [
            ("slipway.reference.parquet", false),
            ("slipway.reference.csv", true),
        ] {
            let path = format!("{}/{name}", files.prefix);
            if let Some(b) = files::get(&self.store, &path).await? {
                return Ok(Some((path, b, csv)));
            }
        }
        Ok(None)
    }

    /// Takes the first `n` served rows of the version's log as its
    /// reference and keeps them (so retention cannot move it).
    async fn collect_logged(
        &self,
        deployment: &str,
        version: &str,
        n: u64,
    ) -> Result<Result<Arc<Reference>, String>, Error> {
        let found =
            files::prediction_files(&self.store, deployment, Some(version), 0, i64::MAX).await?;
        let mut kept: Vec<RecordBatch> = Vec::new();
        let mut rows = 0u64;
        for f in &found {
            let Ok(batches) = files::read_file(&self.store, f, None).await else {
                continue;
            };
            for b in batches {
                let ok = served(&b);
                let idx: Vec<u32> = (0..b.num_rows())
                    .filter(|r| ok(*r))
                    .take(usize::try_from(n - rows).unwrap_or(usize::MAX))
                    .map(|r| r as u32)
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                let taken = take_rows(&b, &idx)?;
                rows += taken.num_rows() as u64;
                if kept.first().is_none_or(|k| k.schema() == taken.schema()) {
                    kept.push(taken);
                }
                if rows >= n {
                    break;
                }
            }
            if rows >= n {
                break;
            }
        }
        if rows < n {
            return Ok(Err(format!(
                "no reference: none was uploaded (PUT /api/v1/deployments/{deployment}/reference) or logged with the model (slipway.reference.parquet), and {rows} of the first {n} rows of version {version} have been logged"
            )));
        }
        let bytes = tokio::task::spawn_blocking(move || files::to_parquet_batches(&kept))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(Error::internal)?;
        let path = Self::logged_path(deployment, version);
        files::put(&self.store, &path, bytes.clone()).await?;
        Ok(Ok(build_reference(
            "logged",
            path,
            Bytes::from(bytes),
            false,
            self.settings.drift_sample_limit,
            (0, 0),
        )
        .await?))
    }

    /// Describes the reference a version would be judged against.
    pub async fn reference_info(
        &self,
        deployment: &str,
        version: Option<&str>,
    ) -> Result<Result<ReferenceInfo, String>, Error> {
        let spec = self.spec(deployment)?;
        let version = self.version_of(deployment, version)?;
        let n = spec
            .drift
            .and_then(|d| d.reference_rows)
            .unwrap_or(self.settings.drift_reference_rows);
        Ok(self
            .reference(deployment, &version, n)
            .await?
            .map(|r| r.info.clone()))
    }

    // ---------------------------------------------------------------- drift

    /// Drift of a version's logged traffic over the window ending now.
    pub async fn drift(
        &self,
        deployment: &str,
        version: Option<&str>,
        window_seconds: Option<u64>,
    ) -> Result<DriftReport, Error> {
        let spec = self.spec(deployment)?;
        let version = self.version_of(deployment, version)?;
        let drift = spec.drift.clone().unwrap_or_default();
        let window = window_seconds
            .or(drift.window_seconds)
            .unwrap_or(self.settings.drift_window_seconds);
        validate_window("Parameter 'window'", window)?;
        let min_rows = drift.min_rows.unwrap_or(self.settings.drift_min_rows);
        let share = drift.share_threshold.unwrap_or(0.5);
        let reference_rows = drift
            .reference_rows
            .unwrap_or(self.settings.drift_reference_rows);
        self.log.flush(Some(deployment)).await;
        let end_ms = now_ms() + 1;
        let start_ms = end_ms - i64::try_from(window).unwrap_or(i64::MAX / 2) * 1000;
        let mut report = DriftReport {
            deployment: deployment.to_string(),
            version: version.clone(),
            status: "ok",
            reason: None,
            window_seconds: window,
            start: frame::rfc3339(start_ms * 1000),
            end: frame::rfc3339(end_ms * 1000),
            reference: None,
            current_count: 0,
            min_rows,
            share_threshold: share,
            dataset_drift: false,
            drift_share: 0.0,
            features: Vec::new(),
            not_tested: Vec::new(),
            skipped_files: Vec::new(),
        };
        let reference = match self.reference(deployment, &version, reference_rows).await? {
            Ok(r) => r,
            Err(why) => {
                report.status = "no_reference";
                report.reason = Some(why);
                return Ok(report);
            }
        };
        report.reference = Some(reference.info.clone());
        let found =
            files::prediction_files(&self.store, deployment, Some(&version), start_ms, end_ms)
                .await?;
        // sampling and comparing run on the monitoring thread, not the
        // executor (see the background module)
        let mut current = ColumnWindows::new(self.settings.drift_sample_limit);
        for f in &found {
            match files::read_file(&self.store, f, None).await {
                Ok(batches) => {
                    current = Background::run(Background::queries(), move || {
                        for b in &batches {
                            let in_window = time_ok(b, start_ms, end_ms);
                            let ok = served(b);
                            current.push(b, |r| in_window(r) && ok(r));
                            std::thread::yield_now();
                        }
                        current
                    })
                    .await
                    .map_err(Error::internal)?;
                }
                Err(s) => report.skipped_files.push(s),
            }
        }
        report.current_count = current.rows;
        if current.rows < min_rows {
            report.status = "insufficient_data";
            report.reason = Some(format!(
                "{} rows of version {version} in the window, fewer than min_rows ({min_rows})",
                current.rows
            ));
            return Ok(report);
        }
        let opts = DriftOptions {
            share_threshold: share,
            features: drift.features.clone(),
        };
        let Comparison {
            dataset_drift,
            drift_share,
            features,
            not_tested,
        } = Background::run(Background::queries(), move || {
            compare(&reference.windows, &current, &opts)
        })
        .await
        .map_err(Error::internal)?;
        report.dataset_drift = dataset_drift;
        report.drift_share = drift_share;
        report.features = features;
        report.not_tested = not_tested;
        Ok(report)
    }

    // ------------------------------------------------------------- feedback

    /// Stores a batch of ground truth and reports which request ids match
    /// no logged prediction (yet).
    pub async fn feedback(
        &self,
        deployment: &str,
        items: Vec<Feedback>,
    ) -> Result<FeedbackReceipt, Error> {
        self.spec(deployment)?;
        self.log.flush(Some(deployment)).await;
        feedback::store(&self.store, deployment, &items).await?;
        let lookback =
            i64::try_from(self.settings.feedback_lookback_hours).unwrap_or(24) * 3_600_000;
        let now = now_ms();
        let found =
            files::prediction_files(&self.store, deployment, None, now - lookback, now + 60_000)
                .await?;
        let receipt = feedback::match_ids(&self.store, &found, &items).await;
        metrics::counter!("slipway_feedback_rows_total", "deployment" => deployment.to_string())
            .increment(items.len() as u64);
        metrics::counter!("slipway_feedback_unknown_total", "deployment" => deployment.to_string())
            .increment(receipt.unknown);
        Ok(receipt)
    }

    /// Accuracy (classifiers) or error (regressors) per version over the
    /// window, from feedback joined with logged predictions.
    pub async fn performance(
        &self,
        deployment: &str,
        version: Option<&str>,
        window_seconds: Option<u64>,
    ) -> Result<PerformanceReport, Error> {
        let spec = self.spec(deployment)?;
        if let Some(v) = version {
            self.version_of(deployment, Some(v))?;
        }
        let window = window_seconds
            .or(spec.performance_window_seconds)
            .unwrap_or(self.settings.performance_window_seconds);
        validate_window("Parameter 'window'", window)?;
        self.log.flush(Some(deployment)).await;
        let end_ms = now_ms() + 1;
        let start_ms = end_ms - i64::try_from(window).unwrap_or(i64::MAX / 2) * 1000;
        let predictions =
            files::prediction_files(&self.store, deployment, version, start_ms, end_ms).await?;
        let fb_root = format!("{}/deployment={deployment}", files::FEEDBACK);
        let fb = files::files_in(&self.store, &fb_root, None, start_ms, i64::MAX).await?;
        feedback::performance(
            &self.store,
            deployment,
            &predictions,
            &fb,
            spec.prediction_output.as_deref(),
            (start_ms, end_ms),
        )
        .await
    }

    // --------------------------------------------------------- housekeeping

    /// Refreshes the drift and performance gauges of every deployment.
    pub async fn refresh_gauges(&self) {
        let Ok(mgr) = self.serving() else {
            return;
        };
        for dep in mgr.list() {
            let versions: Vec<String> = dep
                .loaded_versions()
                .iter()
                .map(|v| v.version.clone())
                .collect();
            for v in &versions {
                match self.drift(&dep.name, Some(v), None).await {
                    Ok(r) => set_drift_gauges(&r),
                    Err(e) => {
                        tracing::debug!(deployment = %dep.name, version = %v, error = %e.message, "drift gauges not refreshed")
                    }
                }
            }
            match self.performance(&dep.name, None, None).await {
                Ok(p) => feedback::set_gauges(&p),
                Err(e) => {
                    tracing::debug!(deployment = %dep.name, error = %e.message, "performance gauges not refreshed")
                }
            }
        }
    }

    /// Deletes log and feedback hours older than the retention.
    pub async fn retention(&self) -> Result<u64, Error> {
        if self.settings.retention_days == 0 {
            return Ok(0);
        }
        let cutoff =
            now_ms() - i64::try_from(self.settings.retention_days).unwrap_or(36_500) * 86_400_000;
        crate::retention::delete_before(&self.store, cutoff).await
    }

    /// Writes everything buffered (graceful shutdown).
    pub async fn shutdown(&self) {
        self.log.flush(None).await;
    }
}

/// The rows `idx` of a batch.
fn take_rows(b: &RecordBatch, idx: &[u32]) -> Result<RecordBatch, Error> {
    // contiguous runs are the common case (a prefix): slice them
    if idx
        .iter()
        .enumerate()
        .all(|(i, r)| *r as usize == idx[0] as usize + i)
    {
        return Ok(b.slice(idx[0] as usize, idx.len()));
    }
    let mut parts = Vec::new();
    let mut start = idx[0] as usize;
    let mut len = 1;
    for w in idx.windows(2) {
        if w[1] == w[0] + 1 {
            len += 1;
        } else {
            parts.push(b.slice(start, len));
            start = w[1] as usize;
            len = 1;
        }
    }
    parts.push(b.slice(start, len));
    files::concat(&b.schema(), &parts).map_err(Error::internal)
}

/// Checks a reference's columns against the version's log columns `cols`:
/// each must be one of them (or, when `outputs_known` is false, any column
/// that is not an input passes as an output), numbers where the model has
/// numbers, at least one an input.
fn check_reference_columns(
    schema: &arrow_schema::Schema,
    cols: &[Column],
    outputs_known: bool,
    version: &str,
) -> Result<(), Error> {
    let known: HashMap<&str, &Column> = cols.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut inputs = 0;
    for f in schema.fields() {
        if !crate::drift::is_data_column(f.name()) {
            continue;
        }
        let Some(c) = known.get(f.name().as_str()) else {
            if !outputs_known {
                continue;
            }
            let mut names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
            names.truncate(20);
            return Err(Error::invalid(format!(
                "Reference column '{}' is not a column of version {version}'s predictions; its columns are {}",
                f.name(),
                names.join(", ")
            )));
        };
        let numeric_col = !matches!(
            c.kind,
            crate::columns::ValueKind::Str | crate::columns::ValueKind::Bool
        );
        let numeric_ref = frame::kind_of(f.data_type())
            .is_some_and(|k| matches!(k, frame::Kind::Float | frame::Kind::Int));
        if numeric_col != numeric_ref {
            return Err(Error::invalid(format!(
                "Reference column '{}' holds {} but the model's column holds {}",
                f.name(),
                if numeric_ref { "numbers" } else { "text" },
                if numeric_col {
                    "numbers"
                } else {
                    "text or booleans"
                }
            )));
        }
        if c.side == Side::Input {
            inputs += 1;
        }
    }
    if inputs == 0 {
        return Err(Error::invalid(format!(
            "The reference has none of version {version}'s input columns ({})",
            cols.iter()
                .filter(|c| c.side == Side::Input)
                .map(|c| c.name.as_str())
                .take(20)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

async fn build_reference(
    source: &'static str,
    path: String,
    bytes: Bytes,
    csv: bool,
    sample_limit: usize,
    stamp: (u64, i64),
) -> Result<Arc<Reference>, Error> {
    let shown = path.clone();
    tokio::task::spawn_blocking(move || {
        let batches = if csv {
            frame::csv_to_batch(&bytes).map(|b| vec![b])
        } else {
            files::read_parquet(bytes, None)
        }
        .map_err(|e| Error::invalid(format!("reference {shown} cannot be read: {e}")))?;
        let mut windows = ColumnWindows::new(sample_limit);
        let mut columns = Vec::new();
        for b in &batches {
            if columns.is_empty() {
                columns = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| crate::drift::is_data_column(n))
                    .collect();
            }
            let ok = served(b);
            windows.push(b, ok);
        }
        Ok(Arc::new(Reference {
            info: ReferenceInfo {
                source,
                path,
                rows: windows.rows,
                columns,
            },
            windows,
            stamp,
        }))
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))?
}

fn set_drift_gauges(r: &DriftReport) {
    if r.status != "ok" {
        return;
    }
    let (d, v) = (r.deployment.clone(), r.version.clone());
    metrics::gauge!("slipway_dataset_drift", "deployment" => d.clone(), "version" => v.clone())
        .set(if r.dataset_drift { 1.0 } else { 0.0 });
    metrics::gauge!("slipway_drift_share", "deployment" => d.clone(), "version" => v.clone())
        .set(r.drift_share);
    metrics::gauge!("slipway_drift_current_rows", "deployment" => d.clone(), "version" => v.clone())
        .set(r.current_count as f64);
    for f in &r.features {
        let method = f.method.name();
        metrics::gauge!("slipway_drift_score", "deployment" => d.clone(), "version" => v.clone(), "feature" => f.name.clone(), "method" => method)
            .set(f.p_value.unwrap_or(f.statistic));
        metrics::gauge!("slipway_drift_threshold", "deployment" => d.clone(), "version" => v.clone(), "feature" => f.name.clone(), "method" => method)
            .set(f.threshold);
        metrics::gauge!("slipway_feature_drift", "deployment" => d.clone(), "version" => v.clone(), "feature" => f.name.clone())
            .set(if f.drifted { 1.0 } else { 0.0 });
    }
}
