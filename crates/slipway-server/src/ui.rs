//! Where the MLflow UI comes from, and how static files are answered.
//!
//! Slipway serves the official MLflow web app unchanged from an installed
//! `mlflow` package (`mlflow/server/js/build`, Apache-2.0), never from a copy
//! in the repository. [`find_mlflow_ui`] looks, in order, at the
//! `mlflow_ui_dir` setting, the project-local installs next to the working
//! directory or the executable (and their parents) —
//! `.venv/lib/python3*/site-packages/mlflow/server/js/build` and
//! `.mlflow-ui/mlflow/server/js/build` (what `scripts/ensure-mlflow-ui.sh`
//! installs) — and finally where `python3` finds the `mlflow` package.
//! [`static_file`] answers one file of such a directory with the right
//! content type and caching, refusing any path that leaves it.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::{Component, Path, PathBuf};

/// The built app inside an `mlflow` package directory.
const BUILD_IN_PACKAGE: &str = "server/js/build";

/// Hashed assets may be cached for 28 days, as MLflow's server does.
pub const LONG_CACHE: &str = "public, max-age=2419200";
/// Entry pages are revalidated on every load, so a new install shows at once.
pub const NO_CACHE: &str = "no-cache";

/// The MLflow UI's build directory: the setting when given, else the first
/// project-local install, else the `mlflow` package `python3` finds.
/// Blocking (may run `python3`): call it off the async executor.
pub fn find_mlflow_ui(setting: Option<&Path>, roots: &[PathBuf]) -> Option<PathBuf> {
    if let Some(dir) = setting {
        return Some(dir.to_path_buf());
    }
    for root in roots {
        for dir in root.ancestors() {
            if let Some(found) = project_local_install(dir) {
                return Some(found);
            }
        }
    }
    python_package_build()
}

fn has_index(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// `.venv/lib/python3*/site-packages/mlflow/server/js/build` or
/// `.mlflow-ui/mlflow/server/js/build` under `dir`.
fn project_local_install(dir: &Path) -> Option<PathBuf> {
    let target = dir.join(".mlflow-ui").join("mlflow").join(BUILD_IN_PACKAGE);
    let lib = dir.join(".venv").join("lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| {
            e.path()
                .join("site-packages")
                .join("mlflow")
                .join(BUILD_IN_PACKAGE)
        })
        .collect();
    candidates.sort();
    candidates.push(target);
    candidates.into_iter().find(|c| has_index(c))
}

/// The build directory of the `mlflow` package that `python3` would import
/// (found without importing it, which would take seconds).
fn python_package_build() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('mlflow'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let package = String::from_utf8(out.stdout).ok()?;
    let package = package.trim();
    if package.is_empty() {
        return None;
    }
    let build = Path::new(package).join(BUILD_IN_PACKAGE);
    has_index(&build).then_some(build)
}

/// The content type of a static file, by extension (`.mjs` is JavaScript).
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "eot" => "application/vnd.ms-fontobject",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// `rel` as a path inside a static directory, or `None` when it could
/// leave it (`..`, absolute, backslashes, NUL) or is empty.
pub fn safe_relative(rel: &str) -> Option<PathBuf> {
    if rel.is_empty() || rel.contains('\\') || rel.contains('\0') {
        return None;
    }
    let path = Path::new(rel);
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| path.to_path_buf())
}

/// Answers file `rel` of `dir` with its content type and `cache_control`;
/// 404 when it is missing, a directory, or outside `dir`.
pub async fn static_file(dir: &Path, rel: &str, cache_control: &'static str) -> Response {
    let Some(rel_path) = safe_relative(rel) else {
        return not_found();
    };
    let full = dir.join(&rel_path);
    let file = match tokio::fs::File::open(&full).await {
        Ok(f) => f,
        Err(_) => return not_found(),
    };
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        _ => return not_found(),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(rel)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_cannot_leave_the_directory() {
        assert!(safe_relative("static/js/main.js").is_some());
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a\\..\\b", "./x"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn module_scripts_are_javascript() {
        assert!(content_type("x/pdf.worker.min.mjs").starts_with("text/javascript"));
        assert!(content_type("a.CSS").starts_with("text/css"));
        assert_eq!(content_type("f.woff2"), "font/woff2");
    }

    #[test]
    fn discovery_prefers_the_setting_then_project_installs() {
        let dir = tempfile::tempdir().unwrap();
        let build = dir.path().join(".mlflow-ui/mlflow/server/js/build");
        std::fs::create_dir_all(&build).unwrap();
        std::fs::write(build.join("index.html"), "<html></html>").unwrap();
        let nested = dir.path().join("target/release");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(
            find_mlflow_ui(None, std::slice::from_ref(&nested)),
            Some(build.clone())
        );
        let venv = dir
            .path()
            .join(".venv/lib/python3.11/site-packages/mlflow/server/js/build");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join("index.html"), "<html></html>").unwrap();
        assert_eq!(find_mlflow_ui(None, &[nested]), Some(venv));
        let given = Path::new("/somewhere");
        assert_eq!(find_mlflow_ui(Some(given), &[]), Some(given.to_path_buf()));
    }
}
