//! Tokens, scopes and browser sessions.
//!
//! A token is `slw_` followed by 40 random hex digits; only its SHA-256 is
//! stored. Clients present it as `Authorization: Bearer <token>` or as the
//! password of HTTP Basic (so `MLFLOW_TRACKING_TOKEN` and
//! `MLFLOW_TRACKING_USERNAME/PASSWORD` both work). The secret itself is never
//! compared or logged: it is hashed first, the record is found by hash, and
//! the stored and computed hashes are compared in constant time. Verified
//! tokens are cached for `token_cache_seconds`, which bounds how long a
//! revoked token keeps working.
//!
//! A browser signs in once with a token (`/login`) and then presents the
//! session cookie [`SESSION_COOKIE`] instead: an opaque random id of which
//! only the SHA-256 is stored, granting exactly what the token grants, and
//! ending with its expiry, sign-out or the token's revocation. The
//! `Authorization` header wins when both are sent. Unsafe methods
//! authenticated by the cookie must come from the server's own origin
//! (`Origin`, else `Referer`, naming the `Host`): cross-site requests are
//! refused with 403. A browser navigation without credentials is redirected
//! to `/login?next=...`; API clients get 401.

use crate::error::{render, Protocol};
use crate::routes::table::{Access, AccessRules, Lookup};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use slipway_core::{Error, ErrorCode};
use slipway_metadata::{MetadataStore, SessionRecord, TokenRecord};
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

/// Verifies presented tokens and session ids against the store, with a
/// short-lived cache.
pub struct Authenticator {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Arc<TokenRecord>, Instant)>>,
    /// Verified sessions by id hash: the token, the session's expiry (ms) and when verified.
    sessions: Mutex<HashMap<String, CachedSession>>,
}

/// A verified session: its token, its expiry (ms) and when it was verified.
type CachedSession = (Arc<TokenRecord>, i64, Instant);

/// Bound on cached entries; the cache is cleared when it is reached.
const CACHE_CAPACITY: usize = 10_000;

impl Authenticator {
    /// Builds an authenticator over the store.
    pub fn new(store: Arc<dyn MetadataStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The record of a valid, unrevoked token, or `None`. Shared: a
    /// request's check costs a hash and a lookup, not a copy of the record.
    pub async fn verify(&self, secret: &str) -> Result<Option<Arc<TokenRecord>>, Error> {
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
        let rec = Arc::new(rec);
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
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.clear();
        }
    }

    /// The token of a valid session (unexpired, not signed out, token not
    /// revoked), or `None`.
    pub async fn verify_session(
        &self,
        session_id: &str,
    ) -> Result<Option<Arc<TokenRecord>>, Error> {
        let hash = hash_token(session_id);
        let now = slipway_core::now_millis();
        if let Ok(cache) = self.sessions.lock() {
            if let Some((rec, expires_at, at)) = cache.get(&hash) {
                if at.elapsed() < self.ttl && now < *expires_at {
                    return Ok(Some(rec.clone()));
                }
            }
        }
        let Some((session, token)) = self.store.find_session(&hash, now).await? else {
            return Ok(None);
        };
        let token = Arc::new(token);
        if !self.ttl.is_zero() {
            if let Ok(mut cache) = self.sessions.lock() {
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(hash, (token.clone(), session.expires_at, Instant::now()));
            }
        }
        Ok(Some(token))
    }

    /// Opens a session for a verified token; returns the session id (the
    /// cookie value, never stored).
    pub async fn open_session(&self, token: &TokenRecord, ttl: Duration) -> Result<String, Error> {
        let bytes: [u8; 32] = rand::random();
        let id = hex::encode(bytes);
        let now = slipway_core::now_millis();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.store
            .create_session(&SessionRecord {
                id_hash: hash_token(&id),
                token_id: token.id.clone(),
                created_at: now,
                expires_at: now.saturating_add(ttl_ms),
            })
            .await?;
        // now and then, sweep what has expired
        if rand::random::<u8>() < 8 {
            if let Err(e) = self.store.delete_expired_sessions(now).await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
        }
        Ok(id)
    }

    /// Ends a session (sign-out) here and in the store.
    pub async fn close_session(&self, session_id: &str) -> Result<(), Error> {
        let hash = hash_token(session_id);
        if let Ok(mut cache) = self.sessions.lock() {
            cache.remove(&hash);
        }
        self.store.delete_session(&hash).await
    }
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "slipway_session";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// Whether the request reached the server over TLS (as a TLS-terminating
/// proxy says with `X-Forwarded-Proto` or `Forwarded`).
pub fn came_over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value that stores a session id for `max_age`.
pub fn session_cookie(id: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_session_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether an unsafe request comes from the server's own origin: its
/// `Origin` (else its `Referer`) names the host the request was sent to.
/// Requests with neither are refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(|h| {
            h.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(source) = source else {
        return false;
    };
    let Ok(url) = url::Url::parse(source) else {
        return false; // includes `Origin: null`
    };
    let Some(src_host) = url.host_str() else {
        return false;
    };
    let src = match url.port() {
        Some(p) => format!("{src_host}:{p}"),
        None => src_host.to_string(),
    }
    .to_ascii_lowercase();
    let default_port = match url.scheme() {
        "https" => ":443",
        _ => ":80",
    };
    src == host
        || format!("{src}{default_port}") == host
        || src == host.trim_end_matches(default_port)
}

/// Whether a request is a browser navigation (a page load, not an API call):
/// `GET`/`HEAD` accepting `text/html`.
pub fn is_browser_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// A same-origin relative `next` location (`/path?query`), or `None` for
/// anything that could lead elsewhere (`//host`, `/\\host`, schemes).
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c == ' ')
        && next.len() <= 2048;
    ok.then_some(next)
}

/// `303 See Other` to the sign-in page, remembering where the browser was going.
pub fn redirect_to_login(uri: &Uri) -> Response {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| safe_next(p).is_some() && !p.starts_with("/login"))
        .unwrap_or("/");
    let location = if target == "/" {
        "/login".to_string()
    } else {
        format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        )
    };
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Extracts the secret from `Authorization: Bearer` or Basic (password part).
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
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
pub struct Caller(pub Option<Arc<TokenRecord>>);

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer` or Basic.
    Token,
    /// The session cookie of a signed-in browser.
    Session,
}

/// A verified caller: the token (directly or behind a session) and how it came.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The token record.
    pub record: Arc<TokenRecord>,
    /// Header or cookie.
    pub via: Via,
}

/// State of the access middleware: the application and the route table's rules.
#[derive(Clone)]
pub struct AccessState {
    /// The application state (token store, settings).
    pub app: AppState,
    /// Access decisions of every registered route.
    pub rules: Arc<AccessRules>,
}

/// Verifies the token or session a request presents. Without valid
/// credentials a browser navigation gets `303` to `/login`, anything else 401
/// (in the request's protocol); 503 when the store cannot say.
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Authenticated, Response> {
    let protocol = Protocol::for_path(uri.path());
    let unauthenticated = |message: &str| {
        if is_browser_navigation(method, headers) {
            redirect_to_login(uri)
        } else {
            render(protocol, &Error::new(ErrorCode::Unauthenticated, message))
        }
    };
    let (verified, via) = if let Some(secret) = presented_secret(headers) {
        (state.auth.verify(&secret).await, Via::Token)
    } else if let Some(id) = cookie(headers, SESSION_COOKIE) {
        (state.auth.verify_session(&id).await, Via::Session)
    } else {
        return Err(unauthenticated("Authentication required: send `Authorization: Bearer <token>` or HTTP Basic with the token as password, or sign in at /login"));
    };
    match verified {
        Ok(Some(record)) => Ok(Authenticated { record, via }),
        Ok(None) if via == Via::Token => Err(unauthenticated("Invalid or revoked token")),
        Ok(None) => Err(unauthenticated(
            "Session expired or ended; sign in again at /login",
        )),
        Err(e) => {
            tracing::error!(error = %e, "token verification failed");
            Err(render(
                protocol,
                &Error::new(
                    ErrorCode::TemporarilyUnavailable,
                    "Token verification is unavailable; retry later",
                ),
            ))
        }
    }
}

/// Route middleware: decides from the matched route's rule. Public routes
/// pass; scoped routes need a valid token granting the scope (401 / 403);
/// a route without a rule is refused to everyone (403, logged), so a route
/// added without a scope decision fails closed.
pub async fn require_access(
    State(ctx): State<AccessState>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let admitted = admit(
        &ctx,
        route.as_ref().map(MatchedPath::as_str),
        req.method(),
        req.uri(),
        req.headers(),
    )
    .await;
    match admitted {
        Ok(None) => next.run(req).await,
        Ok(Some(record)) => {
            req.extensions_mut().insert(Caller(Some(record)));
            next.run(req).await
        }
        Err(resp) => resp,
    }
}

/// The access decision of [`require_access`] for a request to `route` (the
/// matched route pattern; `None`: none matched): `Ok(None)` lets a public
/// route through unauthenticated, `Ok(Some(token))` lets an authorised
/// caller through, `Err` is the refusal to send.
pub async fn admit(
    ctx: &AccessState,
    route: Option<&str>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Arc<TokenRecord>>, Response> {
    let lookup = match route {
        Some(route) => ctx.rules.lookup(method, route),
        None => Lookup::Unknown,
    };
    let needed = match lookup {
        Lookup::Found(Access::Public) => return Ok(None),
        Lookup::Found(Access::Metrics) if !ctx.app.config.metrics_require_token => return Ok(None),
        Lookup::Found(Access::Metrics) => Some(Scope::Read),
        Lookup::Found(Access::Scope(s)) => Some(s),
        // the path exists with other methods: authenticate, then let the
        // router answer 405
        Lookup::OtherMethods => None,
        Lookup::Unknown => {
            let route = route.unwrap_or_default();
            tracing::error!(%route, %method, "route has no access rule; refused");
            return Err(render(
                Protocol::for_path(uri.path()),
                &Error::new(
                    ErrorCode::PermissionDenied,
                    format!("No access rule is defined for {method} {route}; refused"),
                ),
            ));
        }
    };
    let protocol = Protocol::for_path(uri.path());
    let Authenticated { record, via } = authenticate(&ctx.app, method, uri, headers).await?;
    let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if via == Via::Session && unsafe_method && !same_origin(headers) {
        tracing::warn!(%method, path = %uri.path(), "cross-site request with a session cookie refused");
        return Err(render(
            protocol,
            &Error::new(
                ErrorCode::PermissionDenied,
                "Cross-site request refused: a request signed in by the session cookie must come from this server's own pages (Origin or Referer naming this host)",
            ),
        ));
    }
    if let Some(needed) = needed {
        if !needed.granted_by(&record.scopes) {
            return Err(render(
                protocol,
                &Error::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "Token '{}' lacks the '{}' scope needed for {} {}",
                        record.name,
                        needed.as_str(),
                        method,
                        uri.path()
                    ),
                ),
            ));
        }
    }
    Ok(Some(record))
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
    fn secrets_look_right() {
        let s = generate_secret();
        assert!(s.starts_with("slw_") && s.len() == 44);
        assert_eq!(hash_token("x").len(), 64);
        assert!(parse_scopes(&["nope".into()]).is_err());
    }
}
