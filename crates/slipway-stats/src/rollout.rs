//! Paired statistics for comparing two model versions during a rollout.
//!
//! [`agreement`] is the share of requests on which two versions gave the
//! same answer (shadow or mirrored traffic), with a Wilson score interval;
//! [`effect_size`] compares two numeric samples (scores, latencies) by the
//! normed Wasserstein distance Evidently uses for drift, so one scale reads
//! the same in monitoring and in rollouts.

use serde::{Deserialize, Serialize};

use crate::error::StatsError;
use crate::method::Method;
use crate::special::ndtri;

/// Agreement between two paired answer vectors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Number of pairs.
    pub n: u64,
    /// Pairs with equal answers.
    pub agreed: u64,
    /// `agreed / n`.
    pub share: f64,
    /// Lower end of the Wilson score interval.
    pub lower: f64,
    /// Upper end of the Wilson score interval.
    pub upper: f64,
    /// The interval's confidence level, e.g. 0.95.
    pub confidence: f64,
}

/// The share of positions where `a` and `b` hold equal answers, with a
/// Wilson score interval at `confidence` (strictly between 0 and 1).
/// Errors on vectors of different lengths or with no pairs.
pub fn agreement<T: PartialEq>(a: &[T], b: &[T], confidence: f64) -> Result<Agreement, StatsError> {
    if a.len() != b.len() {
        return Err(StatsError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    let agreed = a.iter().zip(b).filter(|(x, y)| x == y).count() as u64;
    let n = a.len() as u64;
    let (lower, upper) = wilson_interval(agreed, n, confidence)?;
    Ok(Agreement {
        n,
        agreed,
        share: agreed as f64 / n as f64,
        lower,
        upper,
        confidence,
    })
}

/// The Wilson score interval for `successes` out of `n` at `confidence`,
/// computed as `statsmodels.stats.proportion.proportion_confint(method="wilson")`
/// does (`z = norm.isf((1 - confidence) / 2)`), then clamped to `[0, 1]`.
pub fn wilson_interval(successes: u64, n: u64, confidence: f64) -> Result<(f64, f64), StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidParameter {
            name: "confidence",
            range: "strictly between 0 and 1",
            value: confidence,
        });
    }
    if n == 0 {
        return Err(StatsError::NoData);
    }
    let successes = successes.min(n);
    let nf = n as f64;
    let q = successes as f64 / nf;
    let alpha = 1.0 - confidence;
    let crit = -ndtri(alpha / 2.0);
    let crit2 = crit * crit;
    let denom = 1.0 + crit2 / nf;
    let center = (q + crit2 / (2.0 * nf)) / denom;
    let dist = crit * (q * (1.0 - q) / nf + crit2 / (4.0 * nf * nf)).sqrt() / denom;
    Ok((
        (center - dist).clamp(0.0, 1.0),
        (center + dist).clamp(0.0, 1.0),
    ))
}

/// The effect size between a baseline and a candidate sample: the first
/// Wasserstein distance divided by the baseline's standard deviation (at
/// least 0.001), exactly Evidently's normed Wasserstein drift score. 0.1 is
/// Evidently's drift threshold. NaN/±∞ are ignored.
pub fn effect_size(baseline: &[f64], candidate: &[f64]) -> Result<f64, StatsError> {
    crate::drift::test_numeric(baseline, candidate, Method::Wasserstein, None).map(|r| r.statistic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_equal_pairs() {
        let a = agreement(&["x", "y", "z", "x"], &["x", "y", "x", "x"], 0.95).expect("valid");
        assert_eq!((a.n, a.agreed), (4, 3));
        assert_eq!(a.share, 0.75);
        assert!(a.lower < 0.75 && 0.75 < a.upper);
    }

    #[test]
    fn agreement_errors() {
        assert!(matches!(
            agreement(&[1], &[1, 2], 0.95),
            Err(StatsError::LengthMismatch { left: 1, right: 2 })
        ));
        assert_eq!(agreement::<u8>(&[], &[], 0.95), Err(StatsError::NoData));
        assert!(matches!(
            agreement(&[1], &[1], 1.0),
            Err(StatsError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn wilson_extremes_stay_in_unit_interval() {
        let (lo, hi) = wilson_interval(0, 10, 0.95).expect("valid");
        assert!(lo.abs() < 1e-15);
        assert!(hi > 0.0 && hi < 0.4);
        let (lo, hi) = wilson_interval(10, 10, 0.95).expect("valid");
        assert!(lo > 0.6 && (1.0 - hi).abs() < 1e-15);
    }

    #[test]
    fn effect_size_of_shift() {
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 10.0).collect();
        let e = effect_size(&a, &b).expect("valid");
        let std = (a.iter().map(|x| (x - 49.5) * (x - 49.5)).sum::<f64>() / 100.0).sqrt();
        assert!((e - 10.0 / std).abs() < 1e-12);
    }
}
