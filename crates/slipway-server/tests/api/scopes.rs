//! Every route with every scope: the access decision comes from the matched
//! route's rule (`routes::table`), never from the path's shape. Walks the
//! route table of each role, so a new route is covered the moment it is
//! registered.

use crate::helpers::{spawn_with, TestApp, ADMIN};
use reqwest::Method;
use slipway_server::auth::Scope;
use slipway_server::config::Role;
use slipway_server::routes::table::{Access, Rule};

/// A concrete path for a route template. Placeholders get values that
/// resemble other routes' suffixes (`invocations`), which is how path-shape
/// rules were fooled.
fn concrete(template: &str) -> String {
    template
        .replace("{*path}", "any/dir/invocations")
        .replace("{name}", "invocations")
        .replace("{model_id}", "m-0123456789abcdef0123456789abcdef")
        .replace("{version}", "1")
        .replace("{key}", "k")
        .replace("{id}", "0123456789abcdef")
}

fn method(rule: &Rule) -> Method {
    Method::from_bytes(rule.method.as_str().as_bytes()).unwrap()
}

struct Tokens {
    by_scope: Vec<(Scope, String)>,
}

async fn tokens(app: &TestApp) -> Tokens {
    let mut by_scope = Vec::new();
    for s in [Scope::Read, Scope::Write, Scope::Predict] {
        by_scope.push((s, app.token(&[s.as_str()]).await));
    }
    by_scope.push((Scope::Admin, ADMIN.to_string()));
    Tokens { by_scope }
}

async fn check_role(role: Role) {
    let app = spawn_with(|c| c.role = role).await;
    let tokens = tokens(&app).await;
    let api = slipway_server::routes::api(role);
    assert!(api.rules().len() > 10, "{role:?} has routes");
    let mut checked = 0;
    for rule in api.rules() {
        let path = concrete(&rule.path);
        let m = method(rule);
        let anonymous = app.request(m.clone(), &path, None, "{}").await;
        match rule.access {
            Access::Public => {
                assert!(
                    anonymous.0 != 401 && anonymous.0 != 403,
                    "{} {path} is public but answered {}",
                    rule.method,
                    anonymous.0
                );
                continue;
            }
            Access::Metrics | Access::Scope(_) => assert_eq!(
                anonymous.0, 401,
                "{} {path} without a token: {}",
                rule.method, anonymous.1
            ),
        }
        let needed = match rule.access {
            Access::Scope(s) => s,
            _ => Scope::Read,
        };
        for (scope, token) in &tokens.by_scope {
            let got = app.request(m.clone(), &path, Some(token), "{}").await;
            let granted = needed.granted_by(&[scope.as_str().to_string()]);
            if granted {
                assert!(
                    got.0 != 401 && got.0 != 403 && got.0 != 405,
                    "{} {path} with scope {} (needs {}) answered {}: {}",
                    rule.method,
                    scope.as_str(),
                    needed.as_str(),
                    got.0,
                    got.1
                );
                let fallback = got.1["message"]
                    .as_str()
                    .or(got.1["error"].as_str())
                    .is_some_and(|m| m.starts_with("No endpoint at"));
                assert!(
                    !fallback,
                    "{} {path} is in the table but not routed",
                    rule.method
                );
            } else {
                assert_eq!(
                    got.0,
                    403,
                    "{} {path} with scope {} (needs {}): {}",
                    rule.method,
                    scope.as_str(),
                    needed.as_str(),
                    got.1
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "{role:?}: only {checked} checks");
}

#[tokio::test]
async fn every_route_every_scope_all() {
    check_role(Role::All).await;
}

#[tokio::test]
async fn every_route_every_scope_registry() {
    check_role(Role::Registry).await;
}

#[tokio::test]
async fn every_route_every_scope_serving() {
    check_role(Role::Serving).await;
}

/// The requests of the defect report: a `predict` token writing a
/// deployment named `invocations` or artifacts under `.../invocations`.
#[tokio::test]
async fn predict_token_cannot_write_through_invocations_suffix() {
    let app = spawn_with(|_| {}).await;
    let predict = app.token(&["predict"]).await;
    for (m, path) in [
        (Method::PUT, "/api/v1/deployments/invocations"),
        (Method::DELETE, "/api/v1/deployments/invocations"),
        (
            Method::PUT,
            "/api/2.0/mlflow-artifacts/artifacts/any/dir/invocations",
        ),
        (
            Method::GET,
            "/api/2.0/mlflow-artifacts/artifacts/any/dir/invocations",
        ),
        (
            Method::DELETE,
            "/api/2.0/mlflow-artifacts/artifacts/any/dir/invocations",
        ),
    ] {
        let got = app
            .request(
                m.clone(),
                path,
                Some(&predict),
                r#"{"model":"iris","alias":"champion"}"#,
            )
            .await;
        assert_eq!(got.0, 403, "{m} {path}: {}", got.1);
    }
    // a path that only looks like an inference route is not one
    let got = app
        .request(
            Method::POST,
            "/api/2.0/mlflow/runs/invocations",
            Some(&predict),
            "{}",
        )
        .await;
    assert_eq!(got.0, 404, "{}", got.1);
    // what predict is for still works
    let got = app
        .request(
            Method::POST,
            "/api/v1/deployments/nope/invocations",
            Some(&predict),
            "{}",
        )
        .await;
    assert_eq!(got.0, 404, "{}", got.1);
}
