//! Lower confidence bounds of two-sample distances, by bootstrap.
//!
//! A distance between two small samples is never zero, even when both come
//! from the same distribution: with 230 answers against 1,000, the normed
//! Wasserstein distance of two samples of one model's iris probabilities is
//! above 0.1 one time in ten. A rollout check that fails when the distance
//! *estimate* reaches its threshold therefore rolls good candidates back. The
//! functions here give the distance less its sampling noise: the
//! `1 - confidence` quantile of the distance over resamples (with
//! replacement) of both samples, corrected for the bias that resampling adds
//! (a resample's distance exceeds the sample's, as the sample's exceeds the
//! true one: the bound is moved down by twice the resamples' median excess
//! over the estimate). A check that fails only when this bound reaches the
//! threshold is wrong about a candidate whose true distance is below the
//! threshold about `1 - confidence` of the time or less. Simulated with two
//! normal samples of 1,000 and 150 (400 resamples, confidence 0.99): the
//! estimate reaches 0.1 for one pair in ten of the same distribution, the
//! bound for about one in a hundred; the uncorrected percentile bound for
//! one in fifty (one in three with 100 samples).
//!
//! Resampling is deterministic (a fixed-seed SplitMix64 stream derived from
//! the sample sizes), so the same figures always give the same bound, and
//! costs `O(resamples × (n_a + n_b))`: resamples are weights over the sorted
//! samples, never re-sorted.

use crate::counts::Counts;
use crate::error::{Sample, StatsError};
use crate::method::Method;
use crate::sample::{wasserstein, Dist};

/// Resamples drawn for a bound unless the caller asks otherwise.
pub const DEFAULT_RESAMPLES: usize = 400;

/// The normed Wasserstein distance a rollout compares numeric outputs with:
/// the first Wasserstein distance divided by the baseline's spread, its
/// standard deviation but at least `tolerance` × its mean magnitude (and
/// 1e-3), so that near-constant outputs do not turn a tiny difference into a
/// huge effect. NaN and ±∞ are ignored.
pub fn normed_wasserstein(
    baseline: &[f64],
    candidate: &[f64],
    tolerance: f64,
) -> Result<f64, StatsError> {
    let a = Weighted::new(baseline).ok_or(StatsError::Empty(Sample::Reference))?;
    let b = Weighted::new(candidate).ok_or(StatsError::Empty(Sample::Current))?;
    let ones_a = vec![1; a.sorted.len()];
    let ones_b = vec![1; b.sorted.len()];
    Ok(a.normed_distance(&ones_a, &b, &ones_b, tolerance))
}

/// Lower `confidence` bound of [`normed_wasserstein`] over `resamples`
/// bootstrap resamples of both samples (bias-corrected, see the module).
pub fn normed_wasserstein_lower_bound(
    baseline: &[f64],
    candidate: &[f64],
    tolerance: f64,
    confidence: f64,
    resamples: usize,
) -> Result<f64, StatsError> {
    check_confidence(confidence)?;
    let a = Weighted::new(baseline).ok_or(StatsError::Empty(Sample::Reference))?;
    let b = Weighted::new(candidate).ok_or(StatsError::Empty(Sample::Current))?;
    let mut rng = SplitMix64::for_sizes(a.sorted.len(), b.sorted.len());
    let (mut wa, mut wb) = (vec![0u32; a.sorted.len()], vec![0u32; b.sorted.len()]);
    let estimate = a.normed_distance(
        &vec![1; a.sorted.len()],
        &b,
        &vec![1; b.sorted.len()],
        tolerance,
    );
    let mut stats = Vec::with_capacity(resamples.max(1));
    for _ in 0..resamples.max(1) {
        rng.resample(&mut wa);
        rng.resample(&mut wb);
        stats.push(a.normed_distance(&wa, &b, &wb, tolerance));
    }
    Ok(lower_bound(estimate, stats, confidence))
}

/// Lower `confidence` bound of the Jensen–Shannon distance between two label
/// count tables (as [`crate::test_categorical`] computes it with
/// [`Method::JensenShannon`]) over `resamples` multinomial resamples of both
/// (bias-corrected, see the module).
pub fn jensen_shannon_lower_bound(
    reference: &Counts,
    current: &Counts,
    confidence: f64,
    resamples: usize,
) -> Result<f64, StatsError> {
    check_confidence(confidence)?;
    let a = Categories::new(reference).ok_or(StatsError::Empty(Sample::Reference))?;
    let b = Categories::new(current).ok_or(StatsError::Empty(Sample::Current))?;
    let mut rng = SplitMix64::for_sizes(a.total as usize, b.total as usize);
    let estimate =
        crate::drift::test_categorical(reference, current, Method::JensenShannon, None)?.statistic;
    let mut stats = Vec::with_capacity(resamples.max(1));
    for _ in 0..resamples.max(1) {
        let ra = a.resample(&mut rng);
        let rb = b.resample(&mut rng);
        let r = crate::drift::test_categorical(&ra, &rb, Method::JensenShannon, None)?;
        stats.push(r.statistic);
    }
    Ok(lower_bound(estimate, stats, confidence))
}

fn check_confidence(confidence: f64) -> Result<(), StatsError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(StatsError::InvalidParameter {
            name: "confidence",
            range: "strictly between 0 and 1",
            value: confidence,
        })
    }
}

/// The `1 - confidence` quantile of the resampled distances, moved down by
/// twice their median excess over the estimate (the resampling bias), and
/// never below 0.
fn lower_bound(estimate: f64, mut stats: Vec<f64>, confidence: f64) -> f64 {
    stats.sort_by(f64::total_cmp);
    let last = stats.len() - 1;
    let idx = (((1.0 - confidence) * stats.len() as f64).floor() as usize).min(last);
    let median = stats[last / 2];
    (stats[idx] - 2.0 * (median - estimate)).max(0.0)
}

/// A numeric sample's finite values, sorted, ready to be reweighted.
struct Weighted {
    sorted: Vec<f64>,
}

impl Weighted {
    fn new(values: &[f64]) -> Option<Weighted> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Weighted { sorted })
    }

    /// The distribution giving value `i` the weight `w[i]`, with its spread
    /// for the normalisation (std at least `tolerance` × mean magnitude, 1e-3).
    fn dist(&self, w: &[u32], tolerance: f64) -> (Option<Dist>, f64) {
        let n: f64 = w.iter().map(|&c| f64::from(c)).sum();
        let mut mean = 0.0;
        let mut magnitude = 0.0;
        for (x, &c) in self.sorted.iter().zip(w) {
            mean += x * f64::from(c);
            magnitude += x.abs() * f64::from(c);
        }
        mean /= n;
        magnitude /= n;
        let var = self
            .sorted
            .iter()
            .zip(w)
            .map(|(x, &c)| (x - mean) * (x - mean) * f64::from(c))
            .sum::<f64>()
            / n;
        let std = var.sqrt();
        let atoms: Vec<(f64, f64)> = self
            .sorted
            .iter()
            .zip(w)
            .filter(|(_, &c)| c > 0)
            .map(|(&x, &c)| (x, f64::from(c)))
            .collect();
        let scale = std.max(tolerance * magnitude).max(1e-3);
        (Dist::from_atoms(atoms, n as u64, mean, std, true), scale)
    }

    fn normed_distance(&self, wa: &[u32], other: &Weighted, wb: &[u32], tolerance: f64) -> f64 {
        let (da, scale) = self.dist(wa, tolerance);
        let (db, _) = other.dist(wb, tolerance);
        match (da, db) {
            (Some(da), Some(db)) => wasserstein(&da, &db) / scale,
            _ => 0.0,
        }
    }
}

/// A label table, for multinomial resampling.
struct Categories {
    names: Vec<String>,
    counts: Vec<u64>,
    total: u64,
}

impl Categories {
    fn new(counts: &Counts) -> Option<Categories> {
        let (names, counts): (Vec<String>, Vec<u64>) = counts
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| (k.to_string(), v))
            .unzip();
        let total = counts.iter().sum();
        (total > 0).then_some(Categories {
            names,
            counts,
            total,
        })
    }

    /// A multinomial draw of `total` labels with the table's shares, as
    /// sequential binomials: `O(categories)` whatever the total.
    fn resample(&self, rng: &mut SplitMix64) -> Counts {
        let mut out = Counts::new();
        let (mut left, mut mass) = (self.total, self.total);
        for (name, &c) in self.names.iter().zip(&self.counts) {
            if left == 0 {
                break;
            }
            let n = if c >= mass {
                left
            } else {
                rng.binomial(left, c as f64 / mass as f64)
            };
            mass -= c;
            left -= n;
            if n > 0 {
                out.add(name, n);
            }
        }
        out
    }
}

/// SplitMix64: resampling needs speed and reproducibility, not strength.
struct SplitMix64(u64);

impl SplitMix64 {
    fn for_sizes(a: usize, b: usize) -> SplitMix64 {
        SplitMix64(0x5EED_B007_5742_0001 ^ ((a as u64) << 32) ^ (b as u64))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below n / 2^64).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Binomial(`n`, `p`): by inversion when the smaller tail's mean is
    /// under 30 (exact), else the normal approximation with continuity
    /// correction (what a bootstrap of large counts needs).
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        let nf = n as f64;
        if nf * p < 30.0 {
            // inversion: walk the pmf from 0 (expected O(n·p) steps)
            let q = 1.0 - p;
            let mut pmf = q.powf(nf);
            let mut cdf = pmf;
            let u = self.unit();
            let mut k = 0u64;
            while u > cdf && k < n {
                pmf *= (nf - k as f64) / (k as f64 + 1.0) * (p / q);
                cdf += pmf;
                k += 1;
                if pmf < 1e-300 && cdf < u {
                    break;
                }
            }
            return k;
        }
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let x = (nf * p + z * (nf * p * (1.0 - p)).sqrt()).round();
        x.clamp(0.0, nf) as u64
    }

    /// Fills `w` with the multiplicities of `w.len()` draws with replacement.
    fn resample(&mut self, w: &mut [u32]) {
        w.iter_mut().for_each(|c| *c = 0);
        let n = w.len() as u64;
        for _ in 0..n {
            w[self.below(n) as usize] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(rng: &mut SplitMix64, n: usize, shift: f64) -> Vec<f64> {
        // Box–Muller from the same stream
        (0..n)
            .map(|_| {
                let u1 = rng.unit().max(1e-300);
                let u2 = rng.unit();
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() + shift
            })
            .collect()
    }

    #[test]
    fn the_distance_equals_scipy_normed_by_std() {
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 10.0).collect();
        let d = normed_wasserstein(&a, &b, 0.1).expect("valid");
        let std = (a.iter().map(|x| (x - 49.5) * (x - 49.5)).sum::<f64>() / 100.0).sqrt();
        assert!((d - 10.0 / std).abs() < 1e-12, "{d}");
        assert!(matches!(
            normed_wasserstein(&[f64::NAN], &b, 0.1),
            Err(StatsError::Empty(Sample::Reference))
        ));
    }

    #[test]
    fn the_bound_is_below_the_estimate_and_deterministic() {
        let mut rng = SplitMix64(7);
        let a = normal(&mut rng, 1000, 0.0);
        let b = normal(&mut rng, 230, 0.5);
        let d = normed_wasserstein(&a, &b, 0.1).expect("valid");
        let lb = normed_wasserstein_lower_bound(&a, &b, 0.1, 0.99, 400).expect("valid");
        assert!(lb < d && lb > 0.25, "d {d}, bound {lb}");
        let again = normed_wasserstein_lower_bound(&a, &b, 0.1, 0.99, 400).expect("valid");
        assert_eq!(lb, again);
        assert!(normed_wasserstein_lower_bound(&a, &b, 0.1, 1.0, 400).is_err());
    }

    /// Same distribution, small samples: the estimate reaches 0.1 often, the
    /// 99% lower bound (almost) never; a shift of half a std is still caught
    /// (the bound costs power near the threshold: 0.3 std is caught about
    /// two times in three at these sizes).
    #[test]
    fn the_bound_separates_noise_from_a_real_shift() {
        let mut rng = SplitMix64(11);
        let (mut estimate_over, mut bound_over, mut caught) = (0, 0, 0);
        let trials = 60;
        for _ in 0..trials {
            let a = normal(&mut rng, 1000, 0.0);
            let b = normal(&mut rng, 150, 0.0);
            let d = normed_wasserstein(&a, &b, 0.1).expect("valid");
            estimate_over += usize::from(d >= 0.1);
            let lb = normed_wasserstein_lower_bound(&a, &b, 0.1, 0.99, 200).expect("valid");
            bound_over += usize::from(lb >= 0.1);
            let shifted = normal(&mut rng, 150, 0.5);
            let lb = normed_wasserstein_lower_bound(&a, &shifted, 0.1, 0.99, 200).expect("valid");
            caught += usize::from(lb >= 0.1);
        }
        assert!(
            estimate_over >= 3,
            "noise alone reaches 0.1: {estimate_over}"
        );
        assert!(bound_over <= 1, "the bound reached 0.1 {bound_over} times");
        assert!(caught >= trials * 9 / 10, "caught {caught} of {trials}");
    }

    #[test]
    fn label_bounds() {
        let a = Counts::from_values(["0"; 600].iter().chain(&["1"; 600]).chain(&["2"; 600]));
        let same = Counts::from_values(["0"; 66].iter().chain(&["1"; 68]).chain(&["2"; 66]));
        let skewed = Counts::from_values(["0"; 190].iter().chain(&["1"; 5]).chain(&["2"; 5]));
        let lb = jensen_shannon_lower_bound(&a, &same, 0.99, 400).expect("valid");
        assert!(lb < 0.05, "{lb}");
        let lb = jensen_shannon_lower_bound(&a, &skewed, 0.99, 400).expect("valid");
        assert!(lb > 0.4, "{lb}");
        assert!(jensen_shannon_lower_bound(&Counts::new(), &skewed, 0.99, 10).is_err());
    }

    #[test]
    fn binomial_draws_have_the_right_moments() {
        let mut rng = SplitMix64(3);
        for (n, p) in [
            (20u64, 0.3),
            (1000, 0.01),
            (100_000, 0.4),
            (100_000, 0.999_9),
        ] {
            let draws: Vec<f64> = (0..4000).map(|_| rng.binomial(n, p) as f64).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var =
                draws.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / draws.len() as f64;
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!(
                (mean - m).abs() < 4.0 * (v / 4000.0).sqrt() + 1e-9,
                "n {n} p {p}: mean {mean} vs {m}"
            );
            assert!(
                (var / v - 1.0).abs() < 0.15,
                "n {n} p {p}: var {var} vs {v}"
            );
            assert!(draws.iter().all(|&x| x <= n as f64));
        }
        let big = Counts::from_values(["a"; 3].iter());
        let mut counts = Counts::new();
        counts.add("a", 2_000_000);
        counts.add("b", 1_000_000);
        let lb = jensen_shannon_lower_bound(&counts, &counts, 0.99, 400).expect("valid");
        assert!(lb < 0.01, "{lb}");
        assert!(jensen_shannon_lower_bound(&big, &counts, 0.99, 10).is_ok());
    }
}
