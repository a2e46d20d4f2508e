//! Drift methods, their thresholds and Evidently's rule for choosing one.
//!
//! Mirrors Evidently 0.7.23: `StatTest` definitions in
//! `legacy/calculations/stattests/*.py` (names, default thresholds, the
//! comparison each uses), `_get_default_stattest` in
//! `legacy/calculations/stattests/registry.py` (the choice by reference size
//! and number of unique values) and `infer_column_type` in
//! `core/datasets.py` (how a column's type is guessed from its values).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StatsError;

/// Reference sizes up to this many rows get the p-value tests by default;
/// larger references get the distances (Evidently's cut-off).
pub const SMALL_REFERENCE_MAX: usize = 1000;

/// A numeric column with at most this many unique values (reference and
/// current together) is tested as categorical.
pub const NUMERIC_AS_CATEGORICAL_MAX_UNIQUE: usize = 5;

/// Binary means at most this many unique values.
pub const BINARY_MAX_UNIQUE: usize = 2;

/// Integer columns with at most this many unique values are inferred to be
/// categorical (Evidently's `INTEGER_CARDINALITY_LIMIT`).
pub const INTEGER_CARDINALITY_LIMIT: usize = 10;

/// The effective kind of a feature for choosing a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// A numeric column with more than 5 unique values.
    Numeric,
    /// A categorical column with more than 2 unique values, or a numeric one
    /// with 3 to 5.
    Categorical,
    /// A column (numeric or categorical) with at most 2 unique values.
    Binary,
}

impl FeatureKind {
    /// The kind of a numeric column whose reference and current values
    /// together have `unique` distinct finite values.
    pub fn for_numeric_column(unique: usize) -> FeatureKind {
        if unique > NUMERIC_AS_CATEGORICAL_MAX_UNIQUE {
            FeatureKind::Numeric
        } else if unique > BINARY_MAX_UNIQUE {
            FeatureKind::Categorical
        } else {
            FeatureKind::Binary
        }
    }

    /// The kind of a categorical column with `unique` distinct categories in
    /// reference and current together.
    pub fn for_categorical_column(unique: usize) -> FeatureKind {
        if unique > BINARY_MAX_UNIQUE {
            FeatureKind::Categorical
        } else {
            FeatureKind::Binary
        }
    }
}

/// The declared or inferred type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Numbers compared as numbers (`test_numeric`).
    Numeric,
    /// Labels compared as categories (`test_categorical`).
    Categorical,
    /// Free text; Evidently runs text-specific tests this crate does not have.
    Text,
}

/// The type of the values a column holds, for [`infer_column_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Floating-point numbers.
    Float,
    /// Integers.
    Integer,
    /// Booleans.
    Boolean,
    /// Strings.
    String,
}

/// Evidently's column-type inference (`infer_column_type`): floats are
/// numeric; integers are categorical up to 10 unique values, numeric above;
/// booleans are categorical; strings are text when more than half of the
/// non-missing values are distinct, categorical otherwise.
pub fn infer_column_type(values: ValueType, unique: usize, non_missing: usize) -> ColumnType {
    match values {
        ValueType::Float => ColumnType::Numeric,
        ValueType::Integer if unique <= INTEGER_CARDINALITY_LIMIT => ColumnType::Categorical,
        ValueType::Integer => ColumnType::Numeric,
        ValueType::Boolean => ColumnType::Categorical,
        ValueType::String if unique as f64 > non_missing as f64 * 0.5 => ColumnType::Text,
        ValueType::String => ColumnType::Categorical,
    }
}

/// A drift detection method. Serialises as its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov test (`scipy.stats.ks_2samp`); numeric only.
    #[serde(rename = "ks")]
    Ks,
    /// Pearson's chi-squared test of the current counts against the reference
    /// proportions (`scipy.stats.chisquare`).
    #[serde(rename = "chisquare")]
    ChiSquare,
    /// Two-proportion Z-test of the first category (in sorted order) against
    /// the rest; Evidently calls it `"z"`, accepted as an alias.
    #[serde(rename = "ztest", alias = "z")]
    ZTest,
    /// First Wasserstein distance divided by the reference's standard
    /// deviation (`np.std`, ddof 0, at least 0.001); numeric only.
    #[serde(rename = "wasserstein")]
    Wasserstein,
    /// Jensen–Shannon distance (natural log) of the binned distributions
    /// (`scipy.spatial.distance.jensenshannon`).
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    /// Population stability index of the binned distributions, empty bins
    /// filled as Evidently does.
    #[serde(rename = "psi")]
    Psi,
}

impl Method {
    /// Every method, in wire-name order.
    pub const ALL: [Method; 6] = [
        Method::Ks,
        Method::ChiSquare,
        Method::ZTest,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::Psi,
    ];

    /// The wire name: `ks`, `chisquare`, `ztest`, `wasserstein`,
    /// `jensenshannon` or `psi`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::ZTest => "ztest",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
        }
    }

    /// Evidently's default threshold: 0.05 for the p-value tests, 0.1 for
    /// the distances and PSI.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() {
            0.05
        } else {
            0.1
        }
    }

    /// Whether the method yields a p-value (drift when it is small) rather
    /// than a distance (drift when it is large).
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::ZTest)
    }

    /// Whether the method applies to numeric columns. All do: the
    /// categorical tests treat each distinct number as a category, which is
    /// how Evidently tests numeric columns with few unique values.
    pub fn applies_to_numeric(self) -> bool {
        true
    }

    /// Whether the method applies to categorical columns (all but KS and
    /// Wasserstein).
    pub fn applies_to_categorical(self) -> bool {
        !matches!(self, Method::Ks | Method::Wasserstein)
    }

    /// Evidently's default choice. With at most 1,000 reference values:
    /// KS for numeric, chi-squared for categorical, Z-test for binary. With
    /// more: normed Wasserstein for numeric, Jensen–Shannon otherwise.
    /// `reference_len` counts the reference's usable (finite, non-missing)
    /// values.
    pub fn default_for(kind: FeatureKind, reference_len: usize) -> Method {
        let small = reference_len <= SMALL_REFERENCE_MAX;
        match (kind, small) {
            (FeatureKind::Numeric, true) => Method::Ks,
            (FeatureKind::Categorical, true) => Method::ChiSquare,
            (FeatureKind::Binary, true) => Method::ZTest,
            (FeatureKind::Numeric, false) => Method::Wasserstein,
            (FeatureKind::Categorical | FeatureKind::Binary, false) => Method::JensenShannon,
        }
    }

    /// The drift decision for a score (p-value or distance) against a
    /// threshold, with Evidently's exact comparisons: KS drifts when
    /// `p <= threshold`, chi-squared and Z when `p < threshold`, the
    /// distances and PSI when `score >= threshold`. A NaN score never drifts.
    pub fn is_drift(self, score: f64, threshold: f64) -> bool {
        match self {
            Method::Ks => score <= threshold,
            Method::ChiSquare | Method::ZTest => score < threshold,
            Method::Wasserstein | Method::JensenShannon | Method::Psi => score >= threshold,
        }
    }

    /// The threshold to use: `threshold` if given (it must be finite), else
    /// the default.
    pub fn resolve_threshold(self, threshold: Option<f64>) -> Result<f64, StatsError> {
        match threshold {
            None => Ok(self.default_threshold()),
            Some(t) if t.is_finite() => Ok(t),
            Some(t) => Err(StatsError::InvalidParameter {
                name: "threshold",
                range: "a finite number",
                value: t,
            }),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = StatsError;

    /// Parses a wire name (case-sensitive); `"z"` is accepted for `ztest`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ks" => Ok(Method::Ks),
            "chisquare" => Ok(Method::ChiSquare),
            "ztest" | "z" => Ok(Method::ZTest),
            "wasserstein" => Ok(Method::Wasserstein),
            "jensenshannon" => Ok(Method::JensenShannon),
            "psi" => Ok(Method::Psi),
            other => Err(StatsError::UnknownMethod(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!("z".parse::<Method>(), Ok(Method::ZTest));
        assert!(matches!(
            "KS".parse::<Method>(),
            Err(StatsError::UnknownMethod(_))
        ));
    }

    #[test]
    fn default_selection_follows_evidently() {
        use FeatureKind::*;
        assert_eq!(Method::default_for(Numeric, 1000), Method::Ks);
        assert_eq!(Method::default_for(Numeric, 1001), Method::Wasserstein);
        assert_eq!(Method::default_for(Categorical, 10), Method::ChiSquare);
        assert_eq!(Method::default_for(Binary, 10), Method::ZTest);
        assert_eq!(
            Method::default_for(Categorical, 5000),
            Method::JensenShannon
        );
        assert_eq!(Method::default_for(Binary, 5000), Method::JensenShannon);
        assert_eq!(FeatureKind::for_numeric_column(6), Numeric);
        assert_eq!(FeatureKind::for_numeric_column(5), Categorical);
        assert_eq!(FeatureKind::for_numeric_column(3), Categorical);
        assert_eq!(FeatureKind::for_numeric_column(2), Binary);
        assert_eq!(FeatureKind::for_numeric_column(1), Binary);
        assert_eq!(FeatureKind::for_categorical_column(3), Categorical);
        assert_eq!(FeatureKind::for_categorical_column(2), Binary);
    }

    #[test]
    fn comparisons_follow_evidently() {
        assert!(Method::Ks.is_drift(0.05, 0.05));
        assert!(!Method::ChiSquare.is_drift(0.05, 0.05));
        assert!(!Method::ZTest.is_drift(0.05, 0.05));
        assert!(Method::Wasserstein.is_drift(0.1, 0.1));
        assert!(!Method::Psi.is_drift(f64::NAN, 0.1));
        assert!(!Method::Ks.is_drift(f64::NAN, 0.05));
    }

    #[test]
    fn serde_uses_wire_names() {
        let json = serde_json::to_string(&Method::JensenShannon).expect("serialise");
        assert_eq!(json, "\"jensenshannon\"");
        let m: Method = serde_json::from_str("\"z\"").expect("alias");
        assert_eq!(m, Method::ZTest);
    }

    #[test]
    fn column_type_inference() {
        assert_eq!(
            infer_column_type(ValueType::Float, 2, 10),
            ColumnType::Numeric
        );
        assert_eq!(
            infer_column_type(ValueType::Integer, 10, 100),
            ColumnType::Categorical
        );
        assert_eq!(
            infer_column_type(ValueType::Integer, 11, 100),
            ColumnType::Numeric
        );
        assert_eq!(
            infer_column_type(ValueType::String, 51, 100),
            ColumnType::Text
        );
        assert_eq!(
            infer_column_type(ValueType::String, 50, 100),
            ColumnType::Categorical
        );
        assert_eq!(
            infer_column_type(ValueType::Boolean, 2, 100),
            ColumnType::Categorical
        );
    }
}
