//! The crate's one error type. Every public function returns it instead of
//! panicking; none of the variants carries data from the samples themselves.

use crate::method::Method;

/// Which of the two compared samples an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sample {
    /// The reference (baseline) sample.
    Reference,
    /// The current (live) sample.
    Current,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sample::Reference => "reference",
            Sample::Current => "current",
        })
    }
}

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A sample had no usable values (none at all, or only NaN/±∞), which
    /// Evidently also rejects ("An empty column ... was provided").
    #[error("the {0} sample has no finite values")]
    Empty(Sample),
    /// The method does not apply to this kind of data (for example KS on
    /// categories).
    #[error("method `{method}` does not apply to {data} data")]
    MethodNotApplicable {
        /// The requested method.
        method: Method,
        /// "numeric" or "categorical".
        data: &'static str,
    },
    /// A method that compares category counts was asked of a window that
    /// only holds a quantile sketch.
    #[error("method `{0}` needs exact value counts, but a window holds a quantile sketch")]
    NeedsExactCounts(Method),
    /// A threshold (drift threshold, dataset share, confidence) was NaN,
    /// infinite or out of its range.
    #[error("{name} must be {range}, got {value}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The allowed range, in words.
        range: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// An interval or share was asked of zero observations.
    #[error("no observations")]
    NoData,
    /// Two paired vectors had different lengths.
    #[error("paired samples differ in length: {left} vs {right}")]
    LengthMismatch {
        /// Length of the first vector.
        left: usize,
        /// Length of the second vector.
        right: usize,
    },
    /// NumPy would refuse to build histogram bins for this value range
    /// ("Too many bins for data range").
    #[error("the value range is too narrow to build histogram bins")]
    Histogram,
    /// A method name that is not one of the wire names.
    #[error("unknown drift method `{0}` (expected ks, chisquare, ztest, wasserstein, jensenshannon or psi)")]
    UnknownMethod(String),
}
