//! The [`MetadataStore`] implementation of [`SqlStore`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use slipway_core::ids::new_id;
use slipway_core::{
    canonical_stage, now_millis, DatasetInput, Error, Experiment, LoggedModel, LoggedModelStatus,
    Metric, ModelInput, ModelOutput, ModelVersion, Param, RegisteredModel, Run, RunInfo, RunStatus,
    Tag,
};
use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, Transaction};

use super::util::{
    db_err, get_f, get_i, get_oi, get_os, get_s, is_unique, parse_exp_id, prefix_upper_bound,
    random_name, store_value,
};
use super::{load, query, SqlStore};
use crate::search::{self, decode_page_token, encode_page_token, Target};
use crate::{
    ArtifactDigest, BackupRunRecord, BackupRunResult, BackupRunSummary, DeploymentRecord,
    LeaseRecord, MetadataStore, NewLoggedModel, NewModelVersion, NewRun, Page, Result,
    RolloutRecord, SearchQuery, SessionRecord, TokenRecord,
};

/// Tag holding a run's name.
const RUN_NAME_TAG: &str = "mlflow.runName";

fn exp_not_found(id: &str) -> Error {
    Error::not_found(format!("No Experiment with id={id} exists"))
}
fn run_not_found(id: &str) -> Error {
    Error::not_found(format!("Run with id={id} not found"))
}
fn rm_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}
fn mv_not_found(name: &str, version: &str) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}
fn lm_not_found(id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{id}' not found."))
}

fn parse_version(v: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| Error::invalid(format!("Model version must be an integer, got '{v}'")))
}

fn page_limit(max_results: usize) -> usize {
    if max_results == 0 {
        query::DEFAULT_PAGE
    } else {
        max_results
    }
}

/// Splits `limit + 1` fetched items into a page and its next token.
fn paginate<T>(mut items: Vec<T>, offset: usize, limit: usize) -> Page<T> {
    let next_page_token = if items.len() > limit {
        items.truncate(limit);
        Some(encode_page_token(offset + limit))
    } else {
        None
    };
    Page {
        items,
        next_page_token,
    }
}

struct RunState {
    experiment_id: i64,
    run_stage: String,
    exp_stage: String,
}

impl SqlStore {
    async fn tx(&self) -> Result<Transaction<'static, Any>> {
        self.writer.begin().await.map_err(db_err)
    }

    async fn rconn(&self) -> Result<PoolConnection<Any>> {
        self.reader.acquire().await.map_err(db_err)
    }

    /// Loads `(id, lifecycle_stage, artifact_location)` of an experiment.
    async fn exp_state(conn: &mut AnyConnection, id: &str) -> Result<(i64, String, String)> {
        let n = parse_exp_id(id).ok_or_else(|| exp_not_found(id))?;
        let row = sqlx::query(
            "SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = $1",
        )
        .bind(n)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| exp_not_found(id))?;
        Ok((
            n,
            get_s(&row, "lifecycle_stage")?,
            get_s(&row, "artifact_location")?,
        ))
    }

    async fn run_state(conn: &mut AnyConnection, run_id: &str) -> Result<RunState> {
        let row = sqlx::query(
            "SELECT r.experiment_id, r.lifecycle_stage AS run_stage, e.lifecycle_stage AS exp_stage \
             FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.run_uuid = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| run_not_found(run_id))?;
        Ok(RunState {
            experiment_id: get_i(&row, "experiment_id")?,
            run_stage: get_s(&row, "run_stage")?,
            exp_stage: get_s(&row, "exp_stage")?,
        })
    }

    /// The run must exist, be active and be in an active experiment.
    async fn active_run(conn: &mut AnyConnection, run_id: &str) -> Result<RunState> {
        let st = Self::run_state(conn, run_id).await?;
        if st.run_stage != "active" {
            return Err(Error::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is {}.",
                st.run_stage
            )));
        }
        if st.exp_stage != "active" {
            return Err(Error::invalid_state(format!(
                "The experiment {} of run {run_id} must be in the 'active' state. Current state is {}.",
                st.experiment_id, st.exp_stage
            )));
        }
        Ok(st)
    }

    async fn rm_exists(conn: &mut AnyConnection, name: &str) -> Result<()> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(rm_not_found(name));
        }
        Ok(())
    }

    async fn mv_exists(conn: &mut AnyConnection, name: &str, version: &str) -> Result<i64> {
        let v = parse_version(version)?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM model_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(v)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        if n == 0 {
            return Err(mv_not_found(name, version));
        }
        Ok(v)
    }

    async fn lm_exists(conn: &mut AnyConnection, model_id: &str) -> Result<()> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
        )
        .bind(model_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        if n == 0 {
            return Err(lm_not_found(model_id));
        }
        Ok(())
    }

    async fn touch_rm(conn: &mut AnyConnection, name: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE registered_models SET last_updated_time = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn upsert_run_tag(
        conn: &mut AnyConnection,
        run_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tags (run_uuid, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
        )
        .bind(run_id)
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        if key == RUN_NAME_TAG {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                .bind(value)
                .bind(run_id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn get_run_in(conn: &mut AnyConnection, run_id: &str) -> Result<Run> {
        load::runs(conn, &[run_id.to_string()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| run_not_found(run_id))
    }

    async fn get_mv_in(
        conn: &mut AnyConnection,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion> {
        let v = parse_version(version)?;
        load::model_version(conn, name, v)
            .await?
            .ok_or_else(|| mv_not_found(name, version))
    }

    fn check_alias(alias: &str) -> Result<()> {
        let lower = alias.to_ascii_lowercase();
        let is_version_like = lower.len() > 1
            && lower.starts_with('v')
            && lower[1..].bytes().all(|b| b.is_ascii_digit());
        if alias.is_empty() || lower == "latest" || is_version_like {
            return Err(Error::invalid(format!(
                "Invalid alias name '{alias}': 'latest' and version-like names (v1, v2, ...) are reserved"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for SqlStore {
    async fn ping(&self) -> Result<()> {
        let mut c = self.rconn().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    // ------------------------------------------------------------ experiments

    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "Invalid experiment name: '' (must be non-empty)",
            ));
        }
        let mut tx = self.tx().await?;
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists > 0 {
            return Err(Error::already_exists(format!(
                "Experiment(name={name}) already exists."
            )));
        }
        let now = now_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.unwrap_or(""))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique(&e) {
                Error::already_exists(format!("Experiment(name={name}) already exists."))
            } else {
                db_err(e)
            }
        })?;
        let location = match artifact_location.filter(|l| !l.is_empty()) {
            Some(l) => l.to_string(),
            None => format!("{}/{id}", self.artifact_root),
        };
        sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
            .bind(location.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for t in tags {
            sqlx::query(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(|e| {
            if is_unique(&e) {
                Error::already_exists(format!("Experiment(name={name}) already exists."))
            } else {
                db_err(e)
            }
        })?;
        Ok(id.to_string())
    }

    async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        let n = parse_exp_id(id).ok_or_else(|| exp_not_found(id))?;
        let mut c = self.rconn().await?;
        load::experiments(&mut c, &[n])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| exp_not_found(id))
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let mut c = self.rconn().await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *c)
                .await
                .map_err(db_err)?;
        match id {
            Some(id) => Ok(load::experiments(&mut c, &[id]).await?.into_iter().next()),
            None => Ok(None),
        }
    }

    async fn search_experiments(&self, q: &SearchQuery) -> Result<Page<Experiment>> {
        let clauses = search::parse_filter_for(Target::Experiments, &q.filter)?;
        let order = search::parse_order_by_for(Target::Experiments, &q.order_by)?;
        let offset = decode_page_token(q.page_token.as_deref())?;
        let limit = page_limit(q.max_results);
        let sql =
            query::experiments_query(self.dialect, q.view_type, &clauses, &order, offset, limit)?;
        let mut c = self.rconn().await?;
        let ids: Vec<i64> = sql
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| get_i(r, "experiment_id"))
            .collect::<Result<_>>()?;
        let items = load::experiments(&mut c, &ids).await?;
        Ok(paginate(items, offset, limit))
    }

    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        if new_name.trim().is_empty() {
            return Err(Error::invalid(
                "Invalid experiment name: '' (must be non-empty)",
            ));
        }
        let mut tx = self.tx().await?;
        let (n, stage, _) = Self::exp_state(&mut tx, id).await?;
        if stage != "active" {
            return Err(Error::invalid_state(
                "Cannot rename a non-active experiment.",
            ));
        }
        let taken: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM experiments WHERE name = $1 AND experiment_id <> $2",
        )
        .bind(new_name)
        .bind(n)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if taken > 0 {
            return Err(Error::already_exists(format!(
                "Experiment(name={new_name}) already exists."
            )));
        }
        sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now_millis())
        .bind(n)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique(&e) {
                Error::already_exists(format!("Experiment(name={new_name}) already exists."))
            } else {
                db_err(e)
            }
        })?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_experiment(&self, id: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let (n, stage, _) = Self::exp_state(&mut tx, id).await?;
        if stage != "active" {
            return Err(Error::invalid_state(format!(
                "The experiment {id} is already deleted."
            )));
        }
        let now = now_millis();
        sqlx::query("UPDATE experiments SET lifecycle_stage = 'deleted', last_update_time = $1 WHERE experiment_id = $2")
            .bind(now)
            .bind(n)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 \
             WHERE experiment_id = $2 AND lifecycle_stage = 'active'",
        )
        .bind(now)
        .bind(n)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn restore_experiment(&self, id: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let (n, stage, _) = Self::exp_state(&mut tx, id).await?;
        if stage == "active" {
            return Err(Error::invalid_state("Cannot restore an active experiment."));
        }
        let deleted_at: i64 =
            sqlx::query_scalar("SELECT last_update_time FROM experiments WHERE experiment_id = $1")
                .bind(n)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        sqlx::query("UPDATE experiments SET lifecycle_stage = 'active', last_update_time = $1 WHERE experiment_id = $2")
            .bind(now_millis())
            .bind(n)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Runs deleted together with the experiment (not before it) come back.
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL \
             WHERE experiment_id = $1 AND lifecycle_stage = 'deleted' AND deleted_time >= $2",
        )
        .bind(n)
        .bind(deleted_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_experiment_tag(&self, id: &str, key: &str, value: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let (n, stage, _) = Self::exp_state(&mut tx, id).await?;
        if stage != "active" {
            return Err(Error::invalid_state(format!(
                "The experiment {id} must be in the 'active' state. Current state is {stage}."
            )));
        }
        sqlx::query(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(n)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let (n, stage, _) = Self::exp_state(&mut tx, id).await?;
        if stage != "active" {
            return Err(Error::invalid_state(format!(
                "The experiment {id} must be in the 'active' state. Current state is {stage}."
            )));
        }
        let res = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(n)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {id}"
            )));
        }
        tx.commit().await.map_err(db_err)
    }

    // ------------------------------------------------------------ runs

    async fn create_run(&self, run: NewRun) -> Result<Run> {
        let mut tx = self.tx().await?;
        let (exp, stage, location) = Self::exp_state(&mut tx, &run.experiment_id).await?;
        if stage != "active" {
            return Err(Error::invalid_state(format!(
                "The experiment {} must be in the 'active' state. Current state is {stage}.",
                run.experiment_id
            )));
        }
        let tag_name = run
            .tags
            .iter()
            .rev()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.clone());
        let name = match (
            run.run_name.filter(|n| !n.is_empty()),
            tag_name.filter(|n| !n.is_empty()),
        ) {
            (Some(n), Some(t)) if n != t => {
                return Err(Error::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values \
                     (run_name='{n}', mlflow.runName='{t}')."
                )));
            }
            (Some(n), _) => n,
            (None, Some(t)) => t,
            (None, None) => random_name(),
        };
        let run_id = new_id();
        let artifact_uri = format!("{}/{run_id}/artifacts", location.trim_end_matches('/'));
        sqlx::query(
            "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, deleted_time, \
             artifact_uri, lifecycle_stage) VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, NULL, $6, 'active')",
        )
        .bind(run_id.as_str())
        .bind(name.as_str())
        .bind(exp)
        .bind(run.user_id.as_str())
        .bind(run.start_time)
        .bind(artifact_uri.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut tags: BTreeMap<&str, &str> = BTreeMap::new();
        for t in &run.tags {
            tags.insert(t.key.as_str(), t.value.as_str());
        }
        tags.insert(RUN_NAME_TAG, name.as_str());
        for (k, v) in tags {
            Self::upsert_run_tag(&mut tx, &run_id, k, v).await?;
        }
        let out = Self::get_run_in(&mut tx, &run_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let mut c = self.rconn().await?;
        Self::get_run_in(&mut c, run_id).await
    }

    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        let mut tx = self.tx().await?;
        Self::active_run(&mut tx, run_id).await?;
        if let Some(s) = status {
            sqlx::query("UPDATE runs SET status = $1 WHERE run_uuid = $2")
                .bind(s.as_str())
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if let Some(t) = end_time {
            sqlx::query("UPDATE runs SET end_time = $1 WHERE run_uuid = $2")
                .bind(t)
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if let Some(n) = run_name.filter(|n| !n.is_empty()) {
            Self::upsert_run_tag(&mut tx, run_id, RUN_NAME_TAG, n).await?;
        }
        let run = Self::get_run_in(&mut tx, run_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(run.info)
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::run_state(&mut tx, run_id).await?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 WHERE run_uuid = $2",
        )
        .bind(now_millis())
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::run_state(&mut tx, run_id).await?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_uuid = $1",
        )
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()> {
        // In-batch validation first (no database needed).
        let mut uniq_params: BTreeMap<&str, &str> = BTreeMap::new();
        for p in params {
            if let Some(prev) = uniq_params.insert(p.key.as_str(), p.value.as_str()) {
                if prev != p.value {
                    return Err(Error::invalid(format!(
                        "Duplicate parameter keys have been submitted with different values: key='{}' \
                         values '{prev}' and '{}'",
                        p.key, p.value
                    )));
                }
            }
        }
        let mut uniq_tags: BTreeMap<&str, &str> = BTreeMap::new();
        for t in tags {
            uniq_tags.insert(t.key.as_str(), t.value.as_str());
        }
        // Latest value per key within this batch: max by (step, timestamp, value).
        let mut latest: BTreeMap<&str, &Metric> = BTreeMap::new();
        for m in metrics {
            let better = match latest.get(m.key.as_str()) {
                None => true,
                Some(cur) => {
                    let a = (m.step, m.timestamp);
                    let b = (cur.step, cur.timestamp);
                    a > b || (a == b && store_value(m.value).0 > store_value(cur.value).0)
                }
            };
            if better {
                latest.insert(m.key.as_str(), m);
            }
        }
        let mut sorted_metrics: Vec<&Metric> = metrics.iter().collect();
        sorted_metrics.sort_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then(a.step.cmp(&b.step))
                .then(a.timestamp.cmp(&b.timestamp))
        });

        let mut tx = self.tx().await?;
        let st = Self::active_run(&mut tx, run_id).await?;

        for m in &sorted_metrics {
            let (v, is_nan) = store_value(m.value);
            sqlx::query(
                "INSERT INTO metrics (run_uuid, key, value, ts, step, is_nan, model_id, dataset_name, dataset_digest) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(run_id)
            .bind(m.key.as_str())
            .bind(v)
            .bind(m.timestamp)
            .bind(m.step)
            .bind(is_nan)
            .bind(m.model_id.as_deref())
            .bind(m.dataset_name.as_deref())
            .bind(m.dataset_digest.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(model_id) = m.model_id.as_deref().filter(|s| !s.is_empty()) {
                sqlx::query(
                    "INSERT INTO logged_model_metrics (model_id, key, ts, step, run_id, value, is_nan, experiment_id, \
                     dataset_name, dataset_digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (model_id, key, ts, step, run_id) DO UPDATE SET value = excluded.value, \
                     is_nan = excluded.is_nan",
                )
                .bind(model_id)
                .bind(m.key.as_str())
                .bind(m.timestamp)
                .bind(m.step)
                .bind(run_id)
                .bind(v)
                .bind(is_nan)
                .bind(st.experiment_id)
                .bind(m.dataset_name.as_deref())
                .bind(m.dataset_digest.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        for (key, m) in &latest {
            let (v, is_nan) = store_value(m.value);
            sqlx::query(
                "INSERT INTO latest_metrics (run_uuid, key, value, ts, step, is_nan) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, \
                 step = excluded.step, is_nan = excluded.is_nan \
                 WHERE excluded.step > latest_metrics.step \
                 OR (excluded.step = latest_metrics.step AND excluded.ts > latest_metrics.ts) \
                 OR (excluded.step = latest_metrics.step AND excluded.ts = latest_metrics.ts \
                     AND excluded.value > latest_metrics.value)",
            )
            .bind(run_id)
            .bind(*key)
            .bind(v)
            .bind(m.timestamp)
            .bind(m.step)
            .bind(is_nan)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for (key, value) in &uniq_params {
            let res = sqlx::query(
                "INSERT INTO params (run_uuid, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_uuid, key) DO NOTHING",
            )
            .bind(run_id)
            .bind(*key)
            .bind(*value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if res.rows_affected() == 0 {
                let old: String =
                    sqlx::query_scalar("SELECT value FROM params WHERE run_uuid = $1 AND key = $2")
                        .bind(run_id)
                        .bind(*key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_err)?;
                if old != *value {
                    return Err(Error::invalid(format!(
                        "Changing param values is not allowed. Param with key='{key}' was already logged with \
                         value='{old}' for run ID='{run_id}'. Attempted logging new value '{value}'."
                    )));
                }
            }
        }
        for (key, value) in &uniq_tags {
            Self::upsert_run_tag(&mut tx, run_id, key, value).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::active_run(&mut tx, run_id).await?;
        let res = sqlx::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelInput],
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        let st = Self::active_run(&mut tx, run_id).await?;
        for di in datasets {
            let d = &di.dataset;
            sqlx::query(
                "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema_json, profile) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (experiment_id, name, digest) DO NOTHING",
            )
            .bind(new_id())
            .bind(st.experiment_id)
            .bind(d.name.as_str())
            .bind(d.digest.as_str())
            .bind(d.source_type.as_str())
            .bind(d.source.as_str())
            .bind(d.schema.as_deref())
            .bind(d.profile.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            let ds_id: String = sqlx::query_scalar(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
            )
            .bind(st.experiment_id)
            .bind(d.name.as_str())
            .bind(d.digest.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            let seq: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM dataset_inputs WHERE run_uuid = $1")
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO dataset_inputs (run_uuid, dataset_uuid, seq) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_uuid, dataset_uuid) DO NOTHING",
            )
            .bind(run_id)
            .bind(ds_id.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            for t in &di.tags {
                sqlx::query(
                    "INSERT INTO input_tags (run_uuid, dataset_uuid, key, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (run_uuid, dataset_uuid, key) DO UPDATE SET value = excluded.value",
                )
                .bind(run_id)
                .bind(ds_id.as_str())
                .bind(t.key.as_str())
                .bind(t.value.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        for m in models {
            let seq: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM run_model_inputs WHERE run_uuid = $1")
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO run_model_inputs (run_uuid, model_id, seq) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_uuid, model_id) DO NOTHING",
            )
            .bind(run_id)
            .bind(m.model_id.as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn log_outputs(&self, run_id: &str, models: &[ModelOutput]) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::active_run(&mut tx, run_id).await?;
        for m in models {
            let seq: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM run_model_outputs WHERE run_uuid = $1")
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO run_model_outputs (run_uuid, model_id, step, seq) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(m.model_id.as_str())
            .bind(m.step)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: usize,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        let offset = decode_page_token(page_token)?;
        let mut c = self.rconn().await?;
        Self::run_state(&mut c, run_id).await?;
        let limit = if max_results == 0 {
            i64::MAX as usize - 1
        } else {
            max_results
        };
        let rows = sqlx::query(
            "SELECT key, value, ts, step, is_nan, model_id, dataset_name, dataset_digest FROM metrics \
             WHERE run_uuid = $1 AND key = $2 ORDER BY step, ts, is_nan, value LIMIT $3 OFFSET $4",
        )
        .bind(run_id)
        .bind(key)
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .bind(offset as i64)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            items.push(Metric {
                key: get_s(&r, "key")?,
                value: super::util::load_value(get_f(&r, "value")?, get_i(&r, "is_nan")?),
                timestamp: get_i(&r, "ts")?,
                step: get_i(&r, "step")?,
                model_id: super::util::get_os(&r, "model_id")?,
                dataset_name: super::util::get_os(&r, "dataset_name")?,
                dataset_digest: super::util::get_os(&r, "dataset_digest")?,
                run_id: None,
            });
        }
        Ok(paginate(items, offset, limit))
    }

    async fn search_runs(&self, experiment_ids: &[String], q: &SearchQuery) -> Result<Page<Run>> {
        let clauses = search::parse_filter_for(Target::Runs, &q.filter)?;
        let order = search::parse_order_by_for(Target::Runs, &q.order_by)?;
        let offset = decode_page_token(q.page_token.as_deref())?;
        let limit = page_limit(q.max_results);
        let exp_ids: Vec<i64> = experiment_ids
            .iter()
            .filter_map(|e| parse_exp_id(e))
            .collect();
        if exp_ids.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        let sql = query::runs_query(
            self.dialect,
            &exp_ids,
            q.view_type,
            &clauses,
            &order,
            offset,
            limit,
        )?;
        let mut c = self.rconn().await?;
        let ids: Vec<String> = sql
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| get_s(r, "run_uuid"))
            .collect::<Result<_>>()?;
        let items = load::runs(&mut c, &ids).await?;
        Ok(paginate(items, offset, limit))
    }

    // ------------------------------------------------------------ registered models

    async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[Tag],
        user_id: Option<&str>,
    ) -> Result<RegisteredModel> {
        if name.is_empty() {
            return Err(Error::invalid("Registered model name cannot be empty."));
        }
        let exists_err =
            || Error::already_exists(format!("Registered Model (name={name}) already exists."));
        let mut tx = self.tx().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if n > 0 {
            return Err(exists_err());
        }
        let now = now_millis();
        sqlx::query(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, description, user_id, next_version) \
             VALUES ($1, $2, $2, $3, $4, 1)",
        )
        .bind(name)
        .bind(now)
        .bind(description)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| if is_unique(&e) { exists_err() } else { db_err(e) })?;
        for t in tags {
            sqlx::query(
                "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let rm = load::registered_model(&mut tx, name)
            .await?
            .ok_or_else(|| rm_not_found(name))?;
        tx.commit().await.map_err(|e| {
            if is_unique(&e) {
                exists_err()
            } else {
                db_err(e)
            }
        })?;
        Ok(rm)
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let mut c = self.rconn().await?;
        load::registered_model(&mut c, name)
            .await?
            .ok_or_else(|| rm_not_found(name))
    }

    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        if new_name.is_empty() {
            return Err(Error::invalid("Registered model name cannot be empty."));
        }
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        if name != new_name {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM registered_models WHERE name = $1")
                    .bind(new_name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if n > 0 {
                return Err(Error::already_exists(format!(
                    "Registered Model (name={new_name}) already exists."
                )));
            }
            let now = now_millis();
            // Foreign keys cascade the new name to versions, tags and aliases.
            sqlx::query(
                "UPDATE registered_models SET name = $1, last_updated_time = $2 WHERE name = $3",
            )
            .bind(new_name)
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique(&e) {
                    Error::already_exists(format!(
                        "Registered Model (name={new_name}) already exists."
                    ))
                } else {
                    db_err(e)
                }
            })?;
            sqlx::query("UPDATE model_versions SET last_updated_time = $1 WHERE name = $2")
                .bind(now)
                .bind(new_name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let rm = load::registered_model(&mut tx, new_name)
            .await?
            .ok_or_else(|| rm_not_found(new_name))?;
        tx.commit().await.map_err(db_err)?;
        Ok(rm)
    }

    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        sqlx::query(
            "UPDATE registered_models SET description = $1, last_updated_time = $2 WHERE name = $3",
        )
        .bind(description)
        .bind(now_millis())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let rm = load::registered_model(&mut tx, name)
            .await?
            .ok_or_else(|| rm_not_found(name))?;
        tx.commit().await.map_err(db_err)?;
        Ok(rm)
    }

    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        for sql in [
            "DELETE FROM registered_model_aliases WHERE name = $1",
            "DELETE FROM model_version_tags WHERE name = $1",
            "DELETE FROM model_versions WHERE name = $1",
            "DELETE FROM registered_model_tags WHERE name = $1",
            "DELETE FROM registered_models WHERE name = $1",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn search_registered_models(&self, q: &SearchQuery) -> Result<Page<RegisteredModel>> {
        let clauses = search::parse_filter_for(Target::RegisteredModels, &q.filter)?;
        let order = search::parse_order_by_for(Target::RegisteredModels, &q.order_by)?;
        let offset = decode_page_token(q.page_token.as_deref())?;
        let limit = page_limit(q.max_results);
        let sql = query::registered_models_query(self.dialect, &clauses, &order, offset, limit)?;
        let mut c = self.rconn().await?;
        let names: Vec<String> = sql
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| get_s(r, "name"))
            .collect::<Result<_>>()?;
        let mut items = Vec::with_capacity(names.len());
        for n in names {
            if let Some(rm) = load::registered_model(&mut c, &n).await? {
                items.push(rm);
            }
        }
        Ok(paginate(items, offset, limit))
    }

    async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        sqlx::query(
            "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        Self::touch_rm(&mut tx, name, now_millis()).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        Self::check_alias(alias)?;
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        let v = Self::mv_exists(&mut tx, name, version).await?;
        sqlx::query(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(alias)
        .bind(v)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        Self::touch_rm(&mut tx, name, now_millis()).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::rm_exists(&mut tx, name).await?;
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let mut c = self.rconn().await?;
        Self::rm_exists(&mut c, name).await?;
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        let v = v.ok_or_else(|| {
            Error::not_found(format!("Registered model alias {alias} not found."))
        })?;
        load::model_version(&mut c, name, v)
            .await?
            .ok_or_else(|| mv_not_found(name, &v.to_string()))
    }

    async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let mut wanted = Vec::new();
        for s in stages {
            let st = canonical_stage(s).ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
                ))
            })?;
            wanted.push(st);
        }
        let mut c = self.rconn().await?;
        Self::rm_exists(&mut c, name).await?;
        load::latest_versions(
            &mut c,
            name,
            if wanted.is_empty() {
                None
            } else {
                Some(&wanted)
            },
        )
        .await
    }

    // ------------------------------------------------------------ model versions

    async fn create_model_version(&self, mv: NewModelVersion) -> Result<ModelVersion> {
        let mut tx = self.tx().await?;
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_version FROM registered_models WHERE name = $1")
                .bind(mv.name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let version = next.ok_or_else(|| rm_not_found(&mv.name))?;
        let now = now_millis();
        sqlx::query("UPDATE registered_models SET next_version = $1, last_updated_time = $2 WHERE name = $3")
            .bind(version + 1)
            .bind(now)
            .bind(mv.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, \
             current_stage, source, run_id, run_link, status, status_message, model_id) \
             VALUES ($1, $2, $3, $3, $4, $5, 'None', $6, $7, $8, 'READY', NULL, $9)",
        )
        .bind(mv.name.as_str())
        .bind(version)
        .bind(now)
        .bind(mv.description.as_deref())
        .bind(mv.user_id.as_deref())
        .bind(mv.source.as_str())
        .bind(mv.run_id.as_deref().filter(|s| !s.is_empty()))
        .bind(mv.run_link.as_deref().filter(|s| !s.is_empty()))
        .bind(mv.model_id.as_deref().filter(|s| !s.is_empty()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for t in &mv.tags {
            sqlx::query(
                "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
            )
            .bind(mv.name.as_str())
            .bind(version)
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let out = load::model_version(&mut tx, &mv.name, version)
            .await?
            .ok_or_else(|| mv_not_found(&mv.name, &version.to_string()))?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let mut c = self.rconn().await?;
        Self::get_mv_in(&mut c, name, version).await
    }

    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let mut tx = self.tx().await?;
        let v = Self::mv_exists(&mut tx, name, version).await?;
        sqlx::query("UPDATE model_versions SET description = $1, last_updated_time = $2 WHERE name = $3 AND version = $4")
            .bind(description)
            .bind(now_millis())
            .bind(name)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let out = Self::get_mv_in(&mut tx, name, version).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let v = Self::mv_exists(&mut tx, name, version).await?;
        for sql in [
            "DELETE FROM registered_model_aliases WHERE name = $1 AND version = $2",
            "DELETE FROM model_version_tags WHERE name = $1 AND version = $2",
            "DELETE FROM model_versions WHERE name = $1 AND version = $2",
        ] {
            sqlx::query(sql)
                .bind(name)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        Self::touch_rm(&mut tx, name, now_millis()).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let st = canonical_stage(stage).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
            ))
        })?;
        if archive_existing && !matches!(st, "Staging" | "Production") {
            return Err(Error::invalid(format!(
                "Model version transition cannot archive existing model versions because '{st}' is not an Active \
                 stage. Valid stages are Staging, Production"
            )));
        }
        let mut tx = self.tx().await?;
        let v = Self::mv_exists(&mut tx, name, version).await?;
        let now = now_millis();
        if archive_existing {
            sqlx::query(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $1 \
                 WHERE name = $2 AND current_stage = $3 AND version <> $4",
            )
            .bind(now)
            .bind(name)
            .bind(st)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query(
            "UPDATE model_versions SET current_stage = $1, last_updated_time = $2 WHERE name = $3 AND version = $4",
        )
        .bind(st)
        .bind(now)
        .bind(name)
        .bind(v)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        Self::touch_rm(&mut tx, name, now).await?;
        let out = Self::get_mv_in(&mut tx, name, version).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn search_model_versions(&self, q: &SearchQuery) -> Result<Page<ModelVersion>> {
        let clauses = search::parse_filter_for(Target::ModelVersions, &q.filter)?;
        let order = search::parse_order_by_for(Target::ModelVersions, &q.order_by)?;
        let offset = decode_page_token(q.page_token.as_deref())?;
        let limit = page_limit(q.max_results);
        let sql = query::model_versions_query(self.dialect, &clauses, &order, offset, limit)?;
        let mut c = self.rconn().await?;
        let keys: Vec<(String, i64)> = sql
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| Ok((get_s(r, "name")?, get_i(r, "version")?)))
            .collect::<Result<_>>()?;
        let items = load::model_versions(&mut c, &keys).await?;
        Ok(paginate(items, offset, limit))
    }

    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        let v = Self::mv_exists(&mut tx, name, version).await?;
        sqlx::query(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(v)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let v = Self::mv_exists(&mut tx, name, version).await?;
        sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(v)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    // ------------------------------------------------------------ logged models

    async fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel> {
        let mut tx = self.tx().await?;
        let (exp, stage, location) = Self::exp_state(&mut tx, &model.experiment_id).await?;
        if stage != "active" {
            return Err(Error::invalid_state(format!(
                "The experiment {} must be in the 'active' state. Current state is {stage}.",
                model.experiment_id
            )));
        }
        if let Some(run_id) = model.source_run_id.as_deref().filter(|s| !s.is_empty()) {
            Self::run_state(&mut tx, run_id).await?;
        }
        let model_id = format!("m-{}", new_id());
        let name = model
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(random_name);
        let artifact_uri = format!(
            "{}/models/{model_id}/artifacts",
            location.trim_end_matches('/')
        );
        let now = now_millis();
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_uri, creation_time, last_updated_time, \
             status, lifecycle_stage, model_type, source_run_id, status_message, creator_id) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, 'active', $7, $8, NULL, $9)",
        )
        .bind(model_id.as_str())
        .bind(exp)
        .bind(name.as_str())
        .bind(artifact_uri.as_str())
        .bind(now)
        .bind(LoggedModelStatus::Pending.as_str())
        .bind(model.model_type.as_deref())
        .bind(model.source_run_id.as_deref().filter(|s| !s.is_empty()))
        .bind(model.creator_id.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for p in &model.params {
            sqlx::query(
                "INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(model_id.as_str())
            .bind(p.key.as_str())
            .bind(p.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for t in &model.tags {
            sqlx::query(
                "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(model_id.as_str())
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let out = load::logged_model(&mut tx, &model_id)
            .await?
            .ok_or_else(|| lm_not_found(&model_id))?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let mut c = self.rconn().await?;
        load::logged_model(&mut c, model_id)
            .await?
            .ok_or_else(|| lm_not_found(model_id))
    }

    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let mut tx = self.tx().await?;
        Self::lm_exists(&mut tx, model_id).await?;
        sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_time = $2 WHERE model_id = $3",
        )
        .bind(status.as_str())
        .bind(now_millis())
        .bind(model_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let out = load::logged_model(&mut tx, model_id)
            .await?
            .ok_or_else(|| lm_not_found(model_id))?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::lm_exists(&mut tx, model_id).await?;
        for t in tags {
            sqlx::query(
                "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(model_id)
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query("UPDATE logged_models SET last_updated_time = $1 WHERE model_id = $2")
            .bind(now_millis())
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::lm_exists(&mut tx, model_id).await?;
        let res = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with key {key} found for model with ID {model_id}."
            )));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        Self::lm_exists(&mut tx, model_id).await?;
        sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_time = $1 WHERE model_id = $2")
            .bind(now_millis())
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        q: &SearchQuery,
    ) -> Result<Page<LoggedModel>> {
        let clauses = search::parse_filter_for(Target::LoggedModels, &q.filter)?;
        let order = search::parse_order_by_for(Target::LoggedModels, &q.order_by)?;
        let offset = decode_page_token(q.page_token.as_deref())?;
        let limit = page_limit(q.max_results);
        let exp_ids: Vec<i64> = experiment_ids
            .iter()
            .filter_map(|e| parse_exp_id(e))
            .collect();
        if exp_ids.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        let sql =
            query::logged_models_query(self.dialect, &exp_ids, &clauses, &order, offset, limit)?;
        let mut c = self.rconn().await?;
        let ids: Vec<String> = sql
            .query()
            .fetch_all(&mut *c)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| get_s(r, "model_id"))
            .collect::<Result<_>>()?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = load::logged_model(&mut c, &id).await? {
                items.push(m);
            }
        }
        Ok(paginate(items, offset, limit))
    }

    // ------------------------------------------------------------ artifact digests

    async fn put_artifact_digest(&self, digest: &ArtifactDigest) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO artifact_digests (path, sha256, size) VALUES ($1, $2, $3) \
             ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size",
        )
        .bind(digest.path.as_str())
        .bind(digest.sha256.as_str())
        .bind(digest.size)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_artifact_digests(&self, prefix: &str) -> Result<Vec<ArtifactDigest>> {
        let mut c = self.rconn().await?;
        let rows = match prefix_upper_bound(prefix) {
            Some(upper) if !prefix.is_empty() => {
                sqlx::query("SELECT path, sha256, size FROM artifact_digests WHERE path >= $1 AND path < $2 ORDER BY path")
                    .bind(prefix)
                    .bind(upper)
                    .fetch_all(&mut *c)
                    .await
            }
            _ => {
                sqlx::query("SELECT path, sha256, size FROM artifact_digests WHERE path >= $1 ORDER BY path")
                    .bind(prefix)
                    .fetch_all(&mut *c)
                    .await
            }
        }
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let path = get_s(&r, "path")?;
            if path.starts_with(prefix) {
                out.push(ArtifactDigest {
                    path,
                    sha256: get_s(&r, "sha256")?,
                    size: get_i(&r, "size")?,
                });
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------ tokens

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let scopes =
            serde_json::to_string(&token.scopes).map_err(|e| Error::internal(e.to_string()))?;
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, secret_hash, scopes, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.as_str())
        .bind(token.name.as_str())
        .bind(token.secret_hash.as_str())
        .bind(scopes)
        .bind(token.created_at)
        .bind(token.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique(&e) {
                Error::already_exists(format!("Token with id={} (or the same secret) already exists", token.id))
            } else {
                db_err(e)
            }
        })?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut c = self.rconn().await?;
        let rows = sqlx::query(
            "SELECT id, name, secret_hash, scopes, created_at, revoked_at FROM api_tokens ORDER BY created_at DESC, id",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn find_token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>> {
        let mut c = self.rconn().await?;
        let row = sqlx::query(
            "SELECT id, name, secret_hash, scopes, created_at, revoked_at FROM api_tokens \
             WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn revoke_token(&self, id: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(Error::not_found(format!("Token with id={id} not found")));
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM sessions WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    // ------------------------------------------------------------ sessions

    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        let mut tx = self.tx().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_tokens WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(session.token_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if n == 0 {
            return Err(Error::not_found(format!(
                "Token with id={} not found or revoked",
                session.token_id
            )));
        }
        sqlx::query(
            "INSERT INTO sessions (id_hash, token_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(session.id_hash.as_str())
        .bind(session.token_id.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique(&e) {
                Error::already_exists("A session with this id already exists")
            } else {
                db_err(e)
            }
        })?;
        tx.commit().await.map_err(db_err)
    }

    async fn find_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<(SessionRecord, TokenRecord)>> {
        let mut c = self.rconn().await?;
        let row = sqlx::query(
            "SELECT s.id_hash, s.token_id, s.created_at AS session_created_at, s.expires_at, \
             t.id, t.name, t.secret_hash, t.scopes, t.created_at, t.revoked_at \
             FROM sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        let Some(r) = row else {
            return Ok(None);
        };
        let session = SessionRecord {
            id_hash: get_s(&r, "id_hash")?,
            token_id: get_s(&r, "token_id")?,
            created_at: get_i(&r, "session_created_at")?,
            expires_at: get_i(&r, "expires_at")?,
        };
        Ok(Some((session, token_from_row(&r)?)))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let mut tx = self.tx().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    // ------------------------------------------------------------ settings

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let mut c = self.rconn().await?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    // ------------------------------------------------------------ leases

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.tx().await?;
        let res = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms.max(0)))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(res.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_lease(&self, name: &str) -> Result<Option<LeaseRecord>> {
        let mut c = self.rconn().await?;
        let row = sqlx::query("SELECT name, holder, expires_at FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(LeaseRecord {
                name: get_s(&r, "name")?,
                holder: get_s(&r, "holder")?,
                expires_at: get_i(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    // ------------------------------------------------------------ backup runs

    async fn record_backup_run(&self, run: &BackupRunRecord) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO backup_runs (id, started_at, finished_at, result, started_by, holder, location, \
             backup_id, size_bytes, copied_bytes, pruned, verified, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&run.id)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.result.as_str())
        .bind(&run.started_by)
        .bind(&run.holder)
        .bind(&run.location)
        .bind(run.backup_id.clone())
        .bind(run.size_bytes)
        .bind(run.copied_bytes)
        .bind(run.pruned)
        .bind(run.verified.map(i64::from))
        .bind(run.error.clone())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique(&e) {
                Error::already_exists(format!("A backup run with id '{}' is already recorded", run.id))
            } else {
                db_err(e)
            }
        })?;
        tx.commit().await.map_err(db_err)
    }

    async fn backup_run_summary(&self) -> Result<BackupRunSummary> {
        const COLUMNS: &str = "id, started_at, finished_at, result, started_by, holder, location, \
             backup_id, size_bytes, copied_bytes, pruned, verified, error";
        let mut c = self.rconn().await?;
        let latest = |filter: &'static str| {
            format!("SELECT {COLUMNS} FROM backup_runs {filter} ORDER BY finished_at DESC, id DESC LIMIT 1")
        };
        let mut one = Vec::new();
        for filter in ["", "WHERE result = 'success'", "WHERE verified IS NOT NULL"] {
            let row = sqlx::query(&latest(filter))
                .fetch_optional(&mut *c)
                .await
                .map_err(db_err)?;
            one.push(row.map(|r| backup_run_from_row(&r)).transpose()?);
        }
        let totals = sqlx::query(
            "SELECT \
               CAST(COALESCE(SUM(CASE WHEN result = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT) AS successes, \
               CAST(COALESCE(SUM(CASE WHEN result = 'failure' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failures, \
               CAST(COALESCE(SUM(copied_bytes), 0) AS BIGINT) AS copied_bytes, \
               CAST(COALESCE(SUM(pruned), 0) AS BIGINT) AS pruned \
             FROM backup_runs",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(db_err)?;
        let mut one = one.into_iter();
        Ok(BackupRunSummary {
            last: one.next().flatten(),
            last_success: one.next().flatten(),
            last_verified: one.next().flatten(),
            successes: get_i(&totals, "successes")?,
            failures: get_i(&totals, "failures")?,
            copied_bytes: get_i(&totals, "copied_bytes")?,
            pruned: get_i(&totals, "pruned")?,
        })
    }

    // ------------------------------------------------------------ rollouts

    async fn create_rollout(&self, r: &RolloutRecord) -> Result<()> {
        let mut tx = self.tx().await?;
        let res = sqlx::query(
            "INSERT INTO rollouts (id, deployment, state, active, body, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.deployment)
        .bind(&r.state)
        .bind(i64::from(r.active))
        .bind(r.body.to_string())
        .bind(r.revision)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => tx.commit().await.map_err(db_err),
            Err(e) if is_unique(&e) => Err(Error::already_exists(format!(
                "Deployment '{}' already has an active rollout; finish, abort or promote it first",
                r.deployment
            ))),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn get_rollout(&self, id: &str) -> Result<RolloutRecord> {
        let mut c = self.rconn().await?;
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLS} FROM rollouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => rollout_from_row(&r),
            None => Err(Error::not_found(format!("Rollout '{id}' not found"))),
        }
    }

    async fn list_rollouts(&self, deployment: &str) -> Result<Vec<RolloutRecord>> {
        let mut c = self.rconn().await?;
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLS} FROM rollouts WHERE deployment = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(deployment)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        rows.iter().map(rollout_from_row).collect()
    }

    async fn active_rollouts(&self) -> Result<Vec<RolloutRecord>> {
        let mut c = self.rconn().await?;
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLS} FROM rollouts WHERE active = 1 ORDER BY created_at, id"
        ))
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        rows.iter().map(rollout_from_row).collect()
    }

    async fn update_rollout(&self, r: &RolloutRecord) -> Result<RolloutRecord> {
        let now = now_millis();
        let mut tx = self.tx().await?;
        let res = sqlx::query(
            "UPDATE rollouts SET state = $1, active = $2, body = $3, revision = revision + 1, updated_at = $4 \
             WHERE id = $5 AND revision = $6",
        )
        .bind(&r.state)
        .bind(i64::from(r.active))
        .bind(r.body.to_string())
        .bind(now)
        .bind(&r.id)
        .bind(r.revision)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if res.rows_affected() != 1 {
            return Err(Error::invalid_state(format!(
                "Rollout '{}' was changed concurrently (revision {} is no longer current)",
                r.id, r.revision
            )));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(RolloutRecord {
            revision: r.revision + 1,
            updated_at: now,
            ..r.clone()
        })
    }

    async fn put_rollout_stats(
        &self,
        rollout_id: &str,
        step: i64,
        replica: &str,
        payload: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO rollout_stats (rollout_id, step, replica, payload, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (rollout_id, step, replica) DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at",
        )
        .bind(rollout_id)
        .bind(step)
        .bind(replica)
        .bind(payload.to_string())
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_rollout_stats(
        &self,
        rollout_id: &str,
        step: i64,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let mut c = self.rconn().await?;
        let rows = sqlx::query(
            "SELECT replica, payload FROM rollout_stats WHERE rollout_id = $1 AND step = $2 ORDER BY replica",
        )
        .bind(rollout_id)
        .bind(step)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let payload = serde_json::from_str(&get_s(r, "payload")?).map_err(|e| {
                    tracing::error!(error = %e, "corrupt rollout statistics");
                    Error::internal("Corrupt rollout statistics")
                })?;
                Ok((get_s(r, "replica")?, payload))
            })
            .collect()
    }

    // ------------------------------------------------------------ deployments

    async fn put_deployment(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<DeploymentRecord> {
        if name.is_empty() {
            return Err(Error::invalid("Deployment name cannot be empty."));
        }
        let text = spec.to_string();
        let now = now_millis();
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO deployments (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let rec = deployment(&mut tx, name).await?;
        tx.commit().await.map_err(db_err)?;
        rec.ok_or_else(|| Error::not_found(format!("Deployment '{name}' not found")))
    }

    async fn get_deployment(&self, name: &str) -> Result<DeploymentRecord> {
        let mut c = self.rconn().await?;
        deployment(&mut c, name)
            .await?
            .ok_or_else(|| Error::not_found(format!("Deployment '{name}' not found")))
    }

    async fn list_deployments(&self) -> Result<Vec<DeploymentRecord>> {
        let mut c = self.rconn().await?;
        let rows =
            sqlx::query("SELECT name, spec, created_at, updated_at FROM deployments ORDER BY name")
                .fetch_all(&mut *c)
                .await
                .map_err(db_err)?;
        rows.iter().map(deployment_from_row).collect()
    }

    async fn delete_deployment(&self, name: &str) -> Result<()> {
        let mut tx = self.tx().await?;
        let res = sqlx::query("DELETE FROM deployments WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("Deployment '{name}' not found")));
        }
        tx.commit().await.map_err(db_err)
    }
}

fn backup_run_from_row(r: &sqlx::any::AnyRow) -> Result<BackupRunRecord> {
    let result = get_s(r, "result")?;
    Ok(BackupRunRecord {
        id: get_s(r, "id")?,
        started_at: get_i(r, "started_at")?,
        finished_at: get_i(r, "finished_at")?,
        result: BackupRunResult::parse(&result).ok_or_else(|| {
            tracing::error!(result, "corrupt backup run record");
            Error::internal("Corrupt backup run record")
        })?,
        started_by: get_s(r, "started_by")?,
        holder: get_s(r, "holder")?,
        location: get_s(r, "location")?,
        backup_id: get_os(r, "backup_id")?,
        size_bytes: get_oi(r, "size_bytes")?,
        copied_bytes: get_i(r, "copied_bytes")?,
        pruned: get_i(r, "pruned")?,
        verified: get_oi(r, "verified")?.map(|v| v != 0),
        error: get_os(r, "error")?,
    })
}

fn token_from_row(r: &sqlx::any::AnyRow) -> Result<TokenRecord> {
    let scopes_text = get_s(r, "scopes")?;
    let scopes: Vec<String> = serde_json::from_str(&scopes_text).map_err(|e| {
        tracing::error!(error = %e, "corrupt token scopes");
        Error::internal("Corrupt token record")
    })?;
    Ok(TokenRecord {
        id: get_s(r, "id")?,
        name: get_s(r, "name")?,
        secret_hash: get_s(r, "secret_hash")?,
        scopes,
        created_at: get_i(r, "created_at")?,
        revoked_at: get_oi(r, "revoked_at")?,
    })
}

const ROLLOUT_COLS: &str = "id, deployment, state, active, body, revision, created_at, updated_at";

fn rollout_from_row(r: &sqlx::any::AnyRow) -> Result<RolloutRecord> {
    let body = serde_json::from_str(&get_s(r, "body")?).map_err(|e| {
        tracing::error!(error = %e, "corrupt rollout record");
        Error::internal("Corrupt rollout record")
    })?;
    Ok(RolloutRecord {
        id: get_s(r, "id")?,
        deployment: get_s(r, "deployment")?,
        state: get_s(r, "state")?,
        active: get_i(r, "active")? != 0,
        body,
        revision: get_i(r, "revision")?,
        created_at: get_i(r, "created_at")?,
        updated_at: get_i(r, "updated_at")?,
    })
}

fn deployment_from_row(r: &sqlx::any::AnyRow) -> Result<DeploymentRecord> {
    let spec_text = get_s(r, "spec")?;
    let spec = serde_json::from_str(&spec_text).map_err(|e| {
        tracing::error!(error = %e, "corrupt deployment spec");
        Error::internal("Corrupt deployment record")
    })?;
    Ok(DeploymentRecord {
        name: get_s(r, "name")?,
        spec,
        created_at: get_i(r, "created_at")?,
        updated_at: get_i(r, "updated_at")?,
    })
}

async fn deployment(conn: &mut AnyConnection, name: &str) -> Result<Option<DeploymentRecord>> {
    let row =
        sqlx::query("SELECT name, spec, created_at, updated_at FROM deployments WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    row.as_ref().map(deployment_from_row).transpose()
}
