//! Browser sign-in: `/login` takes a token once and opens a server-side
//! session (cookie [`auth::SESSION_COOKIE`]); `POST /logout` ends it.
//!
//! Both routes are public: the form is what an anonymous browser is sent to.
//! A sign-in must come from this server's own page (same-origin check), so a
//! foreign site can neither log a browser in nor out. The token travels only
//! in the form body and is never logged, put in a URL or kept by the browser.

use crate::auth::{self, cleared_session_cookie, safe_next, same_origin, session_cookie};
use crate::error::{with_row_headers, ApiError};
use crate::extract::read_small_body;
use crate::routes::table::{Access, Routes};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Duration;

const PAGE: &str = include_str!("../../assets/login.html");
/// Largest sign-in form accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    Routes::new()
        .get("/login", Access::Public, form)
        .post("/login", Access::Public, sign_in)
        .post("/logout", Access::Public, sign_out)
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn form(
    State(s): State<AppState>,
    query: Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next).unwrap_or_default();
    page(&s, StatusCode::OK, &next, None)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn ttl_text(minutes: u64) -> String {
    if minutes % 60 == 0 {
        format!("{} h", minutes / 60)
    } else {
        format!("{minutes} min")
    }
}

/// The sign-in page, with an error line when a sign-in failed.
fn page(s: &AppState, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let next = safe_next(next).unwrap_or("");
    let error = error
        .map(|e| format!(r#"<div class="error" role="alert">{}</div>"#, escape(e)))
        .unwrap_or_default();
    let html = PAGE
        .replace("{{error}}", &error)
        .replace("{{next}}", &escape(next))
        .replace("{{ttl}}", &ttl_text(s.config.session_ttl_minutes));
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(h);
    resp
}

/// Headers of a sign-in response: not cached, not framed, no scripts.
fn page_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
    );
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    page_headers(h);
    resp
}

async fn sign_in(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST /login takes the sign-in form (application/x-www-form-urlencoded, field `token`); API clients send `Authorization: Bearer <token>` instead",
        )
            .into_response();
    }
    // a public route: the form is read under the same deadline as every
    // other body (a slow sender gets 408 and the connection is closed)
    let bytes = match read_small_body(body, &s.config, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(ApiError(e)) => {
            let status =
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            return with_row_headers(e.code, page(&s, status, "", Some(&e.message)));
        }
    };
    let mut token = String::new();
    let mut next = String::new();
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        match k.as_ref() {
            "token" => token = v.trim().to_string(),
            "next" => next = v.into_owned(),
            _ => {}
        }
    }
    if !same_origin(&headers) {
        tracing::warn!("cross-site sign-in refused");
        return page(
            &s,
            StatusCode::FORBIDDEN,
            &next,
            Some("Sign-in refused: the form must be sent from this server's own sign-in page."),
        );
    }
    if token.is_empty() {
        return page(&s, StatusCode::BAD_REQUEST, &next, Some("Enter a token."));
    }
    let record = match s.auth.verify(&token).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return page(
                &s,
                StatusCode::UNAUTHORIZED,
                &next,
                Some("That token is not valid or has been revoked."),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "token verification failed at sign-in");
            return page(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                Some("Sign-in is unavailable right now; retry in a moment."),
            );
        }
    };
    let ttl = Duration::from_secs(s.config.session_ttl_minutes * 60);
    let id = match s.auth.open_session(&record, ttl).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "could not open a session");
            return page(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                Some("Sign-in is unavailable right now; retry in a moment."),
            );
        }
    };
    tracing::info!(token = %record.name, "browser signed in");
    let location = safe_next(&next)
        .filter(|n| !n.starts_with("/login"))
        .unwrap_or("/");
    see_other(
        location,
        Some(session_cookie(&id, ttl, auth::came_over_tls(&headers))),
    )
}

async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let secure = auth::came_over_tls(&headers);
    if let Some(id) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        if !same_origin(&headers) {
            tracing::warn!("cross-site sign-out refused");
            return (
                StatusCode::FORBIDDEN,
                "Sign-out refused: it must be sent from this server's own pages",
            )
                .into_response();
        }
        if let Err(e) = s.auth.close_session(&id).await {
            tracing::error!(error = %e, "could not end a session");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out is unavailable right now; retry in a moment",
            )
                .into_response();
        }
    }
    see_other("/login", Some(cleared_session_cookie(secure)))
}
