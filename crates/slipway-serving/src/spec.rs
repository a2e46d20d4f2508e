//! A deployment's specification, as given to `PUT /api/v1/deployments/{name}`
//! and stored in the metadata store, and its validation.

use crate::rollout::{RolloutPlan, VersionRef};
use serde::{Deserialize, Serialize};
use slipway_core::Error;

/// What to do with values outside the recorded feature ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RangePolicy {
    /// Accept and count them (`slipway_inference_out_of_range_total`).
    #[default]
    Flag,
    /// Reject the request with 400.
    Reject,
    /// Do not check.
    Ignore,
}

/// One version of a fixed traffic split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficEntry {
    /// The deployment's model, when given (another model is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A version of the deployment's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Or an alias of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Percent of the requests (the weights add up to 100).
    pub weight: f64,
}

impl TrafficEntry {
    /// The entry as a version reference.
    pub fn target(&self) -> VersionRef {
        VersionRef {
            model: self.model.clone(),
            version: self.version.clone(),
            alias: self.alias.clone(),
        }
    }
}

/// Copies of requests sent to another version, off the request path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// The deployment's model, when given (another model is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A version of the deployment's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Or an alias of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Share of requests copied (0 < fraction ≤ 1).
    pub fraction: f64,
}

impl ShadowSpec {
    /// The shadow as a version reference.
    pub fn target(&self) -> VersionRef {
        VersionRef {
            model: self.model.clone(),
            version: self.version.clone(),
            alias: self.alias.clone(),
        }
    }
}

/// What happens when the alias a deployment follows moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OnAliasChange {
    /// `"swap"`: load the new target and serve it (the default).
    Action(AliasAction),
    /// A rollout template: the new target becomes the candidate of a judged
    /// rollout; the old version serves until it is promoted.
    Rollout(Box<RolloutPlan>),
}

/// The named alias-change actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AliasAction {
    /// Swap to the new target at once.
    Swap,
}

impl OnAliasChange {
    /// The rollout template, when the change starts a rollout.
    pub fn template(&self) -> Option<&RolloutPlan> {
        match self {
            Self::Rollout(p) => Some(p),
            Self::Action(_) => None,
        }
    }
}

/// What is monitored on a deployment: the prediction log, drift, ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSpec {
    /// Share of served requests written to the prediction log (0 turns the
    /// log off; default: the `prediction_log_fraction` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_fraction: Option<f64>,
    /// Drift on live traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSpec>,
    /// The output compared with ground truth (default: the first output, or
    /// `label` when the model has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_output: Option<String>,
    /// Default window of `GET .../performance` and the accuracy gauges,
    /// seconds (default: the `performance_window_seconds` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_window_seconds: Option<u64>,
}

/// Drift settings of a deployment; every field defaults to its setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// Default window, seconds (`drift_window_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    /// Fewest rows in a window before drift is judged (`drift_min_rows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    /// Rows of a version's first logged predictions that become its
    /// reference when it has none (`drift_reference_rows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_rows: Option<u64>,
    /// Share of drifted columns at which the dataset drifts (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_threshold: Option<f64>,
    /// Per column: another method or threshold, or left out of the test.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub features: std::collections::BTreeMap<String, FeatureDrift>,
}

/// One column's drift test, overriding Evidently's default choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FeatureDrift {
    /// `ks`, `chisquare`, `ztest`, `wasserstein`, `jensenshannon` or `psi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The method's threshold (a p-value or a distance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Leave the column out of the drift test.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip: bool,
}

/// Longest monitoring window, seconds (31 days).
pub const MAX_WINDOW_SECONDS: u64 = 31 * 86_400;
/// Shortest monitoring window, seconds.
pub const MIN_WINDOW_SECONDS: u64 = 60;

/// Checks a monitoring window; `what` names it ("Field 'x'", "Parameter 'window'").
pub fn validate_window(what: &str, seconds: u64) -> Result<(), Error> {
    if !(MIN_WINDOW_SECONDS..=MAX_WINDOW_SECONDS).contains(&seconds) {
        return Err(Error::invalid(format!(
            "{what} must be between {MIN_WINDOW_SECONDS} and {MAX_WINDOW_SECONDS} seconds, got {seconds}"
        )));
    }
    Ok(())
}

impl MonitoringSpec {
    /// Checks the numbers and method names; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(f) = self.log_fraction {
            if !f.is_finite() || !(0.0..=1.0).contains(&f) {
                return Err(Error::invalid(format!(
                    "Field 'monitoring.log_fraction' must be between 0 and 1, got {f}"
                )));
            }
        }
        if let Some(w) = self.performance_window_seconds {
            validate_window("Field 'monitoring.performance_window_seconds'", w)?;
        }
        if let Some(o) = &self.prediction_output {
            if o.is_empty() || o.len() > 255 {
                return Err(Error::invalid(
                    "Field 'monitoring.prediction_output' must name an output of the model",
                ));
            }
        }
        let Some(d) = &self.drift else {
            return Ok(());
        };
        if let Some(w) = d.window_seconds {
            validate_window("Field 'monitoring.drift.window_seconds'", w)?;
        }
        if let Some(n) = d.min_rows {
            if n == 0 || n > 10_000_000 {
                return Err(Error::invalid(format!(
                    "Field 'monitoring.drift.min_rows' must be between 1 and 10000000, got {n}"
                )));
            }
        }
        if let Some(n) = d.reference_rows {
            if !(10..=10_000_000).contains(&n) {
                return Err(Error::invalid(format!(
                    "Field 'monitoring.drift.reference_rows' must be between 10 and 10000000, got {n}"
                )));
            }
        }
        if let Some(t) = d.share_threshold {
            if !t.is_finite() || t <= 0.0 || t > 1.0 {
                return Err(Error::invalid(format!(
                    "Field 'monitoring.drift.share_threshold' must be above 0 and at most 1, got {t}"
                )));
            }
        }
        if d.features.len() > 4096 {
            return Err(Error::invalid(
                "Field 'monitoring.drift.features' may name at most 4096 columns",
            ));
        }
        for (name, f) in &d.features {
            let field = format!("monitoring.drift.features.{name}");
            let method = match &f.method {
                Some(m) => Some(m.parse::<slipway_stats::Method>().map_err(|_| {
                    Error::invalid(format!(
                        "Field '{field}.method' must be one of ks, chisquare, ztest, wasserstein, jensenshannon, psi; got '{m}'"
                    ))
                })?),
                None => None,
            };
            if let Some(t) = f.threshold {
                let ok =
                    t.is_finite() && t > 0.0 && (method.is_none_or(|m| !m.is_p_value()) || t < 1.0);
                if !ok {
                    return Err(Error::invalid(format!(
                        "Field '{field}.threshold' is out of range for its method, got {t}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A deployment's specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Registered model name.
    pub model: String,
    /// Alias to follow (e.g. `champion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Fixed version to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Largest batch (rows) per inference; also the per-request limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<usize>,
    /// Microseconds the batcher waits for more requests (0: only what is waiting).
    #[serde(default)]
    pub max_queue_delay_us: u64,
    /// Requests that may wait in the queue before 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    /// Out-of-range handling.
    #[serde(default)]
    pub range_policy: RangePolicy,
    /// A fixed split between versions or aliases of the model (weights add
    /// up to 100); without it the alias or version gets everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Vec<TrafficEntry>>,
    /// Request header whose value assigns a request to a version by hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    /// Copies of a share of requests to another version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowSpec>,
    /// What happens when the followed alias moves (default `"swap"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_alias_change: Option<OnAliasChange>,
    /// The prediction log, drift and ground truth (defaults from settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,
}

/// Upper bounds of a spec's numbers.
const MAX_BATCH_LIMIT: usize = 65_536;
const MAX_QUEUE_LIMIT: usize = 100_000;
const MAX_DELAY_US: u64 = 1_000_000;

impl DeploymentSpec {
    /// A spec following `alias` of `model` with default settings.
    pub fn following(model: &str, alias: &str) -> Self {
        Self {
            model: model.to_string(),
            alias: Some(alias.to_string()),
            version: None,
            max_batch_size: None,
            max_queue_delay_us: 0,
            queue_capacity: None,
            range_policy: RangePolicy::Flag,
            traffic: None,
            sticky_header: None,
            shadow: None,
            on_alias_change: None,
            monitoring: None,
        }
    }

    /// A spec serving a fixed `version` of `model` with default settings.
    pub fn pinned(model: &str, version: &str) -> Self {
        Self {
            alias: None,
            version: Some(version.to_string()),
            ..Self::following(model, "")
        }
    }

    /// Checks the spec's shape; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid("Field 'model' must name a registered model"));
        }
        match (&self.alias, &self.version) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("Give either 'alias' or 'version', not both"))
            }
            (None, None) => {
                return Err(Error::invalid(
                    "Give 'alias' (e.g. \"champion\") or 'version' (e.g. \"3\")",
                ))
            }
            _ => {}
        }
        if let Some(v) = &self.version {
            if v.parse::<u64>().is_err() {
                return Err(Error::invalid(format!(
                    "Field 'version' must be a version number, got '{v}'"
                )));
            }
        }
        if let Some(b) = self.max_batch_size {
            if b == 0 || b > MAX_BATCH_LIMIT {
                return Err(Error::invalid(format!(
                    "Field 'max_batch_size' must be between 1 and {MAX_BATCH_LIMIT}, got {b}"
                )));
            }
        }
        if let Some(q) = self.queue_capacity {
            if q == 0 || q > MAX_QUEUE_LIMIT {
                return Err(Error::invalid(format!(
                    "Field 'queue_capacity' must be between 1 and {MAX_QUEUE_LIMIT}, got {q}"
                )));
            }
        }
        if self.max_queue_delay_us > MAX_DELAY_US {
            return Err(Error::invalid(format!(
                "Field 'max_queue_delay_us' must be at most {MAX_DELAY_US}, got {}",
                self.max_queue_delay_us
            )));
        }
        if let Some(traffic) = &self.traffic {
            if traffic.is_empty() || traffic.len() > 16 {
                return Err(Error::invalid(
                    "Field 'traffic' must list 1 to 16 entries, e.g. [{\"version\": \"3\", \"weight\": 90}, {\"alias\": \"challenger\", \"weight\": 10}]",
                ));
            }
            let mut total = 0.0;
            for (i, e) in traffic.iter().enumerate() {
                e.target().validate(&format!("traffic[{i}]"))?;
                if !e.weight.is_finite() || e.weight < 0.0 || e.weight > 100.0 {
                    return Err(Error::invalid(format!(
                        "Field 'traffic[{i}].weight' must be between 0 and 100, got {}",
                        e.weight
                    )));
                }
                if traffic[..i]
                    .iter()
                    .any(|o| o.target().same_target(&e.target()))
                {
                    return Err(Error::invalid(format!(
                        "Field 'traffic[{i}]' repeats {}",
                        e.target().describe()
                    )));
                }
                total += e.weight;
            }
            if (total - 100.0).abs() > 1e-6 {
                return Err(Error::invalid(format!(
                    "Field 'traffic': the weights add up to {total}, not 100"
                )));
            }
        }
        if let Some(h) = &self.sticky_header {
            let ok = !h.is_empty()
                && h.len() <= 128
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(Error::invalid(format!(
                    "Field 'sticky_header' must be an HTTP header name such as \"x-user-id\", got '{h}'"
                )));
            }
        }
        if let Some(sh) = &self.shadow {
            sh.target().validate("shadow")?;
            if !sh.fraction.is_finite() || sh.fraction <= 0.0 || sh.fraction > 1.0 {
                return Err(Error::invalid(format!(
                    "Field 'shadow.fraction' must be above 0 and at most 1, got {}",
                    sh.fraction
                )));
            }
        }
        if let Some(OnAliasChange::Rollout(plan)) = &self.on_alias_change {
            if self.alias.is_none() {
                return Err(Error::invalid(
                    "Field 'on_alias_change' needs the deployment to follow an 'alias'",
                ));
            }
            plan.validate(true)?;
        }
        if let Some(m) = &self.monitoring {
            m.validate()?;
        }
        Ok(())
    }

    /// The header name, lower-cased, requests are pinned by.
    pub fn sticky(&self) -> Option<String> {
        self.sticky_header.as_ref().map(|h| h.to_ascii_lowercase())
    }
}

/// Checks a deployment name (it becomes a URL segment and a metric label).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid deployment name '{name}': use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spec_validation_names_the_field() {
        let mut spec = DeploymentSpec::following("iris", "champion");
        spec.max_batch_size = Some(0);
        assert!(spec
            .validate()
            .is_err_and(|e| e.message.contains("max_batch_size")));
        spec.max_batch_size = None;
        assert!(spec.validate().is_ok());
        spec.version = Some("1".into());
        assert!(spec
            .validate()
            .is_err_and(|e| e.message.contains("not both")));
        assert!(validate_name("iris-v2").is_ok() && validate_name("../x").is_err());
    }

    fn spec(json: serde_json::Value) -> Result<DeploymentSpec, String> {
        let s: DeploymentSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.message)?;
        Ok(s)
    }

    #[test]
    fn traffic_shadow_and_templates_are_checked() {
        let base = serde_json::json!({"model": "m", "alias": "champion"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        for (json, want) in [
            (
                with(
                    "traffic",
                    serde_json::json!([{"version": "3", "weight": 90}, {"alias": "c", "weight": 20}]),
                ),
                "add up to 110",
            ),
            (
                with(
                    "traffic",
                    serde_json::json!([{"version": "3", "weight": 50}, {"version": "3", "weight": 50}]),
                ),
                "repeats version 3",
            ),
            (
                with(
                    "traffic",
                    serde_json::json!([{"version": "x", "weight": 100}]),
                ),
                "traffic[0].version",
            ),
            (
                with("traffic", serde_json::json!([{"weight": 100}])),
                "traffic[0]",
            ),
            (
                with(
                    "traffic",
                    serde_json::json!([{"version": "3", "weight": -1}, {"version": "4", "weight": 101}]),
                ),
                "traffic[0].weight",
            ),
            (with("traffic", serde_json::json!([])), "1 to 16"),
            (
                with("sticky_header", serde_json::json!("x user")),
                "sticky_header",
            ),
            (
                with("shadow", serde_json::json!({"version": "5", "fraction": 0})),
                "shadow.fraction",
            ),
            (
                with("shadow", serde_json::json!({"fraction": 0.5})),
                "shadow",
            ),
            (
                with(
                    "on_alias_change",
                    serde_json::json!({"strategy": "canary", "steps": [5, 50], "candidate": {"version": "2"}}),
                ),
                "candidate",
            ),
            (
                with("on_alias_change", serde_json::json!({"strategy": "canary"})),
                "steps",
            ),
        ] {
            let e = spec(json.clone()).expect_err(&json.to_string());
            assert!(e.contains(want), "{json}: {e}");
        }
        let ok = spec(serde_json::json!({"model": "m", "alias": "champion",
            "traffic": [{"version": "3", "weight": 90}, {"alias": "challenger", "weight": 10}],
            "sticky_header": "X-User-Id", "shadow": {"version": "5", "fraction": 0.5},
            "on_alias_change": {"strategy": "canary", "steps": [10, 50, 100], "step_seconds": 30}}))
        .expect("valid");
        assert_eq!(ok.sticky().as_deref(), Some("x-user-id"));
        assert!(ok.on_alias_change.unwrap().template().is_some());
        let swap = spec(with("on_alias_change", serde_json::json!("swap"))).expect("swap");
        assert_eq!(
            swap.on_alias_change,
            Some(OnAliasChange::Action(AliasAction::Swap))
        );
        let pinned = spec(
            serde_json::json!({"model": "m", "version": "1", "on_alias_change": {"strategy": "shadow"}}),
        );
        assert!(pinned.unwrap_err().contains("follow an 'alias'"));
    }
}
