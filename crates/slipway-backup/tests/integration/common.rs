//! Stores and locations for the tests, a populated store, and comparisons
//! of whole stores.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use slipway_artifacts::{ArtifactPath, ArtifactStore, ArtifactStoreConfig};
use slipway_backup::{Clock, Location, Progress, S3Options, Source, Target};
use slipway_core::{
    Dataset, DatasetInput, LoggedModelStatus, Metric, ModelOutput, Param, RunStatus, Tag,
};
use slipway_metadata::sql::snapshot::{Snapshot, Value};
use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::{
    ArtifactDigest, MetadataStore, NewLoggedModel, NewModelVersion, NewRun, TokenRecord,
};
use sqlx::{Connection, Executor, PgConnection};

/// Which engines a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite + a local directory.
    Local,
    /// PostgreSQL + S3.
    Remote,
}

/// An opened pair of stores, and what to clean up.
pub struct Stores {
    pub url: String,
    pub store: SqlStore,
    pub artifacts: ArtifactStore,
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    pub fn source(&self) -> Source {
        Source {
            metadata_url: self.url.clone(),
            store: Arc::new(self.store.clone()),
            artifacts: self.artifacts.clone(),
        }
    }

    pub fn target(&self) -> Target {
        Target {
            store: self.store.clone(),
            artifacts: self.artifacts.clone(),
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether the remote cases run (panics with instructions when their
/// environment is missing and not explicitly skipped).
pub fn remote_available() -> bool {
    let pg = var("SLIPWAY_TEST_POSTGRES_URL").is_some();
    let s3 = var("SLIPWAY_TEST_S3_BUCKET").is_some();
    if pg && s3 {
        return true;
    }
    if var("SLIPWAY_TEST_SKIP_POSTGRES").as_deref() == Some("1")
        || var("SLIPWAY_TEST_SKIP_S3").as_deref() == Some("1")
    {
        eprintln!("SKIPPED: PostgreSQL + S3 backup cases (SLIPWAY_TEST_SKIP_POSTGRES/S3=1)");
        return false;
    }
    panic!(
        "the PostgreSQL + S3 backup cases need SLIPWAY_TEST_POSTGRES_URL and the test S3 server \
         (eval \"$(scripts/start-s3.sh)\"); set SLIPWAY_TEST_SKIP_POSTGRES=1 or SLIPWAY_TEST_SKIP_S3=1 to skip them"
    );
}

pub fn s3() -> S3Options {
    S3Options {
        endpoint: var("SLIPWAY_S3_ENDPOINT"),
        region: var("AWS_REGION"),
    }
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// A new, empty PostgreSQL database (named so scripts/test.sh drops leftovers).
pub async fn new_pg_database() -> String {
    let admin = var("SLIPWAY_TEST_POSTGRES_URL").expect("SLIPWAY_TEST_POSTGRES_URL");
    let name = format!("slw_t_bk_{}", slipway_core::ids::new_id());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("connect to SLIPWAY_TEST_POSTGRES_URL");
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("create database");
    conn.close().await.ok();
    with_database(&admin, &name)
}

/// An S3 root under the test bucket, unique to the caller.
pub fn new_s3_root(what: &str) -> String {
    let bucket = var("SLIPWAY_TEST_S3_BUCKET").expect("SLIPWAY_TEST_S3_BUCKET");
    format!(
        "s3://{bucket}/slipway-tests/backup-{what}-{}",
        uuid::Uuid::new_v4()
    )
}

/// Fresh, empty stores of `kind`.
pub async fn stores(kind: Kind) -> Stores {
    match kind {
        Kind::Local => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/slipway.db", dir.path().display());
            let store = SqlStore::connect(&url, SqlOptions::default())
                .await
                .unwrap();
            let artifacts = ArtifactStore::open(&ArtifactStoreConfig::new(
                dir.path().join("artifacts").to_str().unwrap(),
            ))
            .unwrap();
            Stores {
                url,
                store,
                artifacts,
                _dir: Some(dir),
            }
        }
        Kind::Remote => {
            let url = new_pg_database().await;
            let store = SqlStore::connect(&url, SqlOptions::default())
                .await
                .unwrap();
            let cfg = ArtifactStoreConfig {
                root: new_s3_root("artifacts"),
                s3_endpoint: var("SLIPWAY_S3_ENDPOINT"),
                s3_region: var("AWS_REGION"),
                ..ArtifactStoreConfig::default()
            };
            let artifacts = ArtifactStore::open(&cfg).unwrap();
            Stores {
                url,
                store,
                artifacts,
                _dir: None,
            }
        }
    }
}

/// A backup location of `kind` (a temp dir, or an S3 prefix), and its guard.
pub fn location(kind: Kind) -> (Location, Option<tempfile::TempDir>) {
    match kind {
        Kind::Local => {
            let dir = tempfile::tempdir().unwrap();
            let loc =
                Location::open(dir.path().join("backups").to_str().unwrap(), &s3(), true).unwrap();
            (loc, Some(dir))
        }
        Kind::Remote => (
            Location::open(&new_s3_root("dest"), &s3(), true).unwrap(),
            None,
        ),
    }
}

/// A clock the test moves.
#[derive(Debug, Default)]
pub struct FakeClock(pub AtomicI64);

impl FakeClock {
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Uploads a file and records its digest, as the artifact proxy does.
pub async fn upload(s: &Stores, path: &str, data: Vec<u8>) {
    let p = ArtifactPath::parse(path).unwrap();
    let out = s.artifacts.put_bytes(&p, Bytes::from(data)).await.unwrap();
    s.store
        .put_artifact_digest(&ArtifactDigest {
            path: path.into(),
            sha256: out.sha256_hex,
            size: out.size as i64,
        })
        .await
        .unwrap();
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

/// Fills a store with every kind of entity: experiments (one deleted),
/// runs with metrics (NaN and infinities), params, tags, dataset inputs and
/// model outputs, logged models, registered models with versions, tags,
/// aliases and stages, tokens, settings, a deployment, and artifacts (two
/// paths sharing content, a multi-part-sized file, a model directory).
/// Returns the prefix of the champion model's files.
pub async fn populate(s: &Stores, big_bytes: usize) -> String {
    let st = &s.store;
    let mut exps = Vec::new();
    for i in 0..3 {
        exps.push(
            st.create_experiment(&format!("exp-{i}"), None, &[tag("team", &format!("t{i}"))])
                .await
                .unwrap(),
        );
    }
    let mut runs = Vec::new();
    for i in 0..12 {
        let run = st
            .create_run(NewRun {
                experiment_id: exps[i % 3].clone(),
                user_id: "alice".into(),
                run_name: Some(format!("run-{i}")),
                start_time: 1_700_000_000_000 + i as i64,
                tags: vec![tag("mlflow.source.name", "train.py")],
            })
            .await
            .unwrap();
        let metrics: Vec<Metric> = (0..5)
            .map(|step| Metric {
                key: if step % 2 == 0 {
                    "loss".into()
                } else {
                    "acc".into()
                },
                value: match (i, step) {
                    (0, 0) => f64::NAN,
                    (0, 1) => f64::INFINITY,
                    (0, 2) => f64::NEG_INFINITY,
                    _ => 1.0 / (1.0 + step as f64 + i as f64),
                },
                timestamp: 1_700_000_000_000 + step,
                step,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
                run_id: None,
            })
            .collect();
        st.log_batch(
            &run.info.run_id,
            &metrics,
            &[Param {
                key: "lr".into(),
                value: format!("0.{i}"),
            }],
            &[tag("note", "é \"quoted\" \n newline")],
        )
        .await
        .unwrap();
        if i == 1 {
            st.log_inputs(
                &run.info.run_id,
                &[DatasetInput {
                    tags: vec![tag("mlflow.data.context", "training")],
                    dataset: Dataset {
                        name: "iris".into(),
                        digest: "abc123".into(),
                        source_type: "local".into(),
                        source: "{\"uri\": \"/data/iris.csv\"}".into(),
                        schema: Some("{}".into()),
                        profile: None,
                    },
                }],
                &[],
            )
            .await
            .unwrap();
        }
        if i % 4 == 0 {
            st.update_run(
                &run.info.run_id,
                Some(RunStatus::Finished),
                Some(1_700_000_100_000),
                None,
            )
            .await
            .unwrap();
        }
        runs.push(run);
    }
    st.delete_run(&runs[11].info.run_id).await.unwrap();
    let gone = st
        .create_experiment("deleted-exp", None, &[])
        .await
        .unwrap();
    st.delete_experiment(&gone).await.unwrap();

    // Logged models with files.
    let mut prefix = String::new();
    for i in 0..2 {
        let m = st
            .create_logged_model(NewLoggedModel {
                experiment_id: exps[0].clone(),
                name: Some(format!("model-{i}")),
                model_type: Some("onnx".into()),
                source_run_id: Some(runs[0].info.run_id.clone()),
                params: vec![Param {
                    key: "depth".into(),
                    value: "3".into(),
                }],
                tags: vec![tag("k", "v")],
                creator_id: None,
            })
            .await
            .unwrap();
        let p = m
            .info
            .artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .unwrap()
            .trim_matches('/')
            .to_string();
        upload(
            s,
            &format!("{p}/MLmodel"),
            format!("flavors:\n  onnx:\n    data: model.onnx\nid: {i}\n").into_bytes(),
        )
        .await;
        upload(s, &format!("{p}/model.onnx"), vec![i as u8; 2048]).await;
        upload(s, &format!("{p}/requirements.txt"), b"onnx\n".to_vec()).await; // same content in both: one blob
        st.finalize_logged_model(&m.info.model_id, LoggedModelStatus::Ready)
            .await
            .unwrap();
        st.log_outputs(
            &runs[0].info.run_id,
            &[ModelOutput {
                model_id: m.info.model_id.clone(),
                step: i,
            }],
        )
        .await
        .unwrap();
        if i == 0 {
            prefix = p;
        }
        // Registered model per logged model, two versions, aliases, tags.
        let name = format!("rm-{i}");
        st.create_registered_model(&name, Some("a model"), &[tag("owner", "ml")], Some("alice"))
            .await
            .unwrap();
        for _ in 0..2 {
            st.create_model_version(NewModelVersion {
                name: name.clone(),
                source: format!("models:/{}", m.info.model_id),
                run_id: Some(runs[0].info.run_id.clone()),
                model_id: Some(m.info.model_id.clone()),
                tags: vec![tag("validated", "yes")],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        st.set_registered_model_alias(&name, "champion", "2")
            .await
            .unwrap();
        st.set_registered_model_alias(&name, "old", "1")
            .await
            .unwrap();
        st.transition_model_version_stage(&name, "1", "Archived", false)
            .await
            .unwrap();
    }
    // Run artifacts, one big enough for a multipart upload on S3.
    let run_prefix = runs[2]
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .unwrap()
        .trim_matches('/')
        .to_string();
    let big: Vec<u8> = (0..big_bytes).map(|i| (i * 31 % 251) as u8).collect();
    upload(s, &format!("{run_prefix}/data/big.bin"), big).await;
    upload(s, &format!("{run_prefix}/notes/a.txt"), b"same".to_vec()).await;
    upload(s, &format!("{run_prefix}/notes/b.txt"), b"same".to_vec()).await;

    st.create_token(&TokenRecord {
        id: "tok1".into(),
        name: "ci".into(),
        secret_hash: "0".repeat(64),
        scopes: vec!["read".into(), "write".into()],
        created_at: 1_700_000_000_000,
        revoked_at: None,
    })
    .await
    .unwrap();
    st.set_setting("admin_bootstrapped", "supplied")
        .await
        .unwrap();
    st.put_deployment(
        "rm-0",
        &serde_json::json!({"model": "rm-0", "alias": "champion"}),
    )
    .await
    .unwrap();
    st.acquire_lease("some-lease", "someone", 60_000)
        .await
        .unwrap();
    prefix
}

/// Every exported row of a store, by table.
pub async fn export(s: &Stores) -> BTreeMap<String, Vec<Vec<Value>>> {
    let scratch = tempfile::tempdir().unwrap();
    let mut snap = Snapshot::take(&s.url, scratch.path()).await.unwrap();
    let mut out = BTreeMap::new();
    for t in snap.tables().to_vec() {
        let mut rows: Vec<Vec<Value>> = snap.rows(&t.name).unwrap().try_collect().await.unwrap();
        if t.name == "settings" {
            rows.retain(|r| r.first() != Some(&Value::Text("restored_from".into())));
        }
        out.insert(t.name.clone(), rows);
    }
    snap.close().await;
    out
}

/// Every file of an artifact store: path → SHA-256.
pub async fn files(a: &ArtifactStore) -> BTreeMap<String, String> {
    let metas: Vec<object_store::ObjectMeta> =
        a.object_store().list(None).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        let path = m.location.to_string();
        if path.starts_with(".slipway") {
            continue;
        }
        let bytes = a
            .get_bytes(&ArtifactPath::parse(&path).unwrap())
            .await
            .unwrap();
        out.insert(path, hex::encode(Sha256::digest(&bytes)));
    }
    out
}

pub fn progress() -> Progress {
    Progress::default()
}
