//! Property tests: no panics on any input, and invariants of the statistics.

use proptest::prelude::*;
use slipway_stats::{
    agreement, test_categorical, test_numeric, test_windows, Counts, Method, NumericWindow,
    NumericWindowConfig,
};

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -1e6f64..1e6,
        2 => (-5i32..5).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => prop::num::f64::NORMAL,
    ]
}

fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(value(), 0..60)
}

fn counts() -> impl Strategy<Value = Counts> {
    prop::collection::btree_map("[a-e]{1,2}", 0u64..50, 0..8).prop_map(Counts::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn numeric_tests_never_panic_and_stay_in_range(a in sample(), b in sample()) {
        for m in Method::ALL {
            match test_numeric(&a, &b, m, None) {
                Ok(r) => {
                    if let Some(p) = r.p_value {
                        prop_assert!((0.0..=1.0).contains(&p), "{m} p={p}");
                    }
                    if !m.is_p_value() {
                        prop_assert!(r.statistic >= 0.0, "{m} statistic {}", r.statistic);
                    }
                    prop_assert!(r.psi.is_nan() || r.psi >= -1e-12, "psi {}", r.psi);
                    prop_assert_eq!(r.drifted, m.is_drift(r.score(), r.threshold));
                }
                Err(e) => prop_assert!(
                    a.iter().all(|x| !x.is_finite()) || b.iter().all(|x| !x.is_finite())
                        || matches!(e, slipway_stats::StatsError::Histogram),
                    "{m}: unexpected {e}"
                ),
            }
        }
    }

    #[test]
    fn ks_is_symmetric(a in sample(), b in sample()) {
        if let (Ok(x), Ok(y)) = (test_numeric(&a, &b, Method::Ks, None), test_numeric(&b, &a, Method::Ks, None)) {
            prop_assert_eq!(x.statistic, y.statistic);
            prop_assert_eq!(x.p_value, y.p_value);
        }
    }

    #[test]
    fn identical_samples_do_not_drift(a in sample()) {
        for m in Method::ALL {
            if let Ok(r) = test_numeric(&a, &a, m, None) {
                prop_assert!(!r.drifted, "{m} flagged identical samples: {r:?}");
                prop_assert!(r.psi.abs() < 1e-12);
            }
        }
    }

    #[test]
    fn categorical_tests_never_panic(a in counts(), b in counts()) {
        for m in Method::ALL {
            match test_categorical(&a, &b, m, None) {
                Ok(r) => {
                    if let Some(p) = r.p_value {
                        prop_assert!((0.0..=1.0).contains(&p), "{m} p={p}");
                    }
                    prop_assert!(r.psi >= -1e-12);
                }
                Err(_) => prop_assert!(!m.applies_to_categorical() || a.total() == 0 || b.total() == 0),
            }
        }
    }

    #[test]
    fn windows_never_panic_and_are_exact_under_the_limit(
        a in sample(), b in sample(), limit in 0usize..80, k in 0usize..40, tails in 0usize..6,
    ) {
        let cfg = NumericWindowConfig { sample_limit: limit, sketch_k: k, tail_values: tails, seed: 1 };
        let mut wa = NumericWindow::new(cfg);
        wa.extend(a.iter().copied());
        let mut wb = NumericWindow::new(cfg);
        wb.extend(b.iter().copied());
        prop_assert_eq!(wa.len() + wa.missing(), a.len() as u64);
        let under = wa.values().is_some() && wb.values().is_some();
        for m in Method::ALL {
            let got = test_windows(&wa, &wb, m, None);
            if under {
                prop_assert_eq!(got, test_numeric(&a, &b, m, None));
            }
        }
        let q = wa.quantile(0.5);
        prop_assert!(q.is_nan() || q.is_finite());
    }

    #[test]
    fn agreement_interval_contains_share(pairs in prop::collection::vec((0u8..3, 0u8..3), 1..200), conf in 0.5f64..0.999) {
        let (a, b): (Vec<u8>, Vec<u8>) = pairs.into_iter().unzip();
        let r = agreement(&a, &b, conf).expect("valid input");
        prop_assert!(0.0 <= r.lower && r.lower <= r.share + 1e-12);
        prop_assert!(r.share <= r.upper + 1e-12 && r.upper <= 1.0);
    }
}
