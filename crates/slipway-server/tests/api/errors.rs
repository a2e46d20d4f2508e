//! Bad input gets a clear 4xx with MLflow's error JSON (or V2's on /v2).

use crate::helpers::{assert_mlflow_error, spawn_app, spawn_with, ADMIN};

#[tokio::test]
async fn malformed_and_mistyped_bodies() {
    let app = spawn_app().await;
    let t = Some(ADMIN);
    let got = app
        .post("/api/2.0/mlflow/experiments/create", t, r#"{"name": "#)
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let got = app
        .post(
            "/api/2.0/mlflow/experiments/create",
            t,
            r#"{"name": ["x"]}"#,
        )
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    assert!(
        got.1["message"].as_str().unwrap().contains("'name'"),
        "{}",
        got.1
    );
    let got = app
        .post("/api/2.0/mlflow/experiments/create", t, "[1, 2]")
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let got = app
        .post("/api/2.0/mlflow/experiments/create", t, "{}")
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let got = app
        .get(
            "/api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef",
            t,
        )
        .await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = app
        .post(
            "/api/2.0/mlflow/runs/search",
            t,
            r#"{"experiment_ids":["0"],"max_results":50001}"#,
        )
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let got = app
        .post(
            "/api/2.0/mlflow/runs/search",
            t,
            r#"{"experiment_ids":["0"],"filter":"metrics.x >"}"#,
        )
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let got = app.get("/api/2.0/mlflow/no-such-endpoint", t).await;
    assert_mlflow_error(&got, 404, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let app = spawn_with(|c| c.max_json_body_bytes = 2048).await;
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(4096));
    let got = app
        .post("/api/2.0/mlflow/experiments/create", Some(ADMIN), &big)
        .await;
    assert_mlflow_error(&got, 413, "REQUEST_LIMIT_EXCEEDED");
    let body = "y".repeat(4096);
    let r = app
        .client
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/a.bin",
            app.url
        ))
        .bearer_auth(ADMIN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "artifact uploads have their own, larger limit"
    );
}

#[tokio::test]
async fn artifact_paths_cannot_escape_the_root() {
    let app = spawn_app().await;
    let bad = [
        "0/../../etc/passwd",
        "0/..%2F..%2Fetc%2Fpasswd",
        "0/%2e%2e/x",
        "0/%2E%2E/%2E%2E/x",
        "0/a%5C..%5Cb",
        "0/%252e%252e/x",
        "0/a%00b",
        "%2Fetc%2Fpasswd",
        "0/./x",
    ];
    for path in bad {
        for method in ["PUT", "GET", "DELETE"] {
            let got = app
                .raw(
                    method,
                    &format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                    "evil",
                )
                .await;
            assert!(
                (400..500).contains(&got.0),
                "{method} {path}: {} {}",
                got.0,
                got.1
            );
            assert!(
                got.1["error_code"].is_string(),
                "{method} {path}: {}",
                got.1
            );
        }
        let got = app
            .raw(
                "GET",
                &format!("/api/2.0/mlflow-artifacts/artifacts?path={path}"),
                "",
            )
            .await;
        assert!(
            (400..500).contains(&got.0),
            "list {path}: {} {}",
            got.0,
            got.1
        );
    }
    let got = app
        .get(
            "/api/2.0/mlflow-artifacts/artifacts?path=../..",
            Some(ADMIN),
        )
        .await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn deployments_and_v2_errors_name_what_is_wrong() {
    let app = spawn_app().await;
    let t = Some(ADMIN);
    let put = |body: &'static str| {
        let app = &app;
        async move {
            let r = app
                .client
                .put(format!("{}/api/v1/deployments/d1", app.url))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let got = put(r#"{"model": "m", "alias": "a", "version": "1"}"#).await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    assert!(got.1["message"].as_str().unwrap().contains("not both"));
    let got = put(r#"{"model": "missing", "alias": "champion"}"#).await;
    assert_mlflow_error(&got, 404, "RESOURCE_DOES_NOT_EXIST");
    let got = put(r#"{"model": "m", "alias": "a", "max_batch_size": 0}"#).await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");
    let got = put(r#"{"model": "m", "alias": "a", "surprise": 1}"#).await;
    assert_mlflow_error(&got, 400, "INVALID_PARAMETER_VALUE");

    let (status, body) = app
        .post("/v2/models/nope/infer", t, r#"{"inputs": []}"#)
        .await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/deployments/nope/invocations",
            t,
            r#"{"inputs": [[1]]}"#,
        )
        .await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");
}
