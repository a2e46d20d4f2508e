//! Streaming windows: exact while they can be, bounded always, and sketch
//! estimates within their documented error bounds.

use slipway_stats::kll::rank_error_bound;
use slipway_stats::{
    test_numeric, test_windows, test_windows_default, CategoricalWindow, CategoricalWindowConfig,
    Method, NumericWindow, NumericWindowConfig,
};

use crate::golden::{fixture, nums};
use crate::rng::Rng;

fn window(values: &[f64], config: NumericWindowConfig) -> NumericWindow {
    let mut w = NumericWindow::new(config);
    w.extend(values.iter().copied());
    w
}

fn config(sample_limit: usize, sketch_k: usize) -> NumericWindowConfig {
    NumericWindowConfig {
        sample_limit,
        sketch_k,
        ..NumericWindowConfig::default()
    }
}

#[test]
fn exact_windows_give_exactly_the_exact_results() {
    let cfg = config(20_000, 200);
    for case in fixture()["numeric"].as_array().expect("numeric cases") {
        let (r, c) = (nums(&case["reference"]), nums(&case["current"]));
        let (wr, wc) = (window(&r, cfg), window(&c, cfg));
        assert!(wr.is_exact() && wc.is_exact());
        for m in Method::ALL {
            assert_eq!(
                test_windows(&wr, &wc, m, None),
                test_numeric(&r, &c, m, None),
                "{} {m}",
                case["name"]
            );
        }
        assert_eq!(
            test_windows_default(&wr, &wc).map(|x| x.method),
            test_numeric(&r, &c, Method::Ks, None)
                .map(|_| test_windows_default(&wr, &wc).expect("runs").method)
        );
    }
}

#[test]
fn count_windows_past_the_limit_stay_exact() {
    // Columns with at most 21 distinct values keep exact counts.
    let cfg = config(10, 32);
    let mut checked = 0;
    for case in fixture()["numeric"].as_array().expect("numeric cases") {
        if case["unique"].as_u64().expect("unique") > 21 {
            continue;
        }
        let (r, c) = (nums(&case["reference"]), nums(&case["current"]));
        let (wr, wc) = (window(&r, cfg), window(&c, cfg));
        assert!(wr.is_exact() && wc.is_exact());
        for m in Method::ALL {
            let got = test_windows(&wr, &wc, m, None).expect("runs");
            let want = test_numeric(&r, &c, m, None).expect("runs");
            let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            assert!(
                got.method == want.method
                    && close(got.statistic, want.statistic)
                    && close(got.p_value.unwrap_or(0.0), want.p_value.unwrap_or(0.0))
                    && got.drifted == want.drifted
                    && close(got.psi, want.psi)
                    && !got.estimated,
                "{} {m}: {got:?} vs {want:?}",
                case["name"]
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "fixture has low-cardinality cases");
}

/// The exact CDF of `values` at each step of `steps`, and the largest gap.
fn sup_rank_error(values: &[f64], steps: &[(f64, f64)]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    // Both CDFs are right-continuous steps; the sup of their difference is
    // attained at a data value. Walk the data values and the steps together.
    let mut worst: f64 = 0.0;
    let mut j = 0usize;
    let mut est = 0.0;
    let mut i = 0usize;
    while i < sorted.len() {
        let v = sorted[i];
        while i < sorted.len() && sorted[i] == v {
            i += 1;
        }
        while j < steps.len() && steps[j].0 <= v {
            est = steps[j].1;
            j += 1;
        }
        worst = worst.max((est - i as f64 / n).abs());
    }
    worst
}

fn datasets(rng: &mut Rng, n: usize) -> Vec<(&'static str, Vec<f64>)> {
    let normal = rng.normals(n, 0.0, 1.0);
    let lognormal: Vec<f64> = rng.normals(n, 0.0, 1.0).into_iter().map(f64::exp).collect();
    let ties: Vec<f64> = rng
        .normals(n, 0.0, 1.0)
        .into_iter()
        .map(|x| (x * 10.0).round() / 10.0)
        .collect();
    let mut ascending = rng.normals(n, 0.0, 1.0);
    ascending.sort_by(f64::total_cmp);
    let descending: Vec<f64> = ascending.iter().rev().copied().collect();
    vec![
        ("normal", normal),
        ("lognormal", lognormal),
        ("ties", ties),
        ("ascending", ascending),
        ("descending", descending),
    ]
}

#[test]
fn sketch_rank_error_stays_within_bound() {
    let mut rng = Rng::new(99);
    for k in [64usize, 200, 800] {
        let bound = rank_error_bound(k);
        let mut worst: f64 = 0.0;
        let mut worst_plain: f64 = 0.0;
        for seed in 0..3u64 {
            for (name, data) in datasets(&mut rng, 100_000) {
                let cfg = NumericWindowConfig {
                    sample_limit: 1000,
                    sketch_k: k,
                    seed,
                    ..NumericWindowConfig::default()
                };
                let w = window(&data, cfg);
                let err = sup_rank_error(&data, &w.cdf_steps());
                if w.is_exact() {
                    // Few distinct values: the exact tails hold them all.
                    assert_eq!(w.rank_error_bound(), 0.0);
                    assert!(err < 1e-12, "k={k} {name}: exact window off by {err}");
                    continue;
                }
                assert_eq!(w.rank_error_bound(), bound);
                assert!(
                    err <= bound,
                    "k={k} {name} seed={seed}: sup rank error {err} > bound {bound}"
                );
                worst = worst.max(err);
                let untailed = NumericWindowConfig {
                    tail_values: 0,
                    ..cfg
                };
                worst_plain =
                    worst_plain.max(sup_rank_error(&data, &window(&data, untailed).cdf_steps()));
            }
        }
        assert!(
            worst_plain <= bound,
            "k={k}: plain KLL error {worst_plain} > {bound}"
        );
        eprintln!("k={k}: worst uniform rank error {worst:.5} with exact tails, {worst_plain:.5} without (bound {bound:.5})");
    }
}

#[test]
fn sketch_estimates_stay_within_their_bounds() {
    let mut rng = Rng::new(5);
    let cfg = NumericWindowConfig::default();
    let mut report = Vec::new();
    for (shift, scale) in [(0.0, 1.0), (0.05, 1.0), (0.3, 1.0), (0.0, 1.5)] {
        for sketched_reference in [false, true] {
            let n_ref = if sketched_reference { 60_000 } else { 5_000 };
            let r = rng.normals(n_ref, 0.0, 1.0);
            let c = rng.normals(80_000, shift, scale);
            let (wr, wc) = (window(&r, cfg), window(&c, cfg));
            assert_eq!(wr.is_exact(), !sketched_reference);
            assert!(!wc.is_exact());
            let eps = wr.rank_error_bound() + wc.rank_error_bound();
            let range = r.iter().chain(&c).fold(f64::NEG_INFINITY, |a, &b| a.max(b))
                - r.iter().chain(&c).fold(f64::INFINITY, |a, &b| a.min(b));

            let ks = test_windows(&wr, &wc, Method::Ks, None).expect("runs");
            let ks_exact = test_numeric(&r, &c, Method::Ks, None).expect("runs");
            assert!(ks.estimated && !ks_exact.estimated);
            let d_err = (ks.statistic - ks_exact.statistic).abs();
            assert!(d_err <= eps, "KS D error {d_err} > {eps}");
            // The sketch's p-value is conservative (current > 10,000 values, so
            // the exact sample's p-value is asymptotic too).
            let (p_est, p_exact) = (
                ks.p_value.unwrap_or(f64::NAN),
                ks_exact.p_value.unwrap_or(f64::NAN),
            );
            assert!(p_est >= p_exact, "sketch p {p_est} below exact p {p_exact}");

            let w = test_windows(&wr, &wc, Method::Wasserstein, None).expect("runs");
            let w_exact = test_numeric(&r, &c, Method::Wasserstein, None).expect("runs");
            let w_err = (w.statistic - w_exact.statistic).abs();
            let w_bound = eps * range / wr.std().max(0.001);
            assert!(w_err <= w_bound, "Wasserstein error {w_err} > {w_bound}");

            let psi = test_windows(&wr, &wc, Method::Psi, None).expect("runs");
            let psi_exact = test_numeric(&r, &c, Method::Psi, None).expect("runs");
            let psi_err = (psi.statistic - psi_exact.statistic).abs();
            let js = test_windows(&wr, &wc, Method::JensenShannon, None).expect("runs");
            let js_exact = test_numeric(&r, &c, Method::JensenShannon, None).expect("runs");
            let js_err = (js.statistic - js_exact.statistic).abs();
            // Decisions agree away from the thresholds.
            if shift >= 0.3 || scale > 1.0 {
                assert!(ks.drifted && w.drifted);
            }
            if shift == 0.0 && scale == 1.0 {
                assert!(!w.drifted && !ks.drifted);
            }
            report.push(format!(
                "shift {shift} scale {scale} ref {}: |ΔD| {d_err:.2e} (≤{eps:.3}), |ΔW| {w_err:.2e} (≤{w_bound:.3}), \
                 |ΔPSI| {psi_err:.2e}, |ΔJS| {js_err:.2e}, p {:.3e} vs {:.3e}",
                if sketched_reference { "sketch" } else { "exact" },
                ks.p_value.unwrap_or(f64::NAN),
                ks_exact.p_value.unwrap_or(f64::NAN),
            ));
            assert!(
                psi_err < 0.05 && js_err < 0.05,
                "PSI/JS estimates drifted: {}",
                report.join("\n")
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn memory_is_bounded_by_construction() {
    let mut rng = Rng::new(3);
    let cfg = NumericWindowConfig::default();
    let mut w = NumericWindow::new(cfg);
    let mut peak_exact = 0;
    for _ in 0..cfg.sample_limit {
        w.push(rng.normal());
        peak_exact = peak_exact.max(w.approx_bytes());
    }
    assert!(
        peak_exact <= 2 * 8 * cfg.sample_limit + 1024,
        "exact window {peak_exact} bytes"
    );
    let mut peak_sketch = 0;
    for _ in 0..400_000 {
        w.push(rng.normal());
        peak_sketch = peak_sketch.max(w.approx_bytes());
    }
    let sketch_bound = 2 * 8 * (3 * cfg.sketch_k + 576) + 2 * 2 * 16 * cfg.tail_values + 4096;
    assert!(
        peak_sketch <= sketch_bound,
        "sketch {peak_sketch} > {sketch_bound} bytes"
    );
    eprintln!(
        "numeric window: {peak_exact} bytes exact (limit {}), {} bytes as a k={} sketch after {} values",
        cfg.sample_limit,
        w.approx_bytes(),
        cfg.sketch_k,
        w.len()
    );

    let ccfg = CategoricalWindowConfig::default();
    let mut cw = CategoricalWindow::new(ccfg);
    for i in 0..50_000u32 {
        cw.push(&format!("label-{i}-{}", "x".repeat((i % 300) as usize)));
    }
    let cat_bound = (ccfg.max_categories + 1) * (ccfg.max_category_bytes + 80) + 256;
    assert!(
        cw.approx_bytes() <= cat_bound,
        "{} > {cat_bound}",
        cw.approx_bytes()
    );
    assert_eq!(cw.total(), 50_000);
    assert_eq!(cw.counts().unique(), ccfg.max_categories + 1);
}

#[test]
fn merging_windows_matches_pushing_everything() {
    let mut rng = Rng::new(8);
    let cfg = config(1_000, 128);
    let a = rng.normals(600, 0.0, 1.0);
    let b = rng.normals(300, 0.5, 1.0);
    let mut merged = window(&a, cfg);
    merged.merge(&window(&b, cfg));
    let all: Vec<f64> = a.iter().chain(&b).copied().collect();
    assert_eq!(merged.values().map(<[f64]>::to_vec), Some(all.clone()));

    // Past the limit: a sketch whose estimates stay within the bound.
    let c = rng.normals(50_000, 0.0, 2.0);
    let mut big = window(&all, cfg);
    big.merge(&window(&c, cfg));
    let everything: Vec<f64> = all.iter().chain(&c).copied().collect();
    assert_eq!(big.len(), everything.len() as u64);
    assert!(!big.is_exact());
    let err = sup_rank_error(&everything, &big.cdf_steps());
    assert!(err <= big.rank_error_bound(), "merged sketch error {err}");
    let mean = everything.iter().sum::<f64>() / everything.len() as f64;
    assert!((big.mean() - mean).abs() < 1e-9);
}
