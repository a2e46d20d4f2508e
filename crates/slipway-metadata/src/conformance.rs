//! The conformance suite every [`MetadataStore`] must pass.
//!
//! [`run_all`] runs every check; the individual `pub async fn`s can be run on
//! their own. Checks panic (with a message saying what differed) on failure,
//! so they are meant to be called from tests. They create uniquely named
//! entities and only assert on those, so they can share a database with
//! other data — except that the `Default` experiment must exist.

#![allow(clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use slipway_core::ids::new_id;
use slipway_core::{
    now_millis, Dataset, DatasetInput, ErrorCode, LoggedModelStatus, Metric, ModelInput,
    ModelOutput, Param, Run, RunStatus, Tag,
};

use crate::search::{self, Clause, Comparator, Entity, FilterValue, OrderBy, Target};
use crate::{
    ArtifactDigest, BackupRunRecord, BackupRunResult, MetadataStore, NewLoggedModel,
    NewModelVersion, NewRun, Result, SearchQuery, SessionRecord, TokenRecord, ViewType,
};

/// Runs every check of the suite against `store`.
pub async fn run_all(store: Arc<dyn MetadataStore>) {
    let s: &dyn MetadataStore = store.as_ref();
    s.ping().await.expect("ping");
    default_experiment(s).await;
    experiments(s).await;
    search_experiments(s).await;
    runs_lifecycle(s).await;
    log_batch_semantics(s).await;
    nan_and_infinity(s).await;
    metric_history_paging(s).await;
    inputs_and_outputs(s).await;
    search_runs_reference(s).await;
    search_errors(s).await;
    registry(s).await;
    search_registry(s).await;
    logged_models(s).await;
    artifact_digests(s).await;
    tokens(s).await;
    sessions(s).await;
    settings_and_deployments(s).await;
    rollouts(s).await;
    backup_runs(s).await;
    leases(store.clone()).await;
    concurrent_log_batch(store.clone()).await;
}

fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}", &new_id()[..12])
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(r: Result<T>, code: ErrorCode, what: &str) -> String {
    match r {
        Ok(v) => panic!("{what}: expected error {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(
                e.code, code,
                "{what}: wrong error code (message: {})",
                e.message
            );
            e.message
        }
    }
}

fn metric(key: &str, value: f64, ts: i64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp: ts,
        step,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    }
}

fn param(k: &str, v: &str) -> Param {
    Param {
        key: k.into(),
        value: v.into(),
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

fn q(filter: &str, order_by: &[&str], max_results: usize) -> SearchQuery {
    SearchQuery {
        filter: filter.into(),
        order_by: order_by.iter().map(|s| s.to_string()).collect(),
        max_results,
        page_token: None,
        view_type: ViewType::ActiveOnly,
    }
}

async fn new_exp(s: &dyn MetadataStore, prefix: &str) -> String {
    s.create_experiment(&uniq(prefix), None, &[])
        .await
        .expect("create experiment")
}

async fn new_run(s: &dyn MetadataStore, exp: &str, name: Option<&str>) -> Run {
    s.create_run(NewRun {
        experiment_id: exp.into(),
        user_id: "tester".into(),
        run_name: name.map(str::to_string),
        start_time: now_millis(),
        tags: vec![],
    })
    .await
    .expect("create run")
}

/// The `Default` experiment (id `0`) exists with its artifact location.
pub async fn default_experiment(s: &dyn MetadataStore) {
    let e = s.get_experiment("0").await.expect("default experiment");
    assert_eq!(e.name, "Default");
    assert!(
        e.artifact_location.ends_with("/0"),
        "default artifact location: {}",
        e.artifact_location
    );
    let by_name = s
        .get_experiment_by_name("Default")
        .await
        .expect("by name")
        .expect("default exists");
    assert_eq!(by_name.experiment_id, "0");
}

/// Experiment CRUD, tags, delete/restore cascading to runs, errors.
pub async fn experiments(s: &dyn MetadataStore) {
    let name = uniq("exp");
    let id = s
        .create_experiment(&name, None, &[tag("k1", "v1"), tag("k2", "v2")])
        .await
        .expect("create experiment");
    assert!(
        id.bytes().all(|b| b.is_ascii_digit()),
        "experiment ids are decimal: {id}"
    );
    let e = s.get_experiment(&id).await.expect("get");
    assert_eq!(e.name, name);
    assert_eq!(e.lifecycle_stage, "active");
    assert!(
        e.artifact_location.ends_with(&format!("/{id}")),
        "artifact location: {}",
        e.artifact_location
    );
    assert_eq!(tag_of(&e.tags, "k1"), Some("v1"));
    assert!(e.creation_time > 0 && e.last_update_time >= e.creation_time);

    let custom = s
        .create_experiment(&uniq("exp-loc"), Some("s3://bucket/path"), &[])
        .await
        .expect("custom location");
    assert_eq!(
        s.get_experiment(&custom)
            .await
            .expect("get")
            .artifact_location,
        "s3://bucket/path"
    );

    assert_code(
        s.create_experiment(&name, None, &[]).await,
        ErrorCode::ResourceAlreadyExists,
        "duplicate name",
    );
    let msg = assert_code(
        s.get_experiment("999999999").await,
        ErrorCode::ResourceDoesNotExist,
        "unknown id",
    );
    assert!(
        msg.contains("No Experiment with id=999999999 exists"),
        "{msg}"
    );
    assert_code(
        s.get_experiment("abc").await,
        ErrorCode::ResourceDoesNotExist,
        "non-numeric id",
    );
    assert!(s
        .get_experiment_by_name(&uniq("nope"))
        .await
        .expect("by name")
        .is_none());

    // Tags.
    s.set_experiment_tag(&id, "k1", "v1b")
        .await
        .expect("set tag");
    s.set_experiment_tag(&id, "k3", "")
        .await
        .expect("set empty tag");
    s.delete_experiment_tag(&id, "k2")
        .await
        .expect("delete tag");
    assert_code(
        s.delete_experiment_tag(&id, "k2").await,
        ErrorCode::ResourceDoesNotExist,
        "delete missing tag",
    );
    let e = s.get_experiment(&id).await.expect("get");
    assert_eq!(tag_of(&e.tags, "k1"), Some("v1b"));
    assert_eq!(tag_of(&e.tags, "k3"), Some(""));
    assert_eq!(tag_of(&e.tags, "k2"), None);

    // Rename.
    let other = s
        .create_experiment(&uniq("exp-other"), None, &[])
        .await
        .expect("create");
    let other_name = s.get_experiment(&other).await.expect("get").name;
    assert_code(
        s.rename_experiment(&id, &other_name).await,
        ErrorCode::ResourceAlreadyExists,
        "rename to taken",
    );
    let new_name = uniq("exp-renamed");
    s.rename_experiment(&id, &new_name).await.expect("rename");
    assert_eq!(s.get_experiment(&id).await.expect("get").name, new_name);
    assert_eq!(
        s.get_experiment_by_name(&new_name)
            .await
            .expect("by name")
            .expect("found")
            .experiment_id,
        id
    );
    assert_code(
        s.rename_experiment("999999999", "x").await,
        ErrorCode::ResourceDoesNotExist,
        "rename unknown",
    );

    // Delete cascades to runs; restore brings back only those.
    let r1 = new_run(s, &id, None).await;
    let r2 = new_run(s, &id, None).await;
    s.delete_run(&r2.info.run_id).await.expect("delete run 2");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.delete_experiment(&id).await.expect("delete experiment");
    let e = s.get_experiment(&id).await.expect("get deleted");
    assert_eq!(e.lifecycle_stage, "deleted");
    assert_eq!(
        s.get_run(&r1.info.run_id)
            .await
            .expect("run")
            .info
            .lifecycle_stage,
        "deleted"
    );
    assert!(
        s.get_experiment_by_name(&new_name)
            .await
            .expect("by name")
            .is_some(),
        "deleted still found by name"
    );
    assert_code(
        s.create_experiment(&new_name, None, &[]).await,
        ErrorCode::ResourceAlreadyExists,
        "deleted name",
    );
    assert_code(
        s.create_run(NewRun {
            experiment_id: id.clone(),
            user_id: "u".into(),
            ..Default::default()
        })
        .await,
        ErrorCode::InvalidState,
        "create run in deleted experiment",
    );
    assert_code(
        s.log_batch(&r1.info.run_id, &[metric("m", 1.0, 1, 0)], &[], &[])
            .await,
        ErrorCode::InvalidParameterValue,
        "log to run of deleted experiment",
    );
    assert_code(
        s.set_experiment_tag(&id, "a", "b").await,
        ErrorCode::InvalidState,
        "tag deleted experiment",
    );
    s.restore_experiment(&id).await.expect("restore");
    assert_eq!(
        s.get_experiment(&id).await.expect("get").lifecycle_stage,
        "active"
    );
    assert_eq!(
        s.get_run(&r1.info.run_id)
            .await
            .expect("run")
            .info
            .lifecycle_stage,
        "active"
    );
    assert_eq!(
        s.get_run(&r2.info.run_id)
            .await
            .expect("run")
            .info
            .lifecycle_stage,
        "deleted",
        "a run deleted before its experiment stays deleted"
    );
    assert_code(
        s.restore_experiment(&id).await,
        ErrorCode::InvalidState,
        "restore active",
    );
    assert_code(
        s.delete_experiment("999999999").await,
        ErrorCode::ResourceDoesNotExist,
        "delete unknown",
    );
}

/// `search_experiments`: filters, order, view types and paging.
pub async fn search_experiments(s: &dyn MetadataStore) {
    let prefix = uniq("sx");
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = s
            .create_experiment(
                &format!("{prefix}-{i}"),
                None,
                &[tag("grp", if i % 2 == 0 { "even" } else { "odd" })],
            )
            .await
            .expect("create");
        ids.push(id);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    s.delete_experiment(&ids[4]).await.expect("delete");
    let like = format!("name LIKE '{prefix}-%'");
    let all = collect_experiments(s, &like, &[], ViewType::ActiveOnly, 2).await;
    // Default order: creation_time DESC.
    assert_eq!(
        all,
        vec![
            ids[3].clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );
    let asc = collect_experiments(s, &like, &["name ASC"], ViewType::ActiveOnly, 3).await;
    assert_eq!(asc, ids[..4].to_vec());
    let even = collect_experiments(
        s,
        &format!("{like} AND tags.grp = 'even'"),
        &["name"],
        ViewType::All,
        10,
    )
    .await;
    assert_eq!(even, vec![ids[0].clone(), ids[2].clone(), ids[4].clone()]);
    let deleted = collect_experiments(s, &like, &[], ViewType::DeletedOnly, 10).await;
    assert_eq!(deleted, vec![ids[4].clone()]);
    let upper = format!("attributes.name ILIKE '{}-%'", prefix.to_uppercase());
    assert_eq!(
        collect_experiments(s, &upper, &["name"], ViewType::ActiveOnly, 10).await,
        ids[..4].to_vec()
    );
    let case_sensitive = format!("name LIKE '{}-%'", prefix.to_uppercase());
    assert!(
        collect_experiments(s, &case_sensitive, &[], ViewType::All, 10)
            .await
            .is_empty(),
        "LIKE is case-sensitive"
    );
    let created = s.get_experiment(&ids[2]).await.expect("get").creation_time;
    let newer = collect_experiments(
        s,
        &format!("{like} AND creation_time >= {created}"),
        &["name"],
        ViewType::All,
        10,
    )
    .await;
    assert!(
        newer.contains(&ids[2]) && newer.contains(&ids[3]) && !newer.contains(&ids[0]),
        "{newer:?}"
    );
    assert_code(
        s.search_experiments(&q("metrics.a > 1", &[], 10)).await,
        ErrorCode::InvalidParameterValue,
        "metrics in experiment filter",
    );
}

async fn collect_experiments(
    s: &dyn MetadataStore,
    filter: &str,
    order: &[&str],
    view: ViewType,
    page: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut query = q(filter, order, page);
    query.view_type = view;
    for _ in 0..1000 {
        let p = s
            .search_experiments(&query)
            .await
            .expect("search experiments");
        assert!(p.items.len() <= page);
        out.extend(p.items.into_iter().map(|e| e.experiment_id));
        match p.next_page_token {
            Some(t) => query.page_token = Some(t),
            None => return out,
        }
    }
    panic!("search_experiments paging does not terminate");
}

/// Run creation, naming, update, delete/restore, tags and errors.
pub async fn runs_lifecycle(s: &dyn MetadataStore) {
    let exp = new_exp(s, "runs").await;
    let loc = s.get_experiment(&exp).await.expect("exp").artifact_location;

    let r = new_run(s, &exp, None).await;
    assert_eq!(r.info.run_id.len(), 32, "run ids are 32 hex");
    assert!(slipway_core::ids::is_hex_id(&r.info.run_id));
    assert_eq!(r.info.run_uuid, r.info.run_id);
    assert_eq!(r.info.status, RunStatus::Running);
    assert_eq!(r.info.lifecycle_stage, "active");
    assert_eq!(r.info.experiment_id, exp);
    assert_eq!(
        r.info.artifact_uri,
        format!("{loc}/{}/artifacts", r.info.run_id)
    );
    let parts: Vec<&str> = r.info.run_name.split('-').collect();
    assert!(
        parts.len() == 3 && parts[2].parse::<u32>().is_ok(),
        "generated run name: {}",
        r.info.run_name
    );
    assert_eq!(
        tag_of(&r.data.tags, "mlflow.runName"),
        Some(r.info.run_name.as_str())
    );

    let named = new_run(s, &exp, Some("my-run")).await;
    assert_eq!(named.info.run_name, "my-run");
    assert_eq!(tag_of(&named.data.tags, "mlflow.runName"), Some("my-run"));

    let by_tag = s
        .create_run(NewRun {
            experiment_id: exp.clone(),
            user_id: "u".into(),
            run_name: None,
            start_time: 5,
            tags: vec![
                tag("mlflow.runName", "from-tag"),
                tag("mlflow.source.name", "x.py"),
            ],
        })
        .await
        .expect("create with tag");
    assert_eq!(by_tag.info.run_name, "from-tag");
    assert_eq!(by_tag.info.start_time, 5);
    assert_eq!(
        tag_of(&by_tag.data.tags, "mlflow.source.name"),
        Some("x.py")
    );

    let info = s
        .update_run(
            &r.info.run_id,
            Some(RunStatus::Finished),
            Some(12345),
            Some("renamed"),
        )
        .await
        .expect("update run");
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.end_time, Some(12345));
    assert_eq!(info.run_name, "renamed");
    let got = s.get_run(&r.info.run_id).await.expect("get");
    assert_eq!(got.info, info);
    assert_eq!(tag_of(&got.data.tags, "mlflow.runName"), Some("renamed"));
    let info = s
        .update_run(&r.info.run_id, None, None, None)
        .await
        .expect("noop update");
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.run_name, "renamed");

    // Setting the runName tag renames the run.
    s.log_batch(
        &named.info.run_id,
        &[],
        &[],
        &[tag("mlflow.runName", "via-tag")],
    )
    .await
    .expect("tag");
    assert_eq!(
        s.get_run(&named.info.run_id)
            .await
            .expect("get")
            .info
            .run_name,
        "via-tag"
    );

    // Tags.
    s.log_batch(&r.info.run_id, &[], &[], &[tag("t1", "a"), tag("t2", "b")])
        .await
        .expect("tags");
    s.log_batch(&r.info.run_id, &[], &[], &[tag("t1", "a2")])
        .await
        .expect("overwrite tag");
    s.delete_run_tag(&r.info.run_id, "t2")
        .await
        .expect("delete tag");
    assert_code(
        s.delete_run_tag(&r.info.run_id, "t2").await,
        ErrorCode::ResourceDoesNotExist,
        "delete missing tag",
    );
    let got = s.get_run(&r.info.run_id).await.expect("get");
    assert_eq!(tag_of(&got.data.tags, "t1"), Some("a2"));
    assert_eq!(tag_of(&got.data.tags, "t2"), None);

    // Delete / restore.
    s.delete_run(&r.info.run_id).await.expect("delete");
    assert_eq!(
        s.get_run(&r.info.run_id)
            .await
            .expect("get deleted")
            .info
            .lifecycle_stage,
        "deleted"
    );
    assert_code(
        s.log_batch(&r.info.run_id, &[metric("m", 1.0, 1, 0)], &[], &[])
            .await,
        ErrorCode::InvalidParameterValue,
        "log to deleted run",
    );
    assert_code(
        s.update_run(&r.info.run_id, Some(RunStatus::Failed), None, None)
            .await,
        ErrorCode::InvalidParameterValue,
        "update deleted run",
    );
    s.restore_run(&r.info.run_id).await.expect("restore");
    assert_eq!(
        s.get_run(&r.info.run_id)
            .await
            .expect("get")
            .info
            .lifecycle_stage,
        "active"
    );

    // Unknown ids.
    let unknown = new_id();
    let msg = assert_code(
        s.get_run(&unknown).await,
        ErrorCode::ResourceDoesNotExist,
        "get unknown run",
    );
    assert!(
        msg.contains(&format!("Run with id={unknown} not found")),
        "{msg}"
    );
    assert_code(
        s.delete_run(&unknown).await,
        ErrorCode::ResourceDoesNotExist,
        "delete unknown run",
    );
    assert_code(
        s.restore_run(&unknown).await,
        ErrorCode::ResourceDoesNotExist,
        "restore unknown run",
    );
    assert_code(
        s.log_batch(&unknown, &[], &[], &[]).await,
        ErrorCode::ResourceDoesNotExist,
        "log unknown run",
    );
    assert_code(
        s.update_run(&unknown, None, None, None).await,
        ErrorCode::ResourceDoesNotExist,
        "update unknown run",
    );
    assert_code(
        s.get_metric_history(&unknown, "m", 10, None).await,
        ErrorCode::ResourceDoesNotExist,
        "history of unknown run",
    );
    assert_code(
        s.create_run(NewRun {
            experiment_id: "999999999".into(),
            ..Default::default()
        })
        .await,
        ErrorCode::ResourceDoesNotExist,
        "run in unknown experiment",
    );
}

/// `log_batch`: params immutability, latest metrics, duplicates.
pub async fn log_batch_semantics(s: &dyn MetadataStore) {
    let exp = new_exp(s, "batch").await;
    let r = new_run(s, &exp, None).await;
    let id = r.info.run_id.as_str();
    s.log_batch(id, &[], &[param("lr", "0.1"), param("bs", "32")], &[])
        .await
        .expect("params");
    s.log_batch(id, &[], &[param("lr", "0.1")], &[])
        .await
        .expect("same param value again");
    let msg = assert_code(
        s.log_batch(id, &[], &[param("lr", "0.2")], &[]).await,
        ErrorCode::InvalidParameterValue,
        "changed param",
    );
    assert!(
        msg.contains("lr") && msg.contains("0.1") && msg.contains("0.2"),
        "message names key and values: {msg}"
    );
    // The failed batch is atomic: nothing else from it is applied.
    assert_code(
        s.log_batch(
            id,
            &[metric("atomic", 1.0, 1, 0)],
            &[param("new", "x"), param("lr", "0.3")],
            &[tag("atomic", "1")],
        )
        .await,
        ErrorCode::InvalidParameterValue,
        "changed param in mixed batch",
    );
    let got = s.get_run(id).await.expect("get");
    assert!(
        got.data.metrics.iter().all(|m| m.key != "atomic"),
        "failed batch left a metric"
    );
    assert!(
        got.data.params.iter().all(|p| p.key != "new"),
        "failed batch left a param"
    );
    assert_eq!(
        tag_of(&got.data.tags, "atomic"),
        None,
        "failed batch left a tag"
    );
    let mut params: Vec<(String, String)> = got
        .data
        .params
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    params.sort();
    assert_eq!(
        params,
        vec![("bs".into(), "32".into()), ("lr".into(), "0.1".into())]
    );

    // Latest metric: max by (step, timestamp, value).
    s.log_batch(
        id,
        &[
            metric("loss", 5.0, 100, 0),
            metric("loss", 4.0, 200, 1),
            metric("loss", 9.0, 50, 2),
            metric("loss", 3.0, 40, 2),
            metric("acc", 0.5, 10, 3),
            metric("acc", 0.7, 10, 3),
            metric("acc", 0.6, 10, 3),
        ],
        &[],
        &[],
    )
    .await
    .expect("metrics");
    // An older observation logged later does not replace the latest one.
    s.log_batch(id, &[metric("loss", 1.0, 1000, 1)], &[], &[])
        .await
        .expect("older step");
    // Duplicates (same key/timestamp/step/value) do not fail, within and across batches.
    s.log_batch(
        id,
        &[metric("dup", 1.0, 1, 1), metric("dup", 1.0, 1, 1)],
        &[],
        &[],
    )
    .await
    .expect("dup in batch");
    s.log_batch(id, &[metric("dup", 1.0, 1, 1)], &[], &[])
        .await
        .expect("dup across batches");
    let got = s.get_run(id).await.expect("get");
    let m = |k: &str| {
        got.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .cloned()
            .expect("metric present")
    };
    let loss = m("loss");
    assert_eq!((loss.step, loss.timestamp, loss.value), (2, 50, 9.0));
    let acc = m("acc");
    assert_eq!((acc.step, acc.timestamp, acc.value), (3, 10, 0.7));
    assert_eq!(
        got.data.metrics.iter().filter(|m| m.key == "loss").count(),
        1,
        "one latest value per key"
    );
    let hist = s
        .get_metric_history(id, "loss", 0, None)
        .await
        .expect("history");
    assert_eq!(hist.items.len(), 5);
    let steps: Vec<i64> = hist.items.iter().map(|m| m.step).collect();
    assert_eq!(
        steps,
        vec![0, 1, 1, 2, 2],
        "history ordered by step then timestamp"
    );
    assert_eq!(hist.items[1].timestamp, 200);
    assert_eq!(hist.items[3].timestamp, 40);
    let dup = s
        .get_metric_history(id, "dup", 0, None)
        .await
        .expect("history");
    assert_eq!(dup.items.len(), 1);
    assert!(s
        .get_metric_history(id, "never", 0, None)
        .await
        .expect("empty")
        .items
        .is_empty());

    // Duplicate keys with different values in one batch are rejected.
    assert_code(
        s.log_batch(id, &[], &[param("z", "1"), param("z", "2")], &[])
            .await,
        ErrorCode::InvalidParameterValue,
        "conflicting params in one batch",
    );
    s.log_batch(id, &[], &[param("y", "1"), param("y", "1")], &[])
        .await
        .expect("identical params in one batch");
}

/// NaN and ±infinity round-trip through history and latest metrics.
pub async fn nan_and_infinity(s: &dyn MetadataStore) {
    let exp = new_exp(s, "nan").await;
    let r = new_run(s, &exp, None).await;
    let id = r.info.run_id.as_str();
    s.log_batch(
        id,
        &[
            metric("x", f64::NAN, 1, 0),
            metric("x", f64::INFINITY, 2, 1),
            metric("x", f64::NEG_INFINITY, 3, 2),
            metric("n", f64::NAN, 1, 0),
            metric("p", f64::INFINITY, 1, 0),
            metric("big", f64::MAX, 1, 0),
            metric("tiny", -f64::MIN_POSITIVE, 1, 0),
            metric("zero", 0.0, 1, 0),
        ],
        &[],
        &[],
    )
    .await
    .expect("log specials");
    let h = s
        .get_metric_history(id, "x", 0, None)
        .await
        .expect("history");
    assert_eq!(h.items.len(), 3);
    assert!(
        h.items[0].value.is_nan(),
        "NaN round-trips: {}",
        h.items[0].value
    );
    assert_eq!(h.items[1].value, f64::INFINITY);
    assert_eq!(h.items[2].value, f64::NEG_INFINITY);
    let got = s.get_run(id).await.expect("get");
    let v = |k: &str| {
        got.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .expect("metric")
            .value
    };
    assert_eq!(v("x"), f64::NEG_INFINITY);
    assert!(v("n").is_nan());
    assert_eq!(v("p"), f64::INFINITY);
    assert_eq!(v("big"), f64::MAX);
    assert_eq!(v("tiny"), -f64::MIN_POSITIVE);
    assert_eq!(v("zero"), 0.0);
    // A NaN and a 0.0 at the same (step, timestamp) are distinct observations.
    s.log_batch(id, &[metric("n", 0.0, 1, 0)], &[], &[])
        .await
        .expect("zero next to NaN");
    assert_eq!(
        s.get_metric_history(id, "n", 0, None)
            .await
            .expect("history")
            .items
            .len(),
        2
    );
}

/// `get_metric_history` paging.
pub async fn metric_history_paging(s: &dyn MetadataStore) {
    let exp = new_exp(s, "hist").await;
    let r = new_run(s, &exp, None).await;
    let ms: Vec<Metric> = (0..23)
        .map(|i| metric("m", i as f64, 1000 + i, i))
        .collect();
    s.log_batch(&r.info.run_id, &ms, &[], &[])
        .await
        .expect("log");
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let p = s
            .get_metric_history(&r.info.run_id, "m", 5, token.as_deref())
            .await
            .expect("page");
        assert!(p.items.len() <= 5);
        seen.extend(p.items.iter().map(|m| m.step));
        match p.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, (0..23).collect::<Vec<i64>>());
    assert_code(
        s.get_metric_history(&r.info.run_id, "m", 5, Some("not-a-token"))
            .await,
        ErrorCode::InvalidParameterValue,
        "bad page token",
    );
}

fn dataset(name: &str, digest: &str) -> Dataset {
    Dataset {
        name: name.into(),
        digest: digest.into(),
        source_type: "local".into(),
        source: "{\"uri\": \"/tmp/x\"}".into(),
        schema: Some("{}".into()),
        profile: None,
    }
}

/// `log_inputs` (deduplicated datasets) and `log_outputs`.
pub async fn inputs_and_outputs(s: &dyn MetadataStore) {
    let exp = new_exp(s, "inputs").await;
    let r = new_run(s, &exp, None).await;
    let id = r.info.run_id.as_str();
    let di = DatasetInput {
        tags: vec![tag("mlflow.data.context", "training")],
        dataset: dataset("ds", "d1"),
    };
    s.log_inputs(
        id,
        std::slice::from_ref(&di),
        &[ModelInput {
            model_id: "m-1".into(),
        }],
    )
    .await
    .expect("inputs");
    s.log_inputs(
        id,
        &[
            di.clone(),
            DatasetInput {
                tags: vec![],
                dataset: dataset("ds", "d2"),
            },
        ],
        &[],
    )
    .await
    .expect("inputs again");
    s.log_outputs(
        id,
        &[ModelOutput {
            model_id: "m-2".into(),
            step: 3,
        }],
    )
    .await
    .expect("outputs");
    let got = s.get_run(id).await.expect("get");
    assert_eq!(
        got.inputs.dataset_inputs.len(),
        2,
        "dataset inputs deduplicated: {:?}",
        got.inputs
    );
    assert_eq!(got.inputs.dataset_inputs[0], di);
    assert_eq!(got.inputs.dataset_inputs[1].dataset.digest, "d2");
    assert_eq!(
        got.inputs.model_inputs,
        vec![ModelInput {
            model_id: "m-1".into()
        }]
    );
    assert_eq!(
        got.outputs.model_outputs,
        vec![ModelOutput {
            model_id: "m-2".into(),
            step: 3
        }]
    );
    // The same dataset in a second run of the experiment is shared.
    let r2 = new_run(s, &exp, None).await;
    s.log_inputs(&r2.info.run_id, std::slice::from_ref(&di), &[])
        .await
        .expect("inputs run 2");
    assert_eq!(
        s.get_run(&r2.info.run_id)
            .await
            .expect("get")
            .inputs
            .dataset_inputs,
        vec![di]
    );
}

// ------------------------------------------------------------------ search_runs reference

fn ref_metric(run: &Run, key: &str) -> Option<f64> {
    run.data
        .metrics
        .iter()
        .find(|m| m.key == key)
        .map(|m| m.value)
}
fn ref_param<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

fn ref_text(v: Option<&str>, c: &Clause) -> bool {
    let Some(v) = v else {
        return c.comparator == Comparator::IsNull;
    };
    match (&c.comparator, &c.value) {
        (Comparator::IsNull, _) => false,
        (Comparator::IsNotNull, _) => true,
        (Comparator::Eq, FilterValue::Str(x)) => v == x,
        (Comparator::Ne, FilterValue::Str(x)) => v != x,
        (Comparator::Like, FilterValue::Str(x)) => search::like_match(x, v, false),
        (Comparator::ILike, FilterValue::Str(x)) => search::like_match(x, v, true),
        (Comparator::In, FilterValue::List(l)) => l.iter().any(|x| x == v),
        (Comparator::NotIn, FilterValue::List(l)) => l.iter().all(|x| x != v),
        other => panic!("reference: unsupported text clause {other:?}"),
    }
}

fn ref_num(v: Option<f64>, c: &Clause) -> bool {
    let Some(v) = v else {
        return c.comparator == Comparator::IsNull;
    };
    let x = match &c.value {
        FilterValue::Number(x) => *x,
        FilterValue::None => return c.comparator == Comparator::IsNotNull,
        other => panic!("reference: non-numeric value {other:?}"),
    };
    match c.comparator {
        Comparator::Eq => v == x,
        Comparator::Ne => v != x,
        Comparator::Gt => v > x,
        Comparator::Ge => v >= x,
        Comparator::Lt => v < x,
        Comparator::Le => v <= x,
        Comparator::IsNull => false,
        Comparator::IsNotNull => true,
        other => panic!("reference: unsupported numeric comparator {other:?}"),
    }
}

fn ref_attr_text<'a>(run: &'a Run, key: &str) -> &'a str {
    match key {
        "run_id" => &run.info.run_id,
        "run_name" => &run.info.run_name,
        "status" => run.info.status.as_str(),
        "user_id" => &run.info.user_id,
        "artifact_uri" => &run.info.artifact_uri,
        "lifecycle_stage" => &run.info.lifecycle_stage,
        other => panic!("reference: unknown attribute {other}"),
    }
}

fn ref_matches(run: &Run, c: &Clause) -> bool {
    match c.entity {
        Entity::Metric => ref_num(ref_metric(run, &c.key), c),
        Entity::Param => ref_text(ref_param(run, &c.key), c),
        Entity::Tag => ref_text(tag_of(&run.data.tags, &c.key), c),
        Entity::Attribute => match c.key.as_str() {
            "start_time" => ref_num(Some(run.info.start_time as f64), c),
            "end_time" => ref_num(run.info.end_time.map(|t| t as f64), c),
            k => ref_text(Some(ref_attr_text(run, k)), c),
        },
        Entity::Dataset => run.inputs.dataset_inputs.iter().any(|di| {
            let v = match c.key.as_str() {
                "name" => Some(di.dataset.name.as_str()),
                "digest" => Some(di.dataset.digest.as_str()),
                _ => tag_of(&di.tags, "mlflow.data.context"),
            };
            v.is_some() && ref_text(v, c)
        }),
    }
}

fn ref_cmp(a: &Run, b: &Run, order: &[OrderBy]) -> Ordering {
    let mut saw_start = false;
    for ob in order {
        let ord = match ob.entity {
            Entity::Metric => {
                let class = |v: Option<f64>| match v {
                    None => 2,
                    Some(x) if x.is_nan() => 1,
                    Some(_) => 0,
                };
                let (va, vb) = (ref_metric(a, &ob.key), ref_metric(b, &ob.key));
                class(va).cmp(&class(vb)).then_with(|| match (va, vb) {
                    (Some(x), Some(y)) if !x.is_nan() && !y.is_nan() => {
                        let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                        if ob.ascending {
                            o
                        } else {
                            o.reverse()
                        }
                    }
                    _ => Ordering::Equal,
                })
            }
            Entity::Param | Entity::Tag | Entity::Attribute => {
                let get = |r: &Run| -> Option<String> {
                    match ob.entity {
                        Entity::Param => ref_param(r, &ob.key).map(str::to_string),
                        Entity::Tag => tag_of(&r.data.tags, &ob.key).map(str::to_string),
                        _ => match ob.key.as_str() {
                            "start_time" => Some(format!("{:020}", r.info.start_time)),
                            "end_time" => r.info.end_time.map(|t| format!("{t:020}")),
                            k => Some(ref_attr_text(r, k).to_string()),
                        },
                    }
                };
                if ob.entity == Entity::Attribute && ob.key == "start_time" {
                    saw_start = true;
                }
                let (va, vb) = (get(a), get(b));
                va.is_none().cmp(&vb.is_none()).then_with(|| {
                    let o = va.cmp(&vb);
                    if ob.ascending {
                        o
                    } else {
                        o.reverse()
                    }
                })
            }
            Entity::Dataset => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let st = if saw_start {
        Ordering::Equal
    } else {
        b.info.start_time.cmp(&a.info.start_time)
    };
    st.then_with(|| a.info.run_id.cmp(&b.info.run_id))
}

async fn collect_runs(s: &dyn MetadataStore, exp: &str, query: &SearchQuery) -> Vec<String> {
    let mut query = query.clone();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let p = s
            .search_runs(&[exp.to_string()], &query)
            .await
            .unwrap_or_else(|e| panic!("search_runs {:?} {:?}: {e}", query.filter, query.order_by));
        assert!(
            p.items.len() <= query.max_results,
            "page larger than max_results"
        );
        out.extend(p.items.into_iter().map(|r| r.info.run_id));
        match p.next_page_token {
            Some(t) => query.page_token = Some(t),
            None => return out,
        }
    }
    panic!("search_runs paging does not terminate");
}

/// `search_runs` against a reference computed in Rust over `get_run` results:
/// many filters × orders × view types, with pagination.
pub async fn search_runs_reference(s: &dyn MetadataStore) {
    let exp = new_exp(s, "search").await;
    let base = 1_700_000_000_000i64;
    let mut ids = Vec::new();
    for i in 0..24i64 {
        let run = s
            .create_run(NewRun {
                experiment_id: exp.clone(),
                user_id: if i % 3 == 0 {
                    "alice".into()
                } else {
                    "bob".into()
                },
                run_name: Some(format!("run-{i:02}")),
                start_time: base + (i % 7) * 1000,
                tags: vec![],
            })
            .await
            .expect("create run");
        let id = run.info.run_id.clone();
        let mut metrics = vec![
            metric("loss", i as f64, 1, 0),
            metric("loss", (24 - i) as f64 / 2.0, 2, 1),
        ];
        if i % 5 != 0 {
            let acc = match i {
                3 => f64::NAN,
                7 => f64::INFINITY,
                8 => f64::NEG_INFINITY,
                _ => ((i * 37) % 11) as f64 / 10.0,
            };
            metrics.push(metric("acc", acc, 1, 0));
        }
        if i % 4 == 1 {
            metrics.push(metric("my metric", i as f64, 1, 0));
        }
        let mut params = vec![param("opt", ["adam", "SGD", "sgd"][(i % 3) as usize])];
        if i % 6 != 0 {
            params.push(param("lr", &format!("0.{}", i % 4)));
        }
        let mut tags = vec![tag(
            "team",
            ["alpha", "beta", "Alpha", "gamma"][(i % 4) as usize],
        )];
        if i % 2 == 0 {
            tags.push(tag("note with space", &format!("x{i}")));
        }
        s.log_batch(&id, &metrics, &params, &tags)
            .await
            .expect("log batch");
        if i % 3 == 1 {
            s.update_run(
                &id,
                Some(RunStatus::Finished),
                Some(base + 10_000 + i),
                None,
            )
            .await
            .expect("finish");
        }
        if i % 4 == 2 {
            let ctx = if i % 8 == 2 { "training" } else { "eval" };
            s.log_inputs(
                &id,
                &[DatasetInput {
                    tags: vec![tag("mlflow.data.context", ctx)],
                    dataset: dataset("ds-a", "d1"),
                }],
                &[],
            )
            .await
            .expect("inputs");
        }
        ids.push(id);
    }
    s.delete_run(&ids[11]).await.expect("delete run");
    s.delete_run(&ids[12]).await.expect("delete run");

    let mut runs = Vec::new();
    for id in &ids {
        runs.push(s.get_run(id).await.expect("get run"));
    }

    let filters: Vec<String> = vec![
        String::new(),
        "metrics.acc > 0.5".into(),
        "metrics.acc <= 0.5 AND params.lr = '0.1'".into(),
        "metrics.acc != 0.3".into(),
        "metrics.acc = 0.3".into(),
        "metrics.acc IS NULL".into(),
        "metrics.loss < 6".into(),
        "metrics.\"my metric\" >= 5".into(),
        "metrics.`my metric` > -1 and tags.team != 'beta'".into(),
        "params.opt LIKE 's%'".into(),
        "params.opt ILIKE 's%'".into(),
        "params.lr != '0.1'".into(),
        "params.lr IN ('0.1', '0.3')".into(),
        "params.lr NOT IN ('0.1', '0.3')".into(),
        "tags.team = 'alpha'".into(),
        "tags.team ILIKE 'ALPHA'".into(),
        "tags.`note with space` LIKE 'x1%'".into(),
        "tags.`note with space` IS NULL".into(),
        "attributes.status = 'FINISHED'".into(),
        "status != 'FINISHED' AND user_id = 'alice'".into(),
        "run_name IN ('run-01', 'run-05', 'run-11')".into(),
        "attributes.run_name LIKE 'run-1%'".into(),
        format!("attributes.run_id IN ('{}', '{}')", ids[2], ids[9]),
        format!("run_id NOT IN ('{}')", ids[2]),
        format!("start_time >= {}", base + 3000),
        format!("attributes.created < {} AND metrics.loss > 3", base + 2000),
        format!("end_time > {}", base + 10_010),
        "end_time IS NULL".into(),
        "datasets.name = 'ds-a'".into(),
        "datasets.context = 'eval'".into(),
        "dataset.digest IN ('d1', 'zz')".into(),
    ];
    let orders: Vec<Vec<&str>> = vec![
        vec![],
        vec!["metrics.acc DESC"],
        vec!["metrics.acc"],
        vec!["params.lr ASC"],
        vec!["tags.team DESC"],
        vec!["attributes.start_time ASC"],
        vec!["run_name DESC"],
        vec!["metrics.loss DESC", "params.lr"],
        vec!["end_time DESC"],
        vec!["tags.`note with space` ASC", "metrics.`my metric` DESC"],
    ];
    let views = [ViewType::ActiveOnly, ViewType::DeletedOnly, ViewType::All];
    let mut checked = 0;
    for (fi, filter) in filters.iter().enumerate() {
        let clauses = search::parse_filter_for(Target::Runs, filter).expect("filter parses");
        for (oi, order) in orders.iter().enumerate() {
            // All orders for a few filters, a rotating subset of orders otherwise.
            if fi > 3 && oi % 3 != fi % 3 && oi != 0 {
                continue;
            }
            let order_strings: Vec<String> = order.iter().map(|s| s.to_string()).collect();
            let obs =
                search::parse_order_by_for(Target::Runs, &order_strings).expect("order parses");
            for (vi, view) in views.iter().enumerate() {
                if vi > 0 && oi != 0 {
                    continue;
                }
                let mut expected: Vec<&Run> = runs
                    .iter()
                    .filter(|r| match view {
                        ViewType::ActiveOnly => r.info.lifecycle_stage == "active",
                        ViewType::DeletedOnly => r.info.lifecycle_stage == "deleted",
                        ViewType::All => true,
                    })
                    .filter(|r| clauses.iter().all(|c| ref_matches(r, c)))
                    .collect();
                expected.sort_by(|a, b| ref_cmp(a, b, &obs));
                let expected: Vec<String> =
                    expected.iter().map(|r| r.info.run_id.clone()).collect();
                let mut query = q(filter, order, 5);
                query.view_type = *view;
                let got = collect_runs(s, &exp, &query).await;
                if got != expected {
                    let name = |id: &String| {
                        runs.iter()
                            .find(|r| &r.info.run_id == id)
                            .map(|r| r.info.run_name.clone())
                            .unwrap_or_default()
                    };
                    panic!(
                        "search_runs mismatch for filter {filter:?} order {order:?} view {view:?}\n got:      {:?}\n expected: {:?}",
                        got.iter().map(name).collect::<Vec<_>>(),
                        expected.iter().map(name).collect::<Vec<_>>()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 50,
        "too few search combinations checked: {checked}"
    );

    // Sanity checks of the fixture itself, so the reference is not vacuous.
    let active = collect_runs(s, &exp, &q("", &[], 100)).await;
    assert_eq!(active.len(), 22);
    let first = s
        .search_runs(std::slice::from_ref(&exp), &q("", &[], 100))
        .await
        .expect("search");
    let r0 = &first.items[0];
    assert!(
        r0.data.metrics.iter().any(|m| m.key == "loss"),
        "search results carry metrics"
    );
    assert!(
        !r0.data.params.is_empty() && !r0.data.tags.is_empty(),
        "search results carry params and tags"
    );

    // Several experiments at once, and no experiments.
    let exp2 = new_exp(s, "search2").await;
    let other = new_run(s, &exp2, None).await;
    let both = s
        .search_runs(&[exp.clone(), exp2.clone()], &q("", &[], 1000))
        .await
        .expect("two experiments");
    assert_eq!(both.items.len(), 23);
    assert!(both
        .items
        .iter()
        .any(|r| r.info.run_id == other.info.run_id));
    assert!(s
        .search_runs(&[], &q("", &[], 10))
        .await
        .expect("no experiments")
        .items
        .is_empty());
}

/// Malformed filters, orders and page tokens are `INVALID_PARAMETER_VALUE`.
pub async fn search_errors(s: &dyn MetadataStore) {
    let exp = new_exp(s, "search-err").await;
    let e = [exp];
    for bad in [
        "metrics.acc > 'x'",
        "params.lr > 1",
        "foo.bar = 'x'",
        "metrics.acc > 1 OR metrics.acc < 0",
        "attributes.nope = 'x'",
        "tags.a = ",
        "status = 'x' AND",
        "metrics.acc ~ 1",
    ] {
        let msg = assert_code(
            s.search_runs(&e, &q(bad, &[], 10)).await,
            ErrorCode::InvalidParameterValue,
            bad,
        );
        assert!(!msg.is_empty());
    }
    for bad in ["metrics.acc sideways", "nope.x", "attributes.nope"] {
        assert_code(
            s.search_runs(&e, &q("", &[bad], 10)).await,
            ErrorCode::InvalidParameterValue,
            bad,
        );
    }
    let mut query = q("", &[], 10);
    query.page_token = Some("%%%".into());
    assert_code(
        s.search_runs(&e, &query).await,
        ErrorCode::InvalidParameterValue,
        "bad page token",
    );
    // Injection attempts are plain values.
    let r = new_run(s, &e[0], Some("x'; DROP TABLE runs; --")).await;
    let p = s
        .search_runs(
            &e,
            &q("attributes.run_name = 'x''; DROP TABLE runs; --'", &[], 10),
        )
        .await
        .expect("quoted value");
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].info.run_id, r.info.run_id);
}

// ------------------------------------------------------------------ registry

async fn mv(s: &dyn MetadataStore, name: &str, run_id: Option<&str>) -> slipway_core::ModelVersion {
    s.create_model_version(NewModelVersion {
        name: name.into(),
        source: format!("models:/{name}/src"),
        run_id: run_id.map(str::to_string),
        tags: vec![tag("t", "v")],
        run_link: None,
        description: Some("desc".into()),
        model_id: None,
        user_id: Some("u".into()),
    })
    .await
    .expect("create model version")
}

/// Registered models, versions, stages, aliases, tags, rename and delete.
pub async fn registry(s: &dyn MetadataStore) {
    let name = uniq("model");
    let rm = s
        .create_registered_model(&name, Some("first"), &[tag("k", "v")], Some("alice"))
        .await
        .expect("create registered model");
    assert_eq!(rm.name, name);
    assert_eq!(rm.description.as_deref(), Some("first"));
    assert_eq!(rm.user_id.as_deref(), Some("alice"));
    assert_eq!(tag_of(&rm.tags, "k"), Some("v"));
    assert!(rm.latest_versions.is_empty());
    assert_code(
        s.create_registered_model(&name, None, &[], None).await,
        ErrorCode::ResourceAlreadyExists,
        "duplicate registered model",
    );
    let msg = assert_code(
        s.get_registered_model("no-such-model-xyz").await,
        ErrorCode::ResourceDoesNotExist,
        "unknown model",
    );
    assert!(
        msg.contains("Registered Model with name=no-such-model-xyz not found"),
        "{msg}"
    );

    let v1 = mv(s, &name, Some("r1")).await;
    let v2 = mv(s, &name, None).await;
    let v3 = mv(s, &name, None).await;
    assert_eq!(
        (
            v1.version.as_str(),
            v2.version.as_str(),
            v3.version.as_str()
        ),
        ("1", "2", "3")
    );
    assert_eq!(v1.current_stage, "None");
    assert_eq!(v1.status, "READY");
    assert_eq!(v1.run_id.as_deref(), Some("r1"));
    assert_eq!(tag_of(&v1.tags, "t"), Some("v"));
    let msg = assert_code(
        s.get_model_version(&name, "99").await,
        ErrorCode::ResourceDoesNotExist,
        "unknown version",
    );
    assert!(
        msg.contains(&format!(
            "Model Version (name={name}, version=99) not found"
        )),
        "{msg}"
    );
    assert_code(
        s.create_model_version(NewModelVersion {
            name: "no-such-model-xyz".into(),
            ..Default::default()
        })
        .await,
        ErrorCode::ResourceDoesNotExist,
        "version of unknown model",
    );

    // Versions are never reused.
    s.delete_model_version(&name, "3").await.expect("delete v3");
    assert_code(
        s.get_model_version(&name, "3").await,
        ErrorCode::ResourceDoesNotExist,
        "deleted version",
    );
    let v4 = mv(s, &name, None).await;
    assert_eq!(v4.version, "4");

    // Stages.
    let t = s
        .transition_model_version_stage(&name, "1", "production", false)
        .await
        .expect("to production");
    assert_eq!(t.current_stage, "Production");
    s.transition_model_version_stage(&name, "2", "Staging", false)
        .await
        .expect("to staging");
    let t = s
        .transition_model_version_stage(&name, "4", "Production", true)
        .await
        .expect("archive existing");
    assert_eq!(t.current_stage, "Production");
    assert_eq!(
        s.get_model_version(&name, "1")
            .await
            .expect("v1")
            .current_stage,
        "Archived"
    );
    assert_eq!(
        s.get_model_version(&name, "2")
            .await
            .expect("v2")
            .current_stage,
        "Staging"
    );
    assert_code(
        s.transition_model_version_stage(&name, "2", "Bogus", false)
            .await,
        ErrorCode::InvalidParameterValue,
        "bad stage",
    );
    let latest = s.get_latest_versions(&name, &[]).await.expect("latest");
    let mut pairs: Vec<(String, String)> = latest
        .iter()
        .map(|v| (v.current_stage.clone(), v.version.clone()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("Archived".into(), "1".into()),
            ("Production".into(), "4".into()),
            ("Staging".into(), "2".into())
        ]
    );
    let prod = s
        .get_latest_versions(&name, &["Production".into()])
        .await
        .expect("latest prod");
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0].version, "4");
    assert!(s
        .get_latest_versions(&name, &["None".into()])
        .await
        .expect("none stage")
        .is_empty());
    assert_code(
        s.get_latest_versions("no-such-model-xyz", &[]).await,
        ErrorCode::ResourceDoesNotExist,
        "latest of unknown",
    );
    let rm = s.get_registered_model(&name).await.expect("get");
    assert_eq!(rm.latest_versions.len(), 3);

    // Aliases.
    s.set_registered_model_alias(&name, "champion", "2")
        .await
        .expect("alias");
    s.set_registered_model_alias(&name, "challenger", "4")
        .await
        .expect("alias");
    let a = s
        .get_model_version_by_alias(&name, "champion")
        .await
        .expect("by alias");
    assert_eq!(a.version, "2");
    assert_eq!(a.aliases, vec!["champion".to_string()]);
    s.set_registered_model_alias(&name, "champion", "4")
        .await
        .expect("move alias");
    let a = s
        .get_model_version_by_alias(&name, "champion")
        .await
        .expect("by alias");
    assert_eq!(a.version, "4");
    let mut al = a.aliases.clone();
    al.sort();
    assert_eq!(al, vec!["challenger".to_string(), "champion".to_string()]);
    assert!(s
        .get_model_version(&name, "2")
        .await
        .expect("v2")
        .aliases
        .is_empty());
    let rm = s.get_registered_model(&name).await.expect("get");
    assert_eq!(rm.aliases.len(), 2);
    assert_code(
        s.set_registered_model_alias(&name, "x", "99").await,
        ErrorCode::ResourceDoesNotExist,
        "alias to unknown version",
    );
    assert_code(
        s.get_model_version_by_alias(&name, "nope").await,
        ErrorCode::ResourceDoesNotExist,
        "unknown alias",
    );
    s.delete_registered_model_alias(&name, "challenger")
        .await
        .expect("delete alias");
    assert_code(
        s.get_model_version_by_alias(&name, "challenger").await,
        ErrorCode::ResourceDoesNotExist,
        "deleted alias",
    );
    // Deleting a version deletes aliases pointing at it.
    s.delete_model_version(&name, "4").await.expect("delete v4");
    assert_code(
        s.get_model_version_by_alias(&name, "champion").await,
        ErrorCode::ResourceDoesNotExist,
        "alias of deleted version",
    );
    assert!(s
        .get_registered_model(&name)
        .await
        .expect("get")
        .aliases
        .is_empty());

    // Tags and description.
    s.set_registered_model_tag(&name, "k2", "v2")
        .await
        .expect("tag");
    s.delete_registered_model_tag(&name, "k")
        .await
        .expect("delete tag");
    s.set_model_version_tag(&name, "1", "mt", "mv")
        .await
        .expect("mv tag");
    s.delete_model_version_tag(&name, "1", "t")
        .await
        .expect("delete mv tag");
    let v = s
        .update_model_version(&name, "1", Some("updated"))
        .await
        .expect("update mv");
    assert_eq!(v.description.as_deref(), Some("updated"));
    assert_eq!(v.tags, vec![tag("mt", "mv")]);
    let rm = s
        .update_registered_model(&name, Some("second"))
        .await
        .expect("update rm");
    assert_eq!(rm.description.as_deref(), Some("second"));
    assert_eq!(rm.tags, vec![tag("k2", "v2")]);
    assert_code(
        s.set_model_version_tag(&name, "99", "a", "b").await,
        ErrorCode::ResourceDoesNotExist,
        "tag unknown version",
    );
    assert_code(
        s.set_registered_model_tag("no-such-model-xyz", "a", "b")
            .await,
        ErrorCode::ResourceDoesNotExist,
        "tag unknown model",
    );

    // Rename: versions follow.
    s.set_registered_model_alias(&name, "best", "1")
        .await
        .expect("alias");
    let other = uniq("model-other");
    s.create_registered_model(&other, None, &[], None)
        .await
        .expect("other");
    assert_code(
        s.rename_registered_model(&name, &other).await,
        ErrorCode::ResourceAlreadyExists,
        "rename to taken",
    );
    let new_name = uniq("model-renamed");
    let rm = s
        .rename_registered_model(&name, &new_name)
        .await
        .expect("rename");
    assert_eq!(rm.name, new_name);
    assert_code(
        s.get_registered_model(&name).await,
        ErrorCode::ResourceDoesNotExist,
        "old name gone",
    );
    let v1 = s
        .get_model_version(&new_name, "1")
        .await
        .expect("version follows rename");
    assert_eq!(v1.name, new_name);
    assert_eq!(v1.tags, vec![tag("mt", "mv")]);
    assert_eq!(
        s.get_model_version_by_alias(&new_name, "best")
            .await
            .expect("alias follows")
            .version,
        "1"
    );
    assert_eq!(
        mv(s, &new_name, None).await.version,
        "5",
        "numbering continues after rename"
    );

    // Delete.
    s.delete_registered_model(&new_name)
        .await
        .expect("delete model");
    assert_code(
        s.get_registered_model(&new_name).await,
        ErrorCode::ResourceDoesNotExist,
        "deleted model",
    );
    assert_code(
        s.get_model_version(&new_name, "1").await,
        ErrorCode::ResourceDoesNotExist,
        "deleted model's version",
    );
    assert_code(
        s.delete_registered_model(&new_name).await,
        ErrorCode::ResourceDoesNotExist,
        "delete unknown model",
    );
    // A new model with the same name starts again at 1.
    s.create_registered_model(&new_name, None, &[], None)
        .await
        .expect("recreate");
    assert_eq!(mv(s, &new_name, None).await.version, "1");
}

/// `search_registered_models` and `search_model_versions`.
pub async fn search_registry(s: &dyn MetadataStore) {
    let prefix = uniq("srm");
    let names: Vec<String> = (0..5).map(|i| format!("{prefix}-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        s.create_registered_model(
            n,
            None,
            &[tag("grp", if i % 2 == 0 { "even" } else { "odd" })],
            None,
        )
        .await
        .expect("create");
    }
    let mut got = Vec::new();
    let mut query = q(&format!("name LIKE '{prefix}-%'"), &[], 2);
    loop {
        let p = s.search_registered_models(&query).await.expect("search");
        got.extend(p.items.into_iter().map(|m| m.name));
        match p.next_page_token {
            Some(t) => query.page_token = Some(t),
            None => break,
        }
    }
    assert_eq!(got, names, "default order is name ASC");
    let p = s
        .search_registered_models(&q(
            &format!(
                "name ILIKE '{}-%' AND tags.grp = 'odd'",
                prefix.to_uppercase()
            ),
            &["name DESC"],
            10,
        ))
        .await
        .expect("search");
    assert_eq!(
        p.items.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        vec![names[3].clone(), names[1].clone()]
    );
    let p = s
        .search_registered_models(&q(&format!("name = '{}'", names[2]), &[], 10))
        .await
        .expect("search");
    assert_eq!(p.items.len(), 1);
    assert_code(
        s.search_registered_models(&q("metrics.x > 1", &[], 10))
            .await,
        ErrorCode::InvalidParameterValue,
        "bad registered model filter",
    );

    for _ in 0..3 {
        mv(s, &names[0], Some("run-a")).await;
    }
    mv(s, &names[1], Some("run-b")).await;
    s.set_model_version_tag(&names[0], "2", "flag", "yes")
        .await
        .expect("tag");
    let keys = |p: crate::Page<slipway_core::ModelVersion>| {
        p.items
            .into_iter()
            .map(|v| (v.name, v.version))
            .collect::<Vec<_>>()
    };
    let p = s
        .search_model_versions(&q(&format!("name = '{}'", names[0]), &[], 10))
        .await
        .expect("search versions");
    assert_eq!(
        keys(p),
        vec![
            (names[0].clone(), "3".into()),
            (names[0].clone(), "2".into()),
            (names[0].clone(), "1".into())
        ]
    );
    let p = s
        .search_model_versions(&q(
            &format!("name = '{}' AND version_number >= 2", names[0]),
            &["version_number ASC"],
            10,
        ))
        .await
        .expect("search versions");
    assert_eq!(
        keys(p),
        vec![
            (names[0].clone(), "2".into()),
            (names[0].clone(), "3".into())
        ]
    );
    let p = s
        .search_model_versions(&q(
            &format!("run_id IN ('run-b') AND name LIKE '{prefix}%'"),
            &[],
            10,
        ))
        .await
        .expect("search versions");
    assert_eq!(keys(p), vec![(names[1].clone(), "1".into())]);
    let p = s
        .search_model_versions(&q(
            &format!("tags.flag = 'yes' AND name = '{}'", names[0]),
            &[],
            10,
        ))
        .await
        .expect("search versions");
    assert_eq!(keys(p), vec![(names[0].clone(), "2".into())]);
    let mut query = q(&format!("name LIKE '{prefix}-%'"), &[], 1);
    let mut n = 0;
    loop {
        let p = s.search_model_versions(&query).await.expect("page");
        n += p.items.len();
        match p.next_page_token {
            Some(t) => query.page_token = Some(t),
            None => break,
        }
    }
    assert_eq!(n, 4);
}

/// Logged models: create, finalize, tags, params, metrics, delete, search.
pub async fn logged_models(s: &dyn MetadataStore) {
    let exp = new_exp(s, "lm").await;
    let loc = s.get_experiment(&exp).await.expect("exp").artifact_location;
    let run = new_run(s, &exp, None).await;
    let m = s
        .create_logged_model(NewLoggedModel {
            experiment_id: exp.clone(),
            name: Some("clf".into()),
            model_type: Some("sklearn".into()),
            source_run_id: Some(run.info.run_id.clone()),
            params: vec![param("alpha", "0.5")],
            tags: vec![tag("t", "1")],
            creator_id: Some("alice".into()),
        })
        .await
        .expect("create logged model");
    let id = m.info.model_id.clone();
    assert!(
        id.starts_with("m-") && slipway_core::ids::is_hex_id(&id[2..]),
        "logged model id: {id}"
    );
    assert_eq!(m.info.status, LoggedModelStatus::Pending);
    assert_eq!(m.info.artifact_uri, format!("{loc}/models/{id}/artifacts"));
    assert_eq!(m.info.name, "clf");
    assert_eq!(m.info.experiment_id, exp);
    assert_eq!(m.data.params, vec![param("alpha", "0.5")]);
    assert_eq!(m.info.tags, vec![tag("t", "1")]);
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let unnamed = s
        .create_logged_model(NewLoggedModel {
            experiment_id: exp.clone(),
            ..Default::default()
        })
        .await
        .expect("unnamed");
    assert!(!unnamed.info.name.is_empty(), "a name is generated");
    assert_code(
        s.create_logged_model(NewLoggedModel {
            experiment_id: "999999999".into(),
            ..Default::default()
        })
        .await,
        ErrorCode::ResourceDoesNotExist,
        "logged model in unknown experiment",
    );

    let f = s
        .finalize_logged_model(&id, LoggedModelStatus::Ready)
        .await
        .expect("finalize");
    assert_eq!(f.info.status, LoggedModelStatus::Ready);
    s.finalize_logged_model(&unnamed.info.model_id, LoggedModelStatus::UploadFailed)
        .await
        .expect("finalize failed");
    s.set_logged_model_tags(&id, &[tag("t", "2"), tag("u", "x")])
        .await
        .expect("tags");
    s.delete_logged_model_tag(&id, "u")
        .await
        .expect("delete tag");
    assert_code(
        s.delete_logged_model_tag(&id, "u").await,
        ErrorCode::ResourceDoesNotExist,
        "delete missing tag",
    );
    // Metrics logged with a model id are attached to the model.
    let mut mm = metric("acc", 0.9, 10, 1);
    mm.model_id = Some(id.clone());
    mm.dataset_name = Some("ds".into());
    mm.dataset_digest = Some("d1".into());
    s.log_batch(&run.info.run_id, &[mm], &[], &[])
        .await
        .expect("model metric");
    let g = s.get_logged_model(&id).await.expect("get");
    assert_eq!(g.info.tags, vec![tag("t", "2")]);
    assert_eq!(g.data.metrics.len(), 1);
    assert_eq!(g.data.metrics[0].value, 0.9);
    assert_eq!(
        g.data.metrics[0].run_id.as_deref(),
        Some(run.info.run_id.as_str())
    );
    assert_eq!(g.data.metrics[0].dataset_name.as_deref(), Some("ds"));

    let ids_of = |p: crate::Page<slipway_core::LoggedModel>| {
        p.items
            .into_iter()
            .map(|m| m.info.model_id)
            .collect::<Vec<_>>()
    };
    let e = [exp.clone()];
    let all = ids_of(
        s.search_logged_models(&e, &q("", &[], 10))
            .await
            .expect("search"),
    );
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], unnamed.info.model_id, "default order: newest first");
    assert_eq!(
        ids_of(
            s.search_logged_models(&e, &q("metrics.acc > 0.5", &[], 10))
                .await
                .expect("search")
        ),
        vec![id.clone()]
    );
    assert_eq!(
        ids_of(
            s.search_logged_models(&e, &q("params.alpha = '0.5'", &[], 10))
                .await
                .expect("search")
        ),
        vec![id.clone()]
    );
    assert_eq!(
        ids_of(
            s.search_logged_models(&e, &q("tags.t = '2'", &[], 10))
                .await
                .expect("search")
        ),
        vec![id.clone()]
    );
    assert_eq!(
        ids_of(
            s.search_logged_models(&e, &q("name = 'clf'", &[], 10))
                .await
                .expect("search")
        ),
        vec![id.clone()]
    );
    assert_eq!(
        ids_of(
            s.search_logged_models(&e, &q("status = 'LOGGED_MODEL_READY'", &[], 10))
                .await
                .expect("search")
        ),
        vec![id.clone()]
    );
    let p1 = s
        .search_logged_models(&e, &q("", &["name ASC"], 1))
        .await
        .expect("page 1");
    assert_eq!(p1.items.len(), 1);
    assert!(p1.next_page_token.is_some());
    assert_code(
        s.search_logged_models(&e, &q("datasets.name = 'x'", &[], 10))
            .await,
        ErrorCode::InvalidParameterValue,
        "bad logged model filter",
    );

    s.delete_logged_model(&id).await.expect("delete");
    let msg = assert_code(
        s.get_logged_model(&id).await,
        ErrorCode::ResourceDoesNotExist,
        "deleted logged model",
    );
    assert!(msg.contains(&id));
    assert_code(
        s.delete_logged_model(&id).await,
        ErrorCode::ResourceDoesNotExist,
        "delete twice",
    );
    assert_eq!(
        s.search_logged_models(&e, &q("", &[], 10))
            .await
            .expect("search")
            .items
            .len(),
        1
    );
    assert_code(
        s.finalize_logged_model("m-0000", LoggedModelStatus::Ready)
            .await,
        ErrorCode::ResourceDoesNotExist,
        "finalize unknown",
    );
}

/// Artifact digests: upsert and prefix listing.
pub async fn artifact_digests(s: &dyn MetadataStore) {
    let root = uniq("dig");
    let d = |p: &str, h: &str, n: i64| ArtifactDigest {
        path: format!("{root}/{p}"),
        sha256: h.into(),
        size: n,
    };
    s.put_artifact_digest(&d("models/m-1/artifacts/b.bin", "bb", 2))
        .await
        .expect("put");
    s.put_artifact_digest(&d("models/m-1/artifacts/a.onnx", "aa", 1))
        .await
        .expect("put");
    s.put_artifact_digest(&d("models/m-10/artifacts/c", "cc", 3))
        .await
        .expect("put");
    s.put_artifact_digest(&d("models/m-1/artifacts/a.onnx", "a2", 5))
        .await
        .expect("replace");
    s.put_artifact_digest(&d("models/m-1%/x", "pp", 1))
        .await
        .expect("put");
    let got = s
        .list_artifact_digests(&format!("{root}/models/m-1/"))
        .await
        .expect("list");
    assert_eq!(
        got,
        vec![
            d("models/m-1/artifacts/a.onnx", "a2", 5),
            d("models/m-1/artifacts/b.bin", "bb", 2)
        ]
    );
    let got = s
        .list_artifact_digests(&format!("{root}/models/m-1%"))
        .await
        .expect("list");
    assert_eq!(
        got,
        vec![d("models/m-1%/x", "pp", 1)],
        "prefix is literal, not a pattern"
    );
    assert_eq!(
        s.list_artifact_digests(&format!("{root}/"))
            .await
            .expect("list")
            .len(),
        4
    );
    assert!(s
        .list_artifact_digests(&uniq("none"))
        .await
        .expect("list")
        .is_empty());
}

/// API tokens: create, list (newest first), find by hash, revoke.
pub async fn tokens(s: &dyn MetadataStore) {
    let a = TokenRecord {
        id: uniq("tok"),
        name: "first".into(),
        secret_hash: new_id(),
        scopes: vec!["read".into(), "write".into()],
        created_at: 1000,
        revoked_at: None,
    };
    let b = TokenRecord {
        id: uniq("tok"),
        name: "second".into(),
        secret_hash: new_id(),
        created_at: 2000,
        ..a.clone()
    };
    s.create_token(&a).await.expect("create");
    s.create_token(&b).await.expect("create");
    assert_code(
        s.create_token(&a).await,
        ErrorCode::ResourceAlreadyExists,
        "duplicate token",
    );
    let list = s.list_tokens().await.expect("list");
    let pos_a = list.iter().position(|t| t.id == a.id).expect("a listed");
    let pos_b = list.iter().position(|t| t.id == b.id).expect("b listed");
    assert!(pos_b < pos_a, "newest first");
    assert_eq!(list[pos_a], a);
    assert_eq!(
        s.find_token_by_hash(&a.secret_hash).await.expect("find"),
        Some(a.clone())
    );
    s.revoke_token(&a.id).await.expect("revoke");
    assert_eq!(
        s.find_token_by_hash(&a.secret_hash).await.expect("find"),
        None
    );
    let list = s.list_tokens().await.expect("list");
    assert!(list
        .iter()
        .find(|t| t.id == a.id)
        .expect("still listed")
        .revoked_at
        .is_some());
    assert_code(
        s.revoke_token(&uniq("nope")).await,
        ErrorCode::ResourceDoesNotExist,
        "revoke unknown",
    );
    assert!(s
        .find_token_by_hash("unknown-hash")
        .await
        .expect("find")
        .is_none());
}

/// Browser sessions: found by id hash with their token until they expire,
/// are deleted or their token is revoked; expired ones are swept.
pub async fn sessions(s: &dyn MetadataStore) {
    let token = TokenRecord {
        id: uniq("tok"),
        name: "browser".into(),
        secret_hash: new_id(),
        scopes: vec!["read".into()],
        created_at: 1000,
        revoked_at: None,
    };
    s.create_token(&token).await.expect("create token");
    let session = |expires_at: i64| SessionRecord {
        id_hash: new_id(),
        token_id: token.id.clone(),
        created_at: 5_000,
        expires_at,
    };
    let live = session(10_000);
    s.create_session(&live).await.expect("create session");
    assert_code(
        s.create_session(&live).await,
        ErrorCode::ResourceAlreadyExists,
        "duplicate session",
    );
    assert_code(
        s.create_session(&SessionRecord {
            token_id: uniq("no-such-token"),
            ..session(10_000)
        })
        .await,
        ErrorCode::ResourceDoesNotExist,
        "session of an unknown token",
    );
    let (found, by) = s
        .find_session(&live.id_hash, 9_999)
        .await
        .expect("find")
        .expect("live session found");
    assert_eq!(found, live);
    assert_eq!(by, token, "the session carries its token");
    assert!(
        s.find_session(&live.id_hash, 10_000)
            .await
            .expect("find")
            .is_none(),
        "a session is gone at its expiry"
    );
    assert!(s.find_session("unknown", 0).await.expect("find").is_none());

    // sign-out ends one session
    let other = session(10_000);
    s.create_session(&other).await.expect("create");
    s.delete_session(&other.id_hash).await.expect("delete");
    s.delete_session(&other.id_hash)
        .await
        .expect("delete twice");
    assert!(s
        .find_session(&other.id_hash, 0)
        .await
        .expect("find")
        .is_none());

    // expired sessions are swept, live ones stay
    let old = session(6_000);
    s.create_session(&old).await.expect("create");
    let swept = s.delete_expired_sessions(7_000).await.expect("sweep");
    assert!(swept >= 1, "swept {swept}");
    assert!(s
        .find_session(&old.id_hash, 0)
        .await
        .expect("find")
        .is_none());
    assert!(s
        .find_session(&live.id_hash, 7_000)
        .await
        .expect("find")
        .is_some());

    // revoking the token ends its sessions
    s.revoke_token(&token.id).await.expect("revoke");
    assert!(s
        .find_session(&live.id_hash, 0)
        .await
        .expect("find")
        .is_none());
    assert_code(
        s.create_session(&session(10_000)).await,
        ErrorCode::ResourceDoesNotExist,
        "session of a revoked token",
    );
}

/// Settings and deployments.
pub async fn settings_and_deployments(s: &dyn MetadataStore) {
    let key = uniq("setting");
    assert_eq!(s.get_setting(&key).await.expect("get"), None);
    s.set_setting(&key, "1").await.expect("set");
    s.set_setting(&key, "2").await.expect("overwrite");
    assert_eq!(
        s.get_setting(&key).await.expect("get").as_deref(),
        Some("2")
    );

    let name = uniq("dep");
    let spec = serde_json::json!({"model": "m", "alias": "champion", "replicas": 2});
    let d = s.put_deployment(&name, &spec).await.expect("put");
    assert_eq!(d.spec, spec);
    assert!(d.created_at > 0 && d.updated_at >= d.created_at);
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let spec2 = serde_json::json!({"model": "m", "version": "3"});
    let d2 = s.put_deployment(&name, &spec2).await.expect("replace");
    assert_eq!(d2.spec, spec2);
    assert_eq!(d2.created_at, d.created_at, "replacing keeps created_at");
    assert!(d2.updated_at >= d.updated_at);
    assert_eq!(s.get_deployment(&name).await.expect("get"), d2);
    let other = format!("{name}-b");
    s.put_deployment(&other, &spec).await.expect("put b");
    let names: Vec<String> = s
        .list_deployments()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    let (ia, ib) = (
        names.iter().position(|n| *n == name).expect("listed"),
        names.iter().position(|n| *n == other).expect("listed"),
    );
    assert!(ia < ib, "deployments listed by name");
    s.delete_deployment(&name).await.expect("delete");
    assert_code(
        s.get_deployment(&name).await,
        ErrorCode::ResourceDoesNotExist,
        "deleted deployment",
    );
    assert_code(
        s.delete_deployment(&name).await,
        ErrorCode::ResourceDoesNotExist,
        "delete twice",
    );
}

/// Backup runs: each recorded once, read back field by field as the latest
/// run, the latest success and the latest verified run, and counted in the
/// totals. (Other runs in a shared database are older: these finish in the
/// far future.)
pub async fn backup_runs(s: &dyn MetadataStore) {
    let before = s.backup_run_summary().await.expect("summary");
    let base = before
        .last
        .as_ref()
        .map_or(0, |r| r.finished_at)
        .max(4_000_000_000_000)
        + 1_000;
    let run = |finished_at: i64, result: BackupRunResult| BackupRunRecord {
        id: uniq("backup-run"),
        started_at: finished_at - 500,
        finished_at,
        result,
        started_by: "cli".into(),
        holder: "host:123".into(),
        location: "s3://bucket/backups".into(),
        backup_id: None,
        size_bytes: None,
        copied_bytes: 0,
        pruned: 0,
        verified: None,
        error: None,
    };
    let verified = BackupRunRecord {
        backup_id: Some("20261201T031700Z-0004f2a9c".into()),
        size_bytes: Some(12_345_678_901),
        copied_bytes: 50,
        pruned: 2,
        verified: Some(true),
        ..run(base + 1, BackupRunResult::Success)
    };
    let unverified = BackupRunRecord {
        backup_id: Some("20261201T031800Z-0004f2a9d".into()),
        size_bytes: Some(200),
        started_by: "schedule".into(),
        ..run(base + 2, BackupRunResult::Success)
    };
    let failed = BackupRunRecord {
        error: Some("backup to s3://bucket/backups failed: access denied".into()),
        ..run(base + 3, BackupRunResult::Failure)
    };
    for r in [&verified, &unverified, &failed] {
        s.record_backup_run(r).await.expect("record backup run");
    }
    assert_code(
        s.record_backup_run(&failed).await,
        ErrorCode::ResourceAlreadyExists,
        "the same run twice",
    );
    let after = s.backup_run_summary().await.expect("summary");
    assert_eq!(after.last.as_ref(), Some(&failed), "latest run");
    assert_eq!(
        after.last_success.as_ref(),
        Some(&unverified),
        "latest success"
    );
    assert_eq!(
        after.last_verified.as_ref(),
        Some(&verified),
        "latest verified"
    );
    assert_eq!(after.successes, before.successes + 2, "successes");
    assert_eq!(after.failures, before.failures + 1, "failures");
    assert_eq!(after.copied_bytes, before.copied_bytes + 50, "copied bytes");
    assert_eq!(after.pruned, before.pruned + 2, "pruned");
}

/// Rollouts: one active per deployment, optimistic updates by revision,
/// newest first, per-replica step statistics replaced in place.
pub async fn rollouts(s: &dyn MetadataStore) {
    let dep = uniq("dep");
    let rec = |id: &str| crate::RolloutRecord {
        id: id.to_string(),
        deployment: dep.clone(),
        state: "progressing".into(),
        active: true,
        body: serde_json::json!({"strategy": "canary", "steps": [5, 50]}),
        revision: 0,
        created_at: slipway_core::now_millis(),
        updated_at: slipway_core::now_millis(),
    };
    let a = uniq("ro");
    s.create_rollout(&rec(&a)).await.expect("create");
    assert_code(
        s.create_rollout(&rec(&uniq("ro"))).await,
        ErrorCode::ResourceAlreadyExists,
        "a second active rollout",
    );
    let got = s.get_rollout(&a).await.expect("get");
    assert_eq!(got.body["steps"], serde_json::json!([5, 50]));
    assert!(got.active && got.revision == 0);
    let mut next = got.clone();
    next.body["step"] = serde_json::json!(1);
    let updated = s.update_rollout(&next).await.expect("update");
    assert_eq!(updated.revision, 1);
    assert_code(
        s.update_rollout(&next).await,
        ErrorCode::InvalidState,
        "a stale revision",
    );
    assert_eq!(s.get_rollout(&a).await.expect("get").body["step"], 1);
    assert!(s
        .active_rollouts()
        .await
        .expect("active")
        .iter()
        .any(|r| r.id == a));
    let mut done = updated.clone();
    done.state = "promoted".into();
    done.active = false;
    s.update_rollout(&done).await.expect("finish");
    assert!(!s
        .active_rollouts()
        .await
        .expect("active")
        .iter()
        .any(|r| r.id == a));
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let b = uniq("ro");
    s.create_rollout(&rec(&b))
        .await
        .expect("a new one once the first is done");
    let ids: Vec<String> = s
        .list_rollouts(&dep)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![b.clone(), a.clone()], "newest first");
    assert_code(
        s.get_rollout("nope").await,
        ErrorCode::ResourceDoesNotExist,
        "unknown rollout",
    );

    s.put_rollout_stats(&b, 0, "r1", &serde_json::json!({"n": 1}))
        .await
        .expect("stats");
    s.put_rollout_stats(&b, 0, "r2", &serde_json::json!({"n": 2}))
        .await
        .expect("stats");
    s.put_rollout_stats(&b, 0, "r1", &serde_json::json!({"n": 3}))
        .await
        .expect("replace");
    s.put_rollout_stats(&b, 1, "r1", &serde_json::json!({"n": 9}))
        .await
        .expect("next step");
    let step0 = s.get_rollout_stats(&b, 0).await.expect("get stats");
    assert_eq!(
        step0,
        vec![
            ("r1".to_string(), serde_json::json!({"n": 3})),
            ("r2".to_string(), serde_json::json!({"n": 2}))
        ]
    );
}

/// Leases: one holder at a time, renewals, release, takeover after expiry,
/// and exactly one winner among concurrent claimants.
pub async fn leases(store: Arc<dyn MetadataStore>) {
    let s = store.as_ref();
    let name = uniq("lease");
    assert_eq!(s.get_lease(&name).await.expect("get"), None);
    assert!(s.acquire_lease(&name, "a", 60_000).await.expect("a takes"));
    assert!(!s
        .acquire_lease(&name, "b", 60_000)
        .await
        .expect("b refused"));
    assert!(s.acquire_lease(&name, "a", 60_000).await.expect("a renews"));
    let held = s.get_lease(&name).await.expect("get").expect("held");
    assert_eq!(held.holder, "a");
    assert!(held.expires_at > slipway_core::now_millis());
    s.release_lease(&name, "b")
        .await
        .expect("b cannot release a's");
    assert!(!s
        .acquire_lease(&name, "b", 60_000)
        .await
        .expect("still a's"));
    s.release_lease(&name, "a").await.expect("release");
    assert!(s
        .acquire_lease(&name, "b", 1)
        .await
        .expect("free after release"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(s
        .acquire_lease(&name, "c", 60_000)
        .await
        .expect("expired: taken over"));
    assert_eq!(
        s.get_lease(&name).await.expect("get").expect("held").holder,
        "c"
    );

    let contested = uniq("lease");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let st = store.clone();
        let n = contested.clone();
        tasks.push(tokio::spawn(async move {
            st.acquire_lease(&n, &format!("h{i}"), 60_000)
                .await
                .expect("acquire")
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("task") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent claimant wins");
}

/// 16 tasks log batches to the same run (and to their own runs) at once:
/// no errors, nothing lost.
pub async fn concurrent_log_batch(store: Arc<dyn MetadataStore>) {
    let exp = new_exp(store.as_ref(), "conc").await;
    let shared = new_run(store.as_ref(), &exp, None).await.info.run_id;
    let mut handles = Vec::new();
    for task in 0..16i64 {
        let store = store.clone();
        let shared = shared.clone();
        let exp = exp.clone();
        handles.push(tokio::spawn(async move {
            let own = new_run(store.as_ref(), &exp, None).await.info.run_id;
            for j in 0..10i64 {
                let step = task * 100 + j;
                let metrics = vec![
                    metric("loss", step as f64, 1000 + j, step),
                    metric(&format!("m{task}"), j as f64, j, j),
                ];
                let params = vec![param(&format!("p{task}"), "v"), param("common", "same")];
                let tags = vec![tag("last_writer", &task.to_string())];
                store.log_batch(&shared, &metrics, &params, &tags).await?;
                store.log_batch(&own, &metrics, &params, &tags).await?;
            }
            Ok::<String, slipway_core::Error>(own)
        }));
    }
    let mut own_runs = HashSet::new();
    for h in handles {
        let own = h
            .await
            .expect("task panicked")
            .expect("concurrent log_batch failed");
        own_runs.insert(own);
    }
    assert_eq!(own_runs.len(), 16);
    let s = store.as_ref();
    let run = s.get_run(&shared).await.expect("get");
    let loss = run
        .data
        .metrics
        .iter()
        .find(|m| m.key == "loss")
        .expect("loss");
    assert_eq!(loss.step, 1509, "latest loss is the highest step");
    assert_eq!(loss.value, 1509.0);
    assert_eq!(run.data.params.len(), 17);
    let hist = s
        .get_metric_history(&shared, "loss", 0, None)
        .await
        .expect("history");
    assert_eq!(hist.items.len(), 160, "no metric lost");
    assert!(tag_of(&run.data.tags, "last_writer").is_some());
    let total = s
        .search_runs(&[exp], &q("params.common = 'same'", &[], 100))
        .await
        .expect("search");
    assert_eq!(total.items.len(), 17);
}
