//! Per-feature drift tests and the dataset-level verdict, reproducing
//! Evidently 0.7.23's data-drift numbers.
//!
//! What is replicated, and from where (Evidently paths under
//! `src/evidently/legacy/calculations/`):
//! - cleaning: NaN and ±∞ are dropped from both samples before anything
//!   else; an empty sample is an error (`data_drift.py`,
//!   `get_one_column_drift`);
//! - KS: `scipy.stats.ks_2samp(reference, current)` p-value, drift when
//!   `p <= threshold` (`stattests/ks_stattest.py`);
//! - chi-squared: expected = reference counts × `n_current / n_reference`
//!   over the union of categories, `scipy.stats.chisquare`, drift when
//!   `p < threshold` (`stattests/chisquare_stattest.py`);
//! - Z-test: the first category in sorted order against the rest, pooled
//!   two-proportion statistic, `p = 2 (1 - Φ(|z|))`, and `p = 1` when both
//!   samples hold the same single value (`stattests/z_stattest.py`);
//! - Wasserstein: `scipy.stats.wasserstein_distance / max(np.std(reference), 0.001)`,
//!   drift when `>= threshold` (`stattests/wasserstein_distance_norm.py`);
//! - Jensen–Shannon and PSI: `get_binned_data` (`stattests/utils.py`) —
//!   numeric columns whose reference has more than 20 unique values are
//!   binned with `np.histogram_bin_edges(reference ∪ current, "sturges")`,
//!   everything else by value counts over the union of values; PSI fills
//!   empty bins with `min_nonzero / 10^6` (if that minimum is at most
//!   0.0001) or 0.0001; JS uses `scipy.spatial.distance.jensenshannon`
//!   with the natural log (`stattests/jensenshannon.py`, `stattests/psi.py`).
//!
//! Deliberate differences, both where SciPy returns NaN: chi-squared over a
//! single category gives `p = 1` (SciPy: NaN, which Evidently reads as "no
//! drift" too), and a Jensen–Shannon sum that rounds below zero is clamped
//! to zero before the square root.

use serde::{Deserialize, Serialize};

use crate::counts::Counts;
use crate::error::{Sample, StatsError};
use crate::ks::ks_2samp_pvalue;
use crate::method::{FeatureKind, Method};
use crate::sample::{
    histogram, ks_distance, pairwise_sum, sturges_edges, wasserstein, Dist, Table,
};
use crate::special::{chi2_sf, ndtr};

/// Evidently bins numeric columns by histogram only when the reference has
/// more than this many unique values.
pub const HISTOGRAM_MIN_UNIQUE: usize = 20;

/// The floor of the standard deviation that normalises the Wasserstein
/// distance.
pub const WASSERSTEIN_MIN_NORM: f64 = 0.001;

/// The outcome of one feature's drift test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureResult {
    /// The method that produced it.
    pub method: Method,
    /// The method's statistic: the KS distance `D`, the chi-squared
    /// statistic, the Z statistic, the normed Wasserstein distance, the
    /// Jensen–Shannon distance or the PSI. For the distances this is also
    /// the drift score. May be `+∞` (chi-squared with a category the
    /// reference never saw).
    pub statistic: f64,
    /// The p-value for the p-value methods (KS, chi-squared, Z), else `None`.
    /// From a sketched window the KS p-value is deliberately conservative
    /// (see [`crate::window`]).
    pub p_value: Option<f64>,
    /// The threshold the score was compared with.
    pub threshold: f64,
    /// Whether the feature drifted.
    pub drifted: bool,
    /// PSI of the same two samples, reported next to every method. NaN only
    /// where NumPy itself would refuse to bin the data.
    pub psi: f64,
    /// Whether the numbers are estimates from a quantile sketch rather than
    /// exact (see [`crate::window`]).
    pub estimated: bool,
}

impl FeatureResult {
    /// The score Evidently reports as `drift_score`: the p-value for the
    /// p-value methods, the statistic otherwise.
    pub fn score(&self) -> f64 {
        self.p_value.unwrap_or(self.statistic)
    }
}

/// Dataset-level drift as Evidently decides it: the share of drifted
/// features, and whether it reaches `share_threshold` (`share >= threshold`;
/// Evidently's default is 0.5). With no features the share is 0 and the
/// verdict `false` (Evidently divides by zero).
pub fn dataset_drift(results: &[FeatureResult], share_threshold: f64) -> (bool, f64) {
    if results.is_empty() {
        return (false, 0.0);
    }
    let drifted = results.iter().filter(|r| r.drifted).count();
    let share = drifted as f64 / results.len() as f64;
    (share >= share_threshold, share)
}

/// The number of distinct finite values in `reference` and `current` together.
pub fn unique_numeric(reference: &[f64], current: &[f64]) -> usize {
    let mut all: Vec<f64> = reference
        .iter()
        .chain(current)
        .copied()
        .filter(|x| x.is_finite())
        .map(|x| if x == 0.0 { 0.0 } else { x })
        .collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all.len()
}

/// The kind Evidently uses to choose a test for a numeric column, from the
/// number of unique finite values in both samples.
pub fn detect_numeric_kind(reference: &[f64], current: &[f64]) -> FeatureKind {
    FeatureKind::for_numeric_column(unique_numeric(reference, current))
}

/// The kind Evidently uses to choose a test for a categorical column, from
/// the number of categories seen in either sample.
pub fn detect_categorical_kind(reference: &Counts, current: &Counts) -> FeatureKind {
    let unique = reference
        .iter()
        .chain(current.iter())
        .filter(|(_, n)| *n > 0)
        .map(|(k, _)| k)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    FeatureKind::for_categorical_column(unique)
}

/// Tests a numeric column for drift with `method` at `threshold` (the
/// method's default when `None`). NaN and ±∞ are ignored. Chi-squared, Z,
/// Jensen–Shannon and PSI treat each distinct number as a category where
/// Evidently does.
pub fn test_numeric(
    reference: &[f64],
    current: &[f64],
    method: Method,
    threshold: Option<f64>,
) -> Result<FeatureResult, StatsError> {
    let (r, c) = numeric_dists(reference, current)?;
    compare_dists(&r, &c, method, threshold)
}

/// Tests a numeric column with the method Evidently would choose
/// ([`detect_numeric_kind`], [`Method::default_for`]) at its default threshold.
pub fn test_numeric_default(
    reference: &[f64],
    current: &[f64],
) -> Result<FeatureResult, StatsError> {
    let (r, c) = numeric_dists(reference, current)?;
    let method = default_method_for_dists(&r, &c);
    compare_dists(&r, &c, method, None)
}

/// Tests a categorical column for drift with `method` (chi-squared, Z,
/// Jensen–Shannon or PSI) at `threshold` (the method's default when `None`).
/// Categories are ordered as strings (byte order, Python's order for `str`),
/// which decides the Z-test's first category when there are more than two;
/// integer-coded categories ordered numerically belong in [`test_numeric`].
pub fn test_categorical(
    reference: &Counts,
    current: &Counts,
    method: Method,
    threshold: Option<f64>,
) -> Result<FeatureResult, StatsError> {
    let threshold = method.resolve_threshold(threshold)?;
    if !method.applies_to_categorical() {
        return Err(StatsError::MethodNotApplicable {
            method,
            data: "categorical",
        });
    }
    let table = counts_table(reference, current)?;
    let (statistic, p_value) = match method {
        Method::ChiSquare => {
            let (s, p) = chi_square_table(&table);
            (s, Some(p))
        }
        Method::ZTest => {
            let (s, p) = z_test_table(&table);
            (s, Some(p))
        }
        Method::JensenShannon => {
            let (rp, cp) = table_percents(&table, false);
            (jensenshannon_dist(&rp, &cp), None)
        }
        Method::Psi => {
            let (rp, cp) = table_percents(&table, true);
            (psi_of(&rp, &cp), None)
        }
        Method::Ks | Method::Wasserstein => {
            return Err(StatsError::MethodNotApplicable {
                method,
                data: "categorical",
            })
        }
    };
    let psi = if method == Method::Psi {
        statistic
    } else {
        let (rp, cp) = table_percents(&table, true);
        psi_of(&rp, &cp)
    };
    Ok(finish(method, statistic, p_value, threshold, psi, false))
}

/// Tests a categorical column with the method Evidently would choose
/// ([`detect_categorical_kind`], [`Method::default_for`]) at its default
/// threshold.
pub fn test_categorical_default(
    reference: &Counts,
    current: &Counts,
) -> Result<FeatureResult, StatsError> {
    let kind = detect_categorical_kind(reference, current);
    let reference_len = usize::try_from(reference.total()).unwrap_or(usize::MAX);
    test_categorical(
        reference,
        current,
        Method::default_for(kind, reference_len),
        None,
    )
}

/// PSI of a numeric column as Evidently computes it (`stattests/psi.py`).
pub fn psi_numeric(reference: &[f64], current: &[f64]) -> Result<f64, StatsError> {
    let (r, c) = numeric_dists(reference, current)?;
    let (rp, cp) = binned(&r, &c, true)?;
    Ok(psi_of(&rp, &cp))
}

/// PSI of a categorical column as Evidently computes it.
pub fn psi_categorical(reference: &Counts, current: &Counts) -> Result<f64, StatsError> {
    let table = counts_table(reference, current)?;
    let (rp, cp) = table_percents(&table, true);
    Ok(psi_of(&rp, &cp))
}

fn numeric_dists(reference: &[f64], current: &[f64]) -> Result<(Dist, Dist), StatsError> {
    let r = Dist::from_values(reference).ok_or(StatsError::Empty(Sample::Reference))?;
    let c = Dist::from_values(current).ok_or(StatsError::Empty(Sample::Current))?;
    Ok((r, c))
}

/// Evidently's default method for two numeric distributions.
pub(crate) fn default_method_for_dists(r: &Dist, c: &Dist) -> Method {
    let mut unique = 0usize;
    crate::sample::merge_walk(r, c, |_, _, _| unique += 1);
    let kind = FeatureKind::for_numeric_column(unique);
    let reference_len = usize::try_from(r.count).unwrap_or(usize::MAX);
    Method::default_for(kind, reference_len)
}

fn counts_table(reference: &Counts, current: &Counts) -> Result<Table, StatsError> {
    if reference.total() == 0 {
        return Err(StatsError::Empty(Sample::Reference));
    }
    if current.total() == 0 {
        return Err(StatsError::Empty(Sample::Current));
    }
    let mut keys: std::collections::BTreeMap<&str, (f64, f64)> = std::collections::BTreeMap::new();
    for (k, n) in reference.iter().filter(|(_, n)| *n > 0) {
        keys.entry(k).or_default().0 = n as f64;
    }
    for (k, n) in current.iter().filter(|(_, n)| *n > 0) {
        keys.entry(k).or_default().1 = n as f64;
    }
    let (reference, current) = keys.values().copied().unzip();
    Ok(Table { reference, current })
}

fn finish(
    method: Method,
    statistic: f64,
    p_value: Option<f64>,
    threshold: f64,
    psi: f64,
    estimated: bool,
) -> FeatureResult {
    let score = p_value.unwrap_or(statistic);
    FeatureResult {
        method,
        statistic,
        p_value,
        threshold,
        drifted: method.is_drift(score, threshold),
        psi,
        estimated,
    }
}

/// Runs `method` on two numeric distributions (exact or sketched).
pub(crate) fn compare_dists(
    r: &Dist,
    c: &Dist,
    method: Method,
    threshold: Option<f64>,
) -> Result<FeatureResult, StatsError> {
    let threshold = method.resolve_threshold(threshold)?;
    let exact = r.exact && c.exact;
    let (statistic, p_value) = match method {
        Method::Ks => {
            let d = ks_distance(r, c);
            if exact {
                let p = ks_2samp_pvalue(r.count, c.count, d, true);
                (p.statistic, Some(p.p_value))
            } else {
                // Conservative: the p-value at the smallest D the sketch allows.
                let d_low = (d - r.rank_error - c.rank_error).max(0.0);
                let p = ks_2samp_pvalue(r.count, c.count, d_low, false);
                (d, Some(p.p_value))
            }
        }
        Method::Wasserstein => {
            let norm = r.std.max(WASSERSTEIN_MIN_NORM);
            (wasserstein(r, c) / norm, None)
        }
        Method::ChiSquare | Method::ZTest => {
            if !exact {
                return Err(StatsError::NeedsExactCounts(method));
            }
            let table = Table::from_dists(r, c);
            let (s, p) = if method == Method::ChiSquare {
                chi_square_table(&table)
            } else {
                z_test_table(&table)
            };
            (s, Some(p))
        }
        Method::JensenShannon => {
            let (rp, cp) = binned(r, c, false)?;
            (jensenshannon_dist(&rp, &cp), None)
        }
        Method::Psi => {
            let (rp, cp) = binned(r, c, true)?;
            (psi_of(&rp, &cp), None)
        }
    };
    let psi = if method == Method::Psi {
        statistic
    } else {
        binned(r, c, true)
            .map(|(rp, cp)| psi_of(&rp, &cp))
            .unwrap_or(f64::NAN)
    };
    Ok(finish(method, statistic, p_value, threshold, psi, !exact))
}

/// Evidently's `get_binned_data` for a numeric column: reference and current
/// shares per bin, with empty bins filled when `fill_zeros`.
pub(crate) fn binned(
    r: &Dist,
    c: &Dist,
    fill_zeros: bool,
) -> Result<(Vec<f64>, Vec<f64>), StatsError> {
    let (mut rp, mut cp) = if r.distinct() > HISTOGRAM_MIN_UNIQUE {
        let edges = sturges_edges(
            r.min().min(c.min()),
            r.max().max(c.max()),
            r.count + c.count,
        )
        .ok_or(StatsError::Histogram)?;
        let (rn, cn) = (r.count as f64, c.count as f64);
        let rp: Vec<f64> = histogram(r, &edges).into_iter().map(|w| w / rn).collect();
        let cp: Vec<f64> = histogram(c, &edges).into_iter().map(|w| w / cn).collect();
        (rp, cp)
    } else {
        let table = Table::from_dists(r, c);
        table_percents(&table, false)
    };
    if fill_zeros {
        fill_empty(&mut rp);
        fill_empty(&mut cp);
    }
    Ok((rp, cp))
}

/// Shares of each category in the two samples (`count / len`).
fn table_percents(t: &Table, fill_zeros: bool) -> (Vec<f64>, Vec<f64>) {
    let (rn, cn) = (t.reference_total(), t.current_total());
    let mut rp: Vec<f64> = t.reference.iter().map(|&x| x / rn).collect();
    let mut cp: Vec<f64> = t.current.iter().map(|&x| x / cn).collect();
    if fill_zeros {
        fill_empty(&mut rp);
        fill_empty(&mut cp);
    }
    (rp, cp)
}

/// Evidently's `feel_zeroes`: zeros become `min_nonzero / 10^6` when that
/// minimum is at most 0.0001, else 0.0001.
fn fill_empty(p: &mut [f64]) {
    let min_nonzero = p
        .iter()
        .copied()
        .filter(|&x| x != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !min_nonzero.is_finite() {
        return;
    }
    let fill = if min_nonzero <= 0.0001 {
        min_nonzero / 1e6
    } else {
        0.0001
    };
    for x in p.iter_mut().filter(|x| **x == 0.0) {
        *x = fill;
    }
}

/// `Σ (r - c) ln(r / c)`.
fn psi_of(rp: &[f64], cp: &[f64]) -> f64 {
    let terms: Vec<f64> = rp
        .iter()
        .zip(cp)
        .map(|(&r, &c)| (r - c) * (r / c).ln())
        .collect();
    pairwise_sum(&terms)
}

/// `scipy.special.rel_entr`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// `scipy.spatial.distance.jensenshannon(p, q)` (natural log), with a sum
/// that rounds below zero clamped to zero.
pub(crate) fn jensenshannon_dist(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (pairwise_sum(p), pairwise_sum(q));
    let p: Vec<f64> = p.iter().map(|&x| x / sp).collect();
    let q: Vec<f64> = q.iter().map(|&x| x / sq).collect();
    let m: Vec<f64> = p.iter().zip(&q).map(|(&a, &b)| (a + b) / 2.0).collect();
    let left: Vec<f64> = p.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).collect();
    let right: Vec<f64> = q.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).collect();
    let js = pairwise_sum(&left) + pairwise_sum(&right);
    (js / 2.0).max(0.0).sqrt()
}

/// Evidently's chi-squared test on a contingency table: `(statistic, p)`.
fn chi_square_table(t: &Table) -> (f64, f64) {
    let k_norm = t.current_total() / t.reference_total();
    let terms: Vec<f64> = t
        .reference
        .iter()
        .zip(&t.current)
        .map(|(&r, &c)| {
            let e = r * k_norm;
            let d = c - e;
            d * d / e
        })
        .collect();
    chisquare_terms(&terms)
}

/// Sum of Pearson terms and its p-value with `k - 1` degrees of freedom.
pub(crate) fn chisquare_terms(terms: &[f64]) -> (f64, f64) {
    let stat = pairwise_sum(terms);
    if terms.len() < 2 {
        return (stat, 1.0);
    }
    let df = (terms.len() - 1) as f64;
    (stat, chi2_sf(df, stat))
}

/// Evidently's two-proportion Z-test on a contingency table: `(z, p)`.
fn z_test_table(t: &Table) -> (f64, f64) {
    let ref_unique = t.reference.iter().filter(|&&x| x > 0.0).count();
    let cur_unique = t.current.iter().filter(|&&x| x > 0.0).count();
    let same_single = ref_unique == 1
        && cur_unique == 1
        && t.reference
            .iter()
            .zip(&t.current)
            .any(|(&r, &c)| r > 0.0 && c > 0.0);
    if same_single || t.len() == 0 {
        return (0.0, 1.0);
    }
    let (n1, n2) = (t.reference_total(), t.current_total());
    // Category 0 (the smallest key) maps to 0, every other to 1.
    let p1 = (n1 - t.reference[0]) / n1;
    let p2 = (n2 - t.current[0]) / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p = 2.0 * (1.0 - ndtr(z.abs()));
    (z, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Counts {
        pairs.iter().map(|&(k, v)| (k, v)).collect()
    }

    #[test]
    fn empty_and_nan_only_samples_are_errors() {
        assert_eq!(
            test_numeric(&[], &[1.0], Method::Ks, None),
            Err(StatsError::Empty(Sample::Reference))
        );
        assert_eq!(
            test_numeric(&[1.0], &[f64::NAN, f64::INFINITY], Method::Ks, None),
            Err(StatsError::Empty(Sample::Current))
        );
        assert_eq!(
            test_categorical(
                &Counts::new(),
                &counts(&[("a", 1)]),
                Method::ChiSquare,
                None
            ),
            Err(StatsError::Empty(Sample::Reference))
        );
    }

    #[test]
    fn ks_on_categories_is_rejected() {
        let a = counts(&[("a", 1)]);
        assert!(matches!(
            test_categorical(&a, &a, Method::Ks, None),
            Err(StatsError::MethodNotApplicable { .. })
        ));
    }

    #[test]
    fn invalid_threshold_is_rejected() {
        assert!(matches!(
            test_numeric(&[1.0], &[1.0], Method::Ks, Some(f64::NAN)),
            Err(StatsError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn constant_columns() {
        for m in Method::ALL {
            let r =
                test_numeric(&[3.0; 10], &[3.0; 7], m, None).expect("constant columns are fine");
            assert!(!r.drifted, "{m}: {r:?}");
            let r =
                test_numeric(&[3.0; 10], &[4.0; 7], m, None).expect("constant columns are fine");
            assert!(r.drifted, "{m}: {r:?}");
        }
    }

    #[test]
    fn z_test_identical_single_value() {
        let a = counts(&[("x", 5)]);
        let r = test_categorical(&a, &a, Method::ZTest, None).expect("valid");
        assert_eq!(r.p_value, Some(1.0));
        assert!(!r.drifted);
    }

    #[test]
    fn chi_square_new_category_is_infinite() {
        let r = test_categorical(
            &counts(&[("a", 5), ("b", 5)]),
            &counts(&[("a", 5), ("c", 5)]),
            Method::ChiSquare,
            None,
        )
        .expect("valid");
        assert_eq!(r.statistic, f64::INFINITY);
        assert_eq!(r.p_value, Some(0.0));
        assert!(r.drifted);
    }

    #[test]
    fn dataset_share() {
        let r = test_numeric(&[1.0, 2.0], &[1.0, 2.0], Method::Wasserstein, None).expect("valid");
        let mut d = r.clone();
        d.drifted = true;
        assert_eq!(dataset_drift(&[r.clone(), d.clone()], 0.5), (true, 0.5));
        assert!(!dataset_drift(&[r.clone(), r, d], 0.5).0);
        assert_eq!(dataset_drift(&[], 0.5), (false, 0.0));
    }

    #[test]
    fn psi_is_reported_beside_every_method() {
        let r = test_numeric(&[1.0, 2.0, 3.0], &[1.0, 2.0, 9.0], Method::Ks, None).expect("valid");
        let psi = psi_numeric(&[1.0, 2.0, 3.0], &[1.0, 2.0, 9.0]).expect("valid");
        assert_eq!(r.psi, psi);
        assert!(psi > 0.0);
    }
}
