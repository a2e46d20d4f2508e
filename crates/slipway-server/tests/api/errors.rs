//! Bad input gets a clear 4xx with MLflow's error JSON (or V2's on /v2).

use crate::helpers::{assert_mlflow_error, spawn_app, spawn_with, spawn_with_demo, ADMIN};

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

/// V2 and scoring errors come from the one table: the same kind has the same
/// status on both, V2 answers `{"error"}`, scoring MLflow's scoring server's
/// `{"error_code", "message"}` (`BAD_REQUEST` for input that does not fit
/// the model), whatever stage (routing, body, decoding, the model's
/// contract) refused the request.
#[tokio::test]
async fn v2_and_scoring_errors_share_one_table() {
    let app = spawn_with_demo().await;
    let send = |path: &'static str, content_type: &'static str, body: &'static str| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(format!("{}{path}", app.url))
                .bearer_auth(ADMIN)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let v2 = |got: &(u16, serde_json::Value), status: u16, needle: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        let msg = got.1["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", got.1));
        assert!(msg.contains(needle), "{msg}");
        assert!(got.1.get("error_code").is_none(), "{}", got.1);
    };
    let scoring = |got: &(u16, serde_json::Value), status: u16, code: &str, needle: &str| {
        assert_mlflow_error(got, status, code);
        let msg = got.1["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    };
    // the model's contract: four features
    let got = send(
        "/v2/models/iris/infer",
        "application/json",
        r#"{"inputs": [{"name": "float_input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}"#,
    )
    .await;
    v2(&got, 400, "float_input");
    let got = send(
        "/api/v1/deployments/iris/invocations",
        "application/json",
        r#"{"inputs": [[1.0, 2.0]]}"#,
    )
    .await;
    scoring(&got, 400, "BAD_REQUEST", "float_input");
    // the protocol: undecodable bodies
    let got = send("/v2/models/iris/infer", "application/json", "{not json").await;
    v2(&got, 400, "JSON");
    let got = send(
        "/api/v1/deployments/iris/invocations",
        "application/json",
        "{not json",
    )
    .await;
    scoring(&got, 400, "BAD_REQUEST", "JSON");
    let got = send(
        "/api/v1/deployments/iris/invocations",
        "text/xml",
        "<rows/>",
    )
    .await;
    scoring(&got, 415, "BAD_REQUEST", "text/xml");
    // routing: unknown deployments and versions
    let got = send(
        "/v2/models/iris/versions/99/infer",
        "application/json",
        "{}",
    )
    .await;
    v2(&got, 404, "version '99'");
    let got = send(
        "/api/v1/deployments/nope/invocations",
        "application/json",
        "{}",
    )
    .await;
    scoring(&got, 404, "RESOURCE_DOES_NOT_EXIST", "nope");
    // a good request still answers
    let got = send(
        "/api/v1/deployments/iris/invocations",
        "application/json",
        r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#,
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
}
