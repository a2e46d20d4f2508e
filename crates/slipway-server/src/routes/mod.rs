//! Route table: one module per resource, assembled by [`router`].
//!
//! MLflow's tracking and registry API is mounted under both
//! `/api/2.0/mlflow` and `/ajax-api/2.0/mlflow` (plus what MLflow's server
//! adds for its UI under `/ajax-api` only); the artifact proxy under
//! `/api/2.0/mlflow-artifacts`; the MLflow UI at `/`, sign-in at `/login`. Every route is registered with its access
//! rule ([`table`]); the token middleware decides from the matched route.

pub mod absent;
pub mod artifacts;
pub mod console;
pub mod deployments;
pub mod experiments;
pub mod graphql;
pub mod health;
pub mod inference;
pub mod lane;
pub mod logged_models;
pub mod login;
pub mod mlflow_ui;
pub mod model_versions;
pub mod monitoring;
pub mod registered_models;
pub mod rollouts;
pub mod run_artifacts;
pub mod runs;
pub mod table;
pub mod tokens;

use crate::auth;
use crate::config::Role;
use crate::error::{render, Protocol};
use crate::state::AppState;
use crate::telemetry;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Request, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use slipway_core::{Error, ErrorCode};
use std::sync::Arc;
use table::{Routes, READ};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The route table of a role: every route with its access rule.
pub fn api(role: Role) -> Routes {
    let mut api = Routes::new().merge(health::routes());
    if role != Role::Serving {
        let mlflow = || {
            Routes::new()
                .merge(experiments::routes())
                .merge(runs::routes())
                .merge(registered_models::routes())
                .merge(model_versions::routes())
                .merge(logged_models::routes())
                .merge(run_artifacts::routes())
        };
        let ajax_only = Routes::new()
            .merge(experiments::ajax_routes())
            .merge(runs::ajax_routes())
            .merge(run_artifacts::ajax_routes());
        api = api
            .nest("/api/2.0/mlflow", mlflow())
            .nest("/ajax-api/2.0/mlflow", mlflow().merge(ajax_only))
            .get("/api/3.0/mlflow/server-info", READ, health::server_info)
            .get(
                "/ajax-api/3.0/mlflow/server-info",
                READ,
                health::server_info,
            )
            .merge(artifacts::routes())
            .merge(run_artifacts::download_routes())
            .merge(tokens::routes())
            .merge(deployments::routes())
            .merge(rollouts::routes())
            .merge(graphql::routes())
            .merge(absent::routes())
            .merge(login::routes())
            .merge(console::routes())
            .merge(mlflow_ui::routes());
    } else {
        api = api
            .merge(deployments::serving_routes())
            .merge(rollouts::read_routes());
    }
    if role != Role::Registry {
        api = api.merge(inference::routes());
    }
    api.merge(monitoring::routes())
}

/// Builds the whole HTTP application for the configured role.
pub fn router(state: AppState) -> Router {
    let (app, rules) = api(state.config.role).into_parts();
    let access = auth::AccessState {
        app: state.clone(),
        rules: Arc::new(rules),
    };
    let request_id = HeaderName::from_static("x-request-id");
    let ids = telemetry::MakeRequestId::default();
    let full = app
        .route_layer(middleware::from_fn_with_state(access.clone(), per_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, ids.clone()))
        .with_state(state);
    lane::front(full, access, ids)
}

/// The one middleware of matched routes (one layer: each costs the request
/// a boxed service and future): access control, then the HTTP metrics.
async fn per_route(
    State(access): State<auth::AccessState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let resp = auth::require_access(State(access), req, next).await;
    telemetry::record_http(&method, route.as_ref(), resp.status().as_u16(), start);
    resp
}

/// Unknown paths: 401 without a valid token (so the API's shape is not
/// revealed to anonymous callers), 404 with one.
async fn not_found(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let path = uri.path();
    let protocol = Protocol::for_path(path);
    if let Err(resp) = auth::authenticate(&state, &method, &uri, &headers).await {
        return resp;
    }
    render(
        protocol,
        &Error::new(
            ErrorCode::EndpointNotFound,
            format!("No endpoint at {path}"),
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    render(
        Protocol::for_path(path),
        &Error::new(
            ErrorCode::MethodNotAllowed,
            format!("Method {method} is not allowed on {path}"),
        ),
    )
}

/// `{}`: the empty response of MLflow's write endpoints.
pub fn empty() -> Response {
    (StatusCode::OK, Json(json!({}))).into_response()
}

/// A search response: `{"<key>": [...], "next_page_token": "..."}`, leaving
/// out empty lists and absent tokens as protobuf's JSON does.
pub fn paged<T: serde::Serialize>(key: &str, page: slipway_metadata::Page<T>) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if !page.items.is_empty() {
        body.insert(key.to_string(), json!(page.items));
    }
    if let Some(t) = page.next_page_token {
        body.insert("next_page_token".to_string(), serde_json::Value::String(t));
    }
    serde_json::Value::Object(body)
}

/// Validates and defaults a `max_results` parameter.
pub fn page_size(
    state: &AppState,
    max_results: Option<i64>,
    default: usize,
) -> Result<usize, Error> {
    let limit = state.config.max_page_size as i64;
    match max_results {
        None => Ok(default.min(limit as usize)),
        Some(n) if n < 1 => Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results': must be at least 1"
        ))),
        Some(n) if n > limit => Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results': must be at most {limit} (setting max_page_size)"
        ))),
        Some(n) => Ok(n as usize),
    }
}
