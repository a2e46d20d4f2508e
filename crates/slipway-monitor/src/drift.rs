//! Drift of logged traffic against a reference, per column.
//!
//! Rows go into one bounded accumulator per column ([`ColumnWindows`]):
//! numbers into a [`NumericWindow`] (exact up to the sample limit, then a
//! KLL sketch with exact tails), text and booleans into a
//! [`CategoricalWindow`]. [`compare`] then picks Evidently 0.7's default
//! test for each column — from the column's type (integers with at most 10
//! distinct values and booleans are categorical, as Evidently infers them),
//! its distinct values and the reference's size — unless the deployment
//! names another method or threshold, and decides dataset drift by the
//! share of drifted columns. The statistics are `slipway-stats`', the same
//! the rollout checks use.

use crate::columns::{Side, RESERVED_NAMES, SIDE_KEY};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde::Serialize;
use slipway_serving::FeatureDrift;
use slipway_stats::window::sketch_error_bound;
use slipway_stats::{
    test_categorical, test_categorical_default, test_windows, test_windows_default,
    CategoricalWindow, CategoricalWindowConfig, Counts, FeatureResult, Method, NumericWindow,
    NumericWindowConfig,
};
use std::collections::{BTreeMap, HashMap};

/// Integer columns with at most this many distinct values are categorical
/// (Evidently's `infer_column_type`).
pub const INTEGER_CATEGORICAL_MAX: usize = 10;

enum Acc {
    Numeric { w: NumericWindow, integer: bool },
    Categorical(CategoricalWindow),
}

/// One accumulator per column of the rows pushed so far.
pub struct ColumnWindows {
    numeric: NumericWindowConfig,
    order: Vec<String>,
    cols: HashMap<String, (Acc, Option<Side>)>,
    /// Rows pushed.
    pub rows: u64,
}

/// Whether a column is a feature or output column (not a fixed one).
pub fn is_data_column(name: &str) -> bool {
    !RESERVED_NAMES.contains(&name)
}

impl ColumnWindows {
    /// Empty windows keeping `sample_limit` values per column exactly.
    pub fn new(sample_limit: usize) -> Self {
        ColumnWindows {
            numeric: NumericWindowConfig {
                sample_limit,
                ..NumericWindowConfig::default()
            },
            order: Vec::new(),
            cols: HashMap::new(),
            rows: 0,
        }
    }

    /// Column names in first-seen order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Whether the column is an input or output, when its file said so.
    pub fn side(&self, name: &str) -> Option<Side> {
        self.cols.get(name).and_then(|c| c.1)
    }

    /// Values counted in a column.
    pub fn count(&self, name: &str) -> u64 {
        match self.cols.get(name) {
            Some((Acc::Numeric { w, .. }, _)) => w.len(),
            Some((Acc::Categorical(w), _)) => w.total(),
            None => 0,
        }
    }

    /// Approximate bytes held.
    pub fn approx_bytes(&self) -> usize {
        self.cols
            .values()
            .map(|(a, _)| match a {
                Acc::Numeric { w, .. } => w.approx_bytes(),
                Acc::Categorical(w) => w.approx_bytes(),
            })
            .sum()
    }

    /// Adds the data columns of the rows of `batch` for which `keep` holds.
    pub fn push(&mut self, batch: &RecordBatch, keep: impl Fn(usize) -> bool) {
        let rows: Vec<usize> = (0..batch.num_rows()).filter(|r| keep(*r)).collect();
        if rows.is_empty() {
            return;
        }
        self.rows += rows.len() as u64;
        let schema = batch.schema();
        for (i, field) in schema.fields().iter().enumerate() {
            let name = field.name();
            if !is_data_column(name) {
                continue;
            }
            let side = field.metadata().get(SIDE_KEY).and_then(|s| Side::parse(s));
            let a = batch.column(i);
            let numeric = matches!(
                a.data_type(),
                DataType::Float32 | DataType::Float64 | DataType::Int32 | DataType::Int64
            );
            let categorical = matches!(a.data_type(), DataType::Utf8 | DataType::Boolean);
            if !numeric && !categorical {
                continue;
            }
            if !self.cols.contains_key(name) {
                let acc = if numeric {
                    Acc::Numeric {
                        w: NumericWindow::new(self.numeric),
                        integer: matches!(a.data_type(), DataType::Int32 | DataType::Int64),
                    }
                } else {
                    Acc::Categorical(CategoricalWindow::new(CategoricalWindowConfig::default()))
                };
                self.order.push(name.clone());
                self.cols.insert(name.clone(), (acc, side));
            }
            let Some((acc, known)) = self.cols.get_mut(name) else {
                continue;
            };
            if known.is_none() {
                *known = side;
            }
            match (acc, a.data_type()) {
                (Acc::Numeric { w, .. }, DataType::Float32) => {
                    let v = a.as_primitive::<Float32Type>();
                    rows.iter()
                        .filter(|r| v.is_valid(**r))
                        .for_each(|r| w.push(f64::from(v.value(*r))));
                }
                (Acc::Numeric { w, .. }, DataType::Float64) => {
                    let v = a.as_primitive::<Float64Type>();
                    rows.iter()
                        .filter(|r| v.is_valid(**r))
                        .for_each(|r| w.push(v.value(*r)));
                }
                (Acc::Numeric { w, .. }, DataType::Int64) => {
                    let v = a.as_primitive::<Int64Type>();
                    rows.iter()
                        .filter(|r| v.is_valid(**r))
                        .for_each(|r| w.push(v.value(*r) as f64));
                }
                (Acc::Numeric { w, .. }, DataType::Int32) => {
                    let v = a.as_primitive::<Int32Type>();
                    rows.iter()
                        .filter(|r| v.is_valid(**r))
                        .for_each(|r| w.push(f64::from(v.value(*r))));
                }
                (Acc::Categorical(w), DataType::Utf8) => {
                    let v = a.as_string::<i32>();
                    rows.iter()
                        .filter(|r| v.is_valid(**r))
                        .for_each(|r| w.push(v.value(*r)));
                }
                (Acc::Categorical(w), DataType::Boolean) => {
                    let v = a.as_boolean();
                    rows.iter()
                        .filter(|r| v.is_valid(**r))
                        .for_each(|r| w.push(if v.value(*r) { "True" } else { "False" }));
                }
                // the same name with another type in another file: not counted
                _ => {}
            }
        }
    }
}

/// Exact value counts of a numeric window with at most `max` distinct
/// values, as categories (integers in decimal).
fn small_counts(w: &NumericWindow, max: usize) -> Option<Counts> {
    if !w.is_exact() {
        return None;
    }
    let steps = w.cdf_steps();
    if steps.len() > max {
        return None;
    }
    let n = w.len() as f64;
    let mut counts = Counts::new();
    let mut prev = 0.0;
    for (v, share) in steps {
        let c = ((share - prev) * n).round() as u64;
        prev = share;
        counts.add(&format!("{v}"), c);
    }
    Some(counts)
}

/// What drift is judged with.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    /// Share of drifted columns at which the dataset drifts.
    pub share_threshold: f64,
    /// Per column overrides.
    pub features: BTreeMap<String, FeatureDrift>,
}

/// One column's verdict, in the shape `GET .../drift` returns.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnDrift {
    /// Column name.
    pub name: String,
    /// `input` or `output`.
    pub kind: Option<Side>,
    /// Test used.
    pub method: Method,
    /// The method's statistic (the distance for distance methods).
    pub statistic: f64,
    /// The p-value (p-value methods only).
    pub p_value: Option<f64>,
    /// Threshold compared with.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
    /// PSI of the same samples.
    pub psi: f64,
    /// Whether from a sketch rather than exact.
    pub estimated: bool,
    /// When estimated: how far `statistic` can be from the exact samples'
    /// (`slipway_stats::window::sketch_error_bound`; for KS, on its
    /// distance). Absent when exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_bound: Option<f64>,
    /// Reference values.
    pub reference_count: u64,
    /// Current values.
    pub current_count: u64,
}

/// The comparison of two sets of windows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// Whether the share of drifted columns reached the threshold.
    pub dataset_drift: bool,
    /// Share of drifted columns.
    pub drift_share: f64,
    /// Columns tested.
    pub features: Vec<ColumnDrift>,
    /// Columns not tested, and why.
    pub not_tested: Vec<String>,
}

fn json_safe(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else if x.is_nan() {
        0.0
    } else if x > 0.0 {
        f64::MAX
    } else {
        f64::MIN
    }
}

/// Tests every data column of `current` that `reference` also has.
pub fn compare(
    reference: &ColumnWindows,
    current: &ColumnWindows,
    opts: &DriftOptions,
) -> Comparison {
    let mut features = Vec::new();
    let mut results: Vec<FeatureResult> = Vec::new();
    let mut not_tested = Vec::new();
    for name in current.names() {
        let over = opts.features.get(name);
        if over.is_some_and(|o| o.skip) {
            continue;
        }
        let Some((ref_acc, ref_side)) = reference.cols.get(name) else {
            not_tested.push(format!("{name}: not in the reference"));
            continue;
        };
        let Some((cur_acc, cur_side)) = current.cols.get(name) else {
            continue;
        };
        let method: Option<Method> = over
            .and_then(|o| o.method.as_deref())
            .and_then(|m| m.parse().ok());
        let threshold = over.and_then(|o| o.threshold);
        let mut windows: Option<(&NumericWindow, &NumericWindow)> = None;
        let outcome = match (ref_acc, cur_acc) {
            (Acc::Numeric { w: r, integer: ri }, Acc::Numeric { w: c, integer: ci }) => {
                windows = Some((r, c));
                let as_categories = *ri
                    && *ci
                    && method.is_none_or(|m| m.applies_to_categorical())
                    && small_counts(&merged(r, c), INTEGER_CATEGORICAL_MAX).is_some();
                if as_categories {
                    match (small_counts(r, usize::MAX), small_counts(c, usize::MAX)) {
                        (Some(rc), Some(cc)) => match method {
                            Some(m) => test_categorical(&rc, &cc, m, threshold),
                            None => test_categorical_default(&rc, &cc),
                        },
                        _ => test_windows_default(r, c),
                    }
                } else {
                    match method {
                        Some(m) => test_windows(r, c, m, threshold),
                        None if threshold.is_some() => test_windows_default(r, c)
                            .and_then(|d| test_windows(r, c, d.method, threshold)),
                        None => test_windows_default(r, c),
                    }
                }
            }
            (Acc::Categorical(r), Acc::Categorical(c)) => match method {
                Some(m) => test_categorical(r.counts(), c.counts(), m, threshold),
                None if threshold.is_some() => test_categorical_default(r.counts(), c.counts())
                    .and_then(|d| test_categorical(r.counts(), c.counts(), d.method, threshold)),
                None => test_categorical_default(r.counts(), c.counts()),
            },
            _ => {
                not_tested.push(format!("{name}: numbers in one sample, text in the other"));
                continue;
            }
        };
        match outcome {
            Ok(r) => {
                let error_bound = windows
                    .filter(|_| r.estimated)
                    .and_then(|(rw, cw)| sketch_error_bound(rw, cw, r.method))
                    .map(json_safe);
                features.push(ColumnDrift {
                    name: name.clone(),
                    kind: cur_side.or(*ref_side),
                    method: r.method,
                    statistic: json_safe(r.statistic),
                    p_value: r.p_value.map(json_safe),
                    threshold: r.threshold,
                    drifted: r.drifted,
                    psi: json_safe(r.psi),
                    estimated: r.estimated,
                    error_bound,
                    reference_count: reference.count(name),
                    current_count: current.count(name),
                });
                results.push(r);
            }
            Err(e) => not_tested.push(format!("{name}: {e}")),
        }
    }
    let threshold = if opts.share_threshold > 0.0 {
        opts.share_threshold
    } else {
        0.5
    };
    let (dataset_drift, drift_share) = slipway_stats::dataset_drift(&results, threshold);
    Comparison {
        dataset_drift,
        drift_share,
        features,
        not_tested,
    }
}

fn merged(a: &NumericWindow, b: &NumericWindow) -> NumericWindow {
    let mut m = a.clone();
    m.merge(b);
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn batch(x: Vec<f64>, label: Vec<i64>, color: Vec<&str>) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("status", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("label", DataType::Int64, true),
            Field::new("color", DataType::Utf8, true),
        ]);
        let n = x.len();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![200; n])),
                Arc::new(Float64Array::from(x)),
                Arc::new(Int64Array::from(label)),
                Arc::new(StringArray::from(color)),
            ],
        )
        .unwrap()
    }

    fn windows(b: &RecordBatch) -> ColumnWindows {
        let mut w = ColumnWindows::new(10_000);
        w.push(b, |_| true);
        w
    }

    #[test]
    fn default_methods_follow_column_types() {
        let n = 300;
        let r = batch(
            (0..n).map(|i| (i as f64 * 0.37).sin()).collect(),
            (0..n).map(|i| i % 3).collect(),
            (0..n)
                .map(|i| if i % 2 == 0 { "red" } else { "blue" })
                .collect(),
        );
        let c = batch(
            (0..n).map(|i| (i as f64 * 0.37).sin() + 2.0).collect(),
            (0..n).map(|i| i % 3).collect(),
            (0..n)
                .map(|i| if i % 2 == 0 { "red" } else { "blue" })
                .collect(),
        );
        let out = compare(&windows(&r), &windows(&c), &DriftOptions::default());
        let m: Vec<(&str, Method, bool)> = out
            .features
            .iter()
            .map(|f| (f.name.as_str(), f.method, f.drifted))
            .collect();
        assert_eq!(
            m,
            [
                ("x", Method::Ks, true),
                ("label", Method::ChiSquare, false),
                ("color", Method::ZTest, false)
            ]
        );
        assert!(!out.dataset_drift);
        assert!((out.drift_share - 1.0 / 3.0).abs() < 1e-12);
        assert!(out.features.iter().all(|f| f.reference_count == 300));
    }

    #[test]
    fn overrides_change_the_method_and_can_skip() {
        let n = 200;
        let r = batch(
            (0..n).map(f64::from).collect(),
            vec![1; n as usize],
            vec!["a"; n as usize],
        );
        let mut opts = DriftOptions::default();
        opts.features.insert(
            "x".into(),
            FeatureDrift {
                method: Some("psi".into()),
                threshold: Some(0.2),
                skip: false,
            },
        );
        opts.features.insert(
            "color".into(),
            FeatureDrift {
                skip: true,
                ..FeatureDrift::default()
            },
        );
        let out = compare(&windows(&r), &windows(&r), &opts);
        assert_eq!(out.features[0].method, Method::Psi);
        assert_eq!(out.features[0].threshold, 0.2);
        assert!(out.features.iter().all(|f| f.name != "color"));
    }

    #[test]
    fn sketched_columns_carry_their_error_bound() {
        let mut rng = Normal(0x2545_F491_4F6C_DD1D);
        let mut draw = |n: usize, shift: f64| -> RecordBatch {
            numeric_batch(&[(0..n).map(|_| rng.next() + shift).collect()])
        };
        let small = |b: &RecordBatch| {
            let mut w = ColumnWindows::new(1000);
            w.push(b, |_| true);
            w
        };
        let (r, c) = (draw(5000, 0.0), draw(5000, 0.2));
        // exact: no bound
        let exact = compare(&windows(&r), &windows(&c), &DriftOptions::default());
        assert!(!exact.features[0].estimated && exact.features[0].error_bound.is_none());
        // sketched past a 1,000-value limit: a bound, and the exact
        // statistic within it
        let est = compare(&small(&r), &small(&c), &DriftOptions::default());
        let f = &est.features[0];
        assert!(f.estimated && f.method == Method::Wasserstein);
        let bound = f.error_bound.unwrap();
        assert!(bound > 0.0 && bound < 0.5, "{bound}");
        assert!((f.statistic - exact.features[0].statistic).abs() <= bound);
    }

    /// Standard normal draws from a fixed xorshift stream (Box–Muller).
    struct Normal(u64);

    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn next(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    fn numeric_batch(cols: &[Vec<f64>]) -> RecordBatch {
        let fields: Vec<Field> = (0..cols.len())
            .map(|i| Field::new(format!("x{i}"), DataType::Float64, true))
            .collect();
        let arrays: Vec<arrow_array::ArrayRef> = cols
            .iter()
            .map(|c| Arc::new(Float64Array::from(c.clone())) as arrow_array::ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    /// With no shift, KS flags about 5% of columns over many windows (its
    /// nominal rate). The distances (large references) have no nominal rate:
    /// with 2,000-row windows the normed Wasserstein distance stays under 0.1
    /// (with 300-row windows sampling noise alone crosses it for ~16% of
    /// columns — Evidently's defaults assume large windows too).
    #[test]
    fn false_alarms_without_shift_are_near_the_nominal_rate() {
        let mut rng = Normal(0x9E37_79B9_7F4A_7C15);
        let columns = 4;
        let mut draw = |n: usize| -> RecordBatch {
            numeric_batch(
                &(0..columns)
                    .map(|_| (0..n).map(|_| rng.next()).collect())
                    .collect::<Vec<_>>(),
            )
        };
        let reference = windows(&draw(800));
        let big_reference = windows(&draw(5000));
        let (mut ks_alarms, mut dist_alarms, mut tests) = (0, 0, 0);
        for _ in 0..250 {
            let current = windows(&draw(300));
            let ks = compare(&reference, &current, &DriftOptions::default());
            let dist = compare(
                &big_reference,
                &windows(&draw(2000)),
                &DriftOptions::default(),
            );
            assert!(ks.features.iter().all(|f| f.method == Method::Ks));
            assert!(dist
                .features
                .iter()
                .all(|f| f.method == Method::Wasserstein));
            ks_alarms += ks.features.iter().filter(|f| f.drifted).count();
            dist_alarms += dist.features.iter().filter(|f| f.drifted).count();
            tests += columns;
        }
        let rate = ks_alarms as f64 / tests as f64;
        println!("KS false alarms: {ks_alarms} of {tests} ({rate:.3}); distance: {dist_alarms}");
        assert!(
            (0.025..=0.085).contains(&rate),
            "KS false-alarm rate {rate}"
        );
        assert!(
            dist_alarms as f64 / (tests as f64) < 0.01,
            "{dist_alarms} distance alarms"
        );
    }
}
