//! Tokens and scopes.
//!
//! A token is `slw_` followed by 40 random hex digits; only its SHA-256 is
//! stored. Clients present it as `Authorization: Bearer <token>` or as the
//! password of HTTP Basic (so `MLFLOW_TRACKING_TOKEN` and
//! `MLFLOW_TRACKING_USERNAME/PASSWORD` both work). The secret itself is never
//! compared or logged: it is hashed first, the record is found by hash, and
//! the stored and computed hashes are compared in constant time. Verified
//! tokens are cached for `token_cache_seconds`, which bounds how long a
//! revoked token keeps working.

use crate::error::{render, Protocol};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use slipway_core::{Error, ErrorCode};
use slipway_metadata::{MetadataStore, TokenRecord};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// A permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read tracking, registry, artifacts, deployments, metrics.
    Read,
    /// Everything `read` can, plus writes to tracking, registry, artifacts and deployments.
    Write,
    /// Inference routes only.
    Predict,
    /// Everything, including token management.
    Admin,
}

impl Scope {
    /// All scopes, for help texts.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Predict, Scope::Admin];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Predict => "predict",
            Self::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a token holding `granted` may use a route needing `self`.
    pub fn granted_by(self, granted: &[String]) -> bool {
        granted
            .iter()
            .filter_map(|g| Scope::parse(g))
            .any(|g| match (g, self) {
                (Scope::Admin, _) => true,
                (Scope::Write, Scope::Read | Scope::Write) => true,
                (a, b) => a == b,
            })
    }
}

/// Validates a list of scope names; the error names the unknown one.
pub fn parse_scopes(scopes: &[String]) -> Result<Vec<String>, Error> {
    if scopes.is_empty() {
        return Err(Error::invalid(
            "A token needs at least one scope: read, write, predict or admin",
        ));
    }
    let mut out = Vec::new();
    for s in scopes {
        let scope = Scope::parse(s.trim()).ok_or_else(|| {
            Error::invalid(format!(
                "Unknown scope '{s}'; expected read, write, predict or admin"
            ))
        })?;
        if !out.contains(&scope.as_str().to_string()) {
            out.push(scope.as_str().to_string());
        }
    }
    Ok(out)
}

/// Lowercase hex SHA-256 of a token secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random token secret.
pub fn generate_secret() -> String {
    let bytes: [u8; 20] = rand::random();
    format!("slw_{}", hex::encode(bytes))
}

/// A new public token id.
pub fn generate_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// Creates and stores a token; returns the secret (shown once) and its record.
pub async fn create_token(
    store: &dyn MetadataStore,
    name: &str,
    scopes: &[String],
) -> Result<(String, TokenRecord), Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(Error::invalid("Token name must be 1 to 200 characters"));
    }
    let scopes = parse_scopes(scopes)?;
    let secret = generate_secret();
    let record = TokenRecord {
        id: generate_id(),
        name: name.to_string(),
        secret_hash: hash_token(&secret),
        scopes,
        created_at: slipway_core::now_millis(),
        revoked_at: None,
    };
    store.create_token(&record).await?;
    Ok((secret, record))
}

/// Verifies presented tokens against the store, with a short-lived cache.
pub struct Authenticator {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (TokenRecord, Instant)>>,
}

/// Bound on cached entries; the cache is cleared when it is reached.
const CACHE_CAPACITY: usize = 10_000;

impl Authenticator {
    /// Builds an authenticator over the store.
    pub fn new(store: Arc<dyn MetadataStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The record of a valid, unrevoked token, or `None`.
    pub async fn verify(&self, secret: &str) -> Result<Option<TokenRecord>, Error> {
        let hash = hash_token(secret);
        if let Ok(cache) = self.cache.lock() {
            if let Some((rec, at)) = cache.get(&hash) {
                if at.elapsed() < self.ttl
                    && bool::from(rec.secret_hash.as_bytes().ct_eq(hash.as_bytes()))
                {
                    return Ok(Some(rec.clone()));
                }
            }
        }
        let Some(rec) = self.store.find_token_by_hash(&hash).await? else {
            return Ok(None);
        };
        if rec.revoked_at.is_some()
            || !bool::from(rec.secret_hash.as_bytes().ct_eq(hash.as_bytes()))
        {
            return Ok(None);
        }
        if !self.ttl.is_zero() {
            if let Ok(mut cache) = self.cache.lock() {
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(hash, (rec.clone(), Instant::now()));
            }
        }
        Ok(Some(rec))
    }

    /// Drops every cached entry (after a revocation on this replica).
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }
}

/// The scope a request needs, or `None` for public routes.
pub fn required_scope(method: &Method, path: &str, metrics_require_token: bool) -> Option<Scope> {
    let read_or_write = |m: &Method| {
        if m == Method::GET || m == Method::HEAD {
            Scope::Read
        } else {
            Scope::Write
        }
    };
    if path == "/health"
        || path.starts_with("/health/")
        || path == "/v2/health/live"
        || path == "/v2/health/ready"
    {
        return None;
    }
    if path == "/metrics" {
        return metrics_require_token.then_some(Scope::Read);
    }
    if path.starts_with("/api/v1/tokens") {
        return Some(Scope::Admin);
    }
    if path.starts_with("/v2") || path.ends_with("/invocations") {
        return Some(Scope::Predict);
    }
    if path.starts_with("/api/v1/deployments") {
        return Some(read_or_write(method));
    }
    if method == Method::POST
        && (path.ends_with("/search")
            || path.ends_with("/get-latest-versions")
            || path.ends_with("/get-by-name"))
    {
        return Some(Scope::Read);
    }
    Some(read_or_write(method))
}

/// Extracts the secret from `Authorization: Bearer` or Basic (password part).
fn presented_secret(req: &Request) -> Option<String> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

/// The token a request was authenticated with, for handlers that need it.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<TokenRecord>);

/// Middleware: 401 without a valid token, 403 with too weak a scope.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let Some(needed) = required_scope(req.method(), &path, state.config.metrics_require_token)
    else {
        return next.run(req).await;
    };
    let protocol = Protocol::for_path(&path);
    let Some(secret) = presented_secret(&req) else {
        return render(protocol, &Error::new(ErrorCode::Unauthenticated, "Authentication required: send `Authorization: Bearer <token>` or HTTP Basic with the token as password"));
    };
    let record = match state.auth.verify(&secret).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return render(
                protocol,
                &Error::new(ErrorCode::Unauthenticated, "Invalid or revoked token"),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "token verification failed");
            return render(
                protocol,
                &Error::new(
                    ErrorCode::TemporarilyUnavailable,
                    "Token verification is unavailable; retry later",
                ),
            );
        }
    };
    if !needed.granted_by(&record.scopes) {
        return render(
            protocol,
            &Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "Token '{}' lacks the '{}' scope needed for {} {}",
                    record.name,
                    needed.as_str(),
                    req.method(),
                    path
                ),
            ),
        );
    }
    req.extensions_mut().insert(Caller(Some(record)));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lattice() {
        let w = vec!["write".to_string()];
        assert!(
            Scope::Read.granted_by(&w)
                && Scope::Write.granted_by(&w)
                && !Scope::Predict.granted_by(&w)
        );
        assert!(!Scope::Admin.granted_by(&w));
        let a = vec!["admin".to_string()];
        assert!(Scope::ALL.iter().all(|s| s.granted_by(&a)));
        let r = vec!["read".to_string()];
        assert!(!Scope::Write.granted_by(&r));
    }

    #[test]
    fn routes_map_to_scopes() {
        assert_eq!(required_scope(&Method::GET, "/health/ready", true), None);
        assert_eq!(
            required_scope(&Method::POST, "/api/2.0/mlflow/runs/search", true),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/2.0/mlflow/runs/create", true),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::PUT, "/api/2.0/mlflow-artifacts/artifacts/x", true),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/tokens", true),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope(&Method::POST, "/v2/models/iris/infer", true),
            Some(Scope::Predict)
        );
        assert_eq!(required_scope(&Method::GET, "/metrics", false), None);
    }

    #[test]
    fn secrets_look_right() {
        let s = generate_secret();
        assert!(s.starts_with("slw_") && s.len() == 44);
        assert_eq!(hash_token("x").len(), 64);
        assert!(parse_scopes(&["nope".into()]).is_err());
    }
}
