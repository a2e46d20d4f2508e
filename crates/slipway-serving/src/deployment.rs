//! One deployment: its spec, the version(s) it has loaded, and its state.

use crate::routing::{Routed, Routing};
use crate::spec::DeploymentSpec;
use crate::stats::{PairStats, RoleStats};
use serde::Serialize;
use slipway_runtime::ModelWorker;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    /// Known to this process but not loaded here (registry role).
    Stored,
    /// The first load has not finished yet.
    Loading,
    /// Serving its target version.
    Ready,
    /// Serving an older version: the target failed to load.
    Degraded,
    /// Nothing is serving: every load so far failed.
    Failed,
}

impl DeploymentState {
    /// The wire name (`ready`, `failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Loading => "loading",
            Self::Ready => "ready",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment's load status, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeploymentStatus {
    /// The state.
    pub state: DeploymentState,
    /// Version being served, if any.
    pub serving_version: Option<String>,
    /// Version the deployment should serve (the alias target).
    pub target_version: Option<String>,
    /// Last error, if the last load failed.
    pub error: Option<String>,
    /// Whether that error is permanent: no retry until the target changes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub error_permanent: bool,
    /// When the next load attempt is due after a transient failure, ms since epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
    /// When the status last changed, ms since epoch.
    pub updated_at: i64,
}

/// One loaded model version of a deployment.
pub struct LoadedVersion {
    /// Registry version number.
    pub version: String,
    /// The worker running it.
    pub worker: ModelWorker,
    /// Seconds the load (fetch + load + warm-up) took.
    pub load_seconds: f64,
    /// Request metric handles of this version, resolved once per label set.
    pub request_metrics: RequestMetrics,
}

/// The two request metrics of one label set.
#[derive(Clone)]
pub struct RequestHandles {
    /// `slipway_inference_requests_total`.
    pub requests: metrics::Counter,
    /// `slipway_inference_duration_seconds`.
    pub duration: metrics::Histogram,
}

/// `slipway_inference_requests_total` and
/// `slipway_inference_duration_seconds` handles of one loaded version, by
/// role, protocol and status: resolved (label strings built, the registry
/// searched) the first time a label set is seen, then read under a shared
/// lock with no allocation.
#[derive(Default)]
pub struct RequestMetrics {
    handles: RwLock<Vec<(MetricKey, RequestHandles)>>,
}

/// Role, protocol and status.
type MetricKey = (&'static str, &'static str, u16);

impl RequestMetrics {
    /// Most label sets cached per version (roles × protocols × statuses
    /// seen); beyond it handles are resolved on every call.
    const MAX: usize = 64;

    /// The handles for `deployment` (the version's own deployment), `version`,
    /// `role`, `protocol` and `status`.
    pub fn get(
        &self,
        deployment: &str,
        version: &str,
        role: &'static str,
        protocol: &'static str,
        status: u16,
    ) -> RequestHandles {
        let key = (role, protocol, status);
        {
            let cached = self
                .handles
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, h)) = cached.iter().find(|(k, _)| *k == key) {
                return h.clone();
            }
        }
        let labels = [
            ("deployment", deployment.to_string()),
            ("version", version.to_string()),
            ("role", role.to_string()),
            ("protocol", protocol.to_string()),
            ("status", status.to_string()),
        ];
        let h = RequestHandles {
            requests: metrics::counter!("slipway_inference_requests_total", &labels),
            duration: metrics::histogram!("slipway_inference_duration_seconds", &labels),
        };
        let mut cached = self
            .handles
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.len() < Self::MAX && !cached.iter().any(|(k, _)| *k == key) {
            cached.push((key, h.clone()));
        }
        h
    }
}

/// Retry bookkeeping of one version after failed loads.
#[derive(Debug, Default, Clone)]
pub(crate) struct VersionRetry {
    /// Consecutive transient failures.
    pub failures: u32,
    /// No attempt before this instant.
    pub next_at: Option<Instant>,
    /// Failed permanently: not retried until the plan changes.
    pub permanent: bool,
    /// The last error.
    pub error: String,
}

/// Retry bookkeeping of a deployment.
#[derive(Debug, Default)]
pub(crate) struct Retry {
    /// Whether a load attempt ever finished (success or failure).
    pub attempted: bool,
    /// Failed versions.
    pub versions: std::collections::HashMap<String, VersionRetry>,
}

/// Longest pause between retries of a transiently failing load.
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl Retry {
    /// The pause after the `failures`-th consecutive transient failure:
    /// 1, 2, 4, ... seconds, at most [`MAX_RETRY_DELAY`].
    pub fn delay(failures: u32) -> Duration {
        let secs = 1u64 << failures.saturating_sub(1).min(16);
        Duration::from_secs(secs).min(MAX_RETRY_DELAY)
    }

    /// Whether a load of `version` may be attempted now.
    pub fn due(&self, version: &str) -> bool {
        match self.versions.get(version) {
            None => true,
            Some(r) => !r.permanent && r.next_at.is_none_or(|at| Instant::now() >= at),
        }
    }
}

/// A static shadow's figures: its version, the comparison, its own runs.
pub(crate) type ShadowStats = (String, Arc<PairStats>, Arc<RoleStats>);

/// A deployment: spec, the versions it has loaded, how requests are routed
/// among them, and status.
pub struct Deployment {
    /// Name (the V2 model name).
    pub name: String,
    spec: RwLock<DeploymentSpec>,
    /// The stable version (what the deployment serves without a split).
    active: RwLock<Option<Arc<LoadedVersion>>>,
    /// Every loaded version: stable, split versions, shadow, candidate.
    loaded: RwLock<BTreeMap<String, Arc<LoadedVersion>>>,
    routing: RwLock<Option<Arc<Routing>>>,
    /// A static shadow's comparison, kept while the shadow stays the same.
    pub(crate) shadow_stats: Mutex<Option<ShadowStats>>,
    status: Mutex<DeploymentStatus>,
    pub(crate) reload: tokio::sync::Mutex<()>,
    pub(crate) retry: Mutex<Retry>,
}

/// One lock policy for the whole crate: a poisoned lock (a panic while it
/// was held) still holds consistent data here, since every writer replaces
/// whole values; take it and go on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Deployment {
    pub(crate) fn new(name: &str, spec: DeploymentSpec, state: DeploymentState) -> Self {
        Self {
            name: name.to_string(),
            spec: RwLock::new(spec),
            active: RwLock::new(None),
            loaded: RwLock::new(BTreeMap::new()),
            routing: RwLock::new(None),
            shadow_stats: Mutex::new(None),
            status: Mutex::new(DeploymentStatus {
                state,
                serving_version: None,
                target_version: None,
                error: None,
                error_permanent: false,
                retry_at: None,
                updated_at: slipway_core::now_millis(),
            }),
            reload: tokio::sync::Mutex::new(()),
            retry: Mutex::new(Retry::default()),
        }
    }

    /// The version currently serving, if any. Holding the `Arc` keeps it
    /// alive across a swap.
    pub fn active(&self) -> Option<Arc<LoadedVersion>> {
        read(&self.active).clone()
    }

    pub(crate) fn set_active(&self, v: Arc<LoadedVersion>) {
        write(&self.loaded).insert(v.version.clone(), v.clone());
        *write(&self.active) = Some(v);
    }

    /// A loaded version by number.
    pub fn loaded(&self, version: &str) -> Option<Arc<LoadedVersion>> {
        read(&self.loaded).get(version).cloned()
    }

    /// Every loaded version.
    pub fn loaded_versions(&self) -> Vec<Arc<LoadedVersion>> {
        read(&self.loaded).values().cloned().collect()
    }

    pub(crate) fn insert_loaded(&self, v: Arc<LoadedVersion>) {
        write(&self.loaded).insert(v.version.clone(), v);
    }

    /// Drops loaded versions not in `keep` (their workers stop once the last
    /// request holding them finishes).
    pub(crate) fn retain_loaded(&self, keep: &[String]) {
        write(&self.loaded).retain(|v, _| keep.contains(v));
    }

    /// The routing in effect, if any.
    pub fn routing(&self) -> Option<Arc<Routing>> {
        read(&self.routing).clone()
    }

    pub(crate) fn set_routing(&self, r: Option<Arc<Routing>>) {
        *write(&self.routing) = r;
    }

    /// Routes one request (see [`Routing`]); `None` when nothing serves.
    pub fn route(&self, sticky_key: Option<&[u8]>) -> Option<Routed> {
        match self.routing() {
            Some(r) => Routed::new(&r, sticky_key),
            None => self.active().map(|v| Routed::explicit(None, v)),
        }
    }

    /// Routes a request addressed to one loaded version.
    pub fn route_version(&self, version: &str) -> Option<Routed> {
        let v = self.loaded(version)?;
        Some(Routed::explicit(self.routing().as_deref(), v))
    }

    /// A static shadow's version and its agreement with the served answers
    /// so far (`None` without a shadow or before a row was compared).
    pub fn shadow_agreement(&self) -> Option<(String, f64)> {
        let (version, pair, _) = lock(&self.shadow_stats).clone()?;
        pair.snapshot().agreement().map(|a| (version, a))
    }

    /// The header whose value pins a request to a version, if any.
    pub fn sticky_header(&self) -> Option<String> {
        self.routing().and_then(|r| r.sticky_header.clone())
    }

    /// The effective split and copies, for the API.
    pub fn traffic_view(&self) -> serde_json::Value {
        let Some(r) = self.routing() else {
            return serde_json::Value::Null;
        };
        let split: Vec<serde_json::Value> = r
            .routes
            .iter()
            .map(|x| serde_json::json!({"version": x.version.version, "role": x.role, "weight": f64::from(x.weight) / 100.0}))
            .collect();
        let mirrors: Vec<serde_json::Value> = r
            .mirrors
            .iter()
            .map(|m| serde_json::json!({"version": m.target.version, "fraction": m.fraction, "from": m.from}))
            .collect();
        serde_json::json!({
            "split": split,
            "mirrors": mirrors,
            "sticky_header": r.sticky_header,
            "rollout": r.window.rollout.as_ref().map(|(id, step)| serde_json::json!({"id": id, "step": step})),
        })
    }

    /// The current spec.
    pub fn spec(&self) -> DeploymentSpec {
        read(&self.spec).clone()
    }

    pub(crate) fn set_spec(&self, spec: DeploymentSpec) {
        *write(&self.spec) = spec;
    }

    /// The current status.
    pub fn status(&self) -> DeploymentStatus {
        lock(&self.status).clone()
    }

    pub(crate) fn set_status(&self, f: impl FnOnce(&mut DeploymentStatus)) {
        let mut guard = lock(&self.status);
        f(&mut guard);
        guard.updated_at = slipway_core::now_millis();
    }

    /// Whether a load attempt has finished since this process started (the
    /// replica is not ready while a deployment's first load is running).
    pub fn attempted(&self) -> bool {
        lock(&self.retry).attempted
    }

    /// JSON view for the API.
    pub fn view(&self) -> serde_json::Value {
        let mut v =
            serde_json::json!({"name": self.name, "spec": self.spec(), "status": self.status()});
        let traffic = self.traffic_view();
        if !traffic.is_null() {
            v["traffic"] = traffic;
        }
        let loaded: Vec<String> = self
            .loaded_versions()
            .iter()
            .map(|l| l.version.clone())
            .collect();
        v["loaded_versions"] = serde_json::json!(loaded);
        if let Some((version, pair, role)) = lock(&self.shadow_stats).clone() {
            let mut shadow = pair.snapshot().view();
            shadow["version"] = serde_json::Value::String(version);
            shadow["requests"] = serde_json::json!(role.snapshot().requests);
            v["shadow"] = shadow;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let d: Vec<u64> = (1..=12).map(|f| Retry::delay(f).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }
}
