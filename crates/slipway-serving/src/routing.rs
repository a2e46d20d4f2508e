//! Traffic routing within a deployment: which loaded version answers a
//! request, and which requests are copied to another version.
//!
//! A [`Routing`] is an immutable snapshot swapped whenever weights change;
//! routing a request reads it once. Weights are kept in basis points. A
//! request carrying the deployment's `sticky_header` is assigned by a hash
//! of that header's value (FNV-1a, the same on every replica and across
//! restarts, so a key keeps its version while the weights stay); others at
//! random by weight. Copies (shadow, or the paired runs of a rollout) go to
//! a bounded queue served off the request path: a full queue drops the copy
//! and counts it, never delaying the client.

use crate::deployment::LoadedVersion;
use crate::sink::{LogRule, Prediction};
use crate::stats::{PairStats, RoleStats};
use slipway_runtime::{ModelOutput, RuntimeError, Tensor};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// What a version is to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The version the deployment serves (or served before a rollout).
    Stable,
    /// A version getting part of the traffic (split or rollout).
    Candidate,
    /// A version getting copies only.
    Shadow,
}

impl Role {
    /// The label value (`stable`, `candidate`, `shadow`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Candidate => "candidate",
            Self::Shadow => "shadow",
        }
    }
}

/// Basis points of a full split.
pub const FULL: u32 = 10_000;

/// One version of the split.
pub struct Route {
    /// The version.
    pub version: Arc<LoadedVersion>,
    /// Its role.
    pub role: Role,
    /// Its weight, basis points.
    pub weight: u32,
}

/// Where copies of requests go.
pub struct MirrorRule {
    /// The version that answers the copies.
    pub target: Arc<LoadedVersion>,
    /// Share of eligible requests copied (0..1).
    pub fraction: f64,
    /// Copy only requests answered by this role (`None`: every request).
    pub from: Option<Role>,
    /// Where the comparison goes.
    pub pair: Arc<PairStats>,
    /// Record the copies' own figures (latency, errors, outputs) here.
    pub record_as: Option<Arc<RoleStats>>,
    /// Relative tolerance for numeric agreement.
    pub tolerance: f64,
}

/// The statistics a routing feeds: one rollout step, or since the routing
/// took effect.
pub struct Window {
    /// The rollout and step, when one runs.
    pub rollout: Option<(String, usize)>,
    /// Stable's live traffic.
    pub stable: Arc<RoleStats>,
    /// Candidate's traffic (live, or its runs on copies).
    pub candidate: Arc<RoleStats>,
    /// A static shadow's runs.
    pub shadow: Arc<RoleStats>,
    /// The comparison of copies with the answers clients got.
    pub pair: Arc<PairStats>,
    /// Whether outputs are summarised (rollouts only: it costs a lock).
    pub collect_outputs: bool,
    /// A permanent load failure of the candidate on this replica.
    pub candidate_error: std::sync::Mutex<Option<String>>,
}

impl Window {
    /// An empty window.
    pub fn new(rollout: Option<(String, usize)>, collect_outputs: bool) -> Self {
        Self {
            rollout,
            stable: Arc::default(),
            candidate: Arc::default(),
            shadow: Arc::default(),
            pair: Arc::default(),
            collect_outputs,
            candidate_error: std::sync::Mutex::new(None),
        }
    }

    fn role(&self, role: Role) -> &RoleStats {
        match role {
            Role::Stable => &self.stable,
            Role::Candidate => &self.candidate,
            Role::Shadow => &self.shadow,
        }
    }

    /// The step's figures now.
    pub fn snapshot(&self) -> crate::analysis::StepData {
        crate::analysis::StepData {
            stable: self.stable.snapshot(),
            candidate: self.candidate.snapshot(),
            pair: self.pair.snapshot(),
            candidate_error: self
                .candidate_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A deployment's routing snapshot.
pub struct Routing {
    /// The deployment's name (labels of the copies' metrics).
    pub deployment: Arc<str>,
    /// The split (weights add up to [`FULL`]).
    pub routes: Vec<Route>,
    /// The request header whose value pins a request's version.
    pub sticky_header: Option<String>,
    /// Copies.
    pub mirrors: Vec<MirrorRule>,
    /// The statistics it feeds.
    pub window: Arc<Window>,
    /// Which requests go to the prediction log.
    pub log: Option<LogRule>,
}

/// FNV-1a over the key, finalised with a 64-bit mixer: stable across
/// processes and releases (no per-process seed).
pub fn sticky_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Converts percent weights into basis points adding up to [`FULL`]
/// (largest remainder), keeping a zero weight zero.
pub fn basis_points(weights: &[f64]) -> Vec<u32> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return weights.iter().map(|_| 0).collect();
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| w / total * f64::from(FULL))
        .collect();
    let mut bp: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let mut left = FULL - bp.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - exact[*b].floor())
            .total_cmp(&(exact[*a] - exact[*a].floor()))
            .then(a.cmp(b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        if weights[i] > 0.0 {
            bp[i] += 1;
            left -= 1;
        }
    }
    bp
}

impl Routing {
    /// Picks the version for a request: by the sticky key's hash when
    /// given, else at random by weight.
    pub fn pick(&self, sticky_key: Option<&[u8]>) -> Option<&Route> {
        if self.routes.len() == 1 {
            return self.routes.first();
        }
        let point = match sticky_key {
            Some(k) => (sticky_hash(k) % u64::from(FULL)) as u32,
            None => rand::random_range(0..FULL),
        };
        let mut upto = 0;
        for r in &self.routes {
            upto += r.weight;
            if point < upto {
                return Some(r);
            }
        }
        self.routes.iter().rev().find(|r| r.weight > 0)
    }

    /// The route serving `version`, if it is in the split or mirrored.
    pub fn role_of(&self, version: &str) -> Option<Role> {
        self.routes
            .iter()
            .find(|r| r.version.version == version)
            .map(|r| r.role)
            .or_else(|| {
                self.mirrors
                    .iter()
                    .find(|m| m.target.version == version)
                    .map(|_| Role::Shadow)
            })
    }
}

/// One request's route, to be finished once the version has answered.
pub struct Routed {
    /// The version that answers.
    pub version: Arc<LoadedVersion>,
    deployment: Arc<str>,
    /// Its role.
    pub role: Role,
    window: Arc<Window>,
    mirror: Option<Mirror>,
    started: Instant,
    record: bool,
    log: Option<LogRule>,
    request_id: Arc<str>,
}

struct Mirror {
    target: Arc<LoadedVersion>,
    pair: Arc<PairStats>,
    record_as: Option<Arc<RoleStats>>,
    tolerance: f64,
    /// Log the copy's answer as the shadow's (copies clients never see).
    log: Option<LogRule>,
}

impl Routed {
    /// Routes a request through `routing`.
    pub fn new(routing: &Routing, sticky_key: Option<&[u8]>) -> Option<Routed> {
        let route = routing.pick(sticky_key)?;
        let mirror = routing
            .mirrors
            .iter()
            .find(|m| {
                m.from.is_none_or(|r| r == route.role)
                    && m.target.version != route.version.version
                    && (m.fraction >= 1.0 || rand::random::<f64>() < m.fraction)
            })
            .map(|m| Mirror {
                target: m.target.clone(),
                pair: m.pair.clone(),
                record_as: m.record_as.clone(),
                tolerance: m.tolerance,
                log: routing
                    .log
                    .clone()
                    .filter(|l| m.record_as.is_some() && l.sample()),
            });
        Some(Routed {
            version: route.version.clone(),
            deployment: routing.deployment.clone(),
            role: route.role,
            window: routing.window.clone(),
            mirror,
            started: Instant::now(),
            record: true,
            log: routing.log.clone().filter(LogRule::sample),
            request_id: Arc::from(""),
        })
    }

    /// A request addressed to one version explicitly; counted under its role
    /// when the version is part of the routing, never copied.
    pub fn explicit(routing: Option<&Routing>, version: Arc<LoadedVersion>) -> Routed {
        let role = routing
            .and_then(|r| r.role_of(&version.version))
            .unwrap_or(Role::Stable);
        let window =
            routing.map_or_else(|| Arc::new(Window::new(None, false)), |r| r.window.clone());
        let record = routing.is_some_and(|r| r.role_of(&version.version).is_some());
        Routed {
            deployment: routing.map_or_else(|| Arc::from(""), |r| r.deployment.clone()),
            version,
            role,
            window,
            mirror: None,
            started: Instant::now(),
            record,
            log: routing.and_then(|r| r.log.clone()).filter(LogRule::sample),
            request_id: Arc::from(""),
        }
    }

    /// Names the request (its `x-request-id`) in the prediction log.
    pub fn set_request_id(&mut self, id: &str) {
        self.request_id = Arc::from(id);
    }

    /// Whether [`Routed::answered`] wants a copy of the inputs (clone them
    /// before the model consumes them): for a mirror or the prediction log.
    pub fn wants_inputs(&self) -> bool {
        self.mirror.is_some() || self.log.is_some()
    }

    /// Whether this request goes to the prediction log.
    pub fn logged(&self) -> bool {
        self.log.is_some()
    }

    fn log_prediction(
        &self,
        status: u16,
        inputs: Vec<Tensor>,
        outputs: Vec<ModelOutput>,
        latency: Duration,
    ) {
        if let Some(log) = &self.log {
            log.sink.submit(Prediction {
                deployment: log.deployment.clone(),
                version: self.version.version.clone(),
                role: self.role,
                request_id: self.request_id.clone(),
                time: SystemTime::now(),
                latency,
                status,
                inputs,
                outputs,
            });
        }
    }

    /// The model answered: counts the request and its latency, summarises
    /// the outputs (during rollouts), and queues a copy of `inputs` (when
    /// [`Routed::wants_inputs`]) for the mirror target.
    pub fn answered(
        self,
        outputs: &[ModelOutput],
        inputs: Option<Vec<Tensor>>,
        mirror: &MirrorQueue,
    ) {
        let latency = self.started.elapsed();
        if self.record {
            let stats = self.window.role(self.role);
            stats.record(false, latency);
            if self.window.collect_outputs {
                stats.record_outputs(outputs);
            }
        }
        let (for_mirror, for_log) = match (self.mirror.is_some(), self.log.is_some(), inputs) {
            (true, true, Some(i)) => (Some(i.clone()), Some(i)),
            (true, false, i) => (i, None),
            (false, true, i) => (None, i),
            _ => (None, None),
        };
        if let Some(inputs) = for_log {
            self.log_prediction(200, inputs, outputs.to_vec(), latency);
        }
        if let (Some(m), Some(inputs)) = (self.mirror, for_mirror) {
            mirror.submit(MirrorJob {
                deployment: self.deployment.clone(),
                target: m.target,
                inputs,
                first: outputs.to_vec(),
                pair: m.pair,
                record_as: m.record_as,
                tolerance: m.tolerance,
                collect_outputs: self.window.collect_outputs,
                log: m.log.map(|l| (l, self.request_id.clone())),
            });
        }
    }

    /// The model failed on a request that met its contract (an error of the
    /// version's, whatever status the client got): counted as an error, and
    /// logged with status 500 when `inputs` were kept.
    pub fn failed(self, inputs: Option<Vec<Tensor>>) {
        let latency = self.started.elapsed();
        if self.record {
            self.window.role(self.role).record(true, latency);
        }
        if let Some(inputs) = inputs {
            self.log_prediction(500, inputs, Vec::new(), latency);
        }
    }

    /// The request was refused before the model ran (bad input): not a
    /// figure of the version.
    pub fn rejected(self) {}
}

/// One copy to run.
pub struct MirrorJob {
    deployment: Arc<str>,
    target: Arc<LoadedVersion>,
    inputs: Vec<Tensor>,
    first: Vec<ModelOutput>,
    pair: Arc<PairStats>,
    record_as: Option<Arc<RoleStats>>,
    tolerance: f64,
    collect_outputs: bool,
    log: Option<(LogRule, Arc<str>)>,
}

/// Copies waiting to run.
const MIRROR_QUEUE: usize = 1024;
/// Threads running copies, at most (one per core up to this).
const MIRROR_THREADS: usize = 4;

/// The bounded queue of copies, served off the request path by a few
/// threads in the `SCHED_IDLE` class (started on first use): they run only
/// on CPU that clients' requests leave over and yield to them at once. A copy
/// costs the request path a clone of its inputs and outputs and a push; the
/// validation, the model run, the comparison and the bookkeeping happen on a
/// copy thread, which takes waiting copies for the same version as one
/// batch. When those threads fall behind the queue fills and copies are
/// dropped and counted.
#[derive(Default)]
pub struct MirrorQueue {
    tx: OnceLock<std::sync::mpsc::SyncSender<MirrorJob>>,
}

impl MirrorQueue {
    fn sender(&self) -> &std::sync::mpsc::SyncSender<MirrorJob> {
        self.tx.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<MirrorJob>(MIRROR_QUEUE);
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let threads = std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(MIRROR_THREADS);
            for i in 0..threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("slipway-copies-{i}"))
                    .spawn(move || copy_thread(&rx));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start a thread for copies of requests");
                }
            }
            tx
        })
    }

    /// Queues a copy; drops (and counts) it when the queue is full.
    pub fn submit(&self, job: MirrorJob) {
        if let Err(e) = self.sender().try_send(job) {
            let job = match e {
                std::sync::mpsc::TrySendError::Full(j)
                | std::sync::mpsc::TrySendError::Disconnected(j) => j,
            };
            dropped(&job);
        }
    }
}

/// Takes the next copy and the copies waiting behind it for the same
/// version (up to its batch size); `None` once the queue is gone.
fn next_batch(
    rx: &std::sync::Mutex<std::sync::mpsc::Receiver<MirrorJob>>,
    held: &mut Option<MirrorJob>,
) -> Option<Vec<MirrorJob>> {
    let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = match held.take() {
        Some(j) => j,
        None => rx.recv().ok()?,
    };
    let max_rows = first.target.worker.batch_rows();
    let mut rows = rows_of(&first);
    let mut batch = vec![first];
    while rows < max_rows {
        let Ok(next) = rx.try_recv() else { break };
        if !Arc::ptr_eq(&next.target, &batch[0].target) || rows + rows_of(&next) > max_rows {
            *held = Some(next);
            break;
        }
        rows += rows_of(&next);
        batch.push(next);
    }
    Some(batch)
}

fn rows_of(job: &MirrorJob) -> usize {
    job.inputs.first().and_then(Tensor::batch_size).unwrap_or(1)
}

fn copy_thread(rx: &std::sync::Mutex<std::sync::mpsc::Receiver<MirrorJob>>) {
    slipway_runtime::set_thread_class(slipway_runtime::ThreadClass::Idle);
    let mut held = None;
    while let Some(batch) = next_batch(rx, &mut held) {
        run_batch(batch);
    }
}

/// Runs a batch of copies for one version and records each. A copy's
/// latency is the batch's run (validation included), not its wait in the
/// queue: copies wait for idle CPU by design.
fn run_batch(mut batch: Vec<MirrorJob>) {
    let target = batch[0].target.clone();
    let inputs: Vec<Vec<Tensor>> = batch
        .iter_mut()
        .map(|j| {
            if j.log.is_some() {
                j.inputs.clone()
            } else {
                std::mem::take(&mut j.inputs)
            }
        })
        .collect();
    let started = Instant::now();
    let results = target.worker.run_copies(inputs);
    let latency = started.elapsed();
    for (job, result) in batch.into_iter().zip(results) {
        record(job, result, latency);
    }
}

fn record(job: MirrorJob, result: Result<Vec<ModelOutput>, RuntimeError>, latency: Duration) {
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.http_status(),
    };
    // copies count under role="shadow", protocol="copy"
    let h = job.target.request_metrics.get(
        &job.deployment,
        &job.target.version,
        Role::Shadow.as_str(),
        "copy",
        status,
    );
    h.requests.increment(1);
    h.duration.record(latency.as_secs_f64());
    if let Some((rule, request_id)) = &job.log {
        let (status, outputs) = match &result {
            Ok(outputs) => (200, outputs.clone()),
            Err(_) => (500, Vec::new()),
        };
        rule.sink.submit(Prediction {
            deployment: rule.deployment.clone(),
            version: job.target.version.clone(),
            role: Role::Shadow,
            request_id: request_id.clone(),
            time: SystemTime::now(),
            latency,
            status,
            inputs: job.inputs,
            outputs,
        });
    }
    match result {
        Ok(outputs) => {
            job.pair
                .compare(&job.first, &outputs, latency, job.tolerance);
            if let Some(stats) = &job.record_as {
                stats.record(false, latency);
                if job.collect_outputs {
                    stats.record_outputs(&outputs);
                }
            }
        }
        Err(e) => {
            tracing::debug!(version = %job.target.version, error = %e, "mirrored request failed");
            job.pair.failed(latency);
            if let Some(stats) = &job.record_as {
                stats.record(true, latency);
            }
        }
    }
}

/// A copy that did not run: counted against the pair and in
/// `slipway_mirror_dropped_total{deployment}`.
fn dropped(job: &MirrorJob) {
    job.pair.dropped();
    metrics::counter!("slipway_mirror_dropped_total", "deployment" => job.deployment.to_string())
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_points_add_up() {
        assert_eq!(basis_points(&[90.0, 10.0]), vec![9000, 1000]);
        assert_eq!(basis_points(&[1.0, 1.0, 1.0]), vec![3334, 3333, 3333]);
        assert_eq!(basis_points(&[100.0, 0.0]), vec![10000, 0]);
        assert_eq!(basis_points(&[2.5, 97.5]), vec![250, 9750]);
    }

    /// `sticky_hash(b"user-42") % 10000`, computed once: a change here
    /// would move every sticky key to another version on upgrade.
    const PINNED_USER_42: u64 = 1453;

    #[test]
    fn sticky_hash_is_fixed() {
        // the same on every replica and in every release: pinned values
        assert_eq!(sticky_hash(b"user-42"), sticky_hash(b"user-42"));
        assert_ne!(sticky_hash(b"user-42"), sticky_hash(b"user-43"));
        assert_eq!(sticky_hash(b"user-42") % 10_000, PINNED_USER_42);
        let buckets: Vec<u64> = (0..10_000)
            .map(|i| sticky_hash(format!("k{i}").as_bytes()) % 10)
            .collect();
        for b in 0..10 {
            let n = buckets.iter().filter(|x| **x == b).count();
            assert!((850..1150).contains(&n), "bucket {b}: {n}");
        }
    }
}
