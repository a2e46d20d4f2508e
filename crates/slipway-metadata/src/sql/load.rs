//! Loading full entities (with tags, metrics, aliases, ...) from rows.

use std::collections::HashMap;

use slipway_core::{
    Dataset, DatasetInput, Experiment, LoggedModel, LoggedModelData, LoggedModelInfo,
    LoggedModelStatus, Metric, ModelInput, ModelOutput, ModelVersion, Param, RegisteredModel,
    RegisteredModelAlias, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, Tag, STAGES,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::util::{db_err, get_f, get_i, get_oi, get_os, get_s, load_value, Sql};
use crate::Result;

/// Chunk size for `IN (...)` lists.
const CHUNK: usize = 400;

async fn fetch(conn: &mut AnyConnection, sql: &Sql) -> Result<Vec<AnyRow>> {
    sql.query().fetch_all(&mut *conn).await.map_err(db_err)
}

// ------------------------------------------------------------ experiments

pub(crate) const EXP_COLS: &str =
    "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

/// Loads experiments by id, in the order given (missing ids skipped).
pub(crate) async fn experiments(conn: &mut AnyConnection, ids: &[i64]) -> Result<Vec<Experiment>> {
    let mut by_id: HashMap<i64, Experiment> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = Sql::new(&format!(
            "SELECT {EXP_COLS} FROM experiments e WHERE e.experiment_id IN ("
        ));
        let ps: Vec<String> = chunk.iter().map(|i| q.i(*i)).collect();
        q.push(&ps.join(", ")).push(")");
        for row in fetch(conn, &q).await? {
            let id = get_i(&row, "experiment_id")?;
            by_id.insert(
                id,
                Experiment {
                    experiment_id: id.to_string(),
                    name: get_s(&row, "name")?,
                    artifact_location: get_s(&row, "artifact_location")?,
                    lifecycle_stage: get_s(&row, "lifecycle_stage")?,
                    last_update_time: get_i(&row, "last_update_time")?,
                    creation_time: get_i(&row, "creation_time")?,
                    tags: Vec::new(),
                },
            );
        }
        let mut q = Sql::new(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN (",
        );
        let ps: Vec<String> = chunk.iter().map(|i| q.i(*i)).collect();
        q.push(&ps.join(", ")).push(") ORDER BY key");
        for row in fetch(conn, &q).await? {
            if let Some(e) = by_id.get_mut(&get_i(&row, "experiment_id")?) {
                e.tags.push(Tag {
                    key: get_s(&row, "key")?,
                    value: get_s(&row, "value")?,
                });
            }
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

// ------------------------------------------------------------ runs

fn in_list(q: &mut Sql, ids: &[String]) -> String {
    q.list(ids)
}

/// Loads full runs (latest metrics, params, tags, inputs, outputs) in the order given.
pub(crate) async fn runs(conn: &mut AnyConnection, ids: &[String]) -> Result<Vec<Run>> {
    let mut by_id: HashMap<String, Run> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = Sql::new(
            "SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage \
             FROM runs WHERE run_uuid IN ",
        );
        let l = in_list(&mut q, chunk);
        q.push(&l);
        for row in fetch(conn, &q).await? {
            let id = get_s(&row, "run_uuid")?;
            let status = get_s(&row, "status")?;
            let info = RunInfo {
                run_id: id.clone(),
                run_uuid: id.clone(),
                run_name: get_s(&row, "name")?,
                experiment_id: get_i(&row, "experiment_id")?.to_string(),
                user_id: get_s(&row, "user_id")?,
                status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
                start_time: get_i(&row, "start_time")?,
                end_time: get_oi(&row, "end_time")?,
                artifact_uri: get_s(&row, "artifact_uri")?,
                lifecycle_stage: get_s(&row, "lifecycle_stage")?,
            };
            by_id.insert(
                id,
                Run {
                    info,
                    data: RunData::default(),
                    inputs: RunInputs::default(),
                    outputs: RunOutputs::default(),
                },
            );
        }
        if by_id.is_empty() {
            continue;
        }
        let mut q = Sql::new(
            "SELECT run_uuid, key, value, ts, step, is_nan FROM latest_metrics WHERE run_uuid IN ",
        );
        let l = in_list(&mut q, chunk);
        q.push(&l).push(" ORDER BY key");
        for row in fetch(conn, &q).await? {
            if let Some(r) = by_id.get_mut(&get_s(&row, "run_uuid")?) {
                r.data.metrics.push(Metric {
                    key: get_s(&row, "key")?,
                    value: load_value(get_f(&row, "value")?, get_i(&row, "is_nan")?),
                    timestamp: get_i(&row, "ts")?,
                    step: get_i(&row, "step")?,
                    model_id: None,
                    dataset_name: None,
                    dataset_digest: None,
                    run_id: None,
                });
            }
        }
        for (table, is_param) in [("params", true), ("tags", false)] {
            let mut q = Sql::new(&format!(
                "SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN "
            ));
            let l = in_list(&mut q, chunk);
            q.push(&l).push(" ORDER BY key");
            for row in fetch(conn, &q).await? {
                if let Some(r) = by_id.get_mut(&get_s(&row, "run_uuid")?) {
                    let (key, value) = (get_s(&row, "key")?, get_s(&row, "value")?);
                    if is_param {
                        r.data.params.push(Param { key, value });
                    } else {
                        r.data.tags.push(Tag { key, value });
                    }
                }
            }
        }
        // Dataset inputs with their tags.
        let mut q = Sql::new(
            "SELECT di.run_uuid, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema_json, d.profile \
             FROM dataset_inputs di JOIN datasets d ON d.dataset_uuid = di.dataset_uuid WHERE di.run_uuid IN ",
        );
        let l = in_list(&mut q, chunk);
        q.push(&l).push(" ORDER BY di.run_uuid, di.seq");
        let mut ds_index: HashMap<(String, String), usize> = HashMap::new();
        for row in fetch(conn, &q).await? {
            let run_id = get_s(&row, "run_uuid")?;
            if let Some(r) = by_id.get_mut(&run_id) {
                ds_index.insert(
                    (run_id, get_s(&row, "dataset_uuid")?),
                    r.inputs.dataset_inputs.len(),
                );
                r.inputs.dataset_inputs.push(DatasetInput {
                    tags: Vec::new(),
                    dataset: Dataset {
                        name: get_s(&row, "name")?,
                        digest: get_s(&row, "digest")?,
                        source_type: get_s(&row, "source_type")?,
                        source: get_s(&row, "source")?,
                        schema: get_os(&row, "schema_json")?,
                        profile: get_os(&row, "profile")?,
                    },
                });
            }
        }
        if !ds_index.is_empty() {
            let mut q = Sql::new(
                "SELECT run_uuid, dataset_uuid, key, value FROM input_tags WHERE run_uuid IN ",
            );
            let l = in_list(&mut q, chunk);
            q.push(&l).push(" ORDER BY key");
            for row in fetch(conn, &q).await? {
                let run_id = get_s(&row, "run_uuid")?;
                let k = (run_id.clone(), get_s(&row, "dataset_uuid")?);
                if let (Some(idx), Some(r)) = (ds_index.get(&k), by_id.get_mut(&run_id)) {
                    r.inputs.dataset_inputs[*idx].tags.push(Tag {
                        key: get_s(&row, "key")?,
                        value: get_s(&row, "value")?,
                    });
                }
            }
        }
        let mut q = Sql::new("SELECT run_uuid, model_id FROM run_model_inputs WHERE run_uuid IN ");
        let l = in_list(&mut q, chunk);
        q.push(&l).push(" ORDER BY run_uuid, seq");
        for row in fetch(conn, &q).await? {
            if let Some(r) = by_id.get_mut(&get_s(&row, "run_uuid")?) {
                r.inputs.model_inputs.push(ModelInput {
                    model_id: get_s(&row, "model_id")?,
                });
            }
        }
        let mut q =
            Sql::new("SELECT run_uuid, model_id, step FROM run_model_outputs WHERE run_uuid IN ");
        let l = in_list(&mut q, chunk);
        q.push(&l).push(" ORDER BY run_uuid, seq");
        for row in fetch(conn, &q).await? {
            if let Some(r) = by_id.get_mut(&get_s(&row, "run_uuid")?) {
                r.outputs.model_outputs.push(ModelOutput {
                    model_id: get_s(&row, "model_id")?,
                    step: get_i(&row, "step")?,
                });
            }
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

// ------------------------------------------------------------ registry

const MV_COLS: &str = "name, version, creation_time, last_updated_time, description, user_id, current_stage, source, \
                       run_id, run_link, status, status_message, model_id";

fn mv_from_row(row: &AnyRow) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: get_s(row, "name")?,
        version: get_i(row, "version")?.to_string(),
        creation_timestamp: get_i(row, "creation_time")?,
        last_updated_timestamp: get_i(row, "last_updated_time")?,
        user_id: get_os(row, "user_id")?,
        current_stage: get_s(row, "current_stage")?,
        description: get_os(row, "description")?,
        source: get_s(row, "source")?,
        run_id: get_os(row, "run_id")?,
        status: get_s(row, "status")?,
        status_message: get_os(row, "status_message")?,
        tags: Vec::new(),
        run_link: get_os(row, "run_link")?,
        aliases: Vec::new(),
        model_id: get_os(row, "model_id")?,
    })
}

/// Loads model versions by (name, version), in the order given, with tags and aliases.
pub(crate) async fn model_versions(
    conn: &mut AnyConnection,
    keys: &[(String, i64)],
) -> Result<Vec<ModelVersion>> {
    let mut out = Vec::with_capacity(keys.len());
    for (name, version) in keys {
        let mut q = Sql::new(&format!(
            "SELECT {MV_COLS} FROM model_versions WHERE name = "
        ));
        let p = q.s(name);
        q.push(&p).push(" AND version = ");
        let p = q.i(*version);
        q.push(&p);
        let Some(row) = fetch(conn, &q).await?.into_iter().next() else {
            continue;
        };
        let mut mv = mv_from_row(&row)?;
        let rows = sqlx::query("SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2 ORDER BY key")
            .bind(name.as_str())
            .bind(*version)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        for r in rows {
            mv.tags.push(Tag {
                key: get_s(&r, "key")?,
                value: get_s(&r, "value")?,
            });
        }
        let rows =
            sqlx::query("SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2 ORDER BY alias")
                .bind(name.as_str())
                .bind(*version)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
        for r in rows {
            mv.aliases.push(get_s(&r, "alias")?);
        }
        out.push(mv);
    }
    Ok(out)
}

/// Loads one model version.
pub(crate) async fn model_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<Option<ModelVersion>> {
    Ok(model_versions(conn, &[(name.to_string(), version)])
        .await?
        .into_iter()
        .next())
}

/// Latest version in each stage (stages in canonical order), restricted to `stages` when given.
pub(crate) async fn latest_versions(
    conn: &mut AnyConnection,
    name: &str,
    stages: Option<&[&'static str]>,
) -> Result<Vec<ModelVersion>> {
    let rows = sqlx::query("SELECT current_stage, MAX(version) AS v FROM model_versions WHERE name = $1 GROUP BY current_stage")
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut per_stage: HashMap<String, i64> = HashMap::new();
    for r in rows {
        per_stage.insert(get_s(&r, "current_stage")?, get_i(&r, "v")?);
    }
    let wanted: Vec<&str> = match stages {
        Some(s) => s.to_vec(),
        None => STAGES.to_vec(),
    };
    let mut keys = Vec::new();
    for st in STAGES {
        if wanted.contains(&st) {
            if let Some(v) = per_stage.get(st) {
                keys.push((name.to_string(), *v));
            }
        }
    }
    model_versions(conn, &keys).await
}

/// Loads a registered model with latest versions, tags and aliases.
pub(crate) async fn registered_model(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<RegisteredModel>> {
    let Some(row) = sqlx::query(
        "SELECT name, creation_time, last_updated_time, description, user_id FROM registered_models WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    else {
        return Ok(None);
    };
    let mut rm = RegisteredModel {
        name: get_s(&row, "name")?,
        creation_timestamp: get_i(&row, "creation_time")?,
        last_updated_timestamp: get_i(&row, "last_updated_time")?,
        user_id: get_os(&row, "user_id")?,
        description: get_os(&row, "description")?,
        latest_versions: Vec::new(),
        tags: Vec::new(),
        aliases: Vec::new(),
    };
    let rows =
        sqlx::query("SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key")
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    for r in rows {
        rm.tags.push(Tag {
            key: get_s(&r, "key")?,
            value: get_s(&r, "value")?,
        });
    }
    let rows = sqlx::query(
        "SELECT alias, version FROM registered_model_aliases WHERE name = $1 ORDER BY alias",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    for r in rows {
        rm.aliases.push(RegisteredModelAlias {
            alias: get_s(&r, "alias")?,
            version: get_i(&r, "version")?.to_string(),
        });
    }
    rm.latest_versions = latest_versions(conn, name, None).await?;
    Ok(Some(rm))
}

// ------------------------------------------------------------ logged models

/// Loads an active (not deleted) logged model with tags, params and metrics.
pub(crate) async fn logged_model(
    conn: &mut AnyConnection,
    model_id: &str,
) -> Result<Option<LoggedModel>> {
    let Some(row) = sqlx::query(
        "SELECT model_id, experiment_id, name, artifact_uri, creation_time, last_updated_time, status, model_type, \
         source_run_id, status_message, creator_id FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
    )
    .bind(model_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    else {
        return Ok(None);
    };
    let status = get_s(&row, "status")?;
    let mut info = LoggedModelInfo {
        model_id: get_s(&row, "model_id")?,
        experiment_id: get_i(&row, "experiment_id")?.to_string(),
        name: get_s(&row, "name")?,
        creation_timestamp_ms: get_i(&row, "creation_time")?,
        last_updated_timestamp_ms: get_i(&row, "last_updated_time")?,
        artifact_uri: get_s(&row, "artifact_uri")?,
        status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Pending),
        creator_id: get_os(&row, "creator_id")?,
        model_type: get_os(&row, "model_type")?,
        source_run_id: get_os(&row, "source_run_id")?,
        status_message: get_os(&row, "status_message")?,
        tags: Vec::new(),
    };
    let rows =
        sqlx::query("SELECT key, value FROM logged_model_tags WHERE model_id = $1 ORDER BY key")
            .bind(model_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    for r in rows {
        info.tags.push(Tag {
            key: get_s(&r, "key")?,
            value: get_s(&r, "value")?,
        });
    }
    let mut data = LoggedModelData::default();
    let rows =
        sqlx::query("SELECT key, value FROM logged_model_params WHERE model_id = $1 ORDER BY key")
            .bind(model_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    for r in rows {
        data.params.push(Param {
            key: get_s(&r, "key")?,
            value: get_s(&r, "value")?,
        });
    }
    let rows = sqlx::query(
        "SELECT key, value, is_nan, ts, step, run_id, dataset_name, dataset_digest FROM logged_model_metrics \
         WHERE model_id = $1 ORDER BY key, step, ts",
    )
    .bind(model_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    for r in rows {
        data.metrics.push(Metric {
            key: get_s(&r, "key")?,
            value: load_value(get_f(&r, "value")?, get_i(&r, "is_nan")?),
            timestamp: get_i(&r, "ts")?,
            step: get_i(&r, "step")?,
            model_id: Some(model_id.to_string()),
            dataset_name: get_os(&r, "dataset_name")?,
            dataset_digest: get_os(&r, "dataset_digest")?,
            run_id: Some(get_s(&r, "run_id")?),
        });
    }
    Ok(Some(LoggedModel { info, data }))
}
