//! Browser sign-in: the session cookie and its attributes, scopes carried
//! over from the token, the cross-site (CSRF) check on unsafe methods, the
//! redirect of page loads to `/login`, sign-out, expiry and revocation.

use crate::helpers::{spawn_app, TestApp, ADMIN};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A client that shows redirects instead of following them, and keeps no cookies.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn origin(app: &TestApp) -> String {
    app.url.clone()
}

/// Signs in with `token` through the form; returns the response.
async fn sign_in(
    app: &TestApp,
    token: &str,
    next: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = no_redirects()
        .post(format!("{}/login", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", origin(app))
        .body(format!(
            "token={}&next={}",
            url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The session cookie (`name=value`) of a sign-in response.
fn session_cookie(resp: &reqwest::Response) -> String {
    let set = resp
        .headers()
        .get(SET_COOKIE)
        .expect("sign-in sets a cookie")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn signed_in(app: &TestApp, token: &str) -> String {
    let resp = sign_in(app, token, "/", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    session_cookie(&resp)
}

/// Sends a request with the cookie and the given extra headers.
async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value, HeaderMap) {
    let mut req = no_redirects()
        .request(method, format!("{}{path}", app.url))
        .header(COOKIE, cookie)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn sign_in_sets_an_http_only_strict_cookie_and_redirects() {
    let app = spawn_app().await;
    let resp = sign_in(&app, ADMIN, "/console/#/tokens", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/console/#/tokens");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in [
        "slipway_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure ({set})");
    assert!(!set.contains(ADMIN), "the token is not the cookie");
    let cookie = session_cookie(&resp);
    let (status, body, _) = with_cookie(
        &app,
        Method::GET,
        "/api/2.0/mlflow/experiments/search?max_results=10",
        &cookie,
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // only the hash of the session id is stored
    let id = cookie.trim_start_matches("slipway_session=");
    let hash = slipway_server::auth::hash_token(id);
    assert!(app
        .store
        .find_session(&hash, slipway_core::now_millis())
        .await
        .unwrap()
        .is_some());
    assert!(app
        .store
        .find_session(id, slipway_core::now_millis())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_tls_proxy() {
    let app = spawn_app().await;
    let resp = sign_in(&app, ADMIN, "/", &[("x-forwarded-proto", "https")]).await;
    let set = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
}

#[tokio::test]
async fn a_failed_sign_in_says_why_and_sets_nothing() {
    let app = spawn_app().await;
    let resp = sign_in(&app, "slw_not-a-token", "/", &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    let page = resp.text().await.unwrap();
    assert!(page.contains("not valid or has been revoked"), "{page}");
    // a form posted from another site is refused, even with a good token
    let resp = no_redirects()
        .post(format!("{}/login", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://evil.example")
        .body(format!("token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    // API clients are told to use the header
    let resp = no_redirects()
        .post(format!("{}/login", app.url))
        .header("content-type", "application/json")
        .body(format!(r#"{{"token":"{ADMIN}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn next_must_stay_on_this_origin() {
    let app = spawn_app().await;
    for (next, expected) in [
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/#/models", "/#/models"),
        ("/login", "/"),
    ] {
        let resp = sign_in(&app, ADMIN, next, &[]).await;
        assert_eq!(resp.headers()[LOCATION], expected, "next={next}");
    }
    let page = no_redirects()
        .get(format!("{}/login?next=https://evil.example/", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"name="next" value="""#), "{page}");
}

#[tokio::test]
async fn a_read_session_cannot_create_a_token() {
    let app = spawn_app().await;
    let read = app.token(&["read"]).await;
    let cookie = signed_in(&app, &read).await;
    let own = origin(&app);
    let (status, body, _) = with_cookie(
        &app,
        Method::POST,
        "/api/v1/tokens",
        &cookie,
        &[("origin", &own)],
        r#"{"name":"x","scopes":["admin"]}"#,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    let (status, _, _) =
        with_cookie(&app, Method::GET, "/api/v1/deployments", &cookie, &[], "").await;
    assert_eq!(status, 200, "read is read");
}

#[tokio::test]
async fn cross_site_writes_with_the_cookie_are_refused() {
    let app = spawn_app().await;
    let cookie = signed_in(&app, ADMIN).await;
    let own = origin(&app);
    let body = r#"{"name":"csrf","scopes":["read"]}"#;
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("referer", "http://evil.example/page")],
        vec![],
    ] {
        let (status, got, _) = with_cookie(
            &app,
            Method::POST,
            "/api/v1/tokens",
            &cookie,
            &headers,
            body,
        )
        .await;
        assert_eq!(status, 403, "{headers:?}: {got}");
        assert!(
            got["message"].as_str().unwrap().contains("Cross-site"),
            "{got}"
        );
    }
    let referer = format!("{own}/console/");
    for headers in [
        vec![("origin", own.as_str())],
        vec![("referer", referer.as_str())],
    ] {
        let (status, got, _) = with_cookie(
            &app,
            Method::POST,
            "/api/v1/tokens",
            &cookie,
            &headers,
            body,
        )
        .await;
        assert_eq!(status, 200, "{headers:?}: {got}");
    }
    // reads need no origin; token clients are not browsers and need none either
    let (status, _, _) = with_cookie(&app, Method::GET, "/api/v1/tokens", &cookie, &[], "").await;
    assert_eq!(status, 200);
    let (status, got) = app.post("/api/v1/tokens", Some(ADMIN), body).await;
    assert_eq!(status, 200, "{got}");
}

#[tokio::test]
async fn page_loads_without_a_session_go_to_sign_in_and_api_calls_get_401() {
    let app = spawn_app().await;
    let browser = |path: &str| {
        no_redirects()
            .get(format!("{}{path}", app.url))
            .header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
    };
    for (path, location) in [
        ("/", "/login"),
        ("/console/", "/login?next=%2Fconsole%2F"),
        (
            "/api/v1/deployments",
            "/login?next=%2Fapi%2Fv1%2Fdeployments",
        ),
        ("/no/such/page", "/login?next=%2Fno%2Fsuch%2Fpage"),
    ] {
        let resp = browser(path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(resp.headers()[LOCATION], location, "{path}");
    }
    // an expired or ended session is the same as none
    let resp = browser("/")
        .header(COOKIE, "slipway_session=0123abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // API clients (no text/html) get 401 JSON
    let resp = no_redirects()
        .get(format!("{}/api/2.0/mlflow/experiments/search", app.url))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "UNAUTHENTICATED");
    // the sign-in page itself is public
    let resp = browser("/login").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn sign_out_ends_the_session_everywhere() {
    let app = spawn_app().await;
    let cookie = signed_in(&app, ADMIN).await;
    let own = origin(&app);
    // a foreign site cannot sign the browser out
    let (status, _, _) = with_cookie(
        &app,
        Method::POST,
        "/logout",
        &cookie,
        &[("origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, headers) = with_cookie(
        &app,
        Method::POST,
        "/logout",
        &cookie,
        &[("origin", &own)],
        "",
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/login");
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, body, _) =
        with_cookie(&app, Method::GET, "/api/v1/tokens", &cookie, &[], "").await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let app = spawn_app().await;
    let (status, made) = app
        .post(
            "/api/v1/tokens",
            Some(ADMIN),
            r#"{"name":"browser","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(status, 200);
    let cookie = signed_in(&app, made["token"].as_str().unwrap()).await;
    let (status, _, _) =
        with_cookie(&app, Method::GET, "/api/v1/deployments", &cookie, &[], "").await;
    assert_eq!(status, 200);
    let id = made["id"].as_str().unwrap();
    let (status, _) = app
        .request(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(ADMIN),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) =
        with_cookie(&app, Method::GET, "/api/v1/deployments", &cookie, &[], "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    let token = app
        .store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let now = slipway_core::now_millis();
    app.store
        .create_session(&slipway_metadata::SessionRecord {
            id_hash: slipway_server::auth::hash_token("expired-session-id"),
            token_id: token.id,
            created_at: now - 10_000,
            expires_at: now - 1,
        })
        .await
        .unwrap();
    let (status, _, _) = with_cookie(
        &app,
        Method::GET,
        "/api/v1/deployments",
        "slipway_session=expired-session-id",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 401);
}

#[test]
fn same_origin_rules() {
    use slipway_server::auth::same_origin;
    let h = |pairs: &[(&'static str, &str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    };
    assert!(same_origin(&h(&[
        ("host", "a:8080"),
        ("origin", "http://a:8080")
    ])));
    assert!(same_origin(&h(&[("host", "a"), ("origin", "https://a")])));
    assert!(same_origin(&h(&[
        ("host", "a:443"),
        ("origin", "https://a")
    ])));
    assert!(same_origin(&h(&[
        ("host", "internal:8080"),
        ("x-forwarded-host", "slipway.example"),
        ("origin", "https://slipway.example")
    ])));
    assert!(!same_origin(&h(&[
        ("host", "a:8080"),
        ("origin", "http://a:9090")
    ])));
    assert!(!same_origin(&h(&[
        ("host", "a"),
        ("origin", "http://a.evil")
    ])));
    assert!(!same_origin(&h(&[("host", "a")])));
    assert!(!same_origin(&h(&[("origin", "http://a")])));
}
