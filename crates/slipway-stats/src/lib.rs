//! Pure statistics for drift monitoring and rollout analysis.
//!
//! This crate owns the numbers: per-feature drift tests that reproduce
//! Evidently 0.7.23's default data-drift report and the SciPy 1.17
//! functions behind it ([`drift`], [`scipy`]), the choice of test
//! ([`method`]), bounded streaming windows for live traffic ([`window`],
//! backed by a KLL sketch, [`kll`]) and the paired statistics a rollout
//! compares versions with ([`rollout`]), with bootstrap lower bounds of
//! their distances ([`bootstrap`]). It must not do I/O, spawn
//! threads, hold unbounded memory in a window or panic on any input; it
//! knows nothing about HTTP, storage or models.
//!
//! ```
//! use slipway_stats::{test_numeric_default, Method};
//!
//! let reference: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin()).collect();
//! let current: Vec<f64> = reference.iter().map(|x| x + 0.5).collect();
//! let result = test_numeric_default(&reference, &current).expect("non-empty samples");
//! assert_eq!(result.method, Method::Ks); // reference <= 1000 rows, > 5 unique values
//! assert!(result.drifted);
//! ```

pub mod bootstrap;
pub mod counts;
pub mod drift;
pub mod error;
pub mod kll;
mod ks;
pub mod method;
pub mod rollout;
mod sample;
pub mod scipy;
mod special;
pub mod window;

pub use counts::Counts;
pub use drift::{
    dataset_drift, detect_categorical_kind, detect_numeric_kind, psi_categorical, psi_numeric,
    test_categorical, test_categorical_default, test_numeric, test_numeric_default, FeatureResult,
};
pub use error::{Sample, StatsError};
pub use method::{ColumnType, FeatureKind, Method};
pub use rollout::{agreement, effect_size, wilson_interval, Agreement};
pub use window::{
    test_windows, test_windows_default, CategoricalWindow, CategoricalWindowConfig, NumericWindow,
    NumericWindowConfig,
};
