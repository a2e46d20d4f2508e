//! Small helpers: error mapping, a dynamic query builder with bound
//! arguments, row accessors and name generation.

use slipway_core::Error;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::Result;

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// Logs a database fault and returns a generic `INTERNAL_ERROR`.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    tracing::error!(error = %e, "metadata database error");
    Error::internal("Internal database error; see server logs")
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// One bound argument of a dynamic query.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I(i64),
    F(f64),
    S(String),
}

/// A SQL text with `$n` placeholders and the arguments they refer to.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            args: Vec::new(),
        }
    }
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    /// Adds an argument and returns its placeholder.
    pub fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
    pub fn s(&mut self, v: &str) -> String {
        self.arg(Arg::S(v.to_string()))
    }
    pub fn i(&mut self, v: i64) -> String {
        self.arg(Arg::I(v))
    }
    /// `(p1, p2, ...)` for a list of strings.
    pub fn list(&mut self, vals: &[String]) -> String {
        let ps: Vec<String> = vals.iter().map(|v| self.s(v)).collect();
        format!("({})", ps.join(", "))
    }
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::I(v) => q.bind(*v),
                Arg::F(v) => q.bind(*v),
                Arg::S(v) => q.bind(v.as_str()),
            };
        }
        q
    }
}

pub(crate) fn get_s(row: &AnyRow, col: &str) -> Result<String> {
    row.try_get::<String, _>(col).map_err(db_err)
}
pub(crate) fn get_os(row: &AnyRow, col: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col).map_err(db_err)
}
pub(crate) fn get_i(row: &AnyRow, col: &str) -> Result<i64> {
    row.try_get::<i64, _>(col).map_err(db_err)
}
pub(crate) fn get_oi(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    row.try_get::<Option<i64>, _>(col).map_err(db_err)
}
pub(crate) fn get_f(row: &AnyRow, col: &str) -> Result<f64> {
    row.try_get::<f64, _>(col).map_err(db_err)
}

/// Stored form of a metric value: NaN is stored as 0 with `is_nan = 1`
/// (SQLite turns NaN into NULL); infinities are stored as they are.
pub(crate) fn store_value(v: f64) -> (f64, i64) {
    if v.is_nan() {
        (0.0, 1)
    } else {
        (v, 0)
    }
}

/// Inverse of [`store_value`].
pub(crate) fn load_value(v: f64, is_nan: i64) -> f64 {
    if is_nan != 0 {
        f64::NAN
    } else {
        v
    }
}

/// Parses a decimal experiment id.
pub(crate) fn parse_exp_id(id: &str) -> Option<i64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

const ADJECTIVES: [&str; 32] = [
    "able", "bold", "brave", "bright", "calm", "clever", "crisp", "dapper", "eager", "fancy",
    "gentle", "glad", "grand", "happy", "jolly", "keen", "kind", "lively", "lucky", "merry",
    "mighty", "nimble", "proud", "quick", "quiet", "rare", "shy", "smart", "swift", "tidy",
    "vivid", "wise",
];
const NOUNS: [&str; 32] = [
    "ant", "bass", "bear", "bee", "cat", "colt", "crab", "crow", "deer", "doe", "dove", "eel",
    "elk", "finch", "fox", "frog", "goat", "hare", "hawk", "jay", "koi", "lark", "lynx", "mole",
    "moth", "newt", "owl", "ram", "seal", "slug", "toad", "wolf",
];

/// A random run name like `bright-fox-123`, as MLflow generates.
pub(crate) fn random_name() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let a = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let n = NOUNS[rng.random_range(0..NOUNS.len())];
    let num: u32 = rng.random_range(0..1000);
    format!("{a}-{n}-{num}")
}

/// The smallest string greater than every string starting with `prefix`
/// (for range scans), or `None` when there is none.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut code = last as u32 + 1;
        while code <= char::MAX as u32 {
            if let Some(c) = char::from_u32(code) {
                chars.push(c);
                return Some(chars.into_iter().collect());
            }
            code += 1;
        }
    }
    None
}
