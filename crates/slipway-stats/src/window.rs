//! Bounded streaming accumulators for live traffic, one per column.
//!
//! [`NumericWindow`] keeps every value until `sample_limit` values have
//! arrived; its results are then identical to [`crate::test_numeric`] on the
//! same values. Past the limit it keeps exact value counts if the column
//! has at most 21 distinct values (still exact: every test, KS's exact
//! p-value included, gives the same numbers as on the full sample) and
//! otherwise a KLL quantile sketch ([`crate::kll`]) plus the
//! `tail_values` smallest and largest distinct values with exact counts.
//! The CDF is exact below and above those tails and comes from the sketch,
//! rescaled to the remaining count, in between. (The exact tails matter for
//! PSI and Jensen–Shannon, whose sparse outer bins a sketch alone gets badly
//! wrong: in the tests a variance shift's PSI was off by 0.155 without them
//! and by 0.003 with them.) From a sketch:
//!
//! - the KS distance `D̂` is read off the sketch's CDF, `|D̂ - D| <= ε_ref + ε_cur`;
//!   its p-value is SciPy's asymptotic one (`kstwo.sf(x, round(n·m/(n+m)))`)
//!   taken at `x = max(0, D̂ - ε_ref - ε_cur)`, so it is never below the
//!   exact sample's asymptotic p-value while the bound holds: sketch error
//!   cannot raise a drift alarm, at the price of some power for small shifts;
//! - the Wasserstein distance is the integral of `|F̂_ref - F̂_cur|`, so
//!   `|Ŵ - W| <= (ε_ref + ε_cur) · (max - min)` over both samples, and it is
//!   normalised by the exact standard deviation (kept as running moments);
//! - PSI and Jensen–Shannon use the exact minimum, maximum and count for
//!   Sturges' bins (the exact sample's bins) and the CDF above for the
//!   share in each bin. The CDF is exact at or below the low tail's bound
//!   and above the high tail's, so a bin's share is exact when both its
//!   edges lie there, and off by at most `η = 2ε` otherwise (`ε` at each
//!   sketched edge). No bound follows from `ε` alone: a share near zero can
//!   move a logarithm arbitrarily. [`sketch_error_bound`] therefore bounds
//!   them from the sketched shares themselves: each exact share lies in
//!   `[p̂ - η, p̂ + η] ∩ [0, 1]` (and a positive share is at least `1/n`).
//!   Jensen–Shannon distance is a metric, so `|JŜ - JS| <= JS(r̂, r) + JS(ĉ, c)`,
//!   and `JS(p̂, p)² = Σ g(p̂_i, p_i)` with `g` convex in `p_i`: the bound
//!   takes each term's worse end of its interval. PSI's terms
//!   `(r - c) ln(r / c)` are jointly convex and monotone on each side of
//!   `r = c`, so each term's range over its box of exact shares comes from
//!   the box's corners (its minimum is 0 when the box meets `r = c`); empty
//!   bins are filled as Evidently fills them, with the fill's own range
//!   when the smallest non-empty exact share is not certain. A bin's exact
//!   share is also at least its distinct retained values over `n` (each is
//!   an observation). The bound is worst-case (every edge off by `ε` in the
//!   worst direction): at the default `k = 800`, on the tests' data, 0.02
//!   to 0.22 for Jensen–Shannon and 0.02 to 0.5 for PSI (up to about PSI
//!   itself under large shifts), while the errors measured stayed below
//!   0.003 and 0.02;
//! - chi-squared and Z need exact counts and return
//!   [`StatsError::NeedsExactCounts`].
//!
//! Here `ε` is a window's [`NumericWindow::rank_error_bound`] (0 while
//! exact). Results from a sketch carry `estimated: true`;
//! [`sketch_error_bound`] gives the bound of each method. Every bound holds
//! while each window's CDF is within its `ε` of the exact one, which KLL
//! guarantees with high probability, not with certainty (see [`crate::kll`]).
//!
//! [`CategoricalWindow`] counts at most `max_categories` distinct labels
//! (each truncated to `max_category_bytes`); later new labels are counted
//! under [`OTHER`]. Both windows expose [`NumericWindow::approx_bytes`] /
//! [`CategoricalWindow::approx_bytes`], bounded by their configuration.

use crate::counts::Counts;
use crate::drift::{
    binned, compare_dists, default_method_for_dists, FeatureResult, HISTOGRAM_MIN_UNIQUE,
    WASSERSTEIN_MIN_NORM,
};
use crate::error::{Sample, StatsError};
use crate::kll::{self, Kll};
use crate::method::Method;
use crate::sample::{histogram, sturges_edges, Dist};

/// Distinct values a window counts exactly after its sample limit: one more
/// than the 20 above which Evidently bins numeric columns by histogram, so
/// every choice Evidently makes from unique counts stays exact.
pub const DISTINCT_LIMIT: usize = 21;

/// The overflow category of a [`CategoricalWindow`].
pub const OTHER: &str = "__other__";

/// Configuration of a [`NumericWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericWindowConfig {
    /// Values kept exactly before switching to counts or a sketch
    /// (8 bytes each). Default 10,000.
    pub sample_limit: usize,
    /// KLL accuracy parameter `k` (at least 8; at most `3k + 576` values
    /// retained). Default 800: about 22 KB, uniform rank error bound 0.7%.
    pub sketch_k: usize,
    /// Distinct extreme values counted exactly at each end once sketched
    /// (16 bytes each), so the sparse tail bins PSI and Jensen–Shannon are
    /// sensitive to are exact. Default 256.
    pub tail_values: usize,
    /// Seed of the sketch's compaction coin flips. Default fixed.
    pub seed: u64,
}

impl Default for NumericWindowConfig {
    fn default() -> Self {
        NumericWindowConfig {
            sample_limit: 10_000,
            sketch_k: 800,
            tail_values: 256,
            seed: 0x5EED_51D3_D21F_7000,
        }
    }
}

#[derive(Debug, Clone)]
enum Repr {
    /// Every value, in arrival order.
    Exact(Vec<f64>),
    /// `(value, count)` sorted by value, at most [`DISTINCT_LIMIT`] entries.
    Distinct(Vec<(f64, u64)>),
    /// A quantile sketch with exact tails (boxed: it is the large variant).
    Sketch(Box<Sketch>),
}

/// A bounded accumulator of one numeric column's values.
#[derive(Debug, Clone)]
pub struct NumericWindow {
    config: NumericWindowConfig,
    count: u64,
    missing: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    repr: Repr,
}

impl Default for NumericWindow {
    fn default() -> Self {
        NumericWindow::new(NumericWindowConfig::default())
    }
}

impl NumericWindow {
    /// An empty window.
    pub fn new(config: NumericWindowConfig) -> Self {
        NumericWindow {
            config,
            count: 0,
            missing: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            repr: Repr::Exact(Vec::new()),
        }
    }

    /// The window's configuration.
    pub fn config(&self) -> NumericWindowConfig {
        self.config
    }

    /// Adds a value; NaN and ±∞ are counted as missing and otherwise ignored.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            self.missing = self.missing.saturating_add(1);
            return;
        }
        let x = if x == 0.0 { 0.0 } else { x };
        self.update_moments(x, 1);
        let limit = self.config.sample_limit;
        let cfg = self.config;
        match &mut self.repr {
            Repr::Exact(values) if values.len() < limit => values.push(x),
            Repr::Exact(values) => {
                let values = std::mem::take(values);
                self.repr = spill(cfg, &values, x);
            }
            Repr::Distinct(table) => match table.binary_search_by(|(v, _)| v.total_cmp(&x)) {
                Ok(i) => table[i].1 = table[i].1.saturating_add(1),
                Err(i) if table.len() < DISTINCT_LIMIT => table.insert(i, (x, 1)),
                Err(_) => {
                    let mut sketch = sketch_of_table(cfg, table);
                    sketch.insert(x);
                    self.repr = Repr::Sketch(Box::new(sketch));
                }
            },
            Repr::Sketch(sketch) => sketch.insert(x),
        }
    }

    /// Adds every value of `values`.
    pub fn extend(&mut self, values: impl IntoIterator<Item = f64>) {
        for x in values {
            self.push(x);
        }
    }

    /// Folds `other` (with any configuration) into this window, as if its
    /// values had been pushed here; a sketch on either side makes the result
    /// a sketch.
    pub fn merge(&mut self, other: &NumericWindow) {
        self.missing = self.missing.saturating_add(other.missing);
        match &other.repr {
            Repr::Exact(values) => {
                for &x in values {
                    self.push(x);
                }
            }
            Repr::Distinct(table) => {
                for &(v, c) in table {
                    self.push_weighted(v, c);
                }
            }
            Repr::Sketch(theirs) => {
                let mut sketch = self.take_as_sketch();
                sketch.merge(theirs);
                self.merge_moments(other);
                self.repr = Repr::Sketch(Box::new(sketch));
            }
        }
    }

    /// Adds `c` copies of the finite value `x`.
    fn push_weighted(&mut self, x: f64, c: u64) {
        let mut left = c;
        // Exact values stay exact while they fit, one by one.
        while left > 0 && matches!(self.repr, Repr::Exact(_)) {
            self.push(x);
            left -= 1;
        }
        if left == 0 {
            return;
        }
        self.update_moments(x, left);
        let cfg = self.config;
        match &mut self.repr {
            Repr::Sketch(sketch) => sketch.insert_weighted(x, left),
            Repr::Distinct(table) => match table.binary_search_by(|(v, _)| v.total_cmp(&x)) {
                Ok(i) => table[i].1 = table[i].1.saturating_add(left),
                Err(i) if table.len() < DISTINCT_LIMIT => table.insert(i, (x, left)),
                Err(_) => {
                    let mut sketch = sketch_of_table(cfg, table);
                    sketch.insert_weighted(x, left);
                    self.repr = Repr::Sketch(Box::new(sketch));
                }
            },
            // Unreachable: the loop above leaves only when not exact.
            Repr::Exact(values) => values.push(x),
        }
    }

    /// Replaces the representation by a sketch of the same values and
    /// returns it (the caller stores it back).
    fn take_as_sketch(&mut self) -> Sketch {
        let cfg = self.config;
        match std::mem::replace(&mut self.repr, Repr::Exact(Vec::new())) {
            Repr::Sketch(s) => *s,
            Repr::Exact(values) => {
                let mut s = Sketch::new(cfg);
                for x in values {
                    s.insert(x);
                }
                s
            }
            Repr::Distinct(table) => sketch_of_table(cfg, &table),
        }
    }

    fn update_moments(&mut self, x: f64, c: u64) {
        // Chan et al.'s update with a block of c equal values.
        let n_a = self.count as f64;
        let n_b = c as f64;
        let n = n_a + n_b;
        let delta = x - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += delta * delta * n_a * n_b / n;
        self.count = self.count.saturating_add(c);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn merge_moments(&mut self, other: &NumericWindow) {
        if other.count == 0 {
            return;
        }
        let n_a = self.count as f64;
        let n_b = other.count as f64;
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += other.m2 + delta * delta * n_a * n_b / n;
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of finite values seen.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no finite value has been seen.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of NaN/±∞ values seen (and ignored).
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Whether results from this window are exact (all values, exact value
    /// counts, or a sketch whose exact tails still cover every value), not
    /// sketch estimates.
    pub fn is_exact(&self) -> bool {
        match &self.repr {
            Repr::Sketch(s) => s.covers_all(),
            _ => true,
        }
    }

    /// The values themselves, while the window is under its sample limit.
    pub fn values(&self) -> Option<&[f64]> {
        match &self.repr {
            Repr::Exact(v) => Some(v),
            _ => None,
        }
    }

    /// Mean of the finite values (NaN when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.mean
        }
    }

    /// Standard deviation (ddof 0) of the finite values (NaN when empty).
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            (self.m2.max(0.0) / self.count as f64).sqrt()
        }
    }

    /// Smallest finite value (NaN when empty).
    pub fn min(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.min
        }
    }

    /// Largest finite value (NaN when empty).
    pub fn max(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.max
        }
    }

    /// The uniform normalised rank error bound `ε` of the window's CDF: 0
    /// while exact, [`crate::kll::rank_error_bound`] of its `k` once sketched.
    pub fn rank_error_bound(&self) -> f64 {
        match &self.repr {
            Repr::Sketch(s) if !s.covers_all() => kll::rank_error_bound(s.kll.k()),
            _ => 0.0,
        }
    }

    /// Where the window's CDF is estimated: `(ε, low, high)` when sketched,
    /// the CDF being exact at `x <= low` (left limits) and `x > high`.
    fn sketched_region(&self) -> Option<(f64, f64, f64)> {
        match &self.repr {
            Repr::Sketch(s) if !s.covers_all() => {
                Some((kll::rank_error_bound(s.kll.k()), s.low.bound, s.high.bound))
            }
            _ => None,
        }
    }

    /// The window's (estimated) CDF as steps: each distinct retained value
    /// with the share of values at or below it, in increasing order (empty
    /// when the window is). Exact while [`NumericWindow::is_exact`].
    pub fn cdf_steps(&self) -> Vec<(f64, f64)> {
        match self.dist() {
            Some(d) => {
                let total = d.total();
                d.values
                    .iter()
                    .zip(&d.cum)
                    .map(|(&v, &c)| (v, c / total))
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// The (estimated) share of values at or below `x` (NaN when empty).
    pub fn cdf(&self, x: f64) -> f64 {
        match self.dist() {
            Some(d) => d.weight_le(x) / d.total(),
            None => f64::NAN,
        }
    }

    /// The (estimated) `q`-quantile: the smallest retained value whose CDF
    /// reaches `q` (NaN when empty or `q` outside `[0, 1]`).
    pub fn quantile(&self, q: f64) -> f64 {
        let Some(d) = self.dist() else {
            return f64::NAN;
        };
        if !(0.0..=1.0).contains(&q) {
            return f64::NAN;
        }
        let target = q * d.total();
        let i = d.cum.partition_point(|&c| c < target);
        d.values.get(i).copied().unwrap_or_else(|| d.max())
    }

    /// Approximate bytes held by the window, bounded by construction by
    /// about `8 · sample_limit` (exact), `16 · 21` (counts) or
    /// `8 · (3k + 576) + 32 · tail_values` (sketch), each at most doubled by
    /// vector growth, plus a few hundred bytes.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.repr {
                Repr::Exact(v) => v.capacity() * 8,
                Repr::Distinct(t) => t.capacity() * 16,
                Repr::Sketch(s) => s.approx_bytes(),
            }
    }

    /// The window as a weighted distribution (`None` when empty).
    pub(crate) fn dist(&self) -> Option<Dist> {
        match &self.repr {
            Repr::Exact(values) => Dist::from_values(values),
            Repr::Distinct(table) => {
                let atoms: Vec<(f64, f64)> = table.iter().map(|&(v, c)| (v, c as f64)).collect();
                let n: f64 = atoms.iter().map(|a| a.1).sum();
                if n == 0.0 {
                    return None;
                }
                let mean = atoms.iter().map(|&(v, w)| v * w).sum::<f64>() / n;
                let var = atoms
                    .iter()
                    .map(|&(v, w)| w * (v - mean) * (v - mean))
                    .sum::<f64>()
                    / n;
                Dist::from_atoms(atoms, self.count, mean, var.sqrt(), true)
            }
            Repr::Sketch(s) => s.dist(self.count, self.mean, self.std(), self.min, self.max),
        }
    }
}

/// The `cap` most extreme distinct values at one end of the stream with
/// exact counts. Invariant: every value beyond `bound` (below it for the
/// low end, above it for the high end) that occurred is in `entries` with
/// its exact count; `bound` is ±∞ until a value has been evicted.
#[derive(Debug, Clone)]
struct Tail {
    cap: usize,
    low: bool,
    /// Sorted by value.
    entries: Vec<(f64, u64)>,
    bound: f64,
}

impl Tail {
    fn new(cap: usize, low: bool) -> Tail {
        Tail {
            cap,
            low,
            entries: Vec::new(),
            bound: if low {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            },
        }
    }

    /// Whether `x` lies in the exactly counted region.
    fn covers(&self, x: f64) -> bool {
        if self.low {
            x < self.bound
        } else {
            x > self.bound
        }
    }

    fn insert(&mut self, x: f64, c: u64) {
        if !self.covers(x) {
            return;
        }
        match self.entries.binary_search_by(|(v, _)| v.total_cmp(&x)) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.saturating_add(c),
            Err(i) => {
                self.entries.insert(i, (x, c));
                self.evict();
            }
        }
    }

    /// Drops the innermost entries beyond `cap`, moving `bound` inwards.
    fn evict(&mut self) {
        while self.entries.len() > self.cap {
            let gone = if self.low {
                self.entries.pop()
            } else {
                Some(self.entries.remove(0))
            };
            if let Some((v, _)) = gone {
                self.bound = v;
            }
        }
    }

    fn merge(&mut self, other: &Tail) {
        self.bound = if self.low {
            self.bound.min(other.bound)
        } else {
            self.bound.max(other.bound)
        };
        let bound = self.bound;
        let low = self.low;
        let keep = |v: f64| if low { v < bound } else { v > bound };
        let mut merged: Vec<(f64, u64)> = self
            .entries
            .iter()
            .chain(&other.entries)
            .copied()
            .filter(|e| keep(e.0))
            .collect();
        merged.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(merged.len());
        for (v, c) in merged {
            match out.last_mut() {
                Some(last) if last.0 == v => last.1 = last.1.saturating_add(c),
                _ => out.push((v, c)),
            }
        }
        self.entries = out;
        self.evict();
    }

    fn total(&self) -> u64 {
        self.entries.iter().fold(0u64, |a, e| a.saturating_add(e.1))
    }
}

/// A KLL sketch plus exact tails.
#[derive(Debug, Clone)]
struct Sketch {
    kll: Kll,
    low: Tail,
    high: Tail,
}

impl Sketch {
    fn new(cfg: NumericWindowConfig) -> Sketch {
        Sketch {
            kll: Kll::new(cfg.sketch_k, cfg.seed),
            low: Tail::new(cfg.tail_values, true),
            high: Tail::new(cfg.tail_values, false),
        }
    }

    fn insert(&mut self, x: f64) {
        self.kll.insert(x);
        self.low.insert(x, 1);
        self.high.insert(x, 1);
    }

    fn insert_weighted(&mut self, x: f64, c: u64) {
        self.kll.insert_weighted(x, c);
        self.low.insert(x, c);
        self.high.insert(x, c);
    }

    fn merge(&mut self, other: &Sketch) {
        self.kll.merge(&other.kll);
        self.low.merge(&other.low);
        self.high.merge(&other.high);
    }

    /// Whether the exact tails alone hold every value.
    fn covers_all(&self) -> bool {
        self.low.bound == f64::INFINITY
            || self.high.bound == f64::NEG_INFINITY
            || self.low.bound > self.high.bound
    }

    fn approx_bytes(&self) -> usize {
        self.kll.approx_bytes() + 16 * (self.low.entries.capacity() + self.high.entries.capacity())
    }

    /// The distribution: exact tails, the sketch's items in between scaled
    /// to the remaining count. Exact when the tails cover everything.
    fn dist(&self, count: u64, mean: f64, std: f64, min: f64, max: f64) -> Option<Dist> {
        let exact_atoms = |entries: &[(f64, u64)]| -> Vec<(f64, f64)> {
            entries.iter().map(|&(v, c)| (v, c as f64)).collect()
        };
        let (lo_bound, hi_bound) = (self.low.bound, self.high.bound);
        if lo_bound == f64::INFINITY {
            // Never evicted: the low tail holds every distinct value.
            return Dist::from_atoms(exact_atoms(&self.low.entries), count, mean, std, true);
        }
        if hi_bound == f64::NEG_INFINITY {
            return Dist::from_atoms(exact_atoms(&self.high.entries), count, mean, std, true);
        }
        if lo_bound > hi_bound {
            // The tails overlap, so together they cover every value.
            let mut atoms = exact_atoms(&self.low.entries);
            atoms.extend(
                exact_atoms(&self.high.entries)
                    .into_iter()
                    .filter(|a| !self.low.covers(a.0)),
            );
            return Dist::from_atoms(atoms, count, mean, std, true);
        }
        let outer = self.low.total().saturating_add(self.high.total());
        let target = count.saturating_sub(outer) as f64;
        let inner: Vec<(f64, f64)> = self
            .kll
            .atoms()
            .into_iter()
            .filter(|a| !self.low.covers(a.0) && !self.high.covers(a.0))
            .collect();
        let inner_weight: f64 = inner.iter().map(|a| a.1).sum();
        let mut atoms = exact_atoms(&self.low.entries);
        atoms.extend(exact_atoms(&self.high.entries));
        if inner_weight > 0.0 {
            let scale = target / inner_weight;
            atoms.extend(inner.into_iter().map(|(v, w)| (v, w * scale)));
        } else if target > 0.0 {
            atoms.push((lo_bound, target));
        }
        Dist::from_atoms(atoms, count, mean, std, false)
            .map(|d| d.with_sketch_info(min, max, kll::rank_error_bound(self.kll.k())))
    }
}

/// A sketch holding the values of a distinct-value table.
fn sketch_of_table(cfg: NumericWindowConfig, table: &[(f64, u64)]) -> Sketch {
    let mut s = Sketch::new(cfg);
    for &(v, c) in table {
        s.insert_weighted(v, c);
    }
    s
}

/// The representation once `x` arrives after the exact `values` filled the
/// sample limit: value counts if at most [`DISTINCT_LIMIT`] distinct values,
/// else a sketch.
fn spill(cfg: NumericWindowConfig, values: &[f64], x: f64) -> Repr {
    let mut table: Vec<(f64, u64)> = Vec::new();
    for &v in values.iter().chain(std::iter::once(&x)) {
        match table.binary_search_by(|(t, _)| t.total_cmp(&v)) {
            Ok(i) => table[i].1 += 1,
            Err(_) if table.len() == DISTINCT_LIMIT => {
                let mut s = Sketch::new(cfg);
                for &v in values {
                    s.insert(v);
                }
                s.insert(x);
                return Repr::Sketch(Box::new(s));
            }
            Err(i) => table.insert(i, (v, 1)),
        }
    }
    Repr::Distinct(table)
}

/// Tests two numeric windows for drift. While both are exact the result is
/// identical to [`crate::test_numeric`] on their values; see the module
/// docs for what a sketch estimates.
pub fn test_windows(
    reference: &NumericWindow,
    current: &NumericWindow,
    method: Method,
    threshold: Option<f64>,
) -> Result<FeatureResult, StatsError> {
    let (r, c) = window_dists(reference, current)?;
    compare_dists(&r, &c, method, threshold)
}

/// Tests two numeric windows with the method Evidently would choose.
pub fn test_windows_default(
    reference: &NumericWindow,
    current: &NumericWindow,
) -> Result<FeatureResult, StatsError> {
    let (r, c) = window_dists(reference, current)?;
    let method = default_method_for_dists(&r, &c);
    compare_dists(&r, &c, method, None)
}

/// A bound on `|statistic - exact|`: how far `method`'s statistic on these
/// windows can be from the same statistic on the exact samples, while each
/// window's CDF is within its [`NumericWindow::rank_error_bound`] `ε` of the
/// exact one (see the module docs for the derivations). 0 when both windows
/// are exact; KS: `ε_ref + ε_cur` on the distance `D`; normed Wasserstein:
/// `(ε_ref + ε_cur) · (max - min) / max(std_ref, 0.001)`; Jensen–Shannon and
/// PSI: the worst case over the exact bin shares the sketched ones allow.
/// `None` for chi-squared and Z (which need exact counts), for empty
/// windows, and when a sketched window's bins are not the exact sample's
/// (fewer than 21 retained distinct values, which the default tails rule
/// out).
pub fn sketch_error_bound(
    reference: &NumericWindow,
    current: &NumericWindow,
    method: Method,
) -> Option<f64> {
    let (r, c) = window_dists(reference, current).ok()?;
    let (er, ec) = (reference.rank_error_bound(), current.rank_error_bound());
    if r.exact && c.exact {
        return Some(0.0);
    }
    match method {
        Method::Ks => Some(er + ec),
        Method::Wasserstein => {
            let range = r.max().max(c.max()) - r.min().min(c.min());
            Some((er + ec) * range / r.std.max(WASSERSTEIN_MIN_NORM))
        }
        Method::ChiSquare | Method::ZTest => None,
        Method::JensenShannon | Method::Psi => {
            if r.distinct() <= HISTOGRAM_MIN_UNIQUE {
                // value-count bins: the sketch's retained values are not the sample's
                return None;
            }
            let edges = sturges_edges(
                r.min().min(c.min()),
                r.max().max(c.max()),
                r.count + c.count,
            )?;
            let rb = SketchedBins::new(reference, &r, &edges);
            let cb = SketchedBins::new(current, &c, &edges);
            if method == Method::JensenShannon {
                Some((rb.js_to_exact() + cb.js_to_exact()).min(std::f64::consts::LN_2.sqrt()))
            } else {
                let (rf, cf) = binned(&r, &c, true).ok()?;
                Some(psi_bound(&rb, &rf, &cb, &cf))
            }
        }
    }
}

/// One window's estimated bin shares and how far each can be from exact.
struct SketchedBins {
    /// Estimated shares (unfilled).
    shares: Vec<f64>,
    /// Bound on `|share - exact share|` per bin.
    eta: Vec<f64>,
    /// Least exact share per bin: its distinct retained values over `n`.
    floor: Vec<f64>,
    /// Observations.
    n: f64,
    /// Whether the window is exact (every share, and the fill, too).
    exact: bool,
}

impl SketchedBins {
    fn new(w: &NumericWindow, d: &Dist, edges: &[f64]) -> SketchedBins {
        let n = d.count as f64;
        let shares: Vec<f64> = histogram(d, edges).into_iter().map(|x| x / n).collect();
        let region = w.sketched_region();
        // the CDF's error at each edge: the first (nothing below the
        // minimum) and the last (everything up to the maximum) are exact
        let last = edges.len().saturating_sub(1);
        let edge_error: Vec<f64> = edges
            .iter()
            .enumerate()
            .map(|(j, &x)| match region {
                Some((eps, low, high)) if j > 0 && j < last && x > low && x <= high => eps,
                _ => 0.0,
            })
            .collect();
        let eta = edge_error.windows(2).map(|e| e[0] + e[1]).collect();
        // every retained value is an observation: a bin holds at least as
        // many observations as distinct retained values
        let below = |x: f64, inclusive: bool| {
            d.values
                .partition_point(|&v| if inclusive { v <= x } else { v < x })
        };
        let floor = (0..shares.len())
            .map(|i| {
                let upper = below(edges[i + 1], i + 2 == edges.len());
                upper.saturating_sub(below(edges[i], false)) as f64 / n
            })
            .collect();
        SketchedBins {
            shares,
            eta,
            floor,
            n,
            exact: region.is_none(),
        }
    }

    /// The interval of bin `i`'s exact share: within `η` of the estimate,
    /// and at least the bin's distinct retained values (observations) over
    /// `n`.
    fn interval(&self, i: usize) -> (f64, f64) {
        let (p, eta) = (self.shares[i], self.eta[i]);
        ((p - eta).max(self.floor[i]), (p + eta).min(1.0))
    }

    /// A bound on the Jensen–Shannon distance between the estimated and
    /// the exact shares.
    fn js_to_exact(&self) -> f64 {
        let divergence: f64 = (0..self.shares.len())
            .map(|i| {
                let a = self.shares[i];
                let (lo, hi) = self.interval(i);
                js_term(a, lo).max(js_term(a, hi))
            })
            .sum();
        divergence.max(0.0).sqrt()
    }

    /// The interval of bin `i`'s exact share after Evidently's zero fill.
    fn filled_interval(&self, i: usize, filled_estimate: f64) -> (f64, f64) {
        if self.exact {
            return (filled_estimate, filled_estimate);
        }
        let (p, eta) = (self.shares[i], self.eta[i]);
        let (lo, hi) = self.interval(i);
        if p > 0.0 {
            // the bin holds a retained value, an observation: not empty
            return (lo, hi);
        }
        if eta == 0.0 && self.fill_is_exact() {
            return (filled_estimate, filled_estimate);
        }
        // empty, or not: the fill is at least min_nonzero / 10^6 >= 1 / (10^6 n)
        // and at most 10^-4
        ((1e-6 / self.n).min(1e-4), hi.max(1e-4))
    }

    /// Whether the exact sample's smallest non-empty share (which sets the
    /// fill of empty bins) is the estimated one: it lies in an exact bin and
    /// every estimated bin stays at or above it.
    fn fill_is_exact(&self) -> bool {
        let Some((k, &m)) = self
            .shares
            .iter()
            .enumerate()
            .filter(|(_, &p)| p > 0.0)
            .min_by(|a, b| a.1.total_cmp(b.1))
        else {
            return false;
        };
        self.eta[k] == 0.0
            && (0..self.shares.len())
                .all(|i| self.eta[i] == 0.0 || self.shares[i] - self.eta[i] >= m)
    }
}

/// `g(a, b) = ½ (a ln(2a / (a + b)) + b ln(2b / (a + b)))`, one bin's term
/// of the Jensen–Shannon divergence (natural log) between `a` and `b`.
fn js_term(a: f64, b: f64) -> f64 {
    let m = (a + b) / 2.0;
    let half = |x: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    if m > 0.0 {
        0.5 * (half(a) + half(b))
    } else {
        0.0
    }
}

/// One bin's PSI term.
fn psi_term(r: f64, c: f64) -> f64 {
    (r - c) * (r / c).ln()
}

/// A bound on `|PSI - exact PSI|` from both windows' bins and the filled
/// estimated shares the statistic used.
fn psi_bound(r: &SketchedBins, rf: &[f64], c: &SketchedBins, cf: &[f64]) -> f64 {
    (0..rf.len().min(cf.len()))
        .map(|i| {
            let estimate = psi_term(rf[i], cf[i]);
            let (r_lo, r_hi) = r.filled_interval(i, rf[i]);
            let (c_lo, c_hi) = c.filled_interval(i, cf[i]);
            let high = [(r_lo, c_lo), (r_lo, c_hi), (r_hi, c_lo), (r_hi, c_hi)]
                .into_iter()
                .map(|(a, b)| psi_term(a, b))
                .fold(0.0, f64::max);
            let low = if r_lo > c_hi {
                psi_term(r_lo, c_hi)
            } else if c_lo > r_hi {
                psi_term(r_hi, c_lo)
            } else {
                0.0
            };
            (high - estimate).max(estimate - low).max(0.0)
        })
        .sum()
}

fn window_dists(
    reference: &NumericWindow,
    current: &NumericWindow,
) -> Result<(Dist, Dist), StatsError> {
    let r = reference
        .dist()
        .ok_or(StatsError::Empty(Sample::Reference))?;
    let c = current.dist().ok_or(StatsError::Empty(Sample::Current))?;
    Ok((r, c))
}

/// Configuration of a [`CategoricalWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoricalWindowConfig {
    /// Distinct categories counted by name; later new ones go to
    /// [`OTHER`]. Default 100.
    pub max_categories: usize,
    /// Category names are truncated to this many bytes (at a character
    /// boundary). Default 128.
    pub max_category_bytes: usize,
}

impl Default for CategoricalWindowConfig {
    fn default() -> Self {
        CategoricalWindowConfig {
            max_categories: 100,
            max_category_bytes: 128,
        }
    }
}

/// A bounded accumulator of one categorical column's labels.
#[derive(Debug, Clone, Default)]
pub struct CategoricalWindow {
    config: CategoricalWindowConfig,
    counts: Counts,
    named: usize,
    overflow: u64,
}

impl CategoricalWindow {
    /// An empty window.
    pub fn new(config: CategoricalWindowConfig) -> Self {
        CategoricalWindow {
            config,
            counts: Counts::new(),
            named: 0,
            overflow: 0,
        }
    }

    /// Adds one occurrence of `category`.
    pub fn push(&mut self, category: &str) {
        self.push_n(category, 1);
    }

    /// Adds `n` occurrences of `category`. A label equal to [`OTHER`] is
    /// counted as overflow.
    pub fn push_n(&mut self, category: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut end = category.len().min(self.config.max_category_bytes);
        while !category.is_char_boundary(end) {
            end -= 1;
        }
        let name = &category[..end];
        if name != OTHER && self.counts.get(name) > 0 {
            self.counts.add(name, n);
        } else if name != OTHER && self.named < self.config.max_categories {
            self.counts.add(name, n);
            self.named += 1;
        } else {
            self.counts.add(OTHER, n);
            self.overflow = self.overflow.saturating_add(n);
        }
    }

    /// Folds `other` into this window, label by label.
    pub fn merge(&mut self, other: &CategoricalWindow) {
        for (k, n) in other.counts.iter() {
            self.push_n(k, n);
        }
    }

    /// The counts, overflow included under [`OTHER`].
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Occurrences counted under [`OTHER`].
    pub fn overflowed(&self) -> u64 {
        self.overflow
    }

    /// Total occurrences.
    pub fn total(&self) -> u64 {
        self.counts.total()
    }

    /// Approximate bytes held, at most about
    /// `(max_categories + 1) · (max_category_bytes + 80)`.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.iter().map(|(k, _)| k.len() + 80).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> NumericWindowConfig {
        NumericWindowConfig {
            sample_limit: 50,
            sketch_k: 32,
            tail_values: 4,
            seed: 1,
        }
    }

    #[test]
    fn exact_until_limit_then_counts_then_sketch() {
        let mut w = NumericWindow::new(small());
        w.extend((0..50).map(|i| f64::from(i % 3)));
        assert!(w.values().is_some());
        w.push(1.0);
        assert!(w.values().is_none());
        assert!(w.is_exact(), "three distinct values stay exact");
        w.extend((0..30).map(f64::from));
        assert!(!w.is_exact());
        assert_eq!(w.len(), 81);
        assert!(w.rank_error_bound() > 0.0);
    }

    #[test]
    fn missing_values_are_counted_not_used() {
        let mut w = NumericWindow::new(small());
        w.extend([f64::NAN, 1.0, f64::INFINITY]);
        assert_eq!((w.len(), w.missing()), (1, 2));
        assert!(NumericWindow::default().mean().is_nan());
    }

    #[test]
    fn empty_windows_are_errors() {
        let a = NumericWindow::default();
        let mut b = NumericWindow::default();
        b.push(1.0);
        assert_eq!(
            test_windows(&a, &b, Method::Ks, None),
            Err(StatsError::Empty(Sample::Reference))
        );
    }

    #[test]
    fn sketched_chi_square_needs_counts() {
        let mut a = NumericWindow::new(small());
        a.extend((0..500).map(f64::from));
        assert_eq!(
            test_windows(&a, &a, Method::ChiSquare, None),
            Err(StatsError::NeedsExactCounts(Method::ChiSquare))
        );
    }

    #[test]
    fn categorical_overflow_and_truncation() {
        let mut w = CategoricalWindow::new(CategoricalWindowConfig {
            max_categories: 2,
            max_category_bytes: 4,
        });
        w.push("alpha");
        w.push("alps!");
        w.push("beta");
        w.push("gamma");
        w.push_n(OTHER, 2);
        assert_eq!(w.counts().get("alph"), 1);
        assert_eq!(w.counts().get("alps"), 1);
        assert_eq!(w.counts().get("beta"), 0);
        assert_eq!(w.overflowed(), 4);
        assert_eq!(w.counts().get(OTHER), 4);
        assert_eq!(w.total(), 6);
        let mut u = CategoricalWindow::new(CategoricalWindowConfig {
            max_categories: 1,
            max_category_bytes: 2,
        });
        u.push("ééé");
        assert_eq!(u.counts().get("é"), 1);
    }
}
