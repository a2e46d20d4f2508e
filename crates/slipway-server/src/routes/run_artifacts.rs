//! Artifacts addressed by their owner, as the MLflow UI reads them: a run's
//! (`artifacts/list`, `/get-artifact`), a model version's
//! (`/model-versions/get-artifact`) and a logged model's
//! (`logged-models/{id}/artifacts/directories` and `/files`).
//!
//! Each resolves the owner's `mlflow-artifacts:/` URI to a path in the
//! artifact store and lists or streams from there, with MLflow's wire shapes:
//! listings carry paths relative to the owner's root and its `root_uri`;
//! downloads are attachments with `X-Content-Type-Options: nosniff`, so an
//! artifact is never rendered as a page of this origin.

use crate::error::{ApiError, ApiResult};
use crate::extract::{required, MlflowRequest};
use crate::routes::table::{Routes, READ};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_artifacts::{ArtifactPath, FileInfo};
use slipway_core::Error;

/// Routes relative to the MLflow prefix, under both `/api/2.0/mlflow` and
/// `/ajax-api/2.0/mlflow` (they are in MLflow's service definition).
pub fn routes() -> Routes {
    Routes::new().get("/artifacts/list", READ, list_run).get(
        "/logged-models/{model_id}/artifacts/directories",
        READ,
        list_logged_model,
    )
}

/// Routes MLflow's server adds for its UI only: the logged-model file
/// download under `/ajax-api/2.0/mlflow`.
pub fn ajax_routes() -> Routes {
    Routes::new().get(
        "/logged-models/{model_id}/artifacts/files",
        READ,
        logged_model_file,
    )
}

/// Top-level download routes of MLflow's server (absolute paths).
pub fn download_routes() -> Routes {
    Routes::new().get("/get-artifact", READ, run_file).get(
        "/model-versions/get-artifact",
        READ,
        model_version_file,
    )
}

/// The artifact-store path of `rel` under an owner's `mlflow-artifacts:/`
/// root; `None` for the root itself.
fn store_path(root_uri: &str, rel: Option<&str>) -> Result<Option<ArtifactPath>, ApiError> {
    let root = root_uri
        .strip_prefix("mlflow-artifacts:")
        .map(|p| p.trim_matches('/'))
        .ok_or_else(|| {
            ApiError(Error::invalid(format!(
                "Artifact root '{root_uri}' is not in Slipway's artifact store"
            )))
        })?;
    let rel = rel.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty());
    if let Some(r) = rel {
        // the relative part is checked alone, so it cannot climb out of the root
        ArtifactPath::parse(r)?;
    }
    let joined = match (root.is_empty(), rel) {
        (true, None) => return Ok(None),
        (true, Some(r)) => r.to_string(),
        (false, None) => root.to_string(),
        (false, Some(r)) => format!("{root}/{r}"),
    };
    Ok(Some(ArtifactPath::parse(&joined)?))
}

/// The entries under `rel` of an owner's root, with paths relative to the
/// root (MLflow's `ListArtifacts`); returns the root URI and the entries.
pub async fn list(
    s: &AppState,
    root_uri: &str,
    rel: Option<&str>,
) -> Result<(String, Vec<FileInfo>), ApiError> {
    let path = store_path(root_uri, rel)?;
    let rel = rel.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty());
    let files = s
        .artifacts
        .list_dir(path.as_ref())
        .await?
        .into_iter()
        .map(|f| FileInfo {
            path: match rel {
                Some(r) => format!("{r}/{}", f.path),
                None => f.path,
            },
            ..f
        })
        .collect();
    Ok((root_uri.to_string(), files))
}

/// MLflow's `ListArtifacts.Response` JSON.
async fn listing(s: &AppState, root_uri: &str, rel: Option<&str>) -> ApiResult<Json<Value>> {
    let (root_uri, files) = list(s, root_uri, rel).await?;
    let mut body = json!({ "root_uri": root_uri });
    if !files.is_empty() {
        body["files"] = json!(files);
    }
    Ok(Json(body))
}

/// Streams one artifact file as an attachment.
async fn download(s: &AppState, root_uri: &str, rel: &str) -> ApiResult<Response> {
    if rel.trim_matches('/').is_empty() {
        return Err(Error::invalid("Missing value for required parameter 'path'.").into());
    }
    let Some(path) = store_path(root_uri, Some(rel))? else {
        return Err(Error::invalid("Invalid artifact path").into());
    };
    let dl = s.artifacts.get(&path).await?;
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let mut resp = Body::from_stream(dl.stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::routes::artifacts::content_type(rel)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(dl.meta.size));
    let disposition = format!(
        "attachment; filename=\"{}\"",
        name.replace(['"', '\\'], "_")
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

#[derive(Deserialize)]
struct RunArtifact {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

impl RunArtifact {
    fn run_id(&self) -> Result<&str, ApiError> {
        self.run_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.run_uuid.as_deref().filter(|s| !s.is_empty()))
            .ok_or_else(|| {
                ApiError(Error::invalid(
                    "Missing value for required parameter 'run_id' (or 'run_uuid').",
                ))
            })
    }
}

async fn list_run(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<RunArtifact>,
) -> ApiResult<Json<Value>> {
    let run = s.store.get_run(req.run_id()?).await?;
    listing(&s, &run.info.artifact_uri, req.path.as_deref()).await
}

async fn run_file(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<RunArtifact>,
) -> ApiResult<Response> {
    let run = s.store.get_run(req.run_id()?).await?;
    download(&s, &run.info.artifact_uri, required(&req.path, "path")?).await
}

#[derive(Deserialize)]
struct VersionArtifact {
    name: Option<String>,
    version: Option<String>,
    path: Option<String>,
}

async fn model_version_file(
    State(s): State<AppState>,
    MlflowRequest(req): MlflowRequest<VersionArtifact>,
) -> ApiResult<Response> {
    let uri = slipway_metadata::registry::resolve_download_uri(
        s.store.as_ref(),
        required(&req.name, "name")?,
        required(&req.version, "version")?,
    )
    .await?;
    download(&s, &uri, required(&req.path, "path")?).await
}

#[derive(Deserialize)]
struct ModelDirectory {
    artifact_directory_path: Option<String>,
}

async fn list_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(req): MlflowRequest<ModelDirectory>,
) -> ApiResult<Json<Value>> {
    let model = s.store.get_logged_model(&model_id).await?;
    listing(
        &s,
        &model.info.artifact_uri,
        req.artifact_directory_path.as_deref(),
    )
    .await
}

#[derive(Deserialize)]
struct ModelFile {
    artifact_file_path: Option<String>,
}

async fn logged_model_file(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    MlflowRequest(req): MlflowRequest<ModelFile>,
) -> ApiResult<Response> {
    let path = required(&req.artifact_file_path, "artifact_file_path").map_err(|_| {
        ApiError(Error::invalid(
            "Request must include the \"artifact_file_path\" query parameter.",
        ))
    })?;
    let model = s.store.get_logged_model(&model_id).await?;
    download(&s, &model.info.artifact_uri, path).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn owner_paths_stay_under_the_root() {
        let p = store_path("mlflow-artifacts:/1/abc/artifacts", Some("dir/f.txt"))
            .unwrap()
            .unwrap();
        assert_eq!(p.as_str(), "1/abc/artifacts/dir/f.txt");
        assert_eq!(
            store_path("mlflow-artifacts:/1/abc/artifacts", None)
                .unwrap()
                .unwrap()
                .as_str(),
            "1/abc/artifacts"
        );
        assert!(store_path("mlflow-artifacts:/1/abc/artifacts", Some("../../x")).is_err());
        assert!(store_path("s3://elsewhere/x", Some("f")).is_err());
    }
}
