//! Judging one rollout step: the candidate against stable over the same
//! window, from every replica's merged figures.
//!
//! | check | method | fails when |
//! |---|---|---|
//! | `traffic` | candidate requests vs `min_requests` | never (inconclusive below) |
//! | `error_rate` | one-sided two-proportion z-test | increase > `max_error_rate_increase` and p < `error_rate_alpha` |
//! | `p99_latency` | histogram p99 (p95 under 1,000 requests, p90 under 200) and a one-sided Mann–Whitney U test | candidate > stable × `max_p99_ratio` + `latency_slack_ms` and significantly slower (p < `distribution_alpha`) |
//! | `distribution:<output>` | Jensen–Shannon distance (labels), Wasserstein normed by stable's spread (numbers), each with the lower end of its `1 - distribution_alpha` bootstrap interval | that lower bound ≥ `max_js_distance` / `max_wasserstein` and the difference significant (chi-squared / Kolmogorov–Smirnov p < `distribution_alpha`) |
//! | `agreement` | share of the same requests answered alike, Wilson 95% interval | upper bound < `min_agreement` (pass when the share ≥ it, else inconclusive) |
//! | `sample_ratio` | chi-squared goodness of fit of the realised split | p < `srm_p_value` |
//!
//! Distribution checks use effect sizes, never bare p-values, which flag
//! every difference at large sample sizes; and they judge an effect size by
//! its lower confidence bound, not its estimate, which over small windows
//! exceeds the threshold by chance (two samples of one model's answers, 230
//! against 1,000, are 0.1 apart in normed Wasserstein one time in ten). Checks with fewer than
//! `min_samples` observations are inconclusive.

use crate::rollout::{Check, Thresholds, Verdict};
use crate::stats::{ColumnSummary, Histogram, PairSnapshot, RoleSnapshot};
use serde::{Deserialize, Serialize};
use slipway_stats::{Counts, Method};

/// A step's figures, merged over replicas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepData {
    /// Stable's live traffic.
    pub stable: RoleSnapshot,
    /// Candidate's traffic: live (split) or its runs on mirrored copies.
    pub candidate: RoleSnapshot,
    /// Both versions' answers to the same requests.
    pub pair: PairSnapshot,
    /// Why the candidate could not be loaded on a replica (it never will).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_error: Option<String>,
}

impl StepData {
    /// Adds another replica's figures.
    pub fn merge(&mut self, other: &StepData) {
        self.stable.merge(&other.stable);
        self.candidate.merge(&other.candidate);
        self.pair.merge(&other.pair);
        if self.candidate_error.is_none() {
            self.candidate_error.clone_from(&other.candidate_error);
        }
    }
}

/// What a step is judged against.
#[derive(Debug, Clone)]
pub struct Judging<'a> {
    /// Thresholds of the plan.
    pub thresholds: &'a Thresholds,
    /// Requests the candidate needs before it is judged.
    pub min_requests: u64,
    /// The configured candidate share (0..1) when traffic is split, for the
    /// sample-ratio check; `None` for mirrored candidates.
    pub split_share: Option<f64>,
    /// Whether paired runs are expected (agreement is judged).
    pub paired: bool,
}

fn check(
    name: &str,
    method: &str,
    stable: Option<f64>,
    candidate: Option<f64>,
    threshold: f64,
    verdict: Verdict,
    detail: String,
) -> Check {
    Check {
        name: name.to_string(),
        method: method.to_string(),
        stable,
        candidate,
        threshold,
        verdict,
        detail,
    }
}

/// Runs every check on a step's figures; returns them and the step's verdict.
pub fn judge(data: &StepData, j: &Judging<'_>) -> (Vec<Check>, Verdict) {
    let t = j.thresholds;
    let mut checks = Vec::new();
    if let Some(e) = &data.candidate_error {
        checks.push(check(
            "candidate_load",
            "load",
            None,
            None,
            0.0,
            Verdict::Fail,
            format!("the candidate cannot be loaded: {e}"),
        ));
        return (checks, Verdict::Fail);
    }
    let n_c = data.candidate.requests;
    if n_c < j.min_requests {
        checks.push(check(
            "traffic",
            "count",
            Some(data.stable.requests as f64),
            Some(n_c as f64),
            j.min_requests as f64,
            Verdict::Inconclusive,
            format!(
                "the candidate saw {n_c} requests; the step needs {} before it is judged",
                j.min_requests
            ),
        ));
        return (checks, Verdict::Inconclusive);
    }
    checks.push(error_rate(&data.stable, &data.candidate, t));
    checks.push(latency(&data.stable, &data.candidate, t));
    checks.extend(distributions(&data.stable, &data.candidate, t));
    if j.paired {
        checks.push(agreement(&data.pair, t));
    }
    if let Some(share) = j.split_share {
        checks.push(sample_ratio(data.stable.requests, n_c, share, t));
    }
    let verdict = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if checks.iter().any(|c| c.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    (checks, verdict)
}

fn error_rate(stable: &RoleSnapshot, cand: &RoleSnapshot, t: &Thresholds) -> Check {
    let (n_s, n_c) = (stable.requests as f64, cand.requests as f64);
    let (p_s, p_c) = (
        stable.error_rate().unwrap_or(0.0),
        cand.error_rate().unwrap_or(0.0),
    );
    let increase = p_c - p_s;
    // one-sided two-proportion z-test, H1: the candidate fails more often
    let pooled = (stable.errors + cand.errors) as f64 / (n_s + n_c).max(1.0);
    let se = (pooled * (1.0 - pooled) * (1.0 / n_s.max(1.0) + 1.0 / n_c.max(1.0))).sqrt();
    let p_value = if se > 0.0 {
        1.0 - slipway_stats::scipy::ndtr(increase / se)
    } else if increase > 0.0 {
        0.0
    } else {
        1.0
    };
    let significant = p_value < t.error_rate_alpha;
    let fail = increase > t.max_error_rate_increase && significant;
    let verdict = if fail { Verdict::Fail } else { Verdict::Pass };
    check(
        "error_rate",
        "two-proportion z-test (one-sided)",
        Some(p_s),
        Some(p_c),
        t.max_error_rate_increase,
        verdict,
        format!(
            "server errors: candidate {:.2}% ({} of {}) vs stable {:.2}% ({} of {}), an increase of {:.2} points (allowed {:.2}), p = {p_value:.3}",
            100.0 * p_c,
            cand.errors,
            cand.requests,
            100.0 * p_s,
            stable.errors,
            stable.requests,
            100.0 * increase,
            100.0 * t.max_error_rate_increase
        ),
    )
}

/// One-sided Mann–Whitney U test on two latency histograms (ties within a
/// bucket): the p-value that the candidate is not slower than stable.
fn mann_whitney_slower(stable: &Histogram, cand: &Histogram) -> f64 {
    let (ns, nc) = (stable.count() as f64, cand.count() as f64);
    if ns == 0.0 || nc == 0.0 {
        return 1.0;
    }
    let buckets = stable.0.len().max(cand.0.len());
    let get = |h: &Histogram, i: usize| h.0.get(i).copied().unwrap_or(0) as f64;
    let (mut below, mut u, mut ties) = (0.0, 0.0, 0.0);
    for i in 0..buckets {
        let (si, ci) = (get(stable, i), get(cand, i));
        u += ci * (below + 0.5 * si);
        below += si;
        let tk = si + ci;
        ties += tk * tk * tk - tk;
    }
    let n = ns + nc;
    let mean = ns * nc / 2.0;
    let var = ns * nc / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    if var <= 0.0 {
        return if u > mean { 0.0 } else { 1.0 };
    }
    let z = (u - mean - 0.5) / var.sqrt();
    1.0 - slipway_stats::scipy::ndtr(z)
}

fn latency(stable: &RoleSnapshot, cand: &RoleSnapshot, t: &Thresholds) -> Check {
    // the p99 of a few hundred requests is their second-largest value: use
    // the highest quantile the smaller side can estimate
    let n = stable.requests.min(cand.requests);
    let (q, label) = if n >= 1000 {
        (0.99, "p99")
    } else if n >= 200 {
        (0.95, "p95")
    } else {
        (0.9, "p90")
    };
    let (Some(q_s), Some(q_c)) = (stable.latency.quantile(q), cand.latency.quantile(q)) else {
        return check(
            "p99_latency",
            "histogram quantile",
            None,
            None,
            t.max_p99_ratio,
            Verdict::Inconclusive,
            "no latency observed for one of the versions".into(),
        );
    };
    let (ms_s, ms_c) = (q_s * 1e3, q_c * 1e3);
    let limit = ms_s * t.max_p99_ratio + t.latency_slack_ms;
    let p = mann_whitney_slower(&stable.latency, &cand.latency);
    let verdict = if ms_c > limit && p < t.distribution_alpha {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    check(
        "p99_latency",
        &format!("histogram {label} (ms), one-sided Mann-Whitney U"),
        Some(ms_s),
        Some(ms_c),
        t.max_p99_ratio,
        verdict,
        format!(
            "{label} latency: candidate {ms_c:.2} ms vs stable {ms_s:.2} ms; fails above {:.1} x stable + {:.1} ms = {limit:.2} ms when the candidate is significantly slower (Mann-Whitney p = {p:.2e}, level {}){}",
            t.max_p99_ratio,
            t.latency_slack_ms,
            t.distribution_alpha,
            if label == "p99" { String::new() } else { format!("; {n} requests are too few for p99") }
        ),
    )
}

fn distributions(stable: &RoleSnapshot, cand: &RoleSnapshot, t: &Thresholds) -> Vec<Check> {
    let mut out = Vec::new();
    for (name, s) in &stable.outputs {
        let Some(c) = cand.outputs.get(name) else {
            continue;
        };
        let check_name = format!("distribution:{name}");
        match (s, c) {
            (
                ColumnSummary::Categorical { counts: a },
                ColumnSummary::Categorical { counts: b },
            ) => {
                let (na, nb): (u64, u64) = (a.values().sum(), b.values().sum());
                if na < t.min_samples || nb < t.min_samples {
                    out.push(check(
                        &check_name,
                        "Jensen-Shannon distance",
                        None,
                        None,
                        t.max_js_distance,
                        Verdict::Inconclusive,
                        format!(
                            "{name}: {na} stable and {nb} candidate labels; {} each needed",
                            t.min_samples
                        ),
                    ));
                    continue;
                }
                let ca: Counts = a.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let cb: Counts = b.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                match slipway_stats::test_categorical(
                    &ca,
                    &cb,
                    Method::JensenShannon,
                    Some(t.max_js_distance),
                ) {
                    Ok(r) => {
                        let p = contingency_p(a, b);
                        let bound = (r.statistic >= t.max_js_distance).then(|| {
                            slipway_stats::bootstrap::jensen_shannon_lower_bound(
                                &ca,
                                &cb,
                                1.0 - t.distribution_alpha,
                                slipway_stats::bootstrap::DEFAULT_RESAMPLES,
                            )
                            .unwrap_or(r.statistic)
                        });
                        let (verdict, detail) =
                            distance_verdict(r.statistic, bound, p, t.max_js_distance, t);
                        out.push(check(
                            &check_name,
                            "Jensen-Shannon distance, bootstrap lower bound (with chi-squared significance)",
                            None,
                            Some(r.statistic),
                            t.max_js_distance,
                            verdict,
                            format!(
                                "{name}: label distributions differ by a Jensen-Shannon distance of {:.3}{detail}; chi-squared p = {p:.2e}, over {na} stable and {nb} candidate answers",
                                r.statistic
                            ),
                        ));
                    }
                    Err(e) => out.push(check(
                        &check_name,
                        "Jensen-Shannon distance",
                        None,
                        None,
                        t.max_js_distance,
                        Verdict::Inconclusive,
                        format!("{name}: {e}"),
                    )),
                }
            }
            (
                ColumnSummary::Numeric { sample: a, .. },
                ColumnSummary::Numeric { sample: b, .. },
            ) => {
                let (na, nb) = (a.len() as u64, b.len() as u64);
                if na < t.min_samples || nb < t.min_samples {
                    out.push(check(
                        &check_name,
                        "Wasserstein distance / stable std",
                        None,
                        None,
                        t.max_wasserstein,
                        Verdict::Inconclusive,
                        format!(
                            "{name}: {na} stable and {nb} candidate values sampled; {} each needed",
                            t.min_samples
                        ),
                    ));
                    continue;
                }
                match slipway_stats::bootstrap::normed_wasserstein(a, b, t.numeric_tolerance) {
                    Ok(d) => {
                        let p = slipway_stats::scipy::ks_2samp(a, b).map_or(1.0, |k| k.p_value);
                        let bound = (d >= t.max_wasserstein).then(|| {
                            slipway_stats::bootstrap::normed_wasserstein_lower_bound(
                                a,
                                b,
                                t.numeric_tolerance,
                                1.0 - t.distribution_alpha,
                                slipway_stats::bootstrap::DEFAULT_RESAMPLES,
                            )
                            .unwrap_or(d)
                        });
                        let (verdict, detail) = distance_verdict(d, bound, p, t.max_wasserstein, t);
                        out.push(check(
                            &check_name,
                            "Wasserstein distance / stable std, bootstrap lower bound (with Kolmogorov-Smirnov significance)",
                            None,
                            Some(d),
                            t.max_wasserstein,
                            verdict,
                            format!(
                                "{name}: values differ by a normed Wasserstein distance of {d:.3}{detail}; KS p = {p:.2e}, over {na} stable and {nb} candidate samples"
                            ),
                        ));
                    }
                    Err(e) => out.push(check(
                        &check_name,
                        "Wasserstein distance / stable std",
                        None,
                        None,
                        t.max_wasserstein,
                        Verdict::Inconclusive,
                        format!("{name}: {e}"),
                    )),
                }
            }
            _ => {}
        }
    }
    out
}

/// The verdict of a distance check and the words that explain it. It fails
/// only when the distance less its sampling noise — the lower end of its
/// `1 - distribution_alpha` bootstrap interval, `bound` (computed only when
/// the estimate reaches the threshold) — still reaches `threshold`, and the
/// two samples differ significantly (`p < distribution_alpha`): an estimate
/// over small samples is above the threshold by chance far more often.
fn distance_verdict(
    estimate: f64,
    bound: Option<f64>,
    p: f64,
    threshold: f64,
    t: &Thresholds,
) -> (Verdict, String) {
    let level = 100.0 * (1.0 - t.distribution_alpha);
    match bound {
        None => (
            Verdict::Pass,
            format!(" (below the threshold {threshold:.3}; {estimate:.3} < {threshold:.3})"),
        ),
        Some(lb) => {
            let fail = lb >= threshold && p < t.distribution_alpha;
            let why = if fail {
                "fails"
            } else if lb < threshold {
                "passes: within sampling noise of the threshold"
            } else {
                "passes: not significant"
            };
            (
                if fail { Verdict::Fail } else { Verdict::Pass },
                format!(
                    ", {level:.0}% lower bound {lb:.3} (bootstrap); {why} (fails when the bound reaches {threshold:.3} and p < {})",
                    t.distribution_alpha
                ),
            )
        }
    }
}

/// p-value of the chi-squared test of homogeneity of two label count tables.
fn contingency_p(
    a: &std::collections::BTreeMap<String, u64>,
    b: &std::collections::BTreeMap<String, u64>,
) -> f64 {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let (na, nb) = (
        a.values().sum::<u64>() as f64,
        b.values().sum::<u64>() as f64,
    );
    let n = na + nb;
    if keys.len() < 2 || na == 0.0 || nb == 0.0 {
        return 1.0;
    }
    let mut stat = 0.0;
    for k in &keys {
        let (oa, ob) = (
            a.get(*k).copied().unwrap_or(0) as f64,
            b.get(*k).copied().unwrap_or(0) as f64,
        );
        let col = oa + ob;
        for (o, row) in [(oa, na), (ob, nb)] {
            let e = row * col / n;
            if e > 0.0 {
                stat += (o - e) * (o - e) / e;
            }
        }
    }
    slipway_stats::scipy::chi2_sf((keys.len() - 1) as f64, stat)
}

fn agreement(pair: &PairSnapshot, t: &Thresholds) -> Check {
    let on = if pair.labels {
        "labels"
    } else {
        "numeric outputs within tolerance"
    };
    if pair.rows < t.min_samples {
        return check(
            "agreement",
            "paired comparison",
            None,
            None,
            t.min_agreement,
            Verdict::Inconclusive,
            format!(
                "{} requests answered by both versions so far ({} mirror copies dropped, {} failed); {} needed",
                pair.rows, pair.dropped, pair.errors, t.min_samples
            ),
        );
    }
    let share = pair.agreed as f64 / pair.rows as f64;
    let (lo, hi) =
        slipway_stats::wilson_interval(pair.agreed, pair.rows, 0.95).unwrap_or((share, share));
    let verdict = if hi < t.min_agreement {
        Verdict::Fail
    } else if share >= t.min_agreement {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    };
    check(
        "agreement",
        "paired comparison, Wilson 95% interval",
        None,
        Some(share),
        t.min_agreement,
        verdict,
        format!(
            "both versions answered {} of {} identical requests alike on {on}: {:.1}% (95% interval {:.1}–{:.1}%; required {:.1}%)",
            pair.agreed,
            pair.rows,
            100.0 * share,
            100.0 * lo,
            100.0 * hi,
            100.0 * t.min_agreement
        ),
    )
}

fn sample_ratio(n_s: u64, n_c: u64, share: f64, t: &Thresholds) -> Check {
    let n = (n_s + n_c) as f64;
    let expected = [n * (1.0 - share), n * share];
    let observed = [n_s as f64, n_c as f64];
    let (stat, p) = if expected.iter().all(|e| *e > 0.0) {
        let stat: f64 = observed
            .iter()
            .zip(&expected)
            .map(|(o, e)| (o - e) * (o - e) / e)
            .sum();
        (stat, slipway_stats::scipy::chi2_sf(1.0, stat))
    } else {
        (0.0, 1.0)
    };
    let realised = n_c as f64 / n.max(1.0);
    let verdict = if p < t.srm_p_value {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    check(
        "sample_ratio",
        "chi-squared goodness of fit",
        Some(share),
        Some(realised),
        t.srm_p_value,
        verdict,
        format!(
            "the candidate got {:.2}% of {} requests against {:.2}% configured (chi-squared {stat:.2}, p = {p:.4}; mismatch below p = {})",
            100.0 * realised,
            n_s + n_c,
            100.0 * share,
            t.srm_p_value
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Histogram, BUCKETS};
    use std::collections::BTreeMap;

    fn role(
        requests: u64,
        errors: u64,
        latency_bucket: usize,
        labels: &[(&str, u64)],
    ) -> RoleSnapshot {
        let mut h = vec![0; BUCKETS];
        h[latency_bucket] = requests;
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "label".to_string(),
            ColumnSummary::Categorical {
                counts: labels.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
        );
        RoleSnapshot {
            requests,
            errors,
            latency: Histogram(h),
            outputs,
        }
    }

    fn judging(t: &Thresholds) -> Judging<'_> {
        Judging {
            thresholds: t,
            min_requests: 100,
            split_share: Some(0.1),
            paired: true,
        }
    }

    fn pair(rows: u64, agreed: u64) -> PairSnapshot {
        PairSnapshot {
            mirrored: rows,
            rows,
            agreed,
            labels: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_candidate_passes() {
        let t = Thresholds::default();
        let d = StepData {
            stable: role(1800, 2, 40, &[("0", 600), ("1", 600), ("2", 600)]),
            candidate: role(200, 0, 40, &[("0", 66), ("1", 68), ("2", 66)]),
            pair: pair(200, 196),
            candidate_error: None,
        };
        let (checks, v) = judge(&d, &judging(&t));
        assert_eq!(v, Verdict::Pass, "{checks:#?}");
    }

    #[test]
    fn each_bad_candidate_fails_its_check() {
        let t = Thresholds::default();
        let base = role(1800, 2, 40, &[("0", 600), ("1", 600), ("2", 600)]);
        let failing = StepData {
            stable: base.clone(),
            candidate: role(200, 30, 40, &[("0", 60), ("1", 50), ("2", 60)]),
            pair: pair(200, 196),
            candidate_error: None,
        };
        let slow = StepData {
            stable: base.clone(),
            candidate: role(200, 0, 70, &[("0", 66), ("1", 68), ("2", 66)]),
            pair: pair(200, 196),
            candidate_error: None,
        };
        let shuffled = StepData {
            stable: base.clone(),
            candidate: role(200, 0, 40, &[("0", 66), ("1", 68), ("2", 66)]),
            pair: pair(200, 70),
            candidate_error: None,
        };
        let skewed = StepData {
            stable: base,
            candidate: role(200, 0, 40, &[("0", 190), ("1", 5), ("2", 5)]),
            pair: pair(200, 196),
            candidate_error: None,
        };
        for (d, failed) in [
            (failing, "error_rate"),
            (slow, "p99_latency"),
            (shuffled, "agreement"),
            (skewed, "distribution:label"),
        ] {
            let (checks, v) = judge(&d, &judging(&t));
            assert_eq!(v, Verdict::Fail, "{failed}: {checks:#?}");
            let fails: Vec<&str> = checks
                .iter()
                .filter(|c| c.verdict == Verdict::Fail)
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(fails, vec![failed], "{checks:#?}");
        }
    }

    #[test]
    fn too_little_traffic_is_inconclusive_and_srm_is_caught() {
        let t = Thresholds::default();
        let thin = StepData {
            stable: role(900, 0, 40, &[("0", 900)]),
            candidate: role(50, 0, 40, &[("0", 50)]),
            pair: pair(10, 10),
            candidate_error: None,
        };
        let (checks, v) = judge(&thin, &judging(&t));
        assert_eq!(v, Verdict::Inconclusive);
        assert_eq!(checks[0].name, "traffic");
        let srm = StepData {
            stable: role(1000, 0, 40, &[("0", 1000)]),
            candidate: role(400, 0, 40, &[("0", 400)]),
            pair: pair(400, 400),
            candidate_error: None,
        };
        let (checks, v) = judge(&srm, &judging(&t));
        assert_eq!(v, Verdict::Fail);
        assert!(checks
            .iter()
            .any(|c| c.name == "sample_ratio" && c.verdict == Verdict::Fail));
    }
}
