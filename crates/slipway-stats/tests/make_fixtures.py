"""Generate the golden drift fixtures for slipway-stats.

Run from the repository root with the interop virtual environment:

    .venv/bin/python crates/slipway-stats/tests/make_fixtures.py

It writes crates/slipway-stats/tests/fixtures/drift.json. Data come from a
seeded NumPy generator and are rounded (6 decimals; 4 for the two cases
whose current sample exceeds 10,000 values) before anything is computed,
so the numbers in the fixture are exactly those of the stored arrays. Expected values are computed twice:
with SciPy directly (ks_2samp, chisquare, wasserstein_distance / np.std,
jensenshannon) and with Evidently 0.7.23 itself, both through its stattest
functions and through a Report with DataDriftPreset. Wilson intervals come
from statsmodels' proportion_confint(method="wilson").
"""

import json
import math
import os
import sys
import warnings

# Evidently iterates over Python sets of category names, so string hashing
# decides the summation order (differences of ~1e-16). Pin it so the fixture
# is byte-for-byte reproducible.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import numpy as np
import pandas as pd
import scipy
from scipy import special, stats
from scipy.spatial import distance

import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests import (
    chi_stat_test,
    jensenshannon_stat_test,
    ks_stat_test,
    psi_stat_test,
    wasserstein_stat_test,
    z_stat_test,
)
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

SEED = 20261207
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "drift.json")

warnings.filterwarnings("ignore")

WIRE = {
    "ks": "ks",
    "chisquare": "chisquare",
    "z": "ztest",
    "wasserstein": "wasserstein",
    "jensenshannon": "jensenshannon",
    "psi": "psi",
}
DISPLAY = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "ztest",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}
TESTS = {
    "ks": ks_stat_test,
    "chisquare": chi_stat_test,
    "ztest": z_stat_test,
    "wasserstein": wasserstein_stat_test,
    "jensenshannon": jensenshannon_stat_test,
    "psi": psi_stat_test,
}

rng = np.random.default_rng(SEED)


def num(x):
    """A float for JSON: None for NaN, strings for infinities."""
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def rounded(a, decimals=6):
    return [float(v) for v in np.round(np.asarray(a, dtype=float), decimals)]


def evidently_stattest(ref, cur, column_type, name):
    res = TESTS[name](ref, cur, column_type, None)
    return {"score": num(res.drift_score), "drifted": bool(res.drifted), "threshold": num(res.actual_threshold)}


def evidently_report(ref_df, cur_df, numerical, categorical):
    dd = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    res = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur_df, data_definition=dd), Dataset.from_pandas(ref_df, data_definition=dd)
    )
    out = {"columns": {}}
    for m in res.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            out["drifted_count"] = int(m["value"]["count"])
            out["drifted_share"] = float(m["value"]["share"])
        elif cfg["type"].endswith("ValueDrift"):
            out["columns"][cfg["column"]] = {
                "method": DISPLAY[cfg["method"]],
                "threshold": float(cfg["threshold"]),
                "score": num(m["value"]),
            }
    return out


def scipy_numeric(ref, cur):
    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    ks = stats.ks_2samp(ref, cur)
    return {
        "ks_statistic": num(ks.statistic),
        "ks_pvalue": num(ks.pvalue),
        "wasserstein": num(stats.wasserstein_distance(ref, cur)),
        "reference_std": num(np.std(ref)),
        "wasserstein_normed": num(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)),
    }


def scipy_categorical(ref_counts, cur_counts):
    keys = sorted(set(k for k, v in ref_counts.items() if v > 0) | set(k for k, v in cur_counts.items() if v > 0))
    r = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    c = np.array([cur_counts.get(k, 0) for k in keys], dtype=float)
    f_exp = r * (c.sum() / r.sum())
    chi = stats.chisquare(c, f_exp)
    js = distance.jensenshannon(r / r.sum(), c / c.sum())
    return {"chisquare_statistic": num(chi.statistic), "chisquare_pvalue": num(chi.pvalue), "jensenshannon": num(js)}


def numeric_case(name, ref, cur, decimals=6, methods=None):
    ref = np.array(rounded(ref, decimals))
    cur = np.array(rounded(cur, decimals))
    ref_s = pd.Series(ref)
    cur_s = pd.Series(cur)
    ref_clean = ref_s.replace([-np.inf, np.inf], np.nan).dropna()
    cur_clean = cur_s.replace([-np.inf, np.inf], np.nan).dropna()
    default = WIRE[get_stattest(ref_clean, cur_clean, ColumnType.Numerical, None).name]
    methods = methods or ["ks", "wasserstein", "psi", "jensenshannon"]
    n_unique = pd.concat([ref_clean, cur_clean]).nunique()
    if n_unique <= 5:
        methods = methods + ["chisquare", "ztest"]
    ev = {m: evidently_stattest(ref_clean, cur_clean, ColumnType.Numerical, m) for m in methods}
    report = evidently_report(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), ["x"], [])
    col = report["columns"]["x"]
    col["drifted"] = report["drifted_count"] == 1
    return {
        "name": name,
        "reference": [num(v) for v in ref],
        "current": [num(v) for v in cur],
        "unique": int(n_unique),
        "default_method": default,
        "evidently": ev,
        "report": col,
        "scipy": scipy_numeric(ref, cur),
    }


def categorical_case(name, ref_counts, cur_counts):
    ref_counts = {k: int(v) for k, v in ref_counts.items() if v > 0}
    cur_counts = {k: int(v) for k, v in cur_counts.items() if v > 0}
    ref_s = pd.Series([k for k, v in ref_counts.items() for _ in range(v)], dtype=object)
    cur_s = pd.Series([k for k, v in cur_counts.items() for _ in range(v)], dtype=object)
    default = WIRE[get_stattest(ref_s, cur_s, ColumnType.Categorical, None).name]
    ev = {m: evidently_stattest(ref_s, cur_s, ColumnType.Categorical, m) for m in ["chisquare", "ztest", "jensenshannon", "psi"]}
    report = evidently_report(pd.DataFrame({"c": ref_s}), pd.DataFrame({"c": cur_s}), [], ["c"])
    col = report["columns"]["c"]
    col["drifted"] = report["drifted_count"] == 1
    return {
        "name": name,
        "reference": ref_counts,
        "current": cur_counts,
        "default_method": default,
        "evidently": ev,
        "report": col,
        "scipy": scipy_categorical(ref_counts, cur_counts),
    }


def draw_counts(probs, n):
    cats = list(probs)
    p = np.array([probs[c] for c in cats], dtype=float)
    p /= p.sum()
    draws = rng.multinomial(n, p)
    return {c: int(k) for c, k in zip(cats, draws)}


def main():
    numeric = []
    N = rng.normal
    # Reference <= 1000: KS (exact, n1 != n2 and n1 == n2).
    numeric.append(numeric_case("small_none", N(0, 1, 300), N(0, 1, 250)))
    numeric.append(numeric_case("small_mean_shift", N(0, 1, 300), N(0.4, 1, 250)))
    numeric.append(numeric_case("small_variance_shift", N(0, 1, 300), N(0, 1.6, 250)))
    numeric.append(numeric_case("small_equal_sizes_none", N(5, 2, 400), N(5, 2, 400)))
    numeric.append(numeric_case("small_equal_sizes_shift", N(5, 2, 400), N(5.5, 2, 400)))
    numeric.append(numeric_case("small_1000_vs_700_shift", N(0, 1, 1000), N(0.1, 1, 700)))
    numeric.append(numeric_case("small_ties", np.round(N(0, 1, 500), 1), np.round(N(0.05, 1, 450), 1)))
    numeric.append(numeric_case("tiny", N(0, 1, 7), N(1, 1, 5)))
    with_nan = N(0, 1, 200)
    with_nan[[3, 50, 120]] = np.nan
    numeric.append(numeric_case("small_with_missing", with_nan, N(0.2, 1, 180)))
    # Current > 10,000 values: ks_2samp's asymptotic mode (kstwo).
    numeric.append(numeric_case("asymp_none", N(0, 1, 800), N(0, 1, 10_400), decimals=4))
    numeric.append(numeric_case("asymp_small_en_shift", N(0, 1, 100), N(0.25, 1, 10_200), decimals=4))
    # Reference > 1000: normed Wasserstein.
    numeric.append(numeric_case("large_none", N(10, 3, 2000), N(10, 3, 1500)))
    numeric.append(numeric_case("large_mean_shift", N(10, 3, 2000), N(10.6, 3, 1500)))
    numeric.append(numeric_case("large_variance_shift", N(10, 3, 2000), N(10, 4.5, 1500)))
    numeric.append(numeric_case("large_lognormal_shift", rng.lognormal(0, 1, 3000), rng.lognormal(0.3, 1, 1200)))
    # Numeric columns with few unique values: chi-squared, Z, JS by counts.
    numeric.append(numeric_case("lowcard_4_values_shift", rng.integers(0, 4, 500).astype(float),
                                rng.choice([0.0, 1.0, 2.0, 3.0], 400, p=[0.4, 0.2, 0.2, 0.2])))
    numeric.append(numeric_case("lowcard_binary_none", rng.integers(0, 2, 600).astype(float),
                                rng.integers(0, 2, 500).astype(float)))
    numeric.append(numeric_case("lowcard_binary_shift", rng.choice([0.0, 1.0], 600, p=[0.7, 0.3]),
                                rng.choice([0.0, 1.0], 500, p=[0.6, 0.4])))
    numeric.append(numeric_case("lowcard_large_3_values", rng.integers(0, 3, 3000).astype(float),
                                rng.choice([0.0, 1.0, 2.0], 2000, p=[0.3, 0.3, 0.4])))
    numeric.append(numeric_case("midcard_15_values", rng.integers(0, 15, 800).astype(float),
                                rng.integers(1, 16, 600).astype(float)))
    numeric.append(numeric_case("constant_equal", np.full(50, 2.5), np.full(40, 2.5)))
    numeric.append(numeric_case("constant_different", np.full(50, 2.5), np.full(40, 3.5)))

    categorical = []
    mix = {"red": 0.4, "green": 0.3, "blue": 0.2, "black": 0.1}
    shifted = {"red": 0.3, "green": 0.3, "blue": 0.25, "black": 0.15}
    categorical.append(categorical_case("cat_small_none", draw_counts(mix, 600), draw_counts(mix, 500)))
    categorical.append(categorical_case("cat_small_mix_shift", draw_counts(mix, 600), draw_counts(shifted, 500)))
    categorical.append(categorical_case("cat_small_new_category", draw_counts(mix, 600),
                                        draw_counts({**mix, "white": 0.05}, 500)))
    categorical.append(categorical_case("cat_small_missing_category", draw_counts(mix, 600),
                                        draw_counts({"red": 0.5, "green": 0.3, "blue": 0.2}, 500)))
    categorical.append(categorical_case("bin_small_none", draw_counts({"yes": 0.3, "no": 0.7}, 800),
                                        draw_counts({"yes": 0.3, "no": 0.7}, 700)))
    categorical.append(categorical_case("bin_small_shift", draw_counts({"yes": 0.3, "no": 0.7}, 800),
                                        draw_counts({"yes": 0.36, "no": 0.64}, 700)))
    categorical.append(categorical_case("bin_small_single_same", {"only": 40}, {"only": 30}))
    categorical.append(categorical_case("bin_small_single_different", {"a": 40}, {"b": 30}))
    many = {f"c{i:02d}": 1.0 / (i + 1) for i in range(40)}
    many_shift = {f"c{i:02d}": 1.0 / (40 - i) for i in range(40)}
    categorical.append(categorical_case("cat_large_none", draw_counts(many, 5000), draw_counts(many, 3000)))
    categorical.append(categorical_case("cat_large_mix_shift", draw_counts(many, 5000), draw_counts(many_shift, 3000)))
    categorical.append(categorical_case("bin_large_shift", draw_counts({"t": 0.5, "f": 0.5}, 4000),
                                        draw_counts({"t": 0.55, "f": 0.45}, 3000)))

    # One multi-column report for the dataset-level verdict.
    n_ref, n_cur = 600, 500
    ref_df = pd.DataFrame({
        "num_none": rounded(N(0, 1, n_ref)),
        "num_shift": rounded(N(0, 1, n_ref)),
        "cat_shift": rng.choice(["a", "b", "c"], n_ref, p=[0.5, 0.3, 0.2]),
        "bin_none": rng.choice(["y", "n"], n_ref),
        "num_var_shift": rounded(N(0, 1, n_ref)),
    })
    cur_df = pd.DataFrame({
        "num_none": rounded(N(0, 1, n_cur)),
        "num_shift": rounded(N(0.5, 1, n_cur)),
        "cat_shift": rng.choice(["a", "b", "c"], n_cur, p=[0.3, 0.3, 0.4]),
        "bin_none": rng.choice(["y", "n"], n_cur),
        "num_var_shift": rounded(N(0, 1.1, n_cur)),
    })
    num_cols = ["num_none", "num_shift", "num_var_shift"]
    cat_cols = ["cat_shift", "bin_none"]
    rep = evidently_report(ref_df, cur_df, num_cols, cat_cols)
    dataset = {
        "numeric": {c: {"reference": list(ref_df[c]), "current": list(cur_df[c])} for c in num_cols},
        "categorical": {
            c: {
                "reference": {k: int(v) for k, v in ref_df[c].value_counts().items()},
                "current": {k: int(v) for k, v in cur_df[c].value_counts().items()},
            }
            for c in cat_cols
        },
        "report": rep,
    }

    # Direct checks of the distribution functions behind the p-values.
    kstwo = []
    for n in [3, 10, 50, 99, 140, 141, 500, 740, 5000, 100_000, 100_001, 250_000]:
        for x in [0.6 / n, 0.9 / n, 1.5 / n, 0.01, 0.02, 0.05, 0.08, 0.12, 0.2, 0.3, 0.45, 0.5, 0.7, 0.95, 1 - 1.5 / n]:
            if 0 < x < 1:
                kstwo.append([n, float(x), num(stats.kstwo.sf(x, n))])
        for s in [0.3, 0.6, 0.85, 1.2, 1.5, 2.0]:
            x = s / math.sqrt(n)
            if 0 < x < 1:
                kstwo.append([n, float(x), num(stats.kstwo.sf(x, n))])
    smirnov = []
    for n in [2, 5, 10, 37, 140, 1000, 20_000, 999_999]:
        for x in [0.3 / n, 0.01, 0.03, 0.1, 0.25, 0.5, 0.75, 0.99]:
            smirnov.append([n, float(x), num(special.smirnov(n, x))])
    chi2 = []
    for df in [1, 2, 3, 4, 5, 9, 29, 39, 100, 499, 2000]:
        for q in [0.01, 0.2, 0.5, 0.9, 1.0, 1.1, 1.5, 2.5, 5.0]:
            x = df * q
            chi2.append([df, float(x), num(special.chdtrc(df, x))])
        chi2.append([df, 1e-3, num(special.chdtrc(df, 1e-3))])
    ndtr = [[float(x), num(special.ndtr(x))] for x in np.linspace(-12, 12, 97)]
    ndtri = [[float(p), num(special.ndtri(p))] for p in [1e-300, 1e-20, 1e-10, 1e-5, 0.001, 0.01, 0.025, 0.05, 0.1, 0.2,
                                                         0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-10]]
    # Many small random ks_2samp cases with ties (the exact algorithms).
    ks_small = []
    for _ in range(80):
        n1, n2 = int(rng.integers(1, 61)), int(rng.integers(1, 61))
        shift = float(rng.choice([0.0, 0.3, 1.0]))
        a = rounded(N(0, 1, n1), 1)
        b = rounded(N(shift, 1, n2), 1)
        r = stats.ks_2samp(a, b)
        ks_small.append({"a": a, "b": b, "statistic": num(r.statistic), "pvalue": num(r.pvalue)})

    from statsmodels.stats.proportion import proportion_confint

    wilson = []
    for k, n in [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (47, 50), (512, 1000), (99_990, 100_000)]:
        for conf in [0.8, 0.9, 0.95, 0.99]:
            lo, hi = proportion_confint(k, n, alpha=1 - conf, method="wilson")
            wilson.append([k, n, conf, num(lo), num(hi)])

    fixture = {
        "generator": "crates/slipway-stats/tests/make_fixtures.py",
        "seed": SEED,
        "versions": {
            "evidently": evidently.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "statsmodels": __import__("statsmodels").__version__,
            "python": sys.version.split()[0],
        },
        "numeric": numeric,
        "categorical": categorical,
        "dataset": dataset,
        "kstwo_sf": kstwo,
        "smirnov": smirnov,
        "chi2_sf": chi2,
        "ndtr": ndtr,
        "ndtri": ndtri,
        "ks_2samp_small": ks_small,
        "wilson": wilson,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
