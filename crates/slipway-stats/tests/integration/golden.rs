//! Golden comparisons against SciPy 1.17 and Evidently 0.7.23, from the
//! fixture written by `tests/make_fixtures.py`.
//!
//! Tolerance: a value `a` matches the expected `e` when
//! `|a - e| <= 1e-9 * max(1, |e|)`, i.e. absolute 1e-9 for p-values,
//! distances and shares (all at most 1 except PSI and chi-squared/Z
//! statistics), relative 1e-9 above 1. Every comparison is made and every
//! mismatch is listed before a test fails; the largest absolute and
//! relative deviations are printed (`cargo test -- --nocapture`).

use std::sync::OnceLock;

use serde_json::Value;
use slipway_stats::{dataset_drift, wilson_interval, Counts, FeatureResult, Method};
use slipway_stats::{
    scipy, test_categorical, test_categorical_default, test_numeric, test_numeric_default,
};

const TOL: f64 = 1e-9;

pub(crate) fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/drift.json");
        let text =
            std::fs::read_to_string(path).expect("fixture file is committed next to this test");
        serde_json::from_str(&text).expect("fixture is valid JSON")
    })
}

/// A number from the fixture: null is NaN, "inf"/"-inf" are infinities.
fn num(v: &Value) -> f64 {
    match v {
        Value::Null => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other
            .as_f64()
            .expect("fixture numbers are numbers, null or \"inf\""),
    }
}

pub(crate) fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(num)
        .collect()
}

fn counts(v: &Value) -> Counts {
    v.as_object()
        .expect("object of counts")
        .iter()
        .map(|(k, n)| (k.as_str(), n.as_u64().expect("integer count")))
        .collect()
}

fn method(v: &Value) -> Method {
    v.as_str()
        .expect("method name")
        .parse()
        .expect("known wire name")
}

/// Collects comparisons, their worst deviations and every failure.
#[derive(Default)]
struct Checker {
    failures: Vec<String>,
    max_abs: f64,
    max_rel: f64,
    worst_rel: String,
    worst_abs: String,
    compared: usize,
}

impl Checker {
    fn close(&mut self, what: &str, actual: f64, expected: f64) {
        self.compared += 1;
        let same_special =
            (actual.is_nan() && expected.is_nan()) || (actual.is_infinite() && actual == expected);
        if same_special {
            return;
        }
        let abs = (actual - expected).abs();
        if !abs.is_finite() {
            self.failures
                .push(format!("{what}: got {actual:e}, want {expected:e}"));
            return;
        }
        if abs > self.max_abs {
            self.max_abs = abs;
            self.worst_abs = format!("{what}: got {actual:e}, want {expected:e}");
        }
        if expected != 0.0 && abs / expected.abs() > self.max_rel {
            self.max_rel = abs / expected.abs();
            self.worst_rel = format!("{what}: got {actual:e}, want {expected:e}");
        }
        if abs > TOL * expected.abs().max(1.0) {
            self.failures.push(format!(
                "{what}: got {actual:e}, want {expected:e} (diff {abs:e})"
            ));
        }
    }

    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, actual: T, expected: T) {
        self.compared += 1;
        if actual != expected {
            self.failures
                .push(format!("{what}: got {actual:?}, want {expected:?}"));
        }
    }

    fn finish(self, section: &str) {
        eprintln!(
            "{section}: {} comparisons, max abs deviation {:e} ({}), max rel deviation {:e} ({})",
            self.compared, self.max_abs, self.worst_abs, self.max_rel, self.worst_rel
        );
        assert!(
            self.failures.is_empty(),
            "{section}: {} mismatches:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn check_result(c: &mut Checker, what: &str, r: &FeatureResult, expected: &Value) {
    c.close(&format!("{what} score"), r.score(), num(&expected["score"]));
    c.equal(
        &format!("{what} drifted"),
        r.drifted,
        expected["drifted"].as_bool().expect("bool"),
    );
    c.close(
        &format!("{what} threshold"),
        r.threshold,
        num(&expected["threshold"]),
    );
}

/// Evidently's chi-squared over one category gives NaN; this crate gives 1.
fn evidently_score_or_documented(m: Method, expected: &Value) -> Value {
    let mut e = expected.clone();
    if m == Method::ChiSquare && e["score"].is_null() {
        e["score"] = Value::from(1.0);
    }
    e
}

#[test]
fn numeric_columns_match_evidently() {
    let mut c = Checker::default();
    for case in fixture()["numeric"].as_array().expect("numeric cases") {
        let name = case["name"].as_str().expect("name");
        let (r, cur) = (nums(&case["reference"]), nums(&case["current"]));
        let default = test_numeric_default(&r, &cur).expect("default test runs");
        c.equal(
            &format!("{name} default method"),
            default.method,
            method(&case["default_method"]),
        );
        c.equal(
            &format!("{name} report method"),
            default.method,
            method(&case["report"]["method"]),
        );
        check_result(&mut c, &format!("{name} report"), &default, &case["report"]);
        for (m, expected) in case["evidently"].as_object().expect("per-method results") {
            let m: Method = m.parse().expect("wire name");
            let got = test_numeric(&r, &cur, m, None).expect("method runs");
            check_result(
                &mut c,
                &format!("{name} {m}"),
                &got,
                &evidently_score_or_documented(m, expected),
            );
            c.close(
                &format!("{name} {m} psi"),
                got.psi,
                num(&case["evidently"]["psi"]["score"]),
            );
            c.equal(&format!("{name} {m} estimated"), got.estimated, false);
        }
    }
    c.finish("numeric vs Evidently");
}

#[test]
fn numeric_columns_match_scipy() {
    let mut c = Checker::default();
    for case in fixture()["numeric"].as_array().expect("numeric cases") {
        let name = case["name"].as_str().expect("name");
        let (r, cur) = (nums(&case["reference"]), nums(&case["current"]));
        let s = &case["scipy"];
        let ks = scipy::ks_2samp(&r, &cur).expect("ks runs");
        c.close(
            &format!("{name} ks statistic"),
            ks.statistic,
            num(&s["ks_statistic"]),
        );
        c.close(&format!("{name} ks p"), ks.p_value, num(&s["ks_pvalue"]));
        let got = test_numeric(&r, &cur, Method::Ks, None).expect("ks runs");
        c.close(
            &format!("{name} ks via test_numeric"),
            got.statistic,
            num(&s["ks_statistic"]),
        );
        let w = scipy::wasserstein_distance(&r, &cur).expect("wasserstein runs");
        c.close(&format!("{name} wasserstein"), w, num(&s["wasserstein"]));
        let got = test_numeric(&r, &cur, Method::Wasserstein, None).expect("wasserstein runs");
        c.close(
            &format!("{name} wasserstein normed"),
            got.statistic,
            num(&s["wasserstein_normed"]),
        );
    }
    c.finish("numeric vs SciPy");
}

#[test]
fn categorical_columns_match_evidently_and_scipy() {
    let mut c = Checker::default();
    for case in fixture()["categorical"]
        .as_array()
        .expect("categorical cases")
    {
        let name = case["name"].as_str().expect("name");
        let (r, cur) = (counts(&case["reference"]), counts(&case["current"]));
        let default = test_categorical_default(&r, &cur).expect("default test runs");
        c.equal(
            &format!("{name} default method"),
            default.method,
            method(&case["default_method"]),
        );
        c.equal(
            &format!("{name} report method"),
            default.method,
            method(&case["report"]["method"]),
        );
        check_result(&mut c, &format!("{name} report"), &default, &case["report"]);
        for (m, expected) in case["evidently"].as_object().expect("per-method results") {
            let m: Method = m.parse().expect("wire name");
            let got = test_categorical(&r, &cur, m, None).expect("method runs");
            check_result(
                &mut c,
                &format!("{name} {m}"),
                &got,
                &evidently_score_or_documented(m, expected),
            );
            c.close(
                &format!("{name} {m} psi"),
                got.psi,
                num(&case["evidently"]["psi"]["score"]),
            );
        }
        let s = &case["scipy"];
        let chi = test_categorical(&r, &cur, Method::ChiSquare, None).expect("chi-squared runs");
        c.close(
            &format!("{name} chisquare statistic"),
            chi.statistic,
            num(&s["chisquare_statistic"]),
        );
        let want_p = num(&s["chisquare_pvalue"]);
        c.close(
            &format!("{name} chisquare p"),
            chi.p_value.unwrap_or(f64::NAN),
            if want_p.is_nan() { 1.0 } else { want_p },
        );
        let js = test_categorical(&r, &cur, Method::JensenShannon, None).expect("JS runs");
        c.close(
            &format!("{name} jensenshannon"),
            js.statistic,
            num(&s["jensenshannon"]),
        );
    }
    c.finish("categorical vs Evidently and SciPy");
}

#[test]
fn dataset_drift_matches_evidently_report() {
    let mut c = Checker::default();
    let d = &fixture()["dataset"];
    let report = &d["report"]["columns"];
    let mut results = Vec::new();
    for (col, data) in d["numeric"].as_object().expect("numeric columns") {
        let r =
            test_numeric_default(&nums(&data["reference"]), &nums(&data["current"])).expect("runs");
        c.equal(
            &format!("{col} method"),
            r.method,
            method(&report[col]["method"]),
        );
        c.close(
            &format!("{col} score"),
            r.score(),
            num(&report[col]["score"]),
        );
        results.push(r);
    }
    for (col, data) in d["categorical"].as_object().expect("categorical columns") {
        let r = test_categorical_default(&counts(&data["reference"]), &counts(&data["current"]))
            .expect("runs");
        c.equal(
            &format!("{col} method"),
            r.method,
            method(&report[col]["method"]),
        );
        c.close(
            &format!("{col} score"),
            r.score(),
            num(&report[col]["score"]),
        );
        results.push(r);
    }
    let (drift, share) = dataset_drift(&results, 0.5);
    let drifted = results.iter().filter(|r| r.drifted).count();
    c.equal(
        "drifted count",
        drifted as u64,
        d["report"]["drifted_count"].as_u64().expect("count"),
    );
    c.close("drifted share", share, num(&d["report"]["drifted_share"]));
    c.equal(
        "dataset drift",
        drift,
        num(&d["report"]["drifted_share"]) >= 0.5,
    );
    c.finish("dataset vs Evidently");
}

#[test]
fn distribution_functions_match_scipy() {
    let f = fixture();
    let mut c = Checker::default();
    for row in f["kstwo_sf"].as_array().expect("rows") {
        let (n, x, want) = (row[0].as_u64().expect("n"), num(&row[1]), num(&row[2]));
        c.close(&format!("kstwo.sf({x}, {n})"), scipy::kstwo_sf(x, n), want);
    }
    c.finish("kstwo.sf");
    let mut c = Checker::default();
    for row in f["smirnov"].as_array().expect("rows") {
        let (n, x, want) = (row[0].as_u64().expect("n"), num(&row[1]), num(&row[2]));
        c.close(&format!("smirnov({n}, {x})"), scipy::smirnov(n, x), want);
    }
    c.finish("smirnov");
    let mut c = Checker::default();
    for row in f["chi2_sf"].as_array().expect("rows") {
        let (df, x, want) = (num(&row[0]), num(&row[1]), num(&row[2]));
        c.close(&format!("chdtrc({df}, {x})"), scipy::chi2_sf(df, x), want);
    }
    c.finish("chdtrc");
    let mut c = Checker::default();
    for row in f["ndtr"].as_array().expect("rows") {
        c.close(
            &format!("ndtr({})", num(&row[0])),
            scipy::ndtr(num(&row[0])),
            num(&row[1]),
        );
    }
    for row in f["ndtri"].as_array().expect("rows") {
        c.close(
            &format!("ndtri({})", num(&row[0])),
            scipy::ndtri(num(&row[0])),
            num(&row[1]),
        );
    }
    c.finish("ndtr/ndtri");
    let mut c = Checker::default();
    for (i, case) in f["ks_2samp_small"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let r = scipy::ks_2samp(&nums(&case["a"]), &nums(&case["b"])).expect("ks runs");
        c.close(
            &format!("small ks #{i} statistic"),
            r.statistic,
            num(&case["statistic"]),
        );
        c.close(&format!("small ks #{i} p"), r.p_value, num(&case["pvalue"]));
    }
    c.finish("ks_2samp small samples");
}

#[test]
fn wilson_intervals_match_statsmodels() {
    let mut c = Checker::default();
    for row in fixture()["wilson"].as_array().expect("rows") {
        let (k, n, conf) = (
            row[0].as_u64().expect("k"),
            row[1].as_u64().expect("n"),
            num(&row[2]),
        );
        let (lo, hi) = wilson_interval(k, n, conf).expect("valid interval");
        c.close(&format!("wilson({k}, {n}, {conf}) lower"), lo, num(&row[3]));
        c.close(&format!("wilson({k}, {n}, {conf}) upper"), hi, num(&row[4]));
    }
    c.finish("Wilson vs statsmodels");
}
