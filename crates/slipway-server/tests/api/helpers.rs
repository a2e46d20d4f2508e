//! `spawn_app`: a server on port 0 over a temporary data dir, ready when returned.

use serde_json::Value;
use slipway_server::config::{Config, Secret};
use slipway_server::Application;
use std::time::{Duration, Instant};

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub store: std::sync::Arc<dyn slipway_metadata::MetadataStore>,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn(tweak, false).await
}

/// A server with the demo model (iris, deployment `iris`) registered and
/// loaded: needs ONNX Runtime, as `slipway up` does.
pub async fn spawn_with_demo() -> TestApp {
    spawn(|_| {}, true).await
}

async fn spawn(tweak: impl FnOnce(&mut Config), demo: bool) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(Secret::new(ADMIN)),
        token_cache_seconds: 0,
        ..Config::default()
    };
    tweak(&mut config);
    let app = Application::build(config)
        .await
        .expect("application builds");
    if demo {
        // as `slipway up` does: restore (nothing) and follow, then deploy
        app.start_serving().await.expect("serving starts");
        app.install_demo().await.expect("the demo model installs");
    }
    let url = format!("http://{}", app.addr());
    let store = app.state().store.clone();
    tokio::spawn(app.run_until_stopped());
    // no pooled connections: tests of connection limits count every one
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    loop {
        if let Ok(r) = client.get(format!("{url}/health/ready")).send().await {
            if r.status().is_success() {
                break;
            }
            last = r.text().await.unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "server at {url} did not become ready: {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TestApp {
        url,
        client,
        store,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A new token with these scopes, created in the store (works on every role).
    pub async fn token(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let (secret, _) = slipway_server::auth::create_token(self.store.as_ref(), "t", &scopes)
            .await
            .unwrap();
        secret
    }
}

impl TestApp {
    /// Sends a request as raw HTTP/1.1 so the path reaches the server exactly as
    /// written (HTTP client libraries normalize `..` and `%2e%2e` away).
    pub async fn raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = text
            .split("\r\n\r\n")
            .nth(1)
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, json)
    }
}

/// Asserts an MLflow error body with the given status and code.
pub fn assert_mlflow_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error_code"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

impl TestApp {
    /// Sends `method path` with an optional bearer token and a JSON body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
