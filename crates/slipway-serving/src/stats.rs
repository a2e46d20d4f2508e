//! Live statistics of a deployment's traffic, by role: request and error
//! counts, a latency histogram, and bounded summaries of what the model
//! answered; and comparisons of two versions' answers to the same requests
//! (shadow and paired runs).
//!
//! Everything is bounded whatever the traffic: a fixed log-spaced
//! histogram, at most [`MAX_CATEGORIES`] categories and a reservoir of
//! [`RESERVOIR`] values per output column, at most [`MAX_COLUMNS`] columns.
//! Snapshots serialize to JSON and merge (counts add, samples concatenate),
//! which is how a rollout's analysis combines every replica's figures.

use serde::{Deserialize, Serialize};
use slipway_runtime::{ModelOutput, TensorData};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Buckets of the latency histogram.
pub const BUCKETS: usize = 96;
/// Upper bound of the first bucket, in microseconds.
const FIRST_BOUND_US: f64 = 10.0;
/// Each bucket's bound is this factor above the previous one (2^(1/4)).
const GROWTH: f64 = 1.189_207_115_002_721;
/// Categories kept per categorical output column (the rest count as `__other__`).
pub const MAX_CATEGORIES: usize = 64;
/// Values kept per numeric output column (a uniform reservoir sample).
pub const RESERVOIR: usize = 1000;
/// Output columns summarised per role.
pub const MAX_COLUMNS: usize = 16;

/// The upper bound of histogram bucket `i`, in seconds.
pub fn bucket_bound(i: usize) -> f64 {
    FIRST_BOUND_US * GROWTH.powi(i as i32) / 1e6
}

fn bucket_of(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= FIRST_BOUND_US {
        return 0;
    }
    let i = ((us / FIRST_BOUND_US).ln() / GROWTH.ln()).ceil() as usize;
    i.min(BUCKETS - 1)
}

/// A latency histogram snapshot: counts per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram(pub Vec<u64>);

impl Histogram {
    /// Total count.
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// The `q` quantile (0..1) in seconds: the upper bound of the bucket
    /// holding that rank (resolution: one bucket, about 19%). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_bound(i));
            }
        }
        Some(bucket_bound(self.0.len().saturating_sub(1)))
    }
}

/// What one output column's answers look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ColumnSummary {
    /// Labels (integer, string or boolean outputs): counts per value.
    Categorical {
        /// Count per category.
        counts: BTreeMap<String, u64>,
    },
    /// Numbers: how many were seen and a uniform sample of them.
    Numeric {
        /// Values seen.
        seen: u64,
        /// A uniform sample (at most [`RESERVOIR`] per replica).
        sample: Vec<f64>,
    },
}

/// A role's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleSnapshot {
    /// Requests answered.
    pub requests: u64,
    /// Of which failed on the server's side (5xx, model errors).
    pub errors: u64,
    /// Latency of every request.
    pub latency: Histogram,
    /// Output columns (`output` or `output[i]` for column `i`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, ColumnSummary>,
}

impl RoleSnapshot {
    /// Adds another replica's figures.
    pub fn merge(&mut self, other: &RoleSnapshot) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        for (name, col) in &other.outputs {
            match (self.outputs.get_mut(name), col) {
                (None, _) => {
                    self.outputs.insert(name.clone(), col.clone());
                }
                (
                    Some(ColumnSummary::Categorical { counts }),
                    ColumnSummary::Categorical { counts: more },
                ) => {
                    for (k, v) in more {
                        *counts.entry(k.clone()).or_default() += v;
                    }
                }
                (
                    Some(ColumnSummary::Numeric { seen, sample }),
                    ColumnSummary::Numeric {
                        seen: more,
                        sample: values,
                    },
                ) => {
                    *seen += more;
                    sample.extend_from_slice(values);
                }
                _ => {}
            }
        }
    }

    /// Server-side error rate, `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
}

/// Live counters of one role (stable, candidate, shadow, or a fixed split's
/// version).
#[derive(Debug)]
pub struct RoleStats {
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: Vec<AtomicU64>,
    outputs: Mutex<Outputs>,
}

impl Default for RoleStats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            outputs: Mutex::new(Outputs::default()),
        }
    }
}

#[derive(Debug, Default)]
struct Outputs {
    columns: BTreeMap<String, ColumnState>,
    rng: u64,
}

#[derive(Debug)]
enum ColumnState {
    Categorical(BTreeMap<String, u64>),
    Numeric { seen: u64, sample: Vec<f64> },
}

impl Outputs {
    fn next(&mut self) -> u64 {
        // SplitMix64: reservoir sampling needs no better randomness
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn add_category(&mut self, column: String, value: String) {
        if !self.columns.contains_key(&column) && self.columns.len() >= MAX_COLUMNS {
            return;
        }
        let state = self
            .columns
            .entry(column)
            .or_insert_with(|| ColumnState::Categorical(BTreeMap::new()));
        if let ColumnState::Categorical(counts) = state {
            let key = if counts.contains_key(&value) || counts.len() < MAX_CATEGORIES {
                value
            } else {
                "__other__".to_string()
            };
            *counts.entry(key).or_default() += 1;
        }
    }

    fn add_number(&mut self, column: String, value: f64) {
        if !value.is_finite() {
            return;
        }
        if !self.columns.contains_key(&column) && self.columns.len() >= MAX_COLUMNS {
            return;
        }
        let r = self.next();
        let state = self.columns.entry(column).or_insert(ColumnState::Numeric {
            seen: 0,
            sample: Vec::new(),
        });
        if let ColumnState::Numeric { seen, sample } = state {
            *seen += 1;
            if sample.len() < RESERVOIR {
                sample.push(value);
            } else {
                let j = (r % *seen) as usize;
                if j < RESERVOIR {
                    sample[j] = value;
                }
            }
        }
    }
}

/// The values of a model's outputs by column, row-major: each categorical
/// output is one column; a numeric output `[batch, k]` gives `k` columns
/// named `name[i]` (`name` alone when `k` is 1). Calls `f(column, row,
/// value)` for every cell.
pub fn for_each_cell(outputs: &[ModelOutput], mut f: impl FnMut(&str, usize, Cell)) {
    for o in outputs {
        let t = &o.tensor;
        let rows = t.batch_size().unwrap_or(1).max(1);
        let n = t.data.len();
        if n == 0 {
            continue;
        }
        let per_row = (n / rows).max(1);
        let name = &t.name;
        let column = |i: usize| {
            if per_row == 1 {
                name.clone()
            } else {
                format!("{name}[{i}]")
            }
        };
        for idx in 0..n.min(rows * per_row) {
            let (row, col) = (idx / per_row, idx % per_row);
            if col >= MAX_COLUMNS {
                continue;
            }
            let cell = match &t.data {
                TensorData::Bool(v) => Cell::Label(v[idx].to_string()),
                TensorData::Bytes(v) => Cell::Label(String::from_utf8_lossy(&v[idx]).into_owned()),
                d if d.dtype().is_integer() => {
                    Cell::Label(d.get_f64(idx).map_or_else(String::new, |x| format!("{x}")))
                }
                d => match d.get_f64(idx) {
                    Some(x) => Cell::Number(x),
                    None => continue,
                },
            };
            f(&column(col), row, cell);
        }
    }
}

/// One output cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A label (integer, string or boolean output).
    Label(String),
    /// A number (float output).
    Number(f64),
}

impl RoleStats {
    /// Counts one answered request (server-side failure or not) and its latency.
    pub fn record(&self, failed: bool, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.buckets[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a response's outputs to the summaries.
    pub fn record_outputs(&self, outputs: &[ModelOutput]) {
        let mut o = self
            .outputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for_each_cell(outputs, |column, _, cell| match cell {
            Cell::Label(v) => o.add_category(column.to_string(), v),
            Cell::Number(x) => o.add_number(column.to_string(), x),
        });
    }

    /// The figures now.
    pub fn snapshot(&self) -> RoleSnapshot {
        let o = self
            .outputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        RoleSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: Histogram(
                self.buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect(),
            ),
            outputs: o
                .columns
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            ColumnState::Categorical(c) => {
                                ColumnSummary::Categorical { counts: c.clone() }
                            }
                            ColumnState::Numeric { seen, sample } => ColumnSummary::Numeric {
                                seen: *seen,
                                sample: sample.clone(),
                            },
                        },
                    )
                })
                .collect(),
        }
    }
}

/// How two versions' answers to the same requests compare.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairSnapshot {
    /// Requests sent to the second version.
    pub mirrored: u64,
    /// Copies dropped because the mirror queue was full.
    pub dropped: u64,
    /// Second-version runs that failed.
    pub errors: u64,
    /// Rows compared.
    pub rows: u64,
    /// Rows whose label outputs all agree (when the model has labels).
    pub agreed: u64,
    /// Whether the model has label outputs (else agreement is over
    /// numeric outputs within the tolerance).
    pub labels: bool,
    /// Numeric output cells compared.
    pub cells: u64,
    /// Sum of absolute differences over those cells.
    pub abs_diff_sum: f64,
    /// Largest absolute difference.
    pub abs_diff_max: f64,
    /// Latency of the second version's runs.
    pub latency: Histogram,
}

impl PairSnapshot {
    /// Adds another replica's figures.
    pub fn merge(&mut self, o: &PairSnapshot) {
        self.mirrored += o.mirrored;
        self.dropped += o.dropped;
        self.errors += o.errors;
        self.rows += o.rows;
        self.agreed += o.agreed;
        self.labels |= o.labels;
        self.cells += o.cells;
        self.abs_diff_sum += o.abs_diff_sum;
        self.abs_diff_max = self.abs_diff_max.max(o.abs_diff_max);
        self.latency.merge(&o.latency);
    }

    /// Share of rows that agree.
    pub fn agreement(&self) -> Option<f64> {
        (self.rows > 0).then(|| self.agreed as f64 / self.rows as f64)
    }

    /// Mean absolute difference of numeric outputs.
    pub fn mean_abs_diff(&self) -> Option<f64> {
        (self.cells > 0).then(|| self.abs_diff_sum / self.cells as f64)
    }

    /// The figures as the API shows them.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "mirrored": self.mirrored,
            "dropped": self.dropped,
            "errors": self.errors,
            "error_rate": (self.mirrored > self.dropped).then(|| self.errors as f64 / (self.mirrored - self.dropped) as f64),
            "rows_compared": self.rows,
            "agreement": self.agreement(),
            "agreement_on": if self.labels { "labels" } else { "numeric outputs within tolerance" },
            "mean_abs_diff": self.mean_abs_diff(),
            "max_abs_diff": (self.cells > 0).then_some(self.abs_diff_max),
            "latency_p50_ms": self.latency.quantile(0.5).map(|s| s * 1e3),
            "latency_p99_ms": self.latency.quantile(0.99).map(|s| s * 1e3),
        })
    }
}

/// Live comparison counters.
#[derive(Debug, Default)]
pub struct PairStats {
    inner: Mutex<PairSnapshot>,
}

/// Relative tolerance under which two numeric answers count as agreeing
/// (for models without label outputs).
pub const DEFAULT_NUMERIC_TOLERANCE: f64 = 0.1;

impl PairStats {
    /// A copy was dropped (queue full).
    pub fn dropped(&self) {
        let mut s = self.lock();
        s.mirrored += 1;
        s.dropped += 1;
    }

    /// The second version failed.
    pub fn failed(&self, latency: Duration) {
        let mut s = self.lock();
        s.mirrored += 1;
        s.errors += 1;
        s.latency.merge(&single(latency));
    }

    /// Compares `first` (the answer the client got) with `second`.
    pub fn compare(
        &self,
        first: &[ModelOutput],
        second: &[ModelOutput],
        latency: Duration,
        tolerance: f64,
    ) {
        let mut labels_a: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut nums_a: BTreeMap<(String, usize), f64> = BTreeMap::new();
        for_each_cell(first, |col, row, cell| match cell {
            Cell::Label(v) => labels_a.entry(row).or_default().push(v),
            Cell::Number(x) => {
                nums_a.insert((col.to_string(), row), x);
            }
        });
        let mut labels_b: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut nums_b: BTreeMap<(String, usize), f64> = BTreeMap::new();
        for_each_cell(second, |col, row, cell| match cell {
            Cell::Label(v) => labels_b.entry(row).or_default().push(v),
            Cell::Number(x) => {
                nums_b.insert((col.to_string(), row), x);
            }
        });
        let rows = first
            .first()
            .and_then(|o| o.tensor.batch_size())
            .unwrap_or(1) as u64;
        let mut s = self.lock();
        s.mirrored += 1;
        s.latency.merge(&single(latency));
        s.rows += rows;
        let has_labels = !labels_a.is_empty();
        s.labels |= has_labels;
        let mut row_ok = vec![true; rows as usize];
        if has_labels {
            for (row, ok) in row_ok.iter_mut().enumerate() {
                *ok = labels_a.get(&row) == labels_b.get(&row);
            }
        }
        for (key, a) in &nums_a {
            let Some(b) = nums_b.get(key) else { continue };
            let d = (a - b).abs();
            s.cells += 1;
            s.abs_diff_sum += d;
            if d > s.abs_diff_max {
                s.abs_diff_max = d;
            }
            if !has_labels && d > tolerance * a.abs().max(b.abs()).max(1e-9) {
                if let Some(ok) = row_ok.get_mut(key.1) {
                    *ok = false;
                }
            }
        }
        s.agreed += row_ok.iter().filter(|ok| **ok).count() as u64;
    }

    /// The figures now.
    pub fn snapshot(&self) -> PairSnapshot {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PairSnapshot> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn single(d: Duration) -> Histogram {
    let mut h = vec![0; BUCKETS];
    h[bucket_of(d)] = 1;
    Histogram(h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use slipway_runtime::Tensor;

    fn outputs(labels: Vec<i64>, probs: Vec<f32>) -> Vec<ModelOutput> {
        let n = labels.len() as i64;
        vec![
            ModelOutput::plain(Tensor::new("label", vec![n], TensorData::Int64(labels)).unwrap()),
            ModelOutput::plain(
                Tensor::new("probability", vec![n, 2], TensorData::Fp32(probs)).unwrap(),
            ),
        ]
    }

    #[test]
    fn histogram_quantiles_within_a_bucket() {
        let s = RoleStats::default();
        for ms in 1..=100 {
            s.record(ms == 100, Duration::from_millis(ms));
        }
        let snap = s.snapshot();
        assert_eq!((snap.requests, snap.errors), (100, 1));
        let p50 = snap.latency.quantile(0.5).unwrap();
        assert!((0.050..=0.050 * GROWTH * 1.001).contains(&p50), "{p50}");
        let p99 = snap.latency.quantile(0.99).unwrap();
        assert!((0.099..=0.099 * GROWTH * 1.001).contains(&p99), "{p99}");
    }

    #[test]
    fn summaries_are_bounded_and_merge() {
        let s = RoleStats::default();
        for i in 0..5000 {
            s.record_outputs(&outputs(vec![i % 3], vec![0.25, 0.75]));
        }
        let snap = s.snapshot();
        let ColumnSummary::Categorical { counts } = &snap.outputs["label"] else {
            panic!()
        };
        assert_eq!(counts.values().sum::<u64>(), 5000);
        let ColumnSummary::Numeric { seen, sample } = &snap.outputs["probability[1]"] else {
            panic!()
        };
        assert_eq!((*seen, sample.len()), (5000, RESERVOIR));
        let mut merged = snap.clone();
        merged.merge(&snap);
        let ColumnSummary::Numeric { sample, .. } = &merged.outputs["probability[1]"] else {
            panic!()
        };
        assert_eq!(sample.len(), 2 * RESERVOIR);
    }

    #[test]
    fn pairs_count_agreement_and_differences() {
        let p = PairStats::default();
        p.compare(
            &outputs(vec![1, 0], vec![0.1, 0.9, 0.8, 0.2]),
            &outputs(vec![1, 1], vec![0.2, 0.8, 0.4, 0.6]),
            Duration::from_millis(1),
            0.1,
        );
        let s = p.snapshot();
        assert_eq!((s.rows, s.agreed, s.cells), (2, 1, 4));
        assert!((s.mean_abs_diff().unwrap() - 0.25).abs() < 1e-6);
        assert!((s.abs_diff_max - 0.4).abs() < 1e-6);
        assert_eq!(s.agreement(), Some(0.5));
    }
}
