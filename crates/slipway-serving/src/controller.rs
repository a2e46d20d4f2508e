//! The rollout controller and the rollout operations behind the API.
//!
//! Every replica runs [`tick`] each poll interval, but only the holder of
//! the `rollout-controller` lease in the metadata store acts; when it dies
//! its lease expires and another replica takes over. For each running
//! rollout whose step has lasted `step_seconds`, the controller merges every
//! replica's published figures of that step, runs the checks
//! ([`crate::analysis::judge`]) and appends the judgement to the decision
//! record: a passing step moves to the next weight, or promotes after the
//! last one (moving the alias in the registry); a failing check rolls back
//! (the candidate's weight goes to zero); too little data waits, up to the
//! rollout's deadline. Records are written with the revision they were read
//! at, so a decision is applied once even if two replicas briefly both
//! believe they hold the lease; the alias is moved before the record, and
//! moving it again is harmless.

use crate::analysis::{judge, Judging, StepData};
use crate::manager::{stable_key, DeploymentManager};
use crate::rollout::{RolloutBody, RolloutPlan, RolloutState, StepRecord, Verdict};
use crate::spec::DeploymentSpec;
use slipway_core::{Error, ErrorCode};
use slipway_metadata::RolloutRecord;
use std::time::Duration;

/// Name of the controller's lease.
pub const LEASE: &str = "rollout-controller";

/// A person's action on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Promote now.
    Promote,
    /// Stop and give the stable version all traffic.
    Abort,
    /// Hold the current step.
    Pause,
    /// Continue a paused rollout.
    Resume,
}

impl Action {
    /// Parses `promote`, `abort`, `pause`, `resume`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "promote" => Some(Self::Promote),
            "abort" => Some(Self::Abort),
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            _ => None,
        }
    }
}

fn lease_ttl(mgr: &DeploymentManager) -> i64 {
    let ms = mgr.settings().poll_interval.as_millis() as i64 * 3;
    ms.max(5_000)
}

/// One controller pass: act on every running rollout if this replica holds
/// (or takes) the lease.
pub async fn tick(mgr: &DeploymentManager) -> Result<(), Error> {
    let store = &mgr.store;
    if !store
        .acquire_lease(LEASE, &mgr.settings().replica_id, lease_ttl(mgr))
        .await?
    {
        return Ok(());
    }
    for rec in store.active_rollouts().await? {
        if let Err(e) = decide(mgr, rec.clone()).await {
            if e.code == ErrorCode::InvalidState {
                continue; // someone else wrote it first
            }
            tracing::warn!(rollout = %rec.id, error = %e.message, "rollout step could not be judged");
        }
    }
    Ok(())
}

fn body_of(rec: &RolloutRecord) -> Result<RolloutBody, Error> {
    serde_json::from_value(rec.body.clone())
        .map_err(|e| Error::internal(format!("corrupt rollout record {}: {e}", rec.id)))
}

fn state_of(rec: &RolloutRecord) -> RolloutState {
    RolloutState::parse(&rec.state).unwrap_or(RolloutState::Progressing)
}

async fn write(
    mgr: &DeploymentManager,
    rec: &RolloutRecord,
    state: RolloutState,
    body: &RolloutBody,
) -> Result<RolloutRecord, Error> {
    let mut next = rec.clone();
    next.state = state.as_str().into();
    next.active = state.is_active();
    next.body = serde_json::to_value(body).map_err(|e| Error::internal(e.to_string()))?;
    let written = mgr.store.update_rollout(&next).await?;
    metrics::gauge!("slipway_rollout_step", "deployment" => rec.deployment.clone())
        .set(body.step as f64);
    set_state_gauge(&rec.deployment, Some(state));
    if !state.is_active() {
        metrics::counter!("slipway_rollouts_finished_total", "deployment" => rec.deployment.clone(), "state" => state.as_str())
            .increment(1);
    }
    Ok(written)
}

/// Sets `slipway_rollout_state{deployment,state}`: 1 for `state`, 0 for
/// every other state (all 0 for `None`).
pub fn set_state_gauge(deployment: &str, state: Option<RolloutState>) {
    for s in RolloutState::ALL {
        metrics::gauge!("slipway_rollout_state", "deployment" => deployment.to_string(), "state" => s.as_str())
            .set(if Some(s) == state { 1.0 } else { 0.0 });
    }
}

/// Judges a rollout's running step if it is due, and acts on the verdict.
async fn decide(mgr: &DeploymentManager, rec: RolloutRecord) -> Result<(), Error> {
    let state = state_of(&rec);
    if state != RolloutState::Progressing {
        return Ok(());
    }
    let mut body = body_of(&rec)?;
    let now = slipway_core::now_millis();
    let deadline = body.started_at + body.plan.deadline_seconds() as i64 * 1000;
    if now >= deadline {
        let why = body
            .record
            .last()
            .and_then(|r| {
                r.checks
                    .iter()
                    .find(|c| c.verdict == Verdict::Inconclusive)
                    .map(|c| c.detail.clone())
            })
            .unwrap_or_else(|| "no step reached a verdict".into());
        body.reason = format!(
            "stopped as inconclusive: no verdict within {} s ({why}); the stable version {} keeps serving",
            body.plan.deadline_seconds(),
            body.stable_version
        );
        return finish(mgr, &rec, body, RolloutState::Inconclusive).await;
    }
    if now - body.step_started_at < body.plan.step_seconds as i64 * 1000 {
        return Ok(());
    }
    let weights = body.plan.step_weights();
    let weight = weights.get(body.step).copied().unwrap_or(0.0);
    let mut data = StepData::default();
    for (_, payload) in mgr
        .store
        .get_rollout_stats(&rec.id, body.step as i64)
        .await?
    {
        match serde_json::from_value::<StepData>(payload) {
            Ok(d) => data.merge(&d),
            Err(e) => {
                tracing::warn!(rollout = %rec.id, error = %e, "skipping unreadable replica statistics")
            }
        }
    }
    let splits = body.splits_traffic();
    let thresholds = body.plan.thresholds.clone();
    let (min_requests, paired) = (body.plan.min_requests, !splits || body.plan.paired() > 0.0);
    let (stable_requests, candidate_requests) = (data.stable.requests, data.candidate.requests);
    // the bootstrap intervals are CPU work: off the executor, which keeps
    // answering (the rollout's status included) meanwhile
    let (checks, verdict) = tokio::task::spawn_blocking(move || {
        let judging = Judging {
            thresholds: &thresholds,
            min_requests,
            split_share: splits.then_some(weight / 100.0),
            paired,
        };
        judge(&data, &judging)
    })
    .await
    .map_err(|e| Error::internal(format!("judging rollout {}: {e}", rec.id)))?;
    for c in &checks {
        let v = match c.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        };
        metrics::counter!("slipway_rollout_verdicts_total", "deployment" => rec.deployment.clone(), "check" => check_family(&c.name), "verdict" => v)
            .increment(1);
    }
    let step_record = StepRecord {
        step: body.step,
        weight,
        started_at: body.step_started_at,
        judged_at: now,
        stable_requests,
        candidate_requests,
        checks,
        verdict,
    };
    // repeated inconclusive judgements of a step replace each other
    let replace = body
        .record
        .last()
        .is_some_and(|r| r.step == body.step && r.verdict == Verdict::Inconclusive);
    if replace {
        body.record.pop();
    }
    let summary = step_record.clone();
    body.record.push(step_record);
    match verdict {
        Verdict::Pass if body.step + 1 < weights.len() => {
            body.step += 1;
            // the next step lasts its full time from when it can be seen
            body.step_started_at = slipway_core::now_millis();
            body.reason = format!(
                "step {} at {}% passed every check; step {} at {}% running",
                summary.step, summary.weight, body.step, weights[body.step]
            );
            write(mgr, &rec, RolloutState::Progressing, &body).await?;
            mgr.refresh(&rec.deployment).await;
            Ok(())
        }
        Verdict::Pass => {
            body.reason = format!("all {} steps passed every check", weights.len());
            finish(mgr, &rec, body, RolloutState::Promoted).await
        }
        Verdict::Fail => {
            let failed: Vec<String> = summary
                .checks
                .iter()
                .filter(|c| c.verdict == Verdict::Fail)
                .map(|c| format!("{} ({})", c.name, c.detail))
                .collect();
            body.reason = format!(
                "step {} at {}% failed: {}",
                summary.step,
                summary.weight,
                failed.join("; ")
            );
            finish(mgr, &rec, body, RolloutState::RolledBack).await
        }
        Verdict::Inconclusive => {
            let why = summary
                .checks
                .iter()
                .find(|c| c.verdict == Verdict::Inconclusive)
                .map(|c| c.detail.clone())
                .unwrap_or_default();
            body.reason = format!(
                "step {} at {}% is inconclusive ({why}); waiting for more data until the deadline in {} s",
                summary.step,
                summary.weight,
                (deadline - now) / 1000
            );
            write(mgr, &rec, RolloutState::Progressing, &body).await?;
            Ok(())
        }
    }
}

fn check_family(name: &str) -> &'static str {
    match name.split(':').next().unwrap_or("") {
        "traffic" => "traffic",
        "error_rate" => "error_rate",
        "p99_latency" => "p99_latency",
        "distribution" => "distribution",
        "agreement" => "agreement",
        "sample_ratio" => "sample_ratio",
        _ => "other",
    }
}

async fn deployment_spec(mgr: &DeploymentManager, name: &str) -> Result<DeploymentSpec, Error> {
    let rec = mgr.store.get_deployment(name).await?;
    serde_json::from_value(rec.spec)
        .map_err(|e| Error::internal(format!("stored deployment '{name}' is invalid: {e}")))
}

/// Ends a rollout: promotes (moving the alias or the pinned version),
/// rolls back or stops; in advisory mode only records what the verdicts
/// call for.
async fn finish(
    mgr: &DeploymentManager,
    rec: &RolloutRecord,
    mut body: RolloutBody,
    state: RolloutState,
) -> Result<(), Error> {
    let store = &mgr.store;
    body.finished_at = Some(slipway_core::now_millis());
    let advisory = body.plan.mode == crate::rollout::Mode::Advisory;
    if advisory && matches!(state, RolloutState::Promoted | RolloutState::RolledBack) {
        body.advice = Some(
            if state == RolloutState::Promoted {
                "promote"
            } else {
                "roll back"
            }
            .into(),
        );
        body.reason = format!(
            "advisory: {}; the verdicts call for {} — nothing was changed",
            body.reason,
            body.advice.as_deref().unwrap_or("")
        );
        write(mgr, rec, state, &body).await?;
        mgr.refresh(&rec.deployment).await;
        return Ok(());
    }
    let spec = deployment_spec(mgr, &rec.deployment).await?;
    match state {
        RolloutState::Promoted => {
            match (&body.alias, &spec.alias) {
                (Some(a), Some(b)) if a == b => {
                    let current = store.get_model_version_by_alias(&body.model, a).await.ok();
                    if current.map(|m| m.version) != Some(body.candidate_version.clone()) {
                        store
                            .set_registered_model_alias(&body.model, a, &body.candidate_version)
                            .await?;
                    }
                    body.reason = format!(
                        "{}; promoted: alias '{a}' of '{}' now points to version {}",
                        body.reason, body.model, body.candidate_version
                    );
                }
                _ => {
                    let mut pinned = spec.clone();
                    pinned.version = Some(body.candidate_version.clone());
                    pinned.alias = None;
                    let json = serde_json::to_value(&pinned)
                        .map_err(|e| Error::internal(e.to_string()))?;
                    store.put_deployment(&rec.deployment, &json).await?;
                    body.reason = format!(
                        "{}; promoted: deployment '{}' now serves version {}",
                        body.reason, rec.deployment, body.candidate_version
                    );
                }
            }
            if spec
                .on_alias_change
                .as_ref()
                .and_then(|o| o.template())
                .is_some()
            {
                store
                    .set_setting(&stable_key(&rec.deployment), &body.candidate_version)
                    .await?;
            }
        }
        RolloutState::RolledBack | RolloutState::Aborted | RolloutState::Inconclusive => {
            if body.triggered_by_alias {
                if let Some(a) = &body.alias {
                    let current = store.get_model_version_by_alias(&body.model, a).await.ok();
                    if current.map(|m| m.version) == Some(body.candidate_version.clone()) {
                        store
                            .set_registered_model_alias(&body.model, a, &body.stable_version)
                            .await?;
                        body.reason = format!(
                            "{}; alias '{a}' moved back to version {}",
                            body.reason, body.stable_version
                        );
                    }
                }
            }
            let tag = format!(
                "{} by rollout {} of deployment '{}'",
                state.as_str(),
                rec.id,
                rec.deployment
            );
            if let Err(e) = store
                .set_model_version_tag(
                    &body.model,
                    &body.candidate_version,
                    "slipway.rollout",
                    &tag,
                )
                .await
            {
                tracing::warn!(error = %e, "could not tag the candidate version");
            }
        }
        RolloutState::Progressing | RolloutState::Paused => {}
    }
    tracing::info!(deployment = %rec.deployment, rollout = %rec.id, state = state.as_str(), reason = %body.reason, "rollout finished");
    write(mgr, rec, state, &body).await?;
    mgr.refresh(&rec.deployment).await;
    Ok(())
}

/// The API's view of a rollout.
pub fn view(rec: &RolloutRecord) -> serde_json::Value {
    let body: Option<RolloutBody> = serde_json::from_value(rec.body.clone()).ok();
    let state = state_of(rec);
    match body {
        Some(b) => serde_json::json!({
            "id": rec.id,
            "deployment": rec.deployment,
            "state": rec.state,
            "model": b.model,
            "strategy": b.plan.strategy,
            "mode": b.plan.mode,
            "stable_version": b.stable_version,
            "candidate_version": b.candidate_version,
            "alias": b.alias,
            "triggered_by_alias": b.triggered_by_alias,
            "steps": b.plan.step_weights(),
            "step": b.step,
            "weights": {"stable": 100.0 - b.current_weight(state), "candidate": b.current_weight(state)},
            "traffic": if b.splits_traffic() { "split" } else { "mirrored" },
            "started_at": b.started_at,
            "step_started_at": b.step_started_at,
            "finished_at": b.finished_at,
            "reason": b.reason,
            "advice": b.advice,
            "plan": b.plan,
            "record": b.record,
            "revision": rec.revision,
            "updated_at": rec.updated_at,
        }),
        None => {
            serde_json::json!({"id": rec.id, "deployment": rec.deployment, "state": rec.state, "error": "unreadable record"})
        }
    }
}

impl DeploymentManager {
    /// Starts a rollout on `deployment` (`POST .../rollouts`).
    pub async fn start_rollout(
        &self,
        deployment: &str,
        plan: RolloutPlan,
    ) -> Result<serde_json::Value, Error> {
        let spec = deployment_spec(self, deployment).await.map_err(|e| {
            if e.code == ErrorCode::ResourceDoesNotExist {
                Error::not_found(format!("Deployment '{deployment}' not found"))
            } else {
                e
            }
        })?;
        plan.validate(false)?;
        let candidate_ref = plan.candidate.clone().unwrap_or_default();
        let candidate = self
            .resolve_ref(&spec.model, &candidate_ref, "candidate")
            .await?;
        if let Some(active) = self
            .store
            .active_rollouts()
            .await?
            .into_iter()
            .find(|r| r.deployment == deployment)
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "Deployment '{deployment}' already has an active rollout ({}); promote, abort or wait for it first",
                    active.id
                ),
            ));
        }
        let stable = self.current_stable(deployment, &spec).await?;
        if candidate == stable {
            return Err(Error::invalid(format!(
                "Field 'candidate': {} is version {candidate}, which is already the stable version of deployment '{deployment}'",
                candidate_ref.describe()
            )));
        }
        self.check_candidate(deployment, &spec, &candidate).await?;
        let rec = self
            .create_rollout(deployment, &spec, plan, &stable, &candidate, false)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::ResourceAlreadyExists {
                    Error::new(ErrorCode::Conflict, e.message)
                } else {
                    e
                }
            })?;
        tracing::info!(deployment, rollout = %rec.id, stable, candidate, "rollout started");
        self.refresh(deployment).await;
        Ok(view(&rec))
    }

    /// Which replica holds the controller lease now, if any.
    pub async fn controller_holder(&self) -> Option<String> {
        match self.store.get_lease(LEASE).await {
            Ok(Some(l)) if l.expires_at > slipway_core::now_millis() => Some(l.holder),
            _ => None,
        }
    }

    /// One rollout of a deployment.
    pub async fn rollout(&self, deployment: &str, id: &str) -> Result<RolloutRecord, Error> {
        let rec = self.store.get_rollout(id).await?;
        if rec.deployment != deployment {
            return Err(Error::not_found(format!(
                "Rollout '{id}' not found for deployment '{deployment}'"
            )));
        }
        Ok(rec)
    }

    /// A deployment's rollouts, newest first.
    pub async fn rollouts(&self, deployment: &str) -> Result<Vec<RolloutRecord>, Error> {
        self.store.list_rollouts(deployment).await
    }

    /// A person's action on a rollout (promote, abort, pause, resume).
    pub async fn rollout_action(
        &self,
        deployment: &str,
        id: &str,
        action: Action,
    ) -> Result<serde_json::Value, Error> {
        for _ in 0..5 {
            let rec = self.rollout(deployment, id).await?;
            let state = state_of(&rec);
            if !state.is_active() {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "Rollout '{id}' has ended ({}); nothing to {action:?}",
                        state.as_str()
                    ),
                ));
            }
            let mut body = body_of(&rec)?;
            let res = match (action, state) {
                (Action::Pause, RolloutState::Paused)
                | (Action::Resume, RolloutState::Progressing) => return Ok(view(&rec)),
                (Action::Pause, _) => {
                    body.reason = format!("paused by a person at step {}", body.step);
                    write(self, &rec, RolloutState::Paused, &body)
                        .await
                        .map(|_| ())
                }
                (Action::Resume, _) => {
                    body.step_started_at = slipway_core::now_millis();
                    body.reason = format!("resumed by a person at step {}", body.step);
                    write(self, &rec, RolloutState::Progressing, &body)
                        .await
                        .map(|_| ())
                }
                (Action::Promote, _) => {
                    body.plan.mode = crate::rollout::Mode::Auto;
                    body.reason = format!("promoted by a person at step {}", body.step);
                    finish(self, &rec, body, RolloutState::Promoted).await
                }
                (Action::Abort, _) => {
                    body.reason = format!(
                        "aborted by a person at step {}; the stable version {} serves everything",
                        body.step, body.stable_version
                    );
                    finish(self, &rec, body, RolloutState::Aborted).await
                }
            };
            match res {
                Ok(()) => {
                    self.refresh(deployment).await;
                    return Ok(view(&self.rollout(deployment, id).await?));
                }
                Err(e) if e.code == ErrorCode::InvalidState => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::Conflict,
            format!("Rollout '{id}' keeps changing; retry"),
        ))
    }
}
