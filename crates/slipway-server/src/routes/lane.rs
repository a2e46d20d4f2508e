//! The inference lane: prediction requests (`POST` to a V2 `infer` route or
//! to the scoring `invocations` route) skip the router's layer stack.
//!
//! Through the router, a batch-1 prediction paid for route matching over the
//! whole table, a boxed clone of the matched service, and a boxed future for
//! each of the request-id, trace, access and metrics layers: 13–21% of the
//! CPU a request costs (ADR 0008). The lane matches the
//! three paths by hand and does the same work inline, in the same order: a
//! request id when the client sent none (the router's generator, shared),
//! the `request` span with the trace layer's own request, response and
//! failure events, the route's access rule ([`auth::admit`]), the handler,
//! the HTTP metrics under the route pattern, and the id echoed on the
//! response. Everything else — other methods on these paths, any other
//! path, a path segment with percent-escapes (left to the router's own
//! decoding and its rejections) — goes to the router unchanged. A layer
//! added to the router must be added here too for these routes to have it
//! (ADR 0008).

use crate::auth::{self, AccessState};
use crate::routes::{deployments, inference};
use crate::telemetry;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, Method};
use axum::response::Response;
use axum::Router;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Service, ServiceExt};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::request_id::MakeRequestId as _;
use tower_http::trace::{
    DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, OnFailure, OnRequest, OnResponse,
};
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const V2_INFER: &str = "/v2/models/{name}/infer";
const V2_INFER_VERSION: &str = "/v2/models/{name}/versions/{version}/infer";
const INVOCATIONS: &str = "/api/v1/deployments/{name}/invocations";

/// A prediction request the lane serves.
enum Endpoint {
    V2 {
        name: String,
        version: Option<String>,
    },
    Scoring {
        name: String,
    },
}

impl Endpoint {
    fn route(&self) -> &'static str {
        match self {
            Endpoint::V2 { version: None, .. } => V2_INFER,
            Endpoint::V2 {
                version: Some(_), ..
            } => V2_INFER_VERSION,
            Endpoint::Scoring { .. } => INVOCATIONS,
        }
    }

    /// The endpoint a `POST` to `path` addresses; `None` for every other
    /// path, and for a segment that is empty or percent-escaped.
    fn of(path: &str) -> Option<Endpoint> {
        let segment = |s: &str| (!s.is_empty() && !s.contains('%')).then(|| s.to_string());
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        match parts.as_slice() {
            ["v2", "models", name, "infer"] => Some(Endpoint::V2 {
                name: segment(name)?,
                version: None,
            }),
            ["v2", "models", name, "versions", version, "infer"] => Some(Endpoint::V2 {
                name: segment(name)?,
                version: Some(segment(version)?),
            }),
            ["api", "v1", "deployments", name, "invocations"] => Some(Endpoint::Scoring {
                name: segment(name)?,
            }),
            _ => None,
        }
    }
}

/// The router with the inference lane in front (see the module docs).
pub fn front(full: Router, access: AccessState, ids: telemetry::MakeRequestId) -> Router {
    // only the routes this role serves: the others stay the router's 404s
    let serves = |route| {
        matches!(
            access.rules.lookup(&Method::POST, route),
            crate::routes::table::Lookup::Found(_)
        )
    };
    let lane = Lane {
        v2: serves(V2_INFER) && serves(V2_INFER_VERSION),
        scoring: serves(INVOCATIONS),
        full,
        access,
        ids,
    };
    Router::new().fallback_service(lane)
}

#[derive(Clone)]
struct Lane {
    full: Router,
    access: AccessState,
    ids: telemetry::MakeRequestId,
    v2: bool,
    scoring: bool,
}

impl Service<Request> for Lane {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let endpoint = (req.method() == Method::POST)
            .then(|| Endpoint::of(req.uri().path()))
            .flatten()
            .filter(|e| match e {
                Endpoint::V2 { .. } => self.v2,
                Endpoint::Scoring { .. } => self.scoring,
            });
        match endpoint {
            Some(endpoint) => {
                let lane = self.clone();
                Box::pin(async move { Ok(lane.serve(endpoint, req).await) })
            }
            None => Box::pin(self.full.clone().oneshot(req)),
        }
    }
}

impl Lane {
    async fn serve(mut self, endpoint: Endpoint, mut req: Request) -> Response {
        let start = Instant::now();
        if !req.headers().contains_key(REQUEST_ID) {
            if let Some(id) = self.ids.make_request_id(&req) {
                req.headers_mut()
                    .insert(REQUEST_ID, id.header_value().clone());
            }
        }
        let id = req.headers().get(REQUEST_ID).cloned();
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
        );
        let mut resp = self
            .traced(endpoint, req, start, &span)
            .instrument(span.clone())
            .await;
        if let Some(id) = id {
            resp.headers_mut().entry(REQUEST_ID).or_insert(id);
        }
        resp
    }

    /// Inside the request span: what the trace layer, the access
    /// middleware and the handler did.
    async fn traced(
        &self,
        endpoint: Endpoint,
        req: Request,
        start: Instant,
        span: &tracing::Span,
    ) -> Response {
        DefaultOnRequest::default().on_request(&req, span);
        let route = endpoint.route();
        let (parts, body) = req.into_parts();
        let resp = match auth::admit(
            &self.access,
            Some(route),
            &parts.method,
            &parts.uri,
            &parts.headers,
        )
        .await
        {
            Err(refused) => refused,
            Ok(_) => self.handle(endpoint, parts.headers, body).await,
        };
        let status = resp.status();
        telemetry::record_http_route(&parts.method, route, status.as_u16(), start);
        let latency = start.elapsed();
        DefaultOnResponse::default().on_response(&resp, latency, span);
        if status.is_server_error() {
            DefaultOnFailure::default().on_failure(
                ServerErrorsFailureClass::StatusCode(status),
                latency,
                span,
            );
        }
        resp
    }

    async fn handle(
        &self,
        endpoint: Endpoint,
        headers: axum::http::HeaderMap,
        body: Body,
    ) -> Response {
        let s = self.access.app.clone();
        match endpoint {
            Endpoint::V2 { name, version } => {
                inference::run_infer(s, name, version, headers, body).await
            }
            Endpoint::Scoring { name } => deployments::invoke(s, name, headers, body).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_three_prediction_paths_only() {
        let route = |p: &str| Endpoint::of(p).map(|e| e.route());
        assert_eq!(route("/v2/models/iris/infer"), Some(V2_INFER));
        assert_eq!(
            route("/v2/models/iris/versions/3/infer"),
            Some(V2_INFER_VERSION)
        );
        assert_eq!(
            route("/api/v1/deployments/iris/invocations"),
            Some(INVOCATIONS)
        );
        for other in [
            "/v2/models/iris/infer/",
            "/v2/models//infer",
            "/v2/models/ir%20is/infer",
            "/v2/models/iris",
            "/v2/models/iris/versions/3",
            "/api/v1/deployments/iris",
            "/api/v1/deployments/a/b/invocations",
            "v2/models/iris/infer",
            "/",
        ] {
            assert_eq!(route(other), None, "{other}");
        }
        let Some(Endpoint::V2 { name, version }) =
            Endpoint::of("/v2/models/a.b-c/versions/7/infer")
        else {
            panic!("not matched")
        };
        assert_eq!((name.as_str(), version.as_deref()), ("a.b-c", Some("7")));
    }
}
