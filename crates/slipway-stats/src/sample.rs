//! Weighted empirical distributions, the one representation every numeric
//! statistic works on.
//!
//! An exact sample becomes its distinct values with integer counts; a
//! distinct-value table keeps its counts; a quantile sketch contributes its
//! retained items with their power-of-two weights. The statistics (KS
//! distance, Wasserstein distance, histograms, contingency tables) are then
//! written once. Counts are held as `f64`, which is exact for integers below
//! 2^53, so `count / n` is the same float SciPy computes from
//! `searchsorted(...) / n`.

/// A finite weighted sample: distinct values in increasing order, each with a
/// positive weight, plus the moments of the underlying observations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dist {
    /// Distinct finite values, strictly increasing (`-0.0` is merged with `0.0`).
    pub values: Vec<f64>,
    /// Inclusive cumulative weights: `cum[i]` is the weight of values `<= values[i]`.
    pub cum: Vec<f64>,
    /// Number of observations the distribution stands for.
    pub count: u64,
    /// Mean of the observations.
    pub mean: f64,
    /// Standard deviation of the observations, `ddof = 0` (`np.std`).
    pub std: f64,
    /// Whether `values`/`cum` are the observations themselves (counts), not a sketch.
    pub exact: bool,
    /// Smallest observation (a sketch may not retain it).
    pub lo: f64,
    /// Largest observation (a sketch may not retain it).
    pub hi: f64,
    /// Bound on the uniform rank error of `cum / total` (0 when exact).
    pub rank_error: f64,
}

/// NumPy's pairwise summation (`pairwise_sum_DOUBLE`, block size 128,
/// unrolled by 8), so sums over an array match `np.sum` closely.
pub(crate) fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// Mean and `ddof = 0` standard deviation the way `np.std` computes them
/// (two passes, pairwise sums). `values` must be non-empty and finite.
pub(crate) fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = pairwise_sum(values) / n;
    let sq: Vec<f64> = values
        .iter()
        .map(|&x| {
            let d = x - mean;
            d * d
        })
        .collect();
    let var = pairwise_sum(&sq) / n;
    (mean, var.sqrt())
}

impl Dist {
    /// The exact distribution of the finite values in `values` (NaN and ±∞
    /// are dropped, as Evidently does). `None` when nothing finite is left.
    pub fn from_values(values: &[f64]) -> Option<Dist> {
        let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let (mean, std) = mean_std(&finite);
        let mut sorted = finite;
        sorted.sort_by(f64::total_cmp);
        let mut vals: Vec<f64> = Vec::new();
        let mut cum: Vec<f64> = Vec::new();
        let mut running = 0.0;
        for x in sorted {
            let x = if x == 0.0 { 0.0 } else { x };
            running += 1.0;
            match vals.last() {
                Some(&last) if last == x => {
                    if let Some(c) = cum.last_mut() {
                        *c = running;
                    }
                }
                _ => {
                    vals.push(x);
                    cum.push(running);
                }
            }
        }
        let (lo, hi) = (vals[0], vals[vals.len() - 1]);
        Some(Dist {
            values: vals,
            cum,
            count: running as u64,
            mean,
            std,
            exact: true,
            lo,
            hi,
            rank_error: 0.0,
        })
    }

    /// A distribution from `(value, weight)` atoms (any order, repeats
    /// allowed, non-positive weights and non-finite values ignored) with the
    /// observations' own count and moments. `None` when no atom is left.
    pub fn from_atoms(
        mut atoms: Vec<(f64, f64)>,
        count: u64,
        mean: f64,
        std: f64,
        exact: bool,
    ) -> Option<Dist> {
        atoms.retain(|&(v, w)| v.is_finite() && w > 0.0 && w.is_finite());
        if atoms.is_empty() {
            return None;
        }
        atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut vals: Vec<f64> = Vec::with_capacity(atoms.len());
        let mut cum: Vec<f64> = Vec::with_capacity(atoms.len());
        let mut running = 0.0;
        for (v, w) in atoms {
            let v = if v == 0.0 { 0.0 } else { v };
            running += w;
            match vals.last() {
                Some(&last) if last == v => {
                    if let Some(c) = cum.last_mut() {
                        *c = running;
                    }
                }
                _ => {
                    vals.push(v);
                    cum.push(running);
                }
            }
        }
        let (lo, hi) = (vals[0], vals[vals.len() - 1]);
        Some(Dist {
            values: vals,
            cum,
            count,
            mean,
            std,
            exact,
            lo,
            hi,
            rank_error: 0.0,
        })
    }

    /// Total weight (equals `count` for exact distributions).
    pub fn total(&self) -> f64 {
        self.cum.last().copied().unwrap_or(0.0)
    }

    /// Number of distinct values.
    pub fn distinct(&self) -> usize {
        self.values.len()
    }

    /// Smallest observation.
    pub fn min(&self) -> f64 {
        self.lo
    }

    /// Largest observation.
    pub fn max(&self) -> f64 {
        self.hi
    }

    /// Records the true extremes of the observations (for sketches, whose
    /// retained items may not include them) and the sketch's rank error bound.
    pub fn with_sketch_info(mut self, lo: f64, hi: f64, rank_error: f64) -> Dist {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        self.rank_error = rank_error;
        self
    }

    /// Weight of values strictly below `x`.
    pub fn weight_lt(&self, x: f64) -> f64 {
        let i = self.values.partition_point(|&v| v < x);
        if i == 0 {
            0.0
        } else {
            self.cum[i - 1]
        }
    }

    /// Weight of values at or below `x`.
    pub fn weight_le(&self, x: f64) -> f64 {
        let i = self.values.partition_point(|&v| v <= x);
        if i == 0 {
            0.0
        } else {
            self.cum[i - 1]
        }
    }
}

/// Walks the union of two distributions' atoms in increasing order, calling
/// `f(value, cum_a, cum_b)` with both inclusive cumulative weights at each.
pub(crate) fn merge_walk(a: &Dist, b: &Dist, mut f: impl FnMut(f64, f64, f64)) {
    let (mut i, mut j) = (0usize, 0usize);
    let (mut ca, mut cb) = (0.0, 0.0);
    while i < a.values.len() || j < b.values.len() {
        let va = a.values.get(i).copied().unwrap_or(f64::INFINITY);
        let vb = b.values.get(j).copied().unwrap_or(f64::INFINITY);
        let v = va.min(vb);
        if va == v {
            ca = a.cum[i];
            i += 1;
        }
        if vb == v {
            cb = b.cum[j];
            j += 1;
        }
        f(v, ca, cb);
    }
}

/// The two-sample Kolmogorov–Smirnov distance exactly as `ks_2samp` forms it:
/// `max(max(cdf_a - cdf_b), clip(-min(cdf_a - cdf_b), 0, 1))`.
pub(crate) fn ks_distance(a: &Dist, b: &Dist) -> f64 {
    let (na, nb) = (a.total(), b.total());
    let mut max = f64::NEG_INFINITY;
    let mut min = f64::INFINITY;
    merge_walk(a, b, |_, ca, cb| {
        let d = ca / na - cb / nb;
        if d > max {
            max = d;
        }
        if d < min {
            min = d;
        }
    });
    let min_s = (-min).clamp(0.0, 1.0);
    if min_s > max {
        min_s
    } else {
        max
    }
}

/// The first Wasserstein distance between two distributions, the way
/// `scipy.stats.wasserstein_distance` sums it: `Σ |F_a - F_b| · Δx` over the
/// sorted union of values.
pub(crate) fn wasserstein(a: &Dist, b: &Dist) -> f64 {
    let (na, nb) = (a.total(), b.total());
    let mut terms: Vec<f64> = Vec::with_capacity(a.values.len() + b.values.len());
    let mut prev: Option<(f64, f64)> = None;
    merge_walk(a, b, |v, ca, cb| {
        if let Some((pv, pd)) = prev {
            terms.push(pd * (v - pv));
        }
        prev = Some((v, (ca / na - cb / nb).abs()));
    });
    pairwise_sum(&terms)
}

/// A contingency table of two samples over the union of their categories,
/// in increasing key order; categories absent from both are not listed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    /// Reference count of each category.
    pub reference: Vec<f64>,
    /// Current count of each category.
    pub current: Vec<f64>,
}

impl Table {
    /// The table of two distributions whose atoms are the categories.
    pub fn from_dists(a: &Dist, b: &Dist) -> Table {
        let mut reference = Vec::new();
        let mut current = Vec::new();
        let (mut pa, mut pb) = (0.0, 0.0);
        merge_walk(a, b, |_, ca, cb| {
            reference.push(ca - pa);
            current.push(cb - pb);
            pa = ca;
            pb = cb;
        });
        Table { reference, current }
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.reference.len()
    }

    /// Total reference count.
    pub fn reference_total(&self) -> f64 {
        self.reference.iter().sum()
    }

    /// Total current count.
    pub fn current_total(&self) -> f64 {
        self.current.iter().sum()
    }
}

/// Histogram bin edges as `np.histogram_bin_edges(combined, bins="sturges")`
/// computes them for data of `size` values spanning `[min, max]`. `None` if
/// NumPy would refuse (edges not strictly increasing).
pub(crate) fn sturges_edges(min: f64, max: f64, size: u64) -> Option<Vec<f64>> {
    let (mut first, mut last) = (min, max);
    if !(first.is_finite() && last.is_finite()) || size == 0 {
        return None;
    }
    let ptp = max - min;
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let width = ptp / ((size as f64).log2() + 1.0);
    let bins: usize = if width != 0.0 {
        let b = ((last - first) / width).ceil();
        if !(1.0..=1e7).contains(&b) {
            return None;
        }
        b as usize
    } else {
        1
    };
    // np.linspace(first, last, bins + 1): i * step + first, last edge exact.
    let delta = last - first;
    let div = bins as f64;
    let step = delta / div;
    let mut edges: Vec<f64> = (0..=bins)
        .map(|i| {
            let i = i as f64;
            if step == 0.0 {
                (i / div) * delta + first
            } else {
                i * step + first
            }
        })
        .collect();
    if let Some(e) = edges.last_mut() {
        *e = last;
    }
    if edges.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    Some(edges)
}

/// Bin weights of a distribution for NumPy's array-edges histogram:
/// `[e_i, e_{i+1})`, the last bin closed on the right.
pub(crate) fn histogram(d: &Dist, edges: &[f64]) -> Vec<f64> {
    let n = edges.len();
    let cum: Vec<f64> = edges
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            if i + 1 == n {
                d.weight_le(e)
            } else {
                d.weight_lt(e)
            }
        })
        .collect();
    cum.windows(2).map(|w| w[1] - w[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_naive_on_integers() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
        assert_eq!(pairwise_sum(&[]), 0.0);
    }

    #[test]
    fn from_values_merges_ties_and_drops_non_finite() {
        let d = Dist::from_values(&[2.0, f64::NAN, 1.0, 2.0, -0.0, 0.0, f64::INFINITY])
            .expect("finite values present");
        assert_eq!(d.values, vec![0.0, 1.0, 2.0]);
        assert_eq!(d.cum, vec![2.0, 3.0, 5.0]);
        assert_eq!(d.count, 5);
        assert!(Dist::from_values(&[f64::NAN]).is_none());
    }

    #[test]
    fn ks_and_wasserstein_of_shifted_points() {
        let a = Dist::from_values(&[0.0, 1.0]).expect("non-empty");
        let b = Dist::from_values(&[2.0, 3.0]).expect("non-empty");
        assert_eq!(ks_distance(&a, &b), 1.0);
        assert_eq!(wasserstein(&a, &b), 2.0);
        assert_eq!(ks_distance(&a, &a), 0.0);
        assert_eq!(wasserstein(&a, &a), 0.0);
    }

    #[test]
    fn sturges_edges_match_numpy_small_case() {
        // np.histogram_bin_edges(np.arange(10.), bins="sturges") has 5 bins.
        let e = sturges_edges(0.0, 9.0, 10).expect("valid range");
        assert_eq!(e, vec![0.0, 1.8, 3.6, 5.4, 7.2, 9.0]);
        let d = Dist::from_values(&(0..10).map(f64::from).collect::<Vec<_>>()).expect("values");
        assert_eq!(histogram(&d, &e), vec![2.0, 2.0, 2.0, 2.0, 2.0]);
    }
}
