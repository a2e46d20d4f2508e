//! `POST /graphql`: the operations of the MLflow UI, sent exactly as its
//! 3.17.2 bundle sends them (`GetRun`, `MlflowGetExperimentQuery`,
//! `GetMetricHistoryBulkInterval`, `SearchRuns`), errors, limits and scope.

use crate::helpers::{spawn_app, TestApp, ADMIN};
use serde_json::{json, Value};

const GET_RUN: &str = r#"
  query GetRun($data: MlflowGetRunInput!) @component(name: "MLflow.ExperimentRunTracking") {
    mlflowGetRun(input: $data) {
      apiError { helpUrl code message }
      run {
        info { runName status runUuid experimentId artifactUri endTime lifecycleStage startTime userId }
        experiment { experimentId name tags { key value } artifactLocation lifecycleStage lastUpdateTime }
        modelVersions { status version name source }
        data {
          metrics { key value step timestamp }
          params { key value }
          tags { key value }
        }
        inputs {
          datasetInputs { dataset { digest name profile schema source sourceType } tags { key value } }
          modelInputs { modelId }
        }
        outputs { modelOutputs { modelId step } }
      }
    }
  }
"#;

const GET_EXPERIMENT: &str = r#"
  query MlflowGetExperimentQuery($input: MlflowGetExperimentInput!) @component(name: "MLflow.ExperimentRunTracking") {
    mlflowGetExperiment(input: $input) {
      apiError { code message }
      experiment {
        artifactLocation creationTime effectiveTraceArchivalRetention experimentId
        lastUpdateTime lifecycleStage name tags { key value }
      }
    }
  }
"#;

const BULK_INTERVAL: &str = r#"
  query GetMetricHistoryBulkInterval($data: MlflowGetMetricHistoryBulkIntervalInput!)
  @component(name: "MLflow.ExperimentRunTracking") {
    mlflowGetMetricHistoryBulkInterval(input: $data) {
      __typename
      metrics { timestamp step runId key value }
      apiError { code message }
    }
  }
"#;

async fn graphql(app: &TestApp, token: &str, query: &str, variables: Value) -> (u16, Value) {
    let body = json!({"query": query, "variables": variables}).to_string();
    app.post("/graphql", Some(token), &body).await
}

/// An experiment with one run: metrics (one NaN), a param, a tag, and a
/// registered model version from the run.
async fn seed(app: &TestApp) -> (String, String) {
    let (_, exp) = app
        .post(
            "/api/2.0/mlflow/experiments/create",
            Some(ADMIN),
            r#"{"name":"gql-exp","tags":[{"key":"team","value":"ui"}]}"#,
        )
        .await;
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    let (_, run) = app
        .post(
            "/api/2.0/mlflow/runs/create",
            Some(ADMIN),
            &json!({"experiment_id": exp_id, "run_name": "gql-run", "start_time": 1_700_000_000_123_i64}).to_string(),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let mut metrics = Vec::new();
    for step in 0..10 {
        metrics.push(json!({"key": "loss", "value": 1.0 / f64::from(step + 1), "timestamp": 1_700_000_000_000_i64 + i64::from(step), "step": step}));
    }
    metrics.push(
        json!({"key": "broken", "value": "NaN", "timestamp": 1_700_000_000_000_i64, "step": 0}),
    );
    let (status, body) = app
        .post(
            "/api/2.0/mlflow/runs/log-batch",
            Some(ADMIN),
            &json!({"run_id": run_id, "metrics": metrics,
                    "params": [{"key": "lr", "value": "0.01"}],
                    "tags": [{"key": "stage", "value": "test"}]})
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.post(
        "/api/2.0/mlflow/registered-models/create",
        Some(ADMIN),
        r#"{"name":"gql-model"}"#,
    )
    .await;
    let (status, body) = app
        .post(
            "/api/2.0/mlflow/model-versions/create",
            Some(ADMIN),
            &json!({"name": "gql-model", "source": format!("runs:/{run_id}/model"), "run_id": run_id}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (exp_id, run_id)
}

#[tokio::test]
async fn get_run_as_the_ui_asks_for_it() {
    let app = spawn_app().await;
    let (exp_id, run_id) = seed(&app).await;
    let (status, body) = graphql(&app, ADMIN, GET_RUN, json!({"data": {"runId": run_id}})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let got = &body["data"]["mlflowGetRun"];
    assert_eq!(got["apiError"], Value::Null, "{got}");
    let run = &got["run"];
    assert_eq!(run["info"]["runName"], "gql-run");
    assert_eq!(run["info"]["runUuid"], run_id.as_str());
    assert_eq!(run["info"]["status"], "RUNNING");
    // 64-bit numbers travel as strings (LongString)
    assert_eq!(run["info"]["startTime"], "1700000000123");
    assert_eq!(run["info"]["endTime"], Value::Null);
    assert_eq!(run["experiment"]["experimentId"], exp_id.as_str());
    assert_eq!(run["experiment"]["name"], "gql-exp");
    assert_eq!(
        run["experiment"]["tags"][0],
        json!({"key": "team", "value": "ui"})
    );
    assert_eq!(
        run["modelVersions"],
        json!([{"status": "READY", "version": "1", "name": "gql-model", "source": format!("runs:/{run_id}/model")}])
    );
    let metrics = run["data"]["metrics"].as_array().unwrap();
    let loss = metrics.iter().find(|m| m["key"] == "loss").unwrap();
    assert_eq!(loss["step"], "9");
    assert_eq!(loss["value"], 0.1);
    let broken = metrics.iter().find(|m| m["key"] == "broken").unwrap();
    assert_eq!(broken["value"], Value::Null, "NaN is null, as in MLflow");
    assert_eq!(
        run["data"]["params"],
        json!([{"key": "lr", "value": "0.01"}])
    );
    assert!(run["data"]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!({"key": "stage", "value": "test"})));
    assert_eq!(run["inputs"]["datasetInputs"], json!([]));
    assert_eq!(run["outputs"]["modelOutputs"], json!([]));
}

#[tokio::test]
async fn an_unknown_run_is_an_api_error() {
    let app = spawn_app().await;
    let (status, body) = graphql(
        &app,
        ADMIN,
        GET_RUN,
        json!({"data": {"runId": "0123456789abcdef0123456789abcdef"}}),
    )
    .await;
    assert_eq!(status, 200);
    let got = &body["data"]["mlflowGetRun"];
    assert_eq!(got["run"], Value::Null);
    assert_eq!(got["apiError"]["code"], "RESOURCE_DOES_NOT_EXIST", "{got}");
}

#[tokio::test]
async fn get_experiment_for_the_experiment_page() {
    let app = spawn_app().await;
    let (exp_id, _) = seed(&app).await;
    let (status, body) = graphql(
        &app,
        ADMIN,
        GET_EXPERIMENT,
        json!({"input": {"experimentId": exp_id}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let exp = &body["data"]["mlflowGetExperiment"]["experiment"];
    assert_eq!(exp["name"], "gql-exp");
    assert_eq!(exp["lifecycleStage"], "active");
    assert!(
        exp["creationTime"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert_eq!(
        exp["artifactLocation"],
        format!("mlflow-artifacts:/{exp_id}")
    );
    let (_, body) = graphql(
        &app,
        ADMIN,
        GET_EXPERIMENT,
        json!({"input": {"experimentId": "999"}}),
    )
    .await;
    assert_eq!(
        body["data"]["mlflowGetExperiment"]["apiError"]["code"],
        "RESOURCE_DOES_NOT_EXIST"
    );
}

#[tokio::test]
async fn sampled_histories_and_run_search() {
    let app = spawn_app().await;
    let (exp_id, run_id) = seed(&app).await;
    let (_, body) = graphql(
        &app,
        ADMIN,
        BULK_INTERVAL,
        json!({"data": {"runIds": [run_id], "metricKey": "loss", "maxResults": 3}}),
    )
    .await;
    let got = &body["data"]["mlflowGetMetricHistoryBulkInterval"];
    assert_eq!(
        got["__typename"],
        "MlflowGetMetricHistoryBulkIntervalResponse"
    );
    let steps: Vec<&str> = got["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_str().unwrap())
        .collect();
    // MLflow: 10 steps sampled to 3 keep 0, 3, 6 and the last, 9
    assert_eq!(steps, ["0", "3", "6", "9"], "{got}");
    assert_eq!(got["metrics"][0]["runId"], run_id.as_str());
    let (_, body) = graphql(
        &app,
        ADMIN,
        BULK_INTERVAL,
        json!({"data": {"runIds": [run_id], "metricKey": "loss", "startStep": 5}}),
    )
    .await;
    assert!(
        body["data"]["mlflowGetMetricHistoryBulkInterval"]["apiError"]["message"]
            .as_str()
            .unwrap()
            .contains("both must be specified")
    );

    let search = r#"query SearchRuns($data: MlflowSearchRunsInput!) {
        mlflowSearchRuns(input: $data) { apiError { code message } runs { info { runName } data { params { key value } } } } }"#;
    let (_, body) = graphql(
        &app,
        ADMIN,
        search,
        json!({"data": {"experimentIds": [exp_id], "filter": "params.lr = '0.01'", "maxResults": 10}}),
    )
    .await;
    assert_eq!(
        body["data"]["mlflowSearchRuns"]["runs"][0]["info"]["runName"], "gql-run",
        "{body}"
    );
    let (_, body) = graphql(
        &app,
        ADMIN,
        search,
        json!({"data": {"experimentIds": [exp_id], "filter": "params.lr ==== 1"}}),
    )
    .await;
    assert_eq!(
        body["data"]["mlflowSearchRuns"]["apiError"]["code"], "INVALID_PARAMETER_VALUE",
        "{body}"
    );
}

#[tokio::test]
async fn malformed_deep_or_unknown_queries_are_graphql_errors() {
    let app = spawn_app().await;
    let aliases: String = (0..400)
        .map(|i| format!("a{i}: mlflowGetExperiment(input: {{experimentId: \"0\"}}) {{ apiError {{ code }} }} "))
        .collect();
    let too_wide = format!("query {{ {aliases} }}");
    for (what, query) in [
        ("unknown field", "query { nope }"),
        ("syntax", "query {"),
        (
            "unknown directive",
            "query X @unknown { mlflowGetRun(input: {runId: \"x\"}) { run { info { runName } } } }",
        ),
        (
            "deeper than MLflow's limit of 10",
            "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }",
        ),
        ("complexity over 1000", too_wide.as_str()),
    ] {
        let (status, body) = graphql(&app, ADMIN, query, json!({})).await;
        let shown: String = body.to_string().chars().take(300).collect();
        assert_eq!(status, 200, "{what}: {shown}");
        assert!(
            body["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{what}: {shown}"
        );
        assert!(body["errors"][0]["message"].is_string(), "{what}: {body}");
    }
    // a batch (JSON array) is not accepted
    let (status, body) = app
        .post("/graphql", Some(ADMIN), r#"[{"query":"{ __typename }"}]"#)
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn graphql_needs_read() {
    let app = spawn_app().await;
    let predict = app.token(&["predict"]).await;
    let (status, _) = graphql(&app, &predict, "{ __typename }", json!({})).await;
    assert_eq!(status, 403);
    let read = app.token(&["read"]).await;
    let (status, body) = graphql(&app, &read, "{ __typename }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["__typename"], "Query");
    let (status, _) = graphql(&app, "", "{ __typename }", json!({})).await;
    assert_eq!(status, 401);
}
