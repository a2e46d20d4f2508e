//! The route table: every route is registered together with the access it
//! needs, and the token check decides from the route that matched — never
//! from the shape of the request path.
//!
//! Route modules build a [`Routes`] with [`Routes::get`], [`Routes::post`],
//! ... each taking an [`Access`]; the same calls produce the axum router and
//! the [`AccessRules`] the middleware consults. A route registered by other
//! means has no rule and is refused to every caller (fail closed), so a new
//! route cannot reach users without a scope decision. The rules are public so
//! a test can walk every route with every scope.

use crate::auth::Scope;
use crate::state::AppState;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use std::collections::HashMap;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes).
    Public,
    /// `/metrics`: public unless `metrics_require_token`, then scope `read`.
    Metrics,
    /// A token granting this scope.
    Scope(Scope),
}

/// Scope `read`.
pub const READ: Access = Access::Scope(Scope::Read);
/// Scope `write`.
pub const WRITE: Access = Access::Scope(Scope::Write);
/// Scope `predict`.
pub const PREDICT: Access = Access::Scope(Scope::Predict);
/// Scope `admin`.
pub const ADMIN: Access = Access::Scope(Scope::Admin);

/// One route with its access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// HTTP method (`HEAD` is answered by the `GET` route and its rule).
    pub method: Method,
    /// The route's path template as axum matches it (`/v2/models/{name}/infer`).
    pub path: String,
    /// What the caller needs.
    pub access: Access,
}

/// A router under construction and the rules of its routes.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    rules: Vec<Rule>,
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),*) => {$(
        #[doc = concat!("Adds a `", stringify!($method), "` route needing `access`.")]
        pub fn $name<H, T>(self, path: &str, access: Access, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(Method::$method, path, access, axum::routing::$name(handler))
        }
    )*};
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    method_fns!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

    fn add(
        mut self,
        method: Method,
        path: &str,
        access: Access,
        route: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, route);
        self.rules.push(Rule {
            method,
            path: path.to_string(),
            access,
        });
        self
    }

    /// Mounts `other` under `prefix` (MLflow's API lives under two prefixes).
    pub fn nest(mut self, prefix: &str, other: Routes) -> Self {
        self.router = self.router.nest(prefix, other.router);
        self.rules.extend(other.rules.into_iter().map(|r| Rule {
            path: format!("{prefix}{}", r.path),
            ..r
        }));
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.rules.extend(other.rules);
        self
    }

    /// The rules of every route, in registration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The router and the lookup table for the access middleware.
    pub fn into_parts(self) -> (Router<AppState>, AccessRules) {
        let mut by_path: HashMap<String, Vec<(Method, Access)>> = HashMap::new();
        for r in self.rules {
            by_path
                .entry(r.path)
                .or_default()
                .push((r.method, r.access));
        }
        (self.router, AccessRules { by_path })
    }
}

/// Access decisions by route template and method.
#[derive(Debug, Default)]
pub struct AccessRules {
    by_path: HashMap<String, Vec<(Method, Access)>>,
}

/// The outcome of looking a request up in the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The route and method have this rule.
    Found(Access),
    /// The route exists, but not for this method (the router answers 405).
    OtherMethods,
    /// The route has no rule at all: refuse.
    Unknown,
}

impl AccessRules {
    /// The access a matched route needs. A route without rules was not
    /// registered through [`Routes`]; the caller must refuse it.
    pub fn lookup(&self, method: &Method, route: &str) -> Lookup {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match self.by_path.get(route) {
            None => Lookup::Unknown,
            Some(rules) => rules
                .iter()
                .find(|(m, _)| m == method)
                .map_or(Lookup::OtherMethods, |(_, a)| Lookup::Found(*a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok() -> &'static str {
        "ok"
    }

    #[test]
    fn lookup_by_route_and_method() {
        let (_, rules) = Routes::new()
            .get("/x/{name}", READ, ok)
            .put("/x/{name}", WRITE, ok)
            .nest("/p", Routes::new().post("/y", PREDICT, ok))
            .into_parts();
        assert_eq!(rules.lookup(&Method::GET, "/x/{name}"), Lookup::Found(READ));
        assert_eq!(
            rules.lookup(&Method::HEAD, "/x/{name}"),
            Lookup::Found(READ)
        );
        assert_eq!(
            rules.lookup(&Method::PUT, "/x/{name}"),
            Lookup::Found(WRITE)
        );
        assert_eq!(
            rules.lookup(&Method::DELETE, "/x/{name}"),
            Lookup::OtherMethods
        );
        assert_eq!(rules.lookup(&Method::POST, "/p/y"), Lookup::Found(PREDICT));
        // a route added behind the table's back has no rule: refused
        assert_eq!(rules.lookup(&Method::GET, "/raw"), Lookup::Unknown);
    }
}
