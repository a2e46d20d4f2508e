//! The MLflow UI, served unchanged from an installed `mlflow` package (see
//! [`crate::ui`]): `/` answers its `index.html` (revalidated on every load)
//! and `/static-files/*` its hashed assets (cached for 28 days), as MLflow's
//! own server does. Without an install, `/` says how to get one.

use crate::routes::table::{Routes, READ};
use crate::state::AppState;
use crate::ui;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    Routes::new()
        .get("/", READ, index)
        .get("/static-files/{*path}", READ, static_files)
}

const NOT_INSTALLED: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MLflow UI not installed · Slipway</title>
<style>body{font:15px/1.6 system-ui,sans-serif;max-width:720px;margin:64px auto;padding:0 24px;color:#0f172a}
code,pre{font:13px ui-monospace,monospace;background:#f1f5f9;border-radius:6px}pre{padding:12px}code{padding:1px 4px}</style></head>
<body><h1>The MLflow UI is not installed</h1>
<p>Slipway serves the official MLflow web app from an installed <code>mlflow</code> package and found none.
Install it next to Slipway (the web app only, without its dependencies) and restart:</p>
<pre>scripts/ensure-mlflow-ui.sh
# or: python3 -m pip install --no-deps --target .mlflow-ui mlflow==3.17.2</pre>
<p>or point the <code>mlflow_ui_dir</code> setting (<code>--mlflow-ui-dir</code>, <code>SLIPWAY_MLFLOW_UI_DIR</code>)
at an <code>mlflow/server/js/build</code> directory.</p>
<p>The <a href="/console/">Slipway console</a> works without it.</p></body></html>"#;

async fn index(State(s): State<AppState>) -> Response {
    let mut resp = match &s.mlflow_ui {
        Some(dir) => ui::static_file(dir, "index.html", ui::NO_CACHE).await,
        None => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, ui::NO_CACHE),
            ],
            NOT_INSTALLED,
        )
            .into_response(),
    };
    resp.headers_mut().insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    resp
}

async fn static_files(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    match &s.mlflow_ui {
        Some(dir) => ui::static_file(dir, &path, ui::LONG_CACHE).await,
        None => (StatusCode::NOT_FOUND, "The MLflow UI is not installed").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_missing_ui_page_says_how_to_install_it() {
        for needed in [
            "scripts/ensure-mlflow-ui.sh",
            "--no-deps",
            "mlflow==3.17.2",
            "mlflow_ui_dir",
            "/console/",
        ] {
            assert!(super::NOT_INSTALLED.contains(needed), "{needed}");
        }
    }
}
