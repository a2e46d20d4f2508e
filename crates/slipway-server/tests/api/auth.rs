//! Tokens and scopes: 401 without a token, 403 with too weak a scope.

use crate::helpers::{assert_mlflow_error, spawn_app, ADMIN};

#[tokio::test]
async fn health_is_public_everything_else_needs_a_token() {
    let app = spawn_app().await;
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/v2/health/live",
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    for path in [
        "/metrics",
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
        "/api/2.0/mlflow-artifacts/artifacts?path=0",
        "/api/v1/tokens",
        "/api/v1/deployments",
        "/v2/models/iris",
        "/no/such/route",
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers().contains_key("www-authenticate"), "{path}");
    }
    let got = app
        .get(
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            Some("wrong-token"),
        )
        .await;
    assert_mlflow_error(&got, 401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn scopes_are_enforced_and_basic_auth_works() {
    let app = spawn_app().await;
    let read = app.token(&["read"]).await;
    assert_eq!(
        app.get(
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            Some(&read)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        app.post(
            "/api/2.0/mlflow/runs/search",
            Some(&read),
            r#"{"experiment_ids":["0"]}"#
        )
        .await
        .0,
        200
    );
    let denied = app
        .post(
            "/api/2.0/mlflow/experiments/create",
            Some(&read),
            r#"{"name":"x"}"#,
        )
        .await;
    assert_mlflow_error(&denied, 403, "PERMISSION_DENIED");
    assert_eq!(app.get("/api/v1/tokens", Some(&read)).await.0, 403);

    let predict = app.token(&["predict"]).await;
    assert_eq!(
        app.get(
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            Some(&predict)
        )
        .await
        .0,
        403
    );

    let r = app
        .client
        .get(format!(
            "{}/api/2.0/mlflow/experiments/get?experiment_id=0",
            app.url
        ))
        .basic_auth("anyone", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let app = spawn_app().await;
    let body = r#"{"name": "short-lived", "scopes": ["read"]}"#;
    let (_, created) = app.post("/api/v1/tokens", Some(ADMIN), body).await;
    let secret = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            Some(&secret)
        )
        .await
        .0,
        200
    );
    let r = app
        .client
        .delete(format!("{}/api/v1/tokens/{id}", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get(
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            Some(&secret)
        )
        .await
        .0,
        401
    );
    let (_, list) = app.get("/api/v1/tokens", Some(ADMIN)).await;
    assert!(
        !list.to_string().contains("slw_"),
        "listing must not reveal secrets: {list}"
    );
}

#[tokio::test]
async fn roles_mount_only_their_routes() {
    use slipway_server::config::Role;
    let registry = crate::helpers::spawn_with(|c| c.role = Role::Registry).await;
    assert_eq!(
        registry
            .get(
                "/api/2.0/mlflow/experiments/get?experiment_id=0",
                Some(ADMIN)
            )
            .await
            .0,
        200
    );
    assert_eq!(registry.get("/v2/models/x", Some(ADMIN)).await.0, 404);
    let serving = crate::helpers::spawn_with(|c| c.role = Role::Serving).await;
    assert_eq!(
        serving
            .get(
                "/api/2.0/mlflow/experiments/get?experiment_id=0",
                Some(ADMIN)
            )
            .await
            .0,
        404
    );
    let (status, body) = serving.get("/v2/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serving.get("/api/v1/deployments", Some(ADMIN)).await.0, 200);
}
