//! The SciPy functions behind the drift tests, exposed on their own so they
//! can be checked against SciPy directly (and used by other analyses).
//!
//! Each mirrors the SciPy 1.17 function of the same name with default
//! arguments; see the crate's module docs for the algorithms. Unlike SciPy,
//! they drop NaN/±∞ from sample inputs rather than propagating them.

use crate::error::{Sample, StatsError};
use crate::ks::{kolmogn, ks_2samp_pvalue};
use crate::sample::{ks_distance, wasserstein, Dist};

/// The result of [`ks_2samp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// The KS statistic `D` as SciPy reports it.
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Whether the exact distribution was used (`method="auto"` picks it
    /// when both samples have at most 10,000 values and it succeeds).
    pub exact: bool,
}

fn dists(a: &[f64], b: &[f64]) -> Result<(Dist, Dist), StatsError> {
    let da = Dist::from_values(a).ok_or(StatsError::Empty(Sample::Reference))?;
    let db = Dist::from_values(b).ok_or(StatsError::Empty(Sample::Current))?;
    Ok((da, db))
}

/// `scipy.stats.ks_2samp(a, b)` (two-sided, `method="auto"`).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<KsResult, StatsError> {
    let (da, db) = dists(a, b)?;
    let p = ks_2samp_pvalue(da.count, db.count, ks_distance(&da, &db), true);
    Ok(KsResult {
        statistic: p.statistic,
        p_value: p.p_value,
        exact: p.exact,
    })
}

/// `scipy.stats.wasserstein_distance(u, v)` (unweighted).
pub fn wasserstein_distance(u: &[f64], v: &[f64]) -> Result<f64, StatsError> {
    let (du, dv) = dists(u, v)?;
    Ok(wasserstein(&du, &dv))
}

/// `scipy.stats.chisquare(f_obs, f_exp)`: `(statistic, p_value)` with
/// `len - 1` degrees of freedom. A zero expected count with a non-zero
/// observed one gives `(∞, 0)`, as in SciPy; a single category gives p = 1
/// (SciPy: NaN).
pub fn chisquare(f_obs: &[f64], f_exp: &[f64]) -> Result<(f64, f64), StatsError> {
    if f_obs.len() != f_exp.len() {
        return Err(StatsError::LengthMismatch {
            left: f_obs.len(),
            right: f_exp.len(),
        });
    }
    if f_obs.is_empty() {
        return Err(StatsError::Empty(Sample::Current));
    }
    let terms: Vec<f64> = f_obs
        .iter()
        .zip(f_exp)
        .map(|(&o, &e)| {
            let d = o - e;
            d * d / e
        })
        .collect();
    Ok(crate::drift::chisquare_terms(&terms))
}

/// `scipy.spatial.distance.jensenshannon(p, q)` with the natural logarithm.
pub fn jensenshannon(p: &[f64], q: &[f64]) -> Result<f64, StatsError> {
    if p.len() != q.len() {
        return Err(StatsError::LengthMismatch {
            left: p.len(),
            right: q.len(),
        });
    }
    if p.is_empty() {
        return Err(StatsError::Empty(Sample::Reference));
    }
    Ok(crate::drift::jensenshannon_dist(p, q))
}

/// `scipy.stats.kstwo.sf(x, n)`: survival function of the two-sided
/// one-sample KS statistic for sample size `n` (NaN for `n = 0`).
pub fn kstwo_sf(x: f64, n: u64) -> f64 {
    kolmogn(n, x, false)
}

/// `scipy.special.smirnov(n, x)`: survival function of the one-sided
/// one-sample KS statistic.
pub fn smirnov(n: u64, x: f64) -> f64 {
    crate::ks::smirnov(n, x)
}

/// `scipy.special.chdtrc(df, x)`: the chi-squared survival function.
pub fn chi2_sf(df: f64, x: f64) -> f64 {
    crate::special::chi2_sf(df, x)
}

/// `scipy.special.ndtr(x)`: the standard normal CDF.
pub fn ndtr(x: f64) -> f64 {
    crate::special::ndtr(x)
}

/// `scipy.special.ndtri(p)`: the standard normal quantile.
pub fn ndtri(p: f64) -> f64 {
    crate::special::ndtri(p)
}
