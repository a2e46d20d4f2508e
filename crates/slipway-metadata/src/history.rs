//! Sampled metric histories of several runs: MLflow's
//! `get_metric_history_bulk_interval`, which every chart of the MLflow UI
//! reads.
//!
//! Semantics follow MLflow 3.17's `AbstractStore`: the distinct steps logged
//! by all runs are sampled evenly within `[start_step, end_step]` (default
//! `0 ..= the largest step`) down to about `max_results`, always keeping the
//! last step in range and every run's first and last step; each run then
//! returns its values at those steps, ordered by step and timestamp, thinned
//! evenly (first and last kept) to at most `max(max_results, #steps)` rows.

use std::collections::BTreeSet;

use slipway_core::{Error, Metric};

use crate::{MetadataStore, Result};

/// Most runs one request may name (MLflow's `MAX_RUNS_GET_METRIC_HISTORY_BULK`).
pub const MAX_RUNS: usize = 100;
/// Largest `max_results` (MLflow's `MAX_RESULTS_PER_RUN`).
pub const MAX_RESULTS_PER_RUN: usize = 2500;
/// Values of one metric read per run at most, so one request stays bounded.
pub const MAX_HISTORY_PER_RUN: usize = 250_000;
const PAGE: usize = 25_000;

/// A request for sampled histories.
#[derive(Debug, Clone)]
pub struct IntervalQuery {
    /// The runs (1 ..= [`MAX_RUNS`]).
    pub run_ids: Vec<String>,
    /// The metric.
    pub metric_key: String,
    /// Steps to sample, about (1 ..= [`MAX_RESULTS_PER_RUN`]).
    pub max_results: usize,
    /// Inclusive step range; both or neither.
    pub steps: Option<(i64, i64)>,
}

impl IntervalQuery {
    /// The query from the request's parameters, checked as MLflow's handler
    /// checks them: `start_step` and `end_step` together or not at all,
    /// `max_results` defaulting to [`MAX_RESULTS_PER_RUN`].
    pub fn from_params(
        run_ids: Vec<String>,
        metric_key: Option<String>,
        start_step: Option<i64>,
        end_step: Option<i64>,
        max_results: Option<i64>,
    ) -> Result<Self> {
        let steps = match (start_step, end_step) {
            (Some(a), Some(b)) => Some((a, b)),
            (None, None) => None,
            _ => {
                return Err(Error::invalid(
                    "If either start step or end step are specified, both must be specified.",
                ))
            }
        };
        let max = MAX_RESULTS_PER_RUN as i64;
        let max_results = max_results.unwrap_or(max);
        if !(1..=max).contains(&max_results) {
            return Err(Error::invalid(format!(
                "max_results must be between 1 and {max}."
            )));
        }
        let query = Self {
            run_ids,
            metric_key: metric_key.unwrap_or_default(),
            max_results: max_results as usize,
            steps,
        };
        query.validate()?;
        Ok(query)
    }

    /// Checks the request as MLflow's handler does; errors name the parameter.
    pub fn validate(&self) -> Result<()> {
        if self.run_ids.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'run_ids'.",
            ));
        }
        if self.run_ids.len() > MAX_RUNS {
            return Err(Error::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS} run_ids. Received {} run_ids.",
                self.run_ids.len()
            )));
        }
        if self.metric_key.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'metric_key'.",
            ));
        }
        if self.max_results < 1 || self.max_results > MAX_RESULTS_PER_RUN {
            return Err(Error::invalid(format!(
                "max_results must be between 1 and {MAX_RESULTS_PER_RUN}."
            )));
        }
        if let Some((start, end)) = self.steps {
            if start > end {
                return Err(Error::invalid(format!(
                    "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
                )));
            }
        }
        Ok(())
    }
}

/// The whole (bounded) history of one metric of one run, by step then timestamp.
async fn full_history(store: &dyn MetadataStore, run_id: &str, key: &str) -> Result<Vec<Metric>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .get_metric_history(run_id, key, PAGE, token.as_deref())
            .await?;
        out.extend(page.items);
        match page.next_page_token {
            Some(t) if out.len() < MAX_HISTORY_PER_RUN => token = Some(t),
            _ => break,
        }
    }
    out.truncate(MAX_HISTORY_PER_RUN);
    Ok(out)
}

/// Sampled histories of `query.metric_key` for each run, each value carrying
/// its `run_id`.
pub async fn bulk_interval(
    store: &dyn MetadataStore,
    query: &IntervalQuery,
) -> Result<Vec<Metric>> {
    query.validate()?;
    let mut histories = Vec::with_capacity(query.run_ids.len());
    for run_id in &query.run_ids {
        let mut h = full_history(store, run_id, &query.metric_key).await?;
        for m in &mut h {
            m.run_id = Some(run_id.clone());
        }
        histories.push(h);
    }
    Ok(sample(histories, query.max_results, query.steps))
}

/// At most `max_results` indices into `total` items, evenly spaced, first and last included.
fn evenly_spaced(total: usize, max_results: usize) -> Vec<usize> {
    if total == 0 {
        return Vec::new();
    }
    if total <= max_results {
        return (0..total).collect();
    }
    if max_results == 1 {
        return vec![total - 1];
    }
    let step = (total - 1) as f64 / (max_results - 1) as f64;
    let set: BTreeSet<usize> = (0..max_results)
        .map(|i| round_half_even(i as f64 * step))
        .collect();
    set.into_iter().collect()
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    r.max(0.0) as usize
}

/// The sampling itself, over each run's history (sorted by step, timestamp).
pub fn sample(
    histories: Vec<Vec<Metric>>,
    max_results: usize,
    steps: Option<(i64, i64)>,
) -> Vec<Metric> {
    let max_results = max_results.max(1);
    let mut mins_and_maxes = BTreeSet::new();
    let mut all_steps = BTreeSet::new();
    for h in &histories {
        if let (Some(min), Some(max)) = (
            h.iter().map(|m| m.step).min(),
            h.iter().map(|m| m.step).max(),
        ) {
            mins_and_maxes.insert(min);
            mins_and_maxes.insert(max);
        }
        all_steps.extend(h.iter().map(|m| m.step));
    }
    let all_steps: Vec<i64> = all_steps.into_iter().collect();
    let (start, end) = steps.unwrap_or((0, all_steps.last().copied().unwrap_or(0)));
    mins_and_maxes.retain(|s| (start..=end).contains(s));
    let lo = all_steps.partition_point(|s| *s < start);
    let hi = all_steps.partition_point(|s| *s <= end);
    let mut sampled: BTreeSet<i64> = BTreeSet::new();
    if hi.saturating_sub(lo) <= max_results {
        sampled.extend(&all_steps[lo..hi.max(lo)]);
    } else {
        let interval = (hi - lo) as f64 / max_results as f64;
        for i in 0..max_results {
            let idx = lo + (i as f64 * interval) as usize;
            if idx < hi {
                sampled.insert(all_steps[idx]);
            }
        }
        sampled.insert(all_steps[hi - 1]);
    }
    sampled.extend(mins_and_maxes);
    let per_run = max_results.max(sampled.len());
    let mut out = Vec::new();
    for h in histories {
        let mut rows: Vec<Metric> = h
            .into_iter()
            .filter(|m| sampled.contains(&m.step))
            .collect();
        rows.sort_by_key(|m| (m.step, m.timestamp));
        let keep = evenly_spaced(rows.len(), per_run);
        let mut rows: Vec<Option<Metric>> = rows.into_iter().map(Some).collect();
        out.extend(keep.into_iter().filter_map(|i| rows[i].take()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn history(run: &str, steps: impl IntoIterator<Item = i64>) -> Vec<Metric> {
        steps
            .into_iter()
            .map(|s| Metric {
                key: "loss".into(),
                value: s as f64,
                timestamp: 1000 + s,
                step: s,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
                run_id: Some(run.into()),
            })
            .collect()
    }

    fn steps(ms: &[Metric]) -> Vec<i64> {
        ms.iter().map(|m| m.step).collect()
    }

    #[test]
    fn short_histories_come_back_whole() {
        let out = sample(vec![history("a", 0..5), history("b", 0..3)], 320, None);
        assert_eq!(steps(&out), vec![0, 1, 2, 3, 4, 0, 1, 2]);
    }

    #[test]
    fn long_histories_are_sampled_keeping_the_ends() {
        // MLflow: 1000 steps, max_results 10 -> every 100th step plus the last
        let out = sample(vec![history("a", 0..1000)], 10, None);
        assert_eq!(
            steps(&out),
            vec![0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
        );
    }

    #[test]
    fn a_step_range_limits_the_sample_and_keeps_run_ends_inside_it() {
        let out = sample(
            vec![history("a", 0..100), history("b", 50..60)],
            5,
            Some((40, 80)),
        );
        let a: Vec<i64> = out
            .iter()
            .filter(|m| m.run_id.as_deref() == Some("a"))
            .map(|m| m.step)
            .collect();
        assert_eq!(a, vec![40, 48, 50, 56, 59, 64, 72, 80]);
        assert!(out.iter().all(|m| (40..=80).contains(&m.step)));
    }

    #[test]
    fn many_values_at_one_step_are_thinned_evenly() {
        let mut h = history("a", std::iter::repeat_n(0, 50));
        for (i, m) in h.iter_mut().enumerate() {
            m.timestamp = i as i64;
        }
        let out = sample(vec![h], 5, None);
        let ts: Vec<i64> = out.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![0, 12, 24, 37, 49]);
    }

    #[test]
    fn requests_are_checked() {
        let q = IntervalQuery {
            run_ids: vec![],
            metric_key: "m".into(),
            max_results: 10,
            steps: None,
        };
        assert!(q.validate().is_err());
        let q = IntervalQuery {
            run_ids: vec!["r".into()],
            steps: Some((5, 1)),
            ..q
        };
        assert!(q
            .validate()
            .unwrap_err()
            .message
            .contains("end_step must be greater"));
    }
}
