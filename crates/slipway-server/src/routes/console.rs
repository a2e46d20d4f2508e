//! The Slipway console at `/console/`: deployments with their live figures,
//! rollouts, drift and feedback where the server has them, and tokens.
//!
//! A single page of vanilla JavaScript and CSS embedded in the binary (no
//! build step, no Node.js, works offline). It uses only Slipway's public HTTP
//! API, with the browser's session cookie; this module serves the files and
//! nothing else. Pages need `read` (what each panel shows needs its API's scope).

use crate::routes::table::{Routes, READ};
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("../../assets/console/index.html");
/// The embedded files under `/console/assets/`: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console/app.css"),
    ),
    (
        "logo.svg",
        "image/svg+xml",
        include_str!("../../assets/console/logo.svg"),
    ),
];

/// Content security policy of the console: its own files only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    Routes::new()
        .get("/console", READ, || async {
            Redirect::permanent("/console/")
        })
        .get("/console/", READ, index)
        .get("/console/assets/{file}", READ, asset)
}

fn secured(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn index() -> Response {
    secured(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response())
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            secured(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
        }
        None => (StatusCode::NOT_FOUND, "No such console file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_only_embedded_files() {
        for (name, _, body) in super::ASSETS {
            assert!(!body.is_empty(), "{name}");
        }
        // every asset the page names is embedded
        for name in ["app.js", "app.css", "logo.svg"] {
            assert!(super::INDEX.contains(&format!("/console/assets/{name}")));
        }
        assert!(!super::INDEX.contains("http://") && !super::INDEX.contains("https://"));
    }
}
