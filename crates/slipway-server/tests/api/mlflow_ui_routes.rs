//! The routes MLflow's server adds for its web UI, which Slipway answers:
//! `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk-interval` (every metric
//! chart), `GET /get-artifact` (a run's file), `GET
//! /model-versions/get-artifact` (a model version's file) and a logged
//! model's `artifacts/directories` and `artifacts/files`. For each: the happy
//! path as the 3.17.2 bundle calls it, missing parameters (400 naming the
//! parameter), paths that try to leave the owner's root, and unknown owners.

use crate::helpers::{assert_mlflow_error, spawn_app, TestApp, ADMIN};
use serde_json::{json, Value};

/// What `seed` made.
struct Seeded {
    run_id: String,
    other_run_id: String,
    model_id: String,
}

async fn put_file(app: &TestApp, artifact_uri: &str, rel: &str, body: &str) {
    let root = artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .unwrap_or_else(|| panic!("artifact root in Slipway's store: {artifact_uri}"));
    let r = app
        .client
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{rel}",
            app.url
        ))
        .bearer_auth(ADMIN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "upload {rel}");
}

async fn create_run(app: &TestApp, exp_id: &str, name: &str) -> (String, String) {
    let (status, run) = app
        .post(
            "/api/2.0/mlflow/runs/create",
            Some(ADMIN),
            &json!({"experiment_id": exp_id, "run_name": name}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    (
        run["run"]["info"]["run_id"].as_str().unwrap().to_string(),
        run["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// Two runs (one with a 10-step `loss`, files `notes.txt` and
/// `model/MLmodel`), the registered model `ui-model` version 1 from the
/// first run's `model`, and a logged model with `MLmodel` and `sub/x.txt`.
async fn seed(app: &TestApp) -> Seeded {
    let (status, exp) = app
        .post(
            "/api/2.0/mlflow/experiments/create",
            Some(ADMIN),
            r#"{"name":"ui-routes"}"#,
        )
        .await;
    assert_eq!(status, 200, "{exp}");
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    let (run_id, run_root) = create_run(app, &exp_id, "first").await;
    let (other_run_id, other_root) = create_run(app, &exp_id, "second").await;
    let metrics: Vec<Value> = (0..10)
        .map(|step| {
            json!({"key": "loss", "value": 1.0 / f64::from(step + 1),
                   "timestamp": 1_700_000_000_000_i64 + i64::from(step), "step": step})
        })
        .collect();
    for (id, metrics) in [
        (&run_id, json!(metrics)),
        (
            &other_run_id,
            json!([{"key": "loss", "value": 0.5, "timestamp": 1_700_000_000_000_i64, "step": 0}]),
        ),
    ] {
        let (status, body) = app
            .post(
                "/api/2.0/mlflow/runs/log-batch",
                Some(ADMIN),
                &json!({"run_id": id, "metrics": metrics}).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    put_file(app, &run_root, "notes.txt", "hello from a run").await;
    put_file(app, &run_root, "model/MLmodel", "flavors: {}\n").await;
    put_file(app, &other_root, "secret.txt", "another run's file").await;

    let (status, body) = app
        .post(
            "/api/2.0/mlflow/registered-models/create",
            Some(ADMIN),
            r#"{"name":"ui-model"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            "/api/2.0/mlflow/model-versions/create",
            Some(ADMIN),
            &json!({"name": "ui-model", "source": format!("runs:/{run_id}/model"), "run_id": run_id})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .post(
            "/api/2.0/mlflow/logged-models",
            Some(ADMIN),
            &json!({"experiment_id": exp_id, "name": "lm"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let model_id = body["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lm_root = body["model"]["info"]["artifact_uri"].as_str().unwrap();
    put_file(app, lm_root, "MLmodel", "artifact_path: lm\n").await;
    put_file(app, lm_root, "sub/x.txt", "inside").await;
    Seeded {
        run_id,
        other_run_id,
        model_id,
    }
}

/// GET `path` with the admin token: status, headers and body text.
async fn fetch(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// The JSON error of a GET, checked to be a 400 naming `parameter`.
async fn assert_names_parameter(app: &TestApp, path: &str, parameter: &str) {
    let got = app.get(path, Some(ADMIN)).await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let message = got.1["message"].as_str().unwrap();
    assert!(
        message.contains(parameter),
        "{path}: the message names '{parameter}': {message}"
    );
}

/// Paths that try to climb out of an owner's root, as query values.
const ESCAPES: &[&str] = &[
    "../../x",
    "..%2F..%2Fsecret.txt",
    "%2e%2e/%2e%2e/x",
    "a/../../b",
    "a%5C..%5C..%5Cb",
    "./notes.txt",
    "a%00b",
];

fn is_refused(got: &(u16, Value)) -> bool {
    (400..500).contains(&got.0) && got.1["error_code"].is_string()
}

#[tokio::test]
async fn bulk_interval_samples_histories_and_names_bad_parameters() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let base = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval";

    // all steps, each value with its run id, as the chart reads them
    let (status, body) = app
        .get(
            &format!(
                "{base}?run_ids={}&metric_key=loss&max_results=320",
                s.run_id
            ),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let metrics = body["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 10, "{body}");
    assert!(metrics.iter().all(|m| m["run_id"] == s.run_id.as_str()));
    assert_eq!(metrics[0]["step"], 0);
    assert_eq!(metrics[0]["value"], 1.0);

    // sampled as MLflow 3.17 samples (abstract_store.get_metric_history_bulk_interval):
    // max_results evenly spaced steps, plus the last one
    let (status, body) = app
        .get(
            &format!("{base}?run_ids={}&metric_key=loss&max_results=4", s.run_id),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let steps: Vec<i64> = body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![0, 2, 5, 7, 9]);

    // a step range, and two runs (the key repeated)
    let (status, body) = app
        .get(
            &format!(
                "{base}?run_ids={}&run_ids={}&metric_key=loss&start_step=2&end_step=4",
                s.run_id, s.other_run_id
            ),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut got: Vec<(String, i64)> = body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["run_id"].as_str().unwrap().to_string(),
                m["step"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (s.run_id.clone(), 2),
        (s.run_id.clone(), 3),
        (s.run_id.clone(), 4),
    ];
    want.sort();
    assert_eq!(got, want, "the other run has no step in 2..=4");

    // a metric no run has: an empty answer
    let (status, body) = app
        .get(
            &format!("{base}?run_ids={}&metric_key=nope", s.run_id),
            Some(ADMIN),
        )
        .await;
    assert_eq!((status, body.clone()), (200, json!({})), "{body}");

    // bad requests name what is wrong
    assert_names_parameter(&app, &format!("{base}?metric_key=loss"), "run_ids").await;
    assert_names_parameter(&app, &format!("{base}?run_ids={}", s.run_id), "metric_key").await;
    assert_names_parameter(
        &app,
        &format!("{base}?run_ids={}&metric_key=loss&start_step=1", s.run_id),
        "end step",
    )
    .await;
    assert_names_parameter(
        &app,
        &format!("{base}?run_ids={}&metric_key=loss&max_results=0", s.run_id),
        "max_results",
    )
    .await;
    assert_names_parameter(
        &app,
        &format!(
            "{base}?run_ids={}&metric_key=loss&start_step=5&end_step=1",
            s.run_id
        ),
        "end_step",
    )
    .await;
    let many: String = (0..101).map(|i| format!("run_ids=r{i}&")).collect();
    assert_names_parameter(&app, &format!("{base}?{many}metric_key=loss"), "run_ids").await;

    // an unknown run
    let got = app
        .get(
            &format!("{base}?run_ids=0123456789abcdef&metric_key=loss"),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");

    // the UI's prefix needs a token like the API
    let (status, _) = app
        .get(
            &format!("{base}?run_ids={}&metric_key=loss", s.run_id),
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn get_artifact_streams_a_runs_file_and_nothing_else() {
    let app = spawn_app().await;
    let s = seed(&app).await;

    for key in ["run_uuid", "run_id"] {
        let (status, headers, body) = fetch(
            &app,
            &format!("/get-artifact?path=notes.txt&{key}={}", s.run_id),
        )
        .await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body, "hello from a run");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-disposition"],
            "attachment; filename=\"notes.txt\""
        );
    }
    let (status, _, body) = fetch(
        &app,
        &format!("/get-artifact?path=model/MLmodel&run_uuid={}", s.run_id),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "flavors: {}\n"));

    // missing parameters
    assert_names_parameter(
        &app,
        &format!("/get-artifact?run_uuid={}", s.run_id),
        "path",
    )
    .await;
    assert_names_parameter(
        &app,
        &format!("/get-artifact?run_uuid={}&path=", s.run_id),
        "path",
    )
    .await;
    assert_names_parameter(&app, "/get-artifact?path=notes.txt", "run_uuid").await;

    // nothing outside the run's root, in particular not another run's file
    for escape in ESCAPES {
        let got = app
            .raw(
                "GET",
                &format!("/get-artifact?run_uuid={}&path={escape}", s.run_id),
                "",
            )
            .await;
        assert!(is_refused(&got), "{escape}: {} {}", got.0, got.1);
    }
    let got = app
        .get(
            &format!(
                "/get-artifact?run_uuid={}&path=../../{}/artifacts/secret.txt",
                s.run_id, s.other_run_id
            ),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");

    // unknown run, unknown file
    let got = app
        .get(
            "/get-artifact?run_uuid=0123456789abcdef&path=notes.txt",
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = app
        .get(
            &format!("/get-artifact?run_uuid={}&path=nope.txt", s.run_id),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");

    let (status, _) = app
        .get(
            &format!("/get-artifact?path=notes.txt&run_uuid={}", s.run_id),
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn model_version_artifacts_resolve_the_versions_source() {
    let app = spawn_app().await;
    let _ = seed(&app).await;
    let base = "/model-versions/get-artifact";

    let (status, headers, body) = fetch(
        &app,
        &format!("{base}?name=ui-model&version=1&path=MLmodel"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "flavors: {}\n"));
    assert_eq!(headers["x-content-type-options"], "nosniff");

    assert_names_parameter(&app, &format!("{base}?version=1&path=MLmodel"), "name").await;
    assert_names_parameter(
        &app,
        &format!("{base}?name=ui-model&path=MLmodel"),
        "version",
    )
    .await;
    assert_names_parameter(&app, &format!("{base}?name=ui-model&version=1"), "path").await;

    // the version's root is the run's `model`: its siblings are out of reach
    for escape in ESCAPES.iter().chain(&["../notes.txt"]) {
        let got = app
            .raw(
                "GET",
                &format!("{base}?name=ui-model&version=1&path={escape}"),
                "",
            )
            .await;
        assert!(is_refused(&got), "{escape}: {} {}", got.0, got.1);
    }

    let got = app
        .get(
            &format!("{base}?name=nope&version=1&path=MLmodel"),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = app
        .get(
            &format!("{base}?name=ui-model&version=7&path=MLmodel"),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = app
        .get(
            &format!("{base}?name=ui-model&version=1&path=nope"),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn logged_model_artifacts_list_and_download_under_the_models_root() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let id = &s.model_id;

    // the listing, under both prefixes; paths relative to the model's root
    for prefix in ["/ajax-api/2.0/mlflow", "/api/2.0/mlflow"] {
        let (status, body) = app
            .get(
                &format!("{prefix}/logged-models/{id}/artifacts/directories"),
                Some(ADMIN),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut files: Vec<(String, bool)> = body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["is_dir"].as_bool().unwrap(),
                )
            })
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![("MLmodel".to_string(), false), ("sub".to_string(), true)]
        );
        assert!(body["root_uri"].as_str().unwrap().contains(id.as_str()));
    }
    let (status, body) = app
        .get(
            &format!(
                "/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/directories?artifact_directory_path=sub"
            ),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files"][0]["path"], "sub/x.txt", "{body}");
    assert_eq!(body["files"][0]["file_size"], 6, "{body}");

    // a file
    let (status, headers, body) = fetch(
        &app,
        &format!(
            "/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files?artifact_file_path=sub/x.txt"
        ),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "inside"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_names_parameter(
        &app,
        &format!("/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files"),
        "artifact_file_path",
    )
    .await;

    // nothing outside the model's root
    for escape in ESCAPES {
        let got = app
            .raw(
                "GET",
                &format!("/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files?artifact_file_path={escape}"),
                "",
            )
            .await;
        assert!(is_refused(&got), "file {escape}: {} {}", got.0, got.1);
        let got = app
            .raw(
                "GET",
                &format!("/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/directories?artifact_directory_path={escape}"),
                "",
            )
            .await;
        assert!(is_refused(&got), "listing {escape}: {} {}", got.0, got.1);
    }

    // unknown model, unknown file
    let got = app
        .get(
            "/ajax-api/2.0/mlflow/logged-models/m-0123456789abcdef/artifacts/directories",
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = app
        .get(
            "/ajax-api/2.0/mlflow/logged-models/m-0123456789abcdef/artifacts/files?artifact_file_path=MLmodel",
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = app
        .get(
            &format!(
                "/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files?artifact_file_path=nope"
            ),
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn absent_features_answer_empty_for_the_ui_only() {
    let app = spawn_app().await;
    // the settings pages, an experiment's review page and the MCP registry call these on load
    for path in [
        "/ajax-api/3.0/mlflow/gateway/secrets/list",
        "/ajax-api/3.0/mlflow/gateway/endpoints/list",
        "/ajax-api/3.0/mlflow/gateway/model-definitions/list",
        "/ajax-api/3.0/mlflow/gateway/endpoints/bindings/list",
        "/ajax-api/2.0/mlflow/webhooks",
        "/ajax-api/3.0/mlflow/review-queues/list?experiment_id=1",
        "/ajax-api/3.0/mlflow/label-schemas/list?experiment_id=1",
    ] {
        let got = app.get(path, Some(ADMIN)).await;
        assert_eq!(got, (200, json!({})), "{path}");
        let api = path.replace("/ajax-api/", "/api/");
        let got = app.get(&api, Some(ADMIN)).await;
        assert_mlflow_error(&got, 404, "ENDPOINT_NOT_FOUND");
    }
    let got = app
        .post(
            "/ajax-api/3.0/mlflow/review-queues/get-or-create-user",
            Some(ADMIN),
            r#"{"experiment_id":"1","user":"someone"}"#,
        )
        .await;
    assert_eq!(got, (200, json!({})));
    let got = app
        .get(
            "/ajax-api/3.0/mlflow/mcp-servers?max_results=25",
            Some(ADMIN),
        )
        .await;
    assert_eq!(got.0, 200);
    assert_eq!(got.1["mcp_servers"], json!([]));
}
