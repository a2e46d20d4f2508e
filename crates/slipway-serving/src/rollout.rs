//! Rollouts: moving a deployment from its stable version to a candidate in
//! judged steps.
//!
//! A [`RolloutPlan`] (what `POST /api/v1/deployments/{name}/rollouts` takes,
//! or a deployment's `on_alias_change` template) names the candidate, the
//! strategy (`canary` steps, an `ab` split held for a while, or `shadow`
//! mirroring), how long each step lasts and how much traffic it needs, the
//! mode (`auto` acts on verdicts, `advisory` only records them) and the
//! thresholds of the checks. The stored [`RolloutBody`] adds the resolved
//! versions, the current step and the decision record: every measurement of
//! every step with its threshold and verdict.

use serde::{Deserialize, Serialize};
use slipway_core::Error;

/// A version of the deployment's model, by number or by alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VersionRef {
    /// The registered model, when given: it must be the deployment's (a
    /// version of another model is refused, naming the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// An alias of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl VersionRef {
    /// Checks that exactly one of `version` / `alias` is given; `field`
    /// names the JSON field in the error.
    pub fn validate(&self, field: &str) -> Result<(), Error> {
        if self.model.as_ref().is_some_and(|m| m.trim().is_empty()) {
            return Err(Error::invalid(format!(
                "Field '{field}.model' must not be empty (leave it out: it is the deployment's model)"
            )));
        }
        match (&self.version, &self.alias) {
            (Some(v), None) if v.parse::<u64>().is_ok() => Ok(()),
            (Some(v), None) => Err(Error::invalid(format!(
                "Field '{field}.version' must be a version number, got '{v}'"
            ))),
            (None, Some(a)) if !a.trim().is_empty() => Ok(()),
            (None, Some(_)) => Err(Error::invalid(format!(
                "Field '{field}.alias' must not be empty"
            ))),
            (Some(_), Some(_)) => Err(Error::invalid(format!(
                "Field '{field}' takes either 'version' or 'alias', not both"
            ))),
            (None, None) => Err(Error::invalid(format!(
                "Field '{field}' needs 'version' (e.g. \"3\") or 'alias' (e.g. \"challenger\")"
            ))),
        }
    }

    /// Whether both name the same version or alias (whether or not they
    /// name the model).
    pub fn same_target(&self, other: &VersionRef) -> bool {
        self.version == other.version && self.alias == other.alias
    }

    /// `version 3` / `alias challenger`, for messages.
    pub fn describe(&self) -> String {
        match (&self.version, &self.alias) {
            (Some(v), _) => format!("version {v}"),
            (_, Some(a)) => format!("alias {a}"),
            _ => "nothing".into(),
        }
    }
}

/// How the candidate gets traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Weights stepped through `steps` (e.g. 5, 25, 50, 100).
    Canary,
    /// A fixed split (`weight` to the candidate) held for `step_seconds`, then judged.
    Ab,
    /// The candidate gets copies of `shadow_fraction` of the requests; clients
    /// only ever see the stable version's answers.
    Shadow,
}

/// Whether verdicts change traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Promote or roll back on the verdicts.
    #[default]
    Auto,
    /// Judge and record, never change traffic (the candidate is judged on
    /// mirrored copies of the step's share of requests).
    Advisory,
}

/// Thresholds of the checks; each has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Largest allowed increase of the server-error rate, candidate minus
    /// stable (absolute, 0.02 = 2 points), when it is also significant.
    pub max_error_rate_increase: f64,
    /// Significance level of the one-sided two-proportion z-test on error rates.
    pub error_rate_alpha: f64,
    /// Largest allowed ratio of the candidate's p99 latency to the stable's.
    pub max_p99_ratio: f64,
    /// Milliseconds of p99 difference always tolerated (tiny latencies make
    /// ratios noisy).
    pub latency_slack_ms: f64,
    /// Largest Jensen–Shannon distance between the two versions' label
    /// distributions (an effect size, not a p-value).
    pub max_js_distance: f64,
    /// Largest Wasserstein distance between the two versions' numeric
    /// outputs, normed by the stable's standard deviation (at least
    /// `numeric_tolerance` × its mean magnitude, so near-constant outputs do
    /// not make tiny differences look large).
    pub max_wasserstein: f64,
    /// A distribution check fails only when the lower end of its effect
    /// size's `1 - distribution_alpha` bootstrap interval is beyond the
    /// threshold *and* the difference is significant at this level
    /// (two-sample Kolmogorov–Smirnov for numbers, chi-squared for labels),
    /// so sampling noise in small windows does not fail a step.
    pub distribution_alpha: f64,
    /// Smallest share of the same requests on which both versions agree.
    pub min_agreement: f64,
    /// Relative difference under which numeric answers agree (models
    /// without label outputs).
    pub numeric_tolerance: f64,
    /// p-value under which the realised split mismatches the configured one
    /// (sample-ratio mismatch; chi-squared goodness of fit).
    pub srm_p_value: f64,
    /// Samples each distribution and agreement check needs before it judges.
    pub min_samples: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_error_rate_increase: 0.02,
            error_rate_alpha: 0.05,
            max_p99_ratio: 1.5,
            latency_slack_ms: 5.0,
            max_js_distance: 0.1,
            max_wasserstein: 0.1,
            distribution_alpha: 0.01,
            min_agreement: 0.9,
            numeric_tolerance: 0.1,
            srm_p_value: 0.001,
            min_samples: 100,
        }
    }
}

fn in_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), Error> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Field '{field}' must be between {lo} and {hi}, got {v}"
        )))
    }
}

/// A probability that must be neither 0 (the test could never be
/// significant) nor 1 (every difference would be).
fn strictly_between_0_and_1(field: &str, v: f64) -> Result<(), Error> {
    if v.is_finite() && v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Field '{field}' must be strictly between 0 and 1, got {v}"
        )))
    }
}

impl Thresholds {
    /// Checks every threshold's range; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        in_range(
            "thresholds.max_error_rate_increase",
            self.max_error_rate_increase,
            0.0,
            1.0,
        )?;
        in_range(
            "thresholds.error_rate_alpha",
            self.error_rate_alpha,
            1e-9,
            0.5,
        )?;
        in_range("thresholds.max_p99_ratio", self.max_p99_ratio, 1.0, 1000.0)?;
        in_range(
            "thresholds.latency_slack_ms",
            self.latency_slack_ms,
            0.0,
            60_000.0,
        )?;
        in_range("thresholds.max_js_distance", self.max_js_distance, 0.0, 1.0)?;
        in_range(
            "thresholds.max_wasserstein",
            self.max_wasserstein,
            0.0,
            100.0,
        )?;
        strictly_between_0_and_1("thresholds.distribution_alpha", self.distribution_alpha)?;
        in_range("thresholds.min_agreement", self.min_agreement, 0.0, 1.0)?;
        in_range(
            "thresholds.numeric_tolerance",
            self.numeric_tolerance,
            0.0,
            100.0,
        )?;
        in_range("thresholds.srm_p_value", self.srm_p_value, 0.0, 0.5)?;
        if !(1..=10_000_000).contains(&self.min_samples) {
            return Err(Error::invalid(format!(
                "Field 'thresholds.min_samples' must be between 1 and 10000000, got {}",
                self.min_samples
            )));
        }
        Ok(())
    }
}

/// What a rollout does: the body of `POST .../rollouts`, and (without
/// `candidate`) a deployment's `on_alias_change` template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    /// The version to roll out (absent in a template: the alias's new target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<VersionRef>,
    /// How the candidate gets traffic.
    pub strategy: Strategy,
    /// Canary: the candidate's weight (percent) at each step, rising; a
    /// final 100 means "promote".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<f64>>,
    /// A/B: the candidate's weight, percent (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Shadow: the share of requests copied to the candidate (default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_fraction: Option<f64>,
    /// Shortest duration of each step, seconds.
    #[serde(default = "default_step_seconds")]
    pub step_seconds: u64,
    /// Requests the candidate must see in a step before it is judged.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// The rollout stops as `inconclusive` when it has not finished after
    /// this many seconds (default: ten times its planned duration, at least
    /// ten minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    /// `auto` or `advisory`.
    #[serde(default)]
    pub mode: Mode,
    /// Share of the candidate's requests also run on the stable version for
    /// the paired agreement check (default 0.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_fraction: Option<f64>,
    /// Thresholds of the checks.
    #[serde(default)]
    pub thresholds: Thresholds,
}

fn default_step_seconds() -> u64 {
    60
}

fn default_min_requests() -> u64 {
    100
}

/// Longest step the API accepts (a day).
const MAX_STEP_SECONDS: u64 = 86_400;

impl RolloutPlan {
    /// Checks the plan; the error names the field. `template` plans carry
    /// no candidate.
    pub fn validate(&self, template: bool) -> Result<(), Error> {
        match (&self.candidate, template) {
            (Some(_), true) => {
                return Err(Error::invalid(
                    "Field 'on_alias_change.candidate' is not allowed: the candidate is the alias's new target",
                ))
            }
            (None, false) => {
                return Err(Error::invalid(
                    "Field 'candidate' is required: {\"version\": \"4\"} or {\"alias\": \"challenger\"}",
                ))
            }
            (Some(c), false) => c.validate("candidate")?,
            (None, true) => {}
        }
        let misplaced = |field: &str| {
            Err(Error::invalid(format!(
                "Field '{field}' does not apply to strategy '{}'",
                self.strategy_name()
            )))
        };
        match self.strategy {
            Strategy::Canary => {
                let Some(steps) = &self.steps else {
                    return Err(Error::invalid(
                        "Field 'steps' is required for strategy 'canary', e.g. [5, 25, 50, 100]",
                    ));
                };
                if steps.is_empty() || steps.len() > 100 {
                    return Err(Error::invalid("Field 'steps' must hold 1 to 100 weights"));
                }
                let mut last = 0.0;
                for (i, w) in steps.iter().enumerate() {
                    if !w.is_finite() || *w <= 0.0 || *w > 100.0 {
                        return Err(Error::invalid(format!(
                            "Field 'steps[{i}]' must be a weight above 0 and at most 100, got {w}"
                        )));
                    }
                    if *w <= last {
                        return Err(Error::invalid(format!(
                            "Field 'steps' must rise: steps[{i}] = {w} follows {last}"
                        )));
                    }
                    last = *w;
                }
                if steps[0] >= 100.0 {
                    return Err(Error::invalid(format!(
                        "Field 'steps' needs at least one weight below 100, got {steps:?}: a canary judges the candidate at partial weights before the final 100 promotes it (to switch at once, move the alias)"
                    )));
                }
                if self.weight.is_some() {
                    return misplaced("weight");
                }
                if self.shadow_fraction.is_some() {
                    return misplaced("shadow_fraction");
                }
            }
            Strategy::Ab => {
                if let Some(w) = self.weight {
                    in_range("weight", w, 0.0, 100.0)?;
                    if w == 0.0 || w == 100.0 {
                        return Err(Error::invalid(
                            "Field 'weight' must be strictly between 0 and 100 for an A/B split",
                        ));
                    }
                }
                if self.steps.is_some() {
                    return misplaced("steps");
                }
                if self.shadow_fraction.is_some() {
                    return misplaced("shadow_fraction");
                }
            }
            Strategy::Shadow => {
                if let Some(f) = self.shadow_fraction {
                    in_range("shadow_fraction", f, 0.0, 1.0)?;
                    if f == 0.0 {
                        return Err(Error::invalid("Field 'shadow_fraction' must be above 0"));
                    }
                }
                if self.steps.is_some() {
                    return misplaced("steps");
                }
                if self.weight.is_some() {
                    return misplaced("weight");
                }
            }
        }
        if self.step_seconds == 0 || self.step_seconds > MAX_STEP_SECONDS {
            return Err(Error::invalid(format!(
                "Field 'step_seconds' must be between 1 and {MAX_STEP_SECONDS}, got {}",
                self.step_seconds
            )));
        }
        if self.min_requests == 0 || self.min_requests > 100_000_000 {
            return Err(Error::invalid(format!(
                "Field 'min_requests' must be between 1 and 100000000, got {}",
                self.min_requests
            )));
        }
        if let Some(d) = self.max_duration_seconds {
            if d < self.step_seconds || d > 30 * MAX_STEP_SECONDS {
                return Err(Error::invalid(format!(
                    "Field 'max_duration_seconds' must be between step_seconds ({}) and {}, got {d}",
                    self.step_seconds,
                    30 * MAX_STEP_SECONDS
                )));
            }
        }
        if let Some(p) = self.paired_fraction {
            in_range("paired_fraction", p, 0.0, 1.0)?;
        }
        self.thresholds.validate()
    }

    fn strategy_name(&self) -> &'static str {
        match self.strategy {
            Strategy::Canary => "canary",
            Strategy::Ab => "ab",
            Strategy::Shadow => "shadow",
        }
    }

    /// The candidate's weight (or mirrored share, in percent) at each
    /// judged step.
    pub fn step_weights(&self) -> Vec<f64> {
        match self.strategy {
            Strategy::Canary => self
                .steps
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|w| *w < 100.0)
                .collect::<Vec<_>>(),
            Strategy::Ab => vec![self.weight.unwrap_or(50.0)],
            Strategy::Shadow => vec![self.shadow_fraction.unwrap_or(1.0) * 100.0],
        }
    }

    /// Share of the candidate's requests re-run on stable for agreement.
    pub fn paired(&self) -> f64 {
        self.paired_fraction.unwrap_or(0.25)
    }

    /// The deadline, seconds after the start.
    pub fn deadline_seconds(&self) -> u64 {
        self.max_duration_seconds.unwrap_or_else(|| {
            let planned = self.step_seconds * self.step_weights().len().max(1) as u64;
            (planned * 10).max(600)
        })
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Steps are running.
    Progressing,
    /// Held by a person: weights stay, no step advances.
    Paused,
    /// The candidate became stable (the alias moved).
    Promoted,
    /// A check failed: the candidate gets no traffic, stable serves all.
    RolledBack,
    /// Stopped by a person: like a rollback.
    Aborted,
    /// Too little data before the deadline: nothing promoted.
    Inconclusive,
}

impl RolloutState {
    /// Every state.
    pub const ALL: [RolloutState; 6] = [
        Self::Progressing,
        Self::Paused,
        Self::Promoted,
        Self::RolledBack,
        Self::Aborted,
        Self::Inconclusive,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "progressing",
            Self::Paused => "paused",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled_back",
            Self::Aborted => "aborted",
            Self::Inconclusive => "inconclusive",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Progressing,
            Self::Paused,
            Self::Promoted,
            Self::RolledBack,
            Self::Aborted,
            Self::Inconclusive,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Whether the rollout still runs (progressing or paused).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Progressing | Self::Paused)
    }
}

/// The verdict of one check, one step or a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within the threshold.
    Pass,
    /// Beyond the threshold.
    Fail,
    /// Too little data to tell.
    Inconclusive,
}

/// One measurement of a step: stable's and candidate's figures, the
/// threshold and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `error_rate`, `p99_latency`, `distribution:<output>`, `agreement`,
    /// `sample_ratio`.
    pub name: String,
    /// The test or statistic used.
    pub method: String,
    /// Stable's figure, when the check has one.
    pub stable: Option<f64>,
    /// Candidate's figure (or the statistic comparing both).
    pub candidate: Option<f64>,
    /// The threshold it is compared with.
    pub threshold: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// A sentence: what was measured and why this verdict.
    pub detail: String,
}

/// One judged step of the decision record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step index.
    pub step: usize,
    /// Candidate weight (or mirrored share), percent.
    pub weight: f64,
    /// When the step started and when it was judged, ms since epoch.
    pub started_at: i64,
    /// When the judgement was made.
    pub judged_at: i64,
    /// Requests seen by stable and candidate during the step.
    pub stable_requests: u64,
    /// Candidate requests (or mirrored copies).
    pub candidate_requests: u64,
    /// Every check.
    pub checks: Vec<Check>,
    /// The step's verdict: fail if any check failed, inconclusive if any
    /// could not judge, else pass.
    pub verdict: Verdict,
}

/// A rollout as stored: the plan, what it resolved to, where it is, and the
/// decision record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutBody {
    /// The plan it runs.
    pub plan: RolloutPlan,
    /// The registered model.
    pub model: String,
    /// The version serving before the rollout.
    pub stable_version: String,
    /// The version rolled out.
    pub candidate_version: String,
    /// The alias the deployment follows (moved on promotion), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether the rollout was started by an alias move
    /// (`on_alias_change`); a rollback then moves the alias back.
    #[serde(default)]
    pub triggered_by_alias: bool,
    /// Index into [`RolloutPlan::step_weights`] of the running step.
    pub step: usize,
    /// When the running step started, ms since epoch.
    pub step_started_at: i64,
    /// When the rollout started.
    pub started_at: i64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// Every judgement so far (each step may be judged several times while
    /// inconclusive; each judgement is kept).
    #[serde(default)]
    pub record: Vec<StepRecord>,
    /// Why it ended (or what it waits for), in one sentence.
    #[serde(default)]
    pub reason: String,
    /// In advisory mode: the outcome the verdicts called for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl RolloutBody {
    /// The candidate's weight (percent) now: the running step's, or 0 after a
    /// rollback, 100 after a promotion.
    pub fn current_weight(&self, state: RolloutState) -> f64 {
        match state {
            RolloutState::Promoted => 100.0,
            RolloutState::RolledBack | RolloutState::Aborted | RolloutState::Inconclusive => 0.0,
            RolloutState::Progressing | RolloutState::Paused => self
                .plan
                .step_weights()
                .get(self.step)
                .copied()
                .unwrap_or(0.0),
        }
    }

    /// Whether the candidate gets live traffic (a split) rather than
    /// mirrored copies.
    pub fn splits_traffic(&self) -> bool {
        self.plan.mode == Mode::Auto && self.plan.strategy != Strategy::Shadow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: serde_json::Value) -> Result<RolloutPlan, String> {
        let p: RolloutPlan = serde_json::from_value(json).map_err(|e| e.to_string())?;
        p.validate(false).map_err(|e| e.message)?;
        Ok(p)
    }

    #[test]
    fn bad_plans_name_the_field() {
        let cases = [
            (
                serde_json::json!({"strategy": "canary", "steps": [5, 50]}),
                "candidate",
            ),
            (
                serde_json::json!({"candidate": {"version": "x"}, "strategy": "canary", "steps": [5]}),
                "candidate.version",
            ),
            (
                serde_json::json!({"candidate": {"version": "2", "alias": "a"}, "strategy": "canary", "steps": [5]}),
                "not both",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "canary"}),
                "steps",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "canary", "steps": [50, 25]}),
                "must rise",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "canary", "steps": [0, 25]}),
                "steps[0]",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "canary", "steps": [5, 101]}),
                "steps[1]",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "weight": 100}),
                "weight",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "steps": [5]}),
                "steps",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "shadow", "shadow_fraction": 2}),
                "shadow_fraction",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "step_seconds": 0}),
                "step_seconds",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "step_seconds": 100000000}),
                "step_seconds",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "min_requests": 0}),
                "min_requests",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "step_seconds": 60, "max_duration_seconds": 5}),
                "max_duration_seconds",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "thresholds": {"min_agreement": 1.5}}),
                "thresholds.min_agreement",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "thresholds": {"max_p99_ratio": 0.5}}),
                "thresholds.max_p99_ratio",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "thresholds": {"nope": 1}}),
                "nope",
            ),
            (
                serde_json::json!({"candidate": {"model": "", "version": "2"}, "strategy": "ab"}),
                "candidate.model",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "canary", "steps": [100]}),
                "at least one weight below 100",
            ),
            (
                serde_json::json!({"candidate": {"version": "2"}, "strategy": "ramp"}),
                "ramp",
            ),
        ];
        for (json, want) in cases {
            let e = plan(json.clone()).expect_err(&json.to_string());
            assert!(e.contains(want), "{json}: {e}");
        }
        // every threshold is range-checked, its field named
        let thresholds = [
            ("max_error_rate_increase", [-0.1, 1.5]),
            ("error_rate_alpha", [0.0, 0.9]),
            ("max_p99_ratio", [0.5, 1e6]),
            ("latency_slack_ms", [-1.0, 1e9]),
            ("max_js_distance", [-0.1, 1.5]),
            ("max_wasserstein", [-0.1, 1e3]),
            ("distribution_alpha", [0.0, 1.0]),
            ("min_agreement", [-0.1, 1.5]),
            ("numeric_tolerance", [-0.1, 1e3]),
            ("srm_p_value", [-0.1, 0.9]),
            ("min_samples", [0.0, 1e8]),
        ];
        let number = |name: &str, v: f64| {
            if name == "min_samples" {
                serde_json::json!(v as u64)
            } else {
                serde_json::json!(v)
            }
        };
        let defaults = serde_json::to_value(Thresholds::default()).unwrap_or_default();
        let names: Vec<&str> = thresholds.iter().map(|(n, _)| *n).collect();
        let mut all: Vec<&str> = defaults
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        all.sort_unstable();
        let mut listed = names.clone();
        listed.sort_unstable();
        assert_eq!(listed, all, "every threshold is listed here");
        for (name, bad) in thresholds {
            for v in bad {
                let json = serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "thresholds": {name: number(name, v)}});
                let e = plan(json.clone()).expect_err(&json.to_string());
                assert!(e.contains(&format!("thresholds.{name}")), "{json}: {e}");
            }
        }
        for alpha in [1e-6, 0.01, 0.5, 0.999] {
            plan(serde_json::json!({"candidate": {"version": "2"}, "strategy": "ab", "thresholds": {"distribution_alpha": alpha}}))
                .expect("distribution_alpha strictly between 0 and 1");
        }
        let ok = plan(serde_json::json!({"candidate": {"alias": "challenger"}, "strategy": "canary", "steps": [5, 25, 50, 100]}))
            .expect("valid");
        assert_eq!(ok.step_weights(), vec![5.0, 25.0, 50.0]);
        assert_eq!(ok.deadline_seconds(), 1800);
    }
}
