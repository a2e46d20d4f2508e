//! The inference lane (ADR 0008): prediction requests skip the router's
//! layers but get what those layers gave them.

use crate::helpers::*;
use reqwest::StatusCode;

const BODY: &str = r#"{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
const SCORING: &str = r#"{"dataframe_split":{"data":[[5.1,3.5,1.4,0.2]]}}"#;

#[tokio::test]
async fn prediction_routes_keep_ids_scopes_methods_and_metrics() {
    let app = spawn_with_demo().await;
    // the recorder is process-wide: compare before and after
    let before = http_counts(&app).await;
    let post = |path: &'static str, token: Option<&'static str>, id: Option<&'static str>| {
        let app = &app;
        async move {
            let mut r = app
                .client
                .post(format!("{}{path}", app.url))
                .header("content-type", "application/json")
                .body(if path.contains("invocations") {
                    SCORING
                } else {
                    BODY
                });
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(id) = id {
                r = r.header("x-request-id", id);
            }
            r.send().await.unwrap()
        }
    };

    // an id is generated when the client sends none, kept when it does
    let r = post("/v2/models/iris/infer", Some(ADMIN), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!generated.is_empty());
    let again = post("/v2/models/iris/infer", Some(ADMIN), None).await;
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), generated);
    let r = post(
        "/api/v1/deployments/iris/invocations",
        Some(ADMIN),
        Some("client-7"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "client-7");
    let r = post("/v2/models/iris/versions/1/infer", Some(ADMIN), Some("v-1")).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);

    // no token: 401 in the route's protocol, with the id
    let r = post("/v2/models/iris/infer", None, Some("anon")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-request-id"], "anon");
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let r = post(
        "/api/v1/deployments/iris/invocations",
        Some("not-a-token"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // other methods on these paths are the router's: 405 after authenticating
    let r = app
        .client
        .get(format!("{}/v2/models/iris/infer", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().contains_key("x-request-id"));
    // a percent-escaped name goes through the router and its decoding
    let r = post("/v2/models/ir%69s/infer", Some(ADMIN), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    // an unknown model is the handler's 404, not the router's
    let r = post("/v2/models/nope/infer", Some(ADMIN), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("model 'nope' not found"));

    // HTTP metrics under the route pattern, as through the router
    let after = http_counts(&app).await;
    let delta = |route: &str, status: &str| {
        let key = (route.to_string(), status.to_string());
        after.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0)
    };
    assert!(delta("/v2/models/{name}/infer", "200") >= 3.0, "{after:?}");
    assert!(delta("/v2/models/{name}/infer", "401") >= 1.0);
    assert!(delta("/v2/models/{name}/infer", "404") >= 1.0);
    assert!(delta("/api/v1/deployments/{name}/invocations", "200") >= 1.0);
    assert!(delta("/api/v1/deployments/{name}/invocations", "401") >= 1.0);
    assert!(delta("/v2/models/{name}/versions/{version}/infer", "200") >= 1.0);
}

/// `slipway_http_requests_total` of `POST`s by (route, status).
async fn http_counts(app: &TestApp) -> std::collections::HashMap<(String, String), f64> {
    let text = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\"",))? + name.len() + 2;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_string())
    };
    let mut counts = std::collections::HashMap::new();
    for line in text.lines() {
        if !line.starts_with("slipway_http_requests_total{") || !line.contains("method=\"POST\"") {
            continue;
        }
        let (Some(route), Some(status), Some(n)) = (
            label(line, "route"),
            label(line, "status"),
            line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()),
        ) else {
            continue;
        };
        *counts.entry((route, status)).or_insert(0.0) += n;
    }
    counts
}
