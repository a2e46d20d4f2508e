//! The web UI's files: the MLflow UI from an install directory (content
//! types, caching, paths that cannot leave it, the page shown without an
//! install) and the embedded console.

use crate::helpers::{spawn_with, ADMIN};
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};

/// A fake MLflow build directory with an index page and hashed assets.
fn fake_build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("static/js")).unwrap();
    std::fs::create_dir_all(root.join("static/media")).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>MLflow</title>",
    )
    .unwrap();
    std::fs::write(root.join("static/js/main.abc123.js"), "console.log(1)").unwrap();
    std::fs::write(
        root.join("static/media/pdf.worker.min.def.mjs"),
        "export {}",
    )
    .unwrap();
    std::fs::write(root.join("static/media/font.woff2"), [0u8, 1, 2]).unwrap();
    dir
}

async fn get(app: &crate::helpers::TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_mlflow_ui_is_served_as_mlflow_serves_it() {
    let build = fake_build();
    let dir = build.path().to_path_buf();
    let app = spawn_with(move |c| c.mlflow_ui_dir = Some(dir)).await;

    let index = get(&app, "/").await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(index.headers()[CACHE_CONTROL], "no-cache");
    assert!(index
        .text()
        .await
        .unwrap()
        .contains("<title>MLflow</title>"));

    for (path, content_type) in [
        (
            "/static-files/static/js/main.abc123.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/static-files/static/media/pdf.worker.min.def.mjs",
            "text/javascript; charset=utf-8",
        ),
        ("/static-files/static/media/font.woff2", "font/woff2"),
    ] {
        let resp = get(&app, path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()[CONTENT_TYPE], content_type, "{path}");
        assert_eq!(
            resp.headers()[CACHE_CONTROL],
            "public, max-age=2419200",
            "{path}"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        get(&app, "/static-files/static/js/missing.js")
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&app, "/static-files/static").await.status(),
        404,
        "a directory"
    );
    // paths that would leave the build directory
    for path in [
        "/static-files/../secret.txt",
        "/static-files/%2e%2e/secret.txt",
        "/static-files/static/..%2f..%2fsecret.txt",
        "/static-files/%2fetc%2fpasswd",
    ] {
        let (status, _) = app.raw("GET", path, "").await;
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
}

#[tokio::test]
async fn without_an_install_the_root_says_how_to_get_one() {
    let app = spawn_with(|c| {
        c.mlflow_ui_dir = None;
    })
    .await;
    // discovery may find a real install on a developer machine; only check
    // the page when it did not
    let resp = get(&app, "/").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    if text.contains("MLflow UI is not installed") {
        assert!(text.contains("scripts/ensure-mlflow-ui.sh") && text.contains("mlflow_ui_dir"));
        assert_eq!(get(&app, "/static-files/x.js").await.status(), 404);
    }
}

#[tokio::test]
async fn a_missing_ui_directory_is_a_configuration_error() {
    let c = slipway_server::config::Config {
        mlflow_ui_dir: Some("/no/such/dir".into()),
        ..Default::default()
    };
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("mlflow_ui_dir") && e.contains("index.html"),
        "{e}"
    );
}

#[tokio::test]
async fn the_console_is_embedded_with_a_strict_policy() {
    let app = spawn_with(|_| {}).await;
    let page = get(&app, "/console/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("/console/assets/app.js"));
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
    ] {
        let resp = get(&app, &format!("/console/assets/{file}")).await;
        assert_eq!(resp.status(), 200, "{file}");
        assert_eq!(resp.headers()[CONTENT_TYPE], content_type);
    }
    assert_eq!(get(&app, "/console/assets/nope.js").await.status(), 404);
    // /console goes to /console/
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console", app.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "/console/");
}
