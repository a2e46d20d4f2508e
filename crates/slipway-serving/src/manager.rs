//! [`DeploymentManager`]: every deployment of this process, kept in step
//! with the registry and with the rollouts in the metadata store.
//!
//! Each deployment has a *plan*: its stable version (the alias target, the
//! pinned version, or a running rollout's stable), the versions of a split
//! (a fixed `traffic` split or a rollout's step) and the versions copies go
//! to (a `shadow`, a rollout's mirrored candidate, or the stable re-run of
//! a sample of the candidate's requests). The manager loads every version
//! of the plan through the [`Loader`] — only loaded, warmed-up versions get
//! traffic, requests already holding a version finish on it — and builds the
//! [`Routing`] snapshot requests use. When a load fails the old version
//! keeps serving and the status carries the error; transient failures are
//! retried with exponential backoff, permanent ones not until the plan
//! changes. A follower task re-reads deployments, aliases and rollouts every
//! poll interval, so every replica applies the same weights within that
//! delay; each replica also publishes its figures of a running rollout step
//! to the store, and the replica holding the controller lease judges steps
//! on everyone's figures (see [`crate::controller`]).

use crate::deployment::{lock, Deployment, DeploymentState, LoadedVersion, Retry, VersionRetry};
use crate::loader::{LoadError, Loader, LoaderSettings};
use crate::rollout::{RolloutBody, RolloutPlan, RolloutState, VersionRef};
use crate::routing::{basis_points, MirrorQueue, MirrorRule, Role, Route, Routing, Window};
use crate::spec::{validate_name, DeploymentSpec};
use crate::stats::DEFAULT_NUMERIC_TOLERANCE;
use slipway_artifacts::ArtifactStore;
use slipway_core::{Error, ErrorCode};
use slipway_metadata::{MetadataStore, RolloutRecord};
use slipway_runtime::Runtime;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Settings of the serving layer.
#[derive(Debug, Clone)]
pub struct ServingSettings {
    /// How versions are loaded.
    pub loader: LoaderSettings,
    /// How often deployments, aliases and rollouts are re-read.
    pub poll_interval: Duration,
    /// Whether this process loads models (false on the registry role).
    pub load_models: bool,
    /// This process's id in leases and rollout statistics.
    pub replica_id: String,
    /// Share of requests logged when a deployment does not say
    /// (`monitoring.log_fraction`).
    pub log_fraction: f64,
}

/// Whether the deployments let this replica take traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Ready or not.
    pub ready: bool,
    /// Deployments holding readiness back, with the reason.
    pub not_ready: Vec<(String, String)>,
}

/// Setting key under which a deployment with an `on_alias_change` rollout
/// template records its stable version.
pub(crate) fn stable_key(deployment: &str) -> String {
    format!("deployment_stable:{deployment}")
}

/// A version the plan needs, and why.
#[derive(Debug, Clone, PartialEq)]
struct Need {
    version: String,
    what: &'static str,
}

/// What a deployment should serve now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub stable: String,
    /// `(version, weight percent, role)`; empty: the stable gets everything.
    pub split: Vec<(String, f64, Role)>,
    /// `(version, fraction, copies of which role, record as candidate)`.
    pub mirrors: Vec<(String, f64, Option<Role>, bool)>,
    /// A static shadow: `(version, fraction)`.
    pub shadow: Option<(String, f64)>,
    pub rollout: Option<(String, usize)>,
    /// A running rollout's candidate version.
    pub candidate: Option<String>,
    pub sticky: Option<String>,
    pub tolerance: f64,
}

impl Plan {
    fn needs(&self) -> Vec<Need> {
        let mut v = vec![Need {
            version: self.stable.clone(),
            what: "stable",
        }];
        let mut add = |version: &str, what: &'static str| {
            if !v.iter().any(|n| n.version == version) {
                v.push(Need {
                    version: version.to_string(),
                    what,
                });
            }
        };
        for (version, _, role) in &self.split {
            add(
                version,
                if *role == Role::Stable {
                    "stable"
                } else {
                    "candidate"
                },
            );
        }
        for (version, _, _, _) in &self.mirrors {
            add(version, "mirror");
        }
        if let Some((version, _)) = &self.shadow {
            add(version, "shadow");
        }
        v
    }
}

/// Owns the deployments of this process.
pub struct DeploymentManager {
    pub(crate) store: Arc<dyn MetadataStore>,
    loader: Loader,
    settings: ServingSettings,
    deployments: RwLock<HashMap<String, Arc<Deployment>>>,
    mirror: MirrorQueue,
    /// Where logged predictions go (none: no prediction log).
    sink: std::sync::OnceLock<Arc<dyn crate::sink::PredictionSink>>,
    /// Active rollouts as last read, by deployment.
    rollouts: RwLock<HashMap<String, RolloutRecord>>,
}

impl DeploymentManager {
    /// A manager with no deployments yet, loading models with `runtime`.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        artifacts: Arc<ArtifactStore>,
        runtime: Arc<dyn Runtime>,
        settings: ServingSettings,
    ) -> Self {
        let loader = Loader::new(store.clone(), artifacts, runtime, settings.loader.clone());
        Self {
            store,
            loader,
            settings,
            deployments: RwLock::new(HashMap::new()),
            mirror: MirrorQueue::default(),
            sink: std::sync::OnceLock::new(),
            rollouts: RwLock::new(HashMap::new()),
        }
    }

    /// The manager's settings.
    pub fn settings(&self) -> &ServingSettings {
        &self.settings
    }

    /// The state of each deployment's running rollout, as last read.
    pub fn active_rollout_states(&self) -> HashMap<String, String> {
        crate::deployment::read(&self.rollouts)
            .iter()
            .map(|(d, r)| (d.clone(), r.state.clone()))
            .collect()
    }

    /// Sends logged predictions to `sink` from now on (set once, before
    /// deployments load; later calls are ignored).
    pub fn set_prediction_sink(&self, sink: Arc<dyn crate::sink::PredictionSink>) {
        let _ = self.sink.set(sink);
    }

    /// The queue that runs copies of requests (shadow, paired runs).
    pub fn mirror_queue(&self) -> &MirrorQueue {
        &self.mirror
    }

    /// A deployment by name.
    pub fn get(&self, name: &str) -> Option<Arc<Deployment>> {
        crate::deployment::read(&self.deployments)
            .get(name)
            .cloned()
    }

    /// All deployments, by name.
    pub fn list(&self) -> Vec<Arc<Deployment>> {
        let mut v: Vec<_> = crate::deployment::read(&self.deployments)
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every stored deployment as the API shows it: the store's spec (so any
    /// replica answers with what was last written, on any replica) and this
    /// process's status for it (`pending` until this process follows it).
    pub async fn views(&self) -> Result<Vec<serde_json::Value>, Error> {
        let records = self.store.list_deployments().await?;
        Ok(records.iter().map(|r| self.view_of(r)).collect())
    }

    /// One stored deployment as the API shows it (see [`Self::views`]).
    pub async fn view(&self, name: &str) -> Result<serde_json::Value, Error> {
        let rec = self.store.get_deployment(name).await.map_err(|e| {
            if e.code == ErrorCode::ResourceDoesNotExist {
                Error::not_found(format!("Deployment '{name}' not found"))
            } else {
                e
            }
        })?;
        Ok(self.view_of(&rec))
    }

    fn view_of(&self, rec: &slipway_metadata::DeploymentRecord) -> serde_json::Value {
        let mut v = match self.get(&rec.name) {
            Some(dep) if serde_json::to_value(dep.spec()).ok().as_ref() == Some(&rec.spec) => {
                dep.view()
            }
            _ => serde_json::json!({
                "name": rec.name,
                "spec": rec.spec,
                "status": {
                    "state": if self.settings.load_models { "pending" } else { "stored" },
                    "serving_version": self.get(&rec.name).and_then(|d| d.active().map(|a| a.version.clone())),
                    "target_version": null,
                    "error": null,
                    "updated_at": rec.updated_at,
                },
            }),
        };
        if let Some(r) = crate::deployment::read(&self.rollouts).get(&rec.name) {
            v["rollout"] = serde_json::json!({"id": r.id, "state": r.state});
        }
        v
    }

    /// Readiness of this replica's deployments. By default a replica is
    /// ready once every deployment has finished its first load attempt,
    /// whether it succeeded or not: one broken model must not take every
    /// other model out of service (the broken one reports itself). With
    /// `strict` (Triton's `--strict-readiness`), every deployment must serve
    /// a version that answers a shallow inference within 2 s.
    pub async fn readiness(&self, strict: bool) -> Readiness {
        let mut not_ready = Vec::new();
        if !self.settings.load_models {
            return Readiness {
                ready: true,
                not_ready,
            };
        }
        for dep in self.list() {
            if !dep.attempted() {
                not_ready.push((dep.name.clone(), "first load in progress".to_string()));
                continue;
            }
            if !strict {
                continue;
            }
            let Some(active) = dep.active() else {
                let why = dep.status().error.unwrap_or_else(|| "not loaded".into());
                not_ready.push((dep.name.clone(), why));
                continue;
            };
            let inputs = slipway_runtime::warmup_inputs(active.worker.signature());
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(2), active.worker.infer(inputs)).await,
                Ok(Ok(_))
            );
            if !ok {
                not_ready.push((
                    dep.name.clone(),
                    "shallow inference failed or took over 2 s".to_string(),
                ));
            }
        }
        Readiness {
            ready: not_ready.is_empty(),
            not_ready,
        }
    }

    /// Resolves a version reference of `model`; the error names `field`
    /// (and `field.model` when the reference names another model).
    pub(crate) async fn resolve_ref(
        &self,
        model: &str,
        r: &VersionRef,
        field: &str,
    ) -> Result<String, Error> {
        if let Some(other) = r.model.as_deref().filter(|m| *m != model) {
            return Err(Error::invalid(format!(
                "Field '{field}.model' names model '{other}', but the deployment serves '{model}': splits, shadows and rollouts compare versions of the deployment's own model"
            )));
        }
        let res = match (&r.version, &r.alias) {
            (Some(v), _) => self
                .store
                .get_model_version(model, v)
                .await
                .map(|m| m.version),
            (None, Some(a)) => self
                .store
                .get_model_version_by_alias(model, a)
                .await
                .map(|m| m.version),
            (None, None) => {
                return Err(Error::invalid(format!("Field '{field}' names no version")))
            }
        };
        res.map_err(|e| {
            if e.code == ErrorCode::ResourceDoesNotExist {
                Error::invalid(format!(
                    "Field '{field}': {} of model '{model}' does not exist",
                    r.describe()
                ))
            } else {
                e
            }
        })
    }

    /// Refuses a split whose entries resolve to the same version now (a
    /// version and an alias of it, or two aliases of one version): weights
    /// that would silently merge. An alias that moves onto another entry's
    /// version later merges them (see `plan`): the spec stays as stored.
    async fn check_split_versions(&self, spec: &DeploymentSpec) -> Result<(), Error> {
        let Some(traffic) = &spec.traffic else {
            return Ok(());
        };
        let mut resolved: Vec<String> = Vec::with_capacity(traffic.len());
        for (i, e) in traffic.iter().enumerate() {
            let v = self
                .resolve_ref(&spec.model, &e.target(), &format!("traffic[{i}]"))
                .await?;
            if let Some(j) = resolved.iter().position(|x| *x == v) {
                return Err(Error::invalid(format!(
                    "Fields 'traffic[{j}]' ({}) and 'traffic[{i}]' ({}) both resolve to version {v} of '{}': give each version one entry with their summed weight",
                    traffic[j].target().describe(),
                    e.target().describe(),
                    spec.model
                )));
            }
            resolved.push(v);
        }
        Ok(())
    }

    /// The version the spec's alias or version points at now.
    async fn target_version(&self, spec: &DeploymentSpec) -> Result<String, Error> {
        match (&spec.alias, &spec.version) {
            (Some(alias), _) => Ok(self
                .store
                .get_model_version_by_alias(&spec.model, alias)
                .await?
                .version),
            (None, Some(v)) => Ok(self.store.get_model_version(&spec.model, v).await?.version),
            (None, None) => Err(Error::invalid("deployment has neither alias nor version")),
        }
    }

    /// The plan of a deployment: from its active rollout, else from its spec.
    pub(crate) async fn plan(
        &self,
        name: &str,
        spec: &DeploymentSpec,
        rollout: Option<&RolloutRecord>,
    ) -> Result<Plan, Error> {
        let sticky = spec.sticky();
        if let Some(rec) = rollout {
            let body: RolloutBody = serde_json::from_value(rec.body.clone())
                .map_err(|e| Error::internal(format!("corrupt rollout record {}: {e}", rec.id)))?;
            let state = RolloutState::parse(&rec.state).unwrap_or(RolloutState::Progressing);
            let w = body.current_weight(state);
            let stable = body.stable_version.clone();
            let cand = body.candidate_version.clone();
            let candidate = Some(cand.clone());
            let tolerance = body.plan.thresholds.numeric_tolerance;
            let (split, mirrors) = if body.splits_traffic() {
                let paired = body.plan.paired();
                let mirrors = if paired > 0.0 {
                    vec![(stable.clone(), paired, Some(Role::Candidate), false)]
                } else {
                    Vec::new()
                };
                (
                    vec![
                        (stable.clone(), 100.0 - w, Role::Stable),
                        (cand, w, Role::Candidate),
                    ],
                    mirrors,
                )
            } else {
                (Vec::new(), vec![(cand, w / 100.0, None, true)])
            };
            return Ok(Plan {
                stable,
                split,
                mirrors,
                shadow: None,
                rollout: Some((rec.id.clone(), body.step)),
                candidate,
                sticky,
                tolerance,
            });
        }
        let target = self.target_version(spec).await?;
        let stable = if spec
            .on_alias_change
            .as_ref()
            .and_then(|o| o.template())
            .is_some()
        {
            // the alias may have moved ahead of what was judged: keep serving
            // the recorded stable until a rollout promotes the new target
            self.store
                .get_setting(&stable_key(name))
                .await?
                .unwrap_or(target)
        } else {
            target
        };
        let mut split = Vec::new();
        if let Some(traffic) = &spec.traffic {
            for (i, e) in traffic.iter().enumerate() {
                let v = self
                    .resolve_ref(&spec.model, &e.target(), &format!("traffic[{i}]"))
                    .await?;
                let role = if v == stable {
                    Role::Stable
                } else {
                    Role::Candidate
                };
                // two entries on one version (an alias moved onto another
                // entry's version after the PUT): the version gets both weights
                if let Some(existing) = split
                    .iter_mut()
                    .find(|(x, _, _): &&mut (String, f64, Role)| *x == v)
                {
                    existing.1 += e.weight;
                } else {
                    split.push((v, e.weight, role));
                }
            }
        }
        let shadow = match &spec.shadow {
            Some(sh) => Some((
                self.resolve_ref(&spec.model, &sh.target(), "shadow")
                    .await?,
                sh.fraction,
            )),
            None => None,
        };
        Ok(Plan {
            stable,
            split,
            mirrors: Vec::new(),
            shadow,
            rollout: None,
            candidate: None,
            sticky,
            tolerance: DEFAULT_NUMERIC_TOLERANCE,
        })
    }

    /// Creates or replaces a deployment, persists it, and loads it (on
    /// roles that load models) before answering. A version that can never
    /// load (no onnx flavor, missing or corrupt model file, ...) is refused
    /// with 400 and nothing is stored; a transient failure (artifact store
    /// unreachable) stores the deployment and retries in the background.
    pub async fn put(&self, name: &str, spec: DeploymentSpec) -> Result<Arc<Deployment>, Error> {
        validate_name(name)?;
        spec.validate()?;
        self.store.get_registered_model(&spec.model).await?;
        self.check_split_versions(&spec).await?;
        let rollout = self.store.active_rollouts().await?;
        let rollout = rollout.iter().find(|r| r.deployment == name);
        let plan = self.plan(name, &spec, rollout).await?;
        let refuse = |need: &Need, e: LoadError| {
            Error::invalid(format!(
                "Deployment '{name}' cannot serve version {} of '{}' ({}): {}",
                need.version, spec.model, need.what, e.message
            ))
        };
        let mut loaded = Vec::new();
        let mut transient = Vec::new();
        for need in plan.needs() {
            if self.settings.load_models {
                let reuse = self
                    .get(name)
                    .filter(|d| d.spec() == spec)
                    .and_then(|d| d.loaded(&need.version));
                if let Some(v) = reuse {
                    loaded.push(v);
                    continue;
                }
                match self.load(name, &spec, &need.version).await {
                    Ok(v) => loaded.push(v),
                    Err(e) if e.permanent => return Err(refuse(&need, e)),
                    Err(e) => transient.push((need.version.clone(), e)),
                }
            } else if let Err(e) = self.loader.inspect(&spec.model, &need.version).await {
                if e.permanent {
                    return Err(refuse(&need, e));
                }
            }
        }
        let json = serde_json::to_value(&spec).map_err(|e| Error::internal(e.to_string()))?;
        self.store.put_deployment(name, &json).await?;
        if spec
            .on_alias_change
            .as_ref()
            .and_then(|o| o.template())
            .is_some()
            && self.store.get_setting(&stable_key(name)).await?.is_none()
        {
            self.store
                .set_setting(&stable_key(name), &plan.stable)
                .await?;
        }
        let dep = self.install(name, spec);
        {
            let _guard = dep.reload.lock().await;
            if self.settings.load_models {
                for v in loaded {
                    dep.insert_loaded(v);
                }
                for (version, e) in transient {
                    self.record_failure(&dep, &version, e);
                }
                self.apply(&dep, &plan);
            } else {
                dep.set_status(|s| {
                    s.state = DeploymentState::Stored;
                    s.target_version = Some(plan.stable.clone());
                    s.error = None;
                });
            }
        }
        Ok(dep)
    }

    fn install(&self, name: &str, spec: DeploymentSpec) -> Arc<Deployment> {
        let mut map = crate::deployment::write(&self.deployments);
        if let Some(existing) = map.get(name) {
            if existing.spec() != spec {
                existing.set_spec(spec);
                // a new spec deserves fresh attempts, even after permanent failures
                let mut retry = lock(&existing.retry);
                retry.versions.clear();
            }
            return existing.clone();
        }
        let state = if self.settings.load_models {
            DeploymentState::Loading
        } else {
            DeploymentState::Stored
        };
        let dep = Arc::new(Deployment::new(name, spec, state));
        map.insert(name.to_string(), dep.clone());
        dep
    }

    /// The deployment's prediction-log rule, if it logs anything.
    fn log_rule(&self, dep: &Deployment) -> Option<crate::sink::LogRule> {
        let sink = self.sink.get()?.clone();
        let fraction = dep
            .spec()
            .monitoring
            .and_then(|m| m.log_fraction)
            .unwrap_or(self.settings.log_fraction);
        (fraction > 0.0).then(|| crate::sink::LogRule {
            sink,
            fraction,
            deployment: Arc::from(dep.name.as_str()),
        })
    }

    /// Deletes a deployment; in-flight requests finish on the version they hold.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.store.delete_deployment(name).await?;
        crate::deployment::write(&self.deployments).remove(name);
        Ok(())
    }

    async fn load(
        &self,
        name: &str,
        spec: &DeploymentSpec,
        version: &str,
    ) -> Result<Arc<LoadedVersion>, LoadError> {
        let started = Instant::now();
        let worker = self.loader.load(name, spec, version).await?;
        let secs = started.elapsed().as_secs_f64();
        metrics::histogram!("slipway_model_load_seconds", "deployment" => name.to_string())
            .record(secs);
        tracing::info!(deployment = %name, version, load_seconds = secs, "version loaded");
        Ok(Arc::new(LoadedVersion {
            version: version.to_string(),
            worker,
            load_seconds: secs,
            request_metrics: Default::default(),
        }))
    }

    fn record_failure(&self, dep: &Deployment, version: &str, e: LoadError) {
        metrics::counter!("slipway_model_load_failures_total", "deployment" => dep.name.clone())
            .increment(1);
        let serving = dep.active().map(|a| a.version.clone());
        let retry_in = {
            let mut r = lock(&dep.retry);
            r.attempted = true;
            let entry = r.versions.entry(version.to_string()).or_default();
            entry.error = e.message.clone();
            if e.permanent {
                entry.permanent = true;
                entry.next_at = None;
                None
            } else {
                entry.failures += 1;
                let delay = Retry::delay(entry.failures);
                entry.next_at = Some(Instant::now() + delay);
                Some((delay, entry.failures))
            }
        };
        let keeps = match &serving {
            Some(v) => format!("version {v} keeps serving"),
            None => "nothing is serving".to_string(),
        };
        match retry_in {
            Some((d, failures)) => {
                tracing::warn!(deployment = %dep.name, version, error = %e.message, failures, "model load failed; {keeps}; retrying in {} s", d.as_secs())
            }
            None => {
                tracing::warn!(deployment = %dep.name, version, error = %e.message, "model load failed permanently; {keeps}; not retrying until the target version or the spec changes")
            }
        }
    }

    /// Makes the deployment's status, stable version and routing match the
    /// plan with what is loaded; versions that are not loaded get no
    /// traffic (their weight goes to the stable).
    fn apply(&self, dep: &Deployment, plan: &Plan) {
        let stable = dep.loaded(&plan.stable);
        let retries = {
            let r = lock(&dep.retry);
            r.versions.clone()
        };
        if let Some(s) = &stable {
            if dep.active().map(|a| a.version.clone()).as_deref() != Some(s.version.as_str()) {
                tracing::info!(deployment = %dep.name, version = %s.version, load_seconds = s.load_seconds, "deployment serving new version");
            }
            dep.set_active(s.clone());
        }
        let serving = dep.active();
        // routing: the split (or the stable alone) and the copies
        if let Some(active) = &serving {
            let mut routes = Vec::new();
            if plan.split.is_empty() {
                routes.push((active.clone(), 100.0, Role::Stable));
            } else {
                for (version, weight, role) in &plan.split {
                    match dep.loaded(version) {
                        Some(v) => routes.push((v, *weight, *role)),
                        None => {
                            // not loaded: its share goes to the stable
                            if let Some(st) = routes.iter_mut().find(|r| r.2 == Role::Stable) {
                                st.1 += weight;
                            } else {
                                routes.push((active.clone(), *weight, Role::Stable));
                            }
                        }
                    }
                }
            }
            let bp = basis_points(&routes.iter().map(|r| r.1).collect::<Vec<_>>());
            let old = dep.routing();
            let window = match &old {
                Some(o) if o.window.rollout == plan.rollout => o.window.clone(),
                _ => Arc::new(Window::new(plan.rollout.clone(), plan.rollout.is_some())),
            };
            let mut mirrors = Vec::new();
            for (version, fraction, from, as_candidate) in &plan.mirrors {
                if let Some(target) = dep.loaded(version) {
                    mirrors.push(MirrorRule {
                        target,
                        fraction: *fraction,
                        from: *from,
                        pair: window.pair.clone(),
                        record_as: as_candidate.then(|| window.candidate.clone()),
                        tolerance: plan.tolerance,
                    });
                }
            }
            if let Some((version, fraction)) = &plan.shadow {
                if let Some(target) = dep.loaded(version) {
                    let mut shadow = lock(&dep.shadow_stats);
                    let stats = match &*shadow {
                        Some((v, pair, role)) if v == version => (pair.clone(), role.clone()),
                        _ => {
                            let fresh: (
                                Arc<crate::stats::PairStats>,
                                Arc<crate::stats::RoleStats>,
                            ) = (Arc::default(), Arc::default());
                            *shadow = Some((version.clone(), fresh.0.clone(), fresh.1.clone()));
                            fresh
                        }
                    };
                    mirrors.push(MirrorRule {
                        target,
                        fraction: *fraction,
                        from: None,
                        pair: stats.0,
                        record_as: Some(stats.1),
                        tolerance: plan.tolerance,
                    });
                }
            } else {
                *lock(&dep.shadow_stats) = None;
            }
            if let Some(c) = &plan.candidate {
                let err = retries
                    .get(c)
                    .filter(|r| r.permanent)
                    .map(|r| format!("version {c}: {}", r.error));
                *window
                    .candidate_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = err;
            }
            let routing = Routing {
                deployment: Arc::from(dep.name.as_str()),
                routes: routes
                    .into_iter()
                    .zip(bp)
                    .map(|((version, _, role), weight)| Route {
                        version,
                        role,
                        weight,
                    })
                    .collect(),
                sticky_header: plan.sticky.clone(),
                mirrors,
                window,
                log: self.log_rule(dep),
            };
            dep.set_routing(Some(Arc::new(routing)));
        }
        // drop what the plan no longer needs
        let keep: Vec<String> = plan.needs().into_iter().map(|n| n.version).collect();
        dep.retain_loaded(&keep);
        // status
        let stable_failure = retries.get(&plan.stable).cloned();
        let other_failure = plan
            .needs()
            .into_iter()
            .skip(1)
            .find_map(|n| retries.get(&n.version).map(|r| (n, r.clone())));
        let attempted = lock(&dep.retry).attempted;
        dep.set_status(|s| {
            s.target_version = Some(plan.stable.clone());
            s.serving_version = serving.as_ref().map(|a| a.version.clone());
            let (state, error): (DeploymentState, Option<(String, &VersionRetry)>) =
                match (&serving, &stable_failure) {
                    (Some(a), None) if a.version == plan.stable => (
                        DeploymentState::Ready,
                        other_failure
                            .as_ref()
                            .map(|(n, r)| (format!("version {} ({})", n.version, n.what), r)),
                    ),
                    (Some(_), f) => (
                        DeploymentState::Degraded,
                        f.as_ref().map(|r| (format!("version {}", plan.stable), r)),
                    ),
                    (None, Some(r)) => (
                        DeploymentState::Failed,
                        Some((format!("version {}", plan.stable), r)),
                    ),
                    (None, None) if attempted => (DeploymentState::Failed, None),
                    (None, None) => (DeploymentState::Loading, None),
                };
            s.state = state;
            s.error = error
                .as_ref()
                .map(|(what, r)| format!("{what}: {}", r.error));
            s.error_permanent = error.as_ref().is_some_and(|(_, r)| r.permanent);
            s.retry_at = error.as_ref().and_then(|(_, r)| r.next_at).map(|at| {
                let left = at.saturating_duration_since(Instant::now());
                slipway_core::now_millis() + i64::try_from(left.as_millis()).unwrap_or(i64::MAX)
            });
        });
    }

    /// Brings the deployment to its plan: loads missing versions when their
    /// retry is due, then applies the plan. Never fails: errors end up in
    /// the status, what was serving keeps serving.
    pub async fn reload(&self, dep: &Arc<Deployment>) {
        let rollout = crate::deployment::read(&self.rollouts)
            .get(&dep.name)
            .cloned();
        self.reload_with(dep, rollout.as_ref()).await;
    }

    async fn reload_with(&self, dep: &Arc<Deployment>, rollout: Option<&RolloutRecord>) {
        let _guard = dep.reload.lock().await;
        let spec = dep.spec();
        let plan = match self.plan(&dep.name, &spec, rollout).await {
            Ok(p) => p,
            Err(e) => {
                let transient = e.code == ErrorCode::TemporarilyUnavailable
                    || e.code == ErrorCode::InternalError;
                if transient {
                    tracing::warn!(deployment = %dep.name, error = %e.message, "cannot resolve the deployment's versions; will retry");
                    return;
                }
                let serving = dep.active().is_some();
                lock(&dep.retry).attempted = true;
                dep.set_status(|s| {
                    s.state = if serving {
                        DeploymentState::Degraded
                    } else {
                        DeploymentState::Failed
                    };
                    s.error = Some(format!("cannot resolve the target version: {}", e.message));
                    s.error_permanent = true;
                });
                return;
            }
        };
        if !self.settings.load_models {
            dep.set_status(|s| {
                s.state = DeploymentState::Stored;
                s.target_version = Some(plan.stable.clone());
            });
            return;
        }
        for need in plan.needs() {
            if dep.loaded(&need.version).is_some() {
                continue;
            }
            if !lock(&dep.retry).due(&need.version) {
                continue;
            }
            match self.load(&dep.name, &spec, &need.version).await {
                Ok(v) => {
                    lock(&dep.retry).versions.remove(&need.version);
                    dep.insert_loaded(v);
                }
                Err(e) => self.record_failure(dep, &need.version, e),
            }
        }
        lock(&dep.retry).attempted = true;
        self.apply(dep, &plan);
    }

    /// Loads every stored deployment (at start-up).
    pub async fn restore_all(&self) -> Result<(), Error> {
        self.sync_once().await
    }

    /// One pass: read rollouts, pick up deployments created or deleted
    /// elsewhere, bring each to its plan, and publish this replica's figures
    /// of running rollout steps.
    pub async fn sync_once(&self) -> Result<(), Error> {
        let active: HashMap<String, RolloutRecord> = self
            .store
            .active_rollouts()
            .await?
            .into_iter()
            .map(|r| (r.deployment.clone(), r))
            .collect();
        *crate::deployment::write(&self.rollouts) = active;
        // deployments put while this pass runs are newer than its listing:
        // only those known before it may be dropped for missing from it
        let known_before: std::collections::HashSet<String> =
            crate::deployment::read(&self.deployments)
                .keys()
                .cloned()
                .collect();
        let records = self.store.list_deployments().await?;
        let mut wanted = Vec::new();
        for rec in &records {
            match serde_json::from_value::<DeploymentSpec>(rec.spec.clone()) {
                Ok(spec) => {
                    let dep = self.install(&rec.name, spec);
                    wanted.push(rec.name.clone());
                    self.reload(&dep).await;
                    if let Err(e) = self.follow_alias(&dep).await {
                        tracing::warn!(deployment = %rec.name, error = %e, "could not start the alias-change rollout");
                    }
                }
                Err(e) => {
                    tracing::error!(deployment = %rec.name, error = %e, "stored deployment spec is invalid; skipped")
                }
            }
        }
        crate::deployment::write(&self.deployments)
            .retain(|name, _| wanted.contains(name) || !known_before.contains(name));
        self.publish_stats().await;
        Ok(())
    }

    /// Publishes this replica's figures of every running rollout step.
    async fn publish_stats(&self) {
        for dep in self.list() {
            let Some(routing) = dep.routing() else {
                continue;
            };
            let Some((id, step)) = &routing.window.rollout else {
                continue;
            };
            let snapshot = routing.window.snapshot();
            let Ok(payload) = serde_json::to_value(&snapshot) else {
                continue;
            };
            if let Err(e) = self
                .store
                .put_rollout_stats(id, *step as i64, &self.settings.replica_id, &payload)
                .await
            {
                tracing::warn!(rollout = %id, error = %e, "could not publish rollout statistics");
            }
        }
    }

    /// With an `on_alias_change` rollout template: when the alias moved
    /// past the recorded stable version and no rollout runs, start one
    /// (at most one wins across replicas).
    async fn follow_alias(&self, dep: &Deployment) -> Result<(), Error> {
        let spec = dep.spec();
        let Some(template) = spec.on_alias_change.as_ref().and_then(|o| o.template()) else {
            return Ok(());
        };
        if crate::deployment::read(&self.rollouts).contains_key(&dep.name) {
            return Ok(());
        }
        let target = self.target_version(&spec).await?;
        let stable = match self.store.get_setting(&stable_key(&dep.name)).await? {
            Some(s) => s,
            None => {
                self.store
                    .set_setting(&stable_key(&dep.name), &target)
                    .await?;
                return Ok(());
            }
        };
        if stable == target {
            return Ok(());
        }
        let mut plan = template.clone();
        plan.candidate = Some(VersionRef {
            model: None,
            version: Some(target.clone()),
            alias: None,
        });
        match self
            .create_rollout(&dep.name, &spec, plan, &stable, &target, true)
            .await
        {
            Ok(rec) => {
                tracing::info!(deployment = %dep.name, rollout = %rec.id, stable, candidate = %target, "alias moved: rollout started");
                Ok(())
            }
            Err(e) if e.code == ErrorCode::ResourceAlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stores a new rollout record (the plan already validated).
    pub(crate) async fn create_rollout(
        &self,
        deployment: &str,
        spec: &DeploymentSpec,
        plan: RolloutPlan,
        stable: &str,
        candidate: &str,
        triggered_by_alias: bool,
    ) -> Result<RolloutRecord, Error> {
        let now = slipway_core::now_millis();
        let body = RolloutBody {
            plan,
            model: spec.model.clone(),
            stable_version: stable.to_string(),
            candidate_version: candidate.to_string(),
            alias: spec.alias.clone(),
            triggered_by_alias,
            step: 0,
            step_started_at: now,
            started_at: now,
            finished_at: None,
            record: Vec::new(),
            reason: "first step running".into(),
            advice: None,
        };
        let rec = RolloutRecord {
            id: format!("ro-{}", uuid::Uuid::new_v4().simple()),
            deployment: deployment.to_string(),
            state: RolloutState::Progressing.as_str().into(),
            active: true,
            body: serde_json::to_value(&body).map_err(|e| Error::internal(e.to_string()))?,
            revision: 0,
            created_at: now,
            updated_at: now,
        };
        self.store.create_rollout(&rec).await?;
        metrics::counter!("slipway_rollouts_started_total", "deployment" => deployment.to_string())
            .increment(1);
        Ok(rec)
    }

    /// Re-reads rollouts and brings one deployment to its plan now (after
    /// a rollout API call on this replica), instead of at the next poll.
    pub(crate) async fn refresh(&self, deployment: &str) {
        if let Ok(active) = self.store.active_rollouts().await {
            *crate::deployment::write(&self.rollouts) = active
                .into_iter()
                .map(|r| (r.deployment.clone(), r))
                .collect();
        }
        if let Some(dep) = self.get(deployment) {
            self.reload(&dep).await;
        }
    }

    /// Runs [`Self::sync_once`] and the rollout controller every poll
    /// interval until the process ends.
    pub fn spawn_follower(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.settings.poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.sync_once().await {
                    tracing::warn!(error = %e, "deployment sync failed");
                }
                if let Err(e) = crate::controller::tick(&me).await {
                    tracing::warn!(error = %e, "rollout controller tick failed");
                }
            }
        });
    }

    /// The loader (for checks that need the registry's view of a version).
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// Checks that a rollout's candidate can be served: loaded (and kept for
    /// the rollout) where this process loads models, else its files inspected.
    pub(crate) async fn check_candidate(
        &self,
        deployment: &str,
        spec: &DeploymentSpec,
        candidate: &str,
    ) -> Result<(), Error> {
        let refuse = |e: LoadError| {
            Error::invalid(format!(
                "Field 'candidate': version {candidate} of '{}' cannot be served: {}",
                spec.model, e.message
            ))
        };
        if !self.settings.load_models {
            return match self.loader.inspect(&spec.model, candidate).await {
                Err(e) if e.permanent => Err(refuse(e)),
                _ => Ok(()),
            };
        }
        let dep = self.get(deployment);
        if dep.as_ref().is_some_and(|d| d.loaded(candidate).is_some()) {
            return Ok(());
        }
        match self.load(deployment, spec, candidate).await {
            Ok(v) => {
                if let Some(d) = dep {
                    d.insert_loaded(v);
                }
                Ok(())
            }
            Err(e) if e.permanent => Err(refuse(e)),
            Err(_) => Ok(()),
        }
    }

    /// The deployment's stable version now (what a new rollout compares against).
    pub(crate) async fn current_stable(
        &self,
        name: &str,
        spec: &DeploymentSpec,
    ) -> Result<String, Error> {
        Ok(self.plan(name, spec, None).await?.stable)
    }
}
