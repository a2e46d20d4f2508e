//! The `mlflow-artifacts` proxy: upload, download, list and delete.
//!
//! Paths are checked by `slipway_artifacts::ArtifactPath` (no `..`, no
//! absolute or encoded traversal); uploads stream to the store and commit
//! all-or-nothing; the SHA-256 of every uploaded file is recorded in the
//! metadata store so serving can verify what it loads.

use crate::error::{ApiError, ApiResult};
use crate::routes::empty;
use crate::routes::table::{Routes, READ, WRITE};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use slipway_artifacts::ArtifactPath;
use slipway_core::Error;
use slipway_metadata::ArtifactDigest;

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    let mut r = Routes::new();
    for prefix in [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ] {
        let file = format!("{prefix}/artifacts/{{*path}}");
        r = r
            .get(&format!("{prefix}/artifacts"), READ, list)
            .get(&file, READ, download)
            .put(&file, WRITE, upload)
            .delete(&file, WRITE, delete);
    }
    r
}

/// The upload stalled: no chunk arrived within the pause limit.
#[derive(Debug, thiserror::Error)]
#[error("no data received for {0} s (setting body_read_timeout_seconds)")]
pub struct UploadStalled(pub u64);

/// The body's chunks, failing with [`UploadStalled`] when the client pauses
/// longer than `pause` between two of them (slow uploads of any size are
/// fine; stalled ones are not held forever).
fn with_pause_limit(
    body: Body,
    pause: std::time::Duration,
) -> impl futures::Stream<Item = Result<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>> {
    use futures::StreamExt;
    futures::stream::unfold(Some(body.into_data_stream()), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(pause, stream.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(e.into()), None)),
            Ok(None) => None,
            Err(_) => Some((Err(UploadStalled(pause.as_secs()).into()), None)),
        }
    })
}

fn parse_path(path: Result<Path<String>, PathRejection>) -> Result<ArtifactPath, ApiError> {
    let Path(raw) =
        path.map_err(|e| ApiError(Error::invalid(format!("Invalid artifact path: {e}"))))?;
    Ok(ArtifactPath::parse(&raw)?)
}

/// Monitoring's directories (the prediction log, feedback, references)
/// are written by Slipway only: the proxy refuses writes and deletes there.
fn writable(path: &ArtifactPath) -> Result<(), ApiError> {
    match path.segments().next() {
        Some(top) if slipway_monitor::files::OWNED_DIRS.contains(&top) => Err(ApiError(Error::new(
            slipway_core::ErrorCode::PermissionDenied,
            format!(
                "'{top}/' holds Slipway's monitoring data and is written by Slipway only; read it here or through /api/v1/deployments/{{name}}/predictions"
            ),
        ))),
        _ => Ok(()),
    }
}

async fn upload(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult<Response> {
    let path = parse_path(path)?;
    writable(&path)?;
    let pause = std::time::Duration::from_secs(s.config.body_read_timeout_seconds);
    let outcome = s
        .artifacts
        .put_stream(
            &path,
            with_pause_limit(body, pause),
            s.config.max_artifact_bytes,
        )
        .await?;
    s.store
        .put_artifact_digest(&ArtifactDigest {
            path: path.as_str().to_string(),
            sha256: outcome.sha256_hex,
            size: outcome.size as i64,
        })
        .await?;
    Ok(empty())
}

async fn download(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = parse_path(path)?;
    let dl = s.artifacts.get(&path).await?;
    let mut resp = Body::from_stream(dl.stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path.as_str())),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(dl.meta.size));
    Ok(resp)
}

/// The content type an artifact download is sent with (text formats that a
/// browser would render, HTML and SVG, go out as plain text).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "json" => "application/json",
        "txt" | "yaml" | "yml" | "md" | "csv" | "log" | "py" => "text/plain; charset=utf-8",
        "html" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError(Error::invalid(format!("Invalid query: {e}"))))?;
    let path = match q
        .path
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => Some(ArtifactPath::parse(p)?),
    };
    let files = s.artifacts.list_dir(path.as_ref()).await?;
    Ok(Json(json!({"files": files})).into_response())
}

async fn delete(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let path = parse_path(path)?;
    writable(&path)?;
    s.artifacts.delete(&path).await?;
    Ok(empty())
}
