//! Kolmogorov–Smirnov distributions: the exact two-sample p-value of
//! `scipy.stats.ks_2samp` and SciPy's `kstwo` survival function used by its
//! asymptotic mode.
//!
//! Ported from SciPy 1.17: `_compute_prob_outside_square` and
//! `_attempt_exact_2kssamp` (`scipy/stats/_stats_py.py`),
//! `_compute_outer_prob_inside_method` (`scipy/stats/_stats_pythran.py`),
//! `_kolmogn`, `_kolmogn_DMTW`, `_kolmogn_Pomeranz`, `_kolmogn_PelzGood`
//! (`scipy/stats/_ksstats.py`) and Cephes' `smirnov`
//! (`xsf/cephes/kolmogorov.h`). SciPy evaluates `smirnov` in double-double
//! arithmetic; here it is summed in log space in `f64`, which agrees to about
//! 1e-11 relative for the sample sizes this crate sees. Branch points and
//! cut-offs are SciPy's, so the same algorithm answers for the same inputs.

// Constants are copied digit for digit from SciPy.
#![allow(clippy::excessive_precision)]

/// `ks_2samp(method="auto")` tries the exact distribution up to this size.
pub(crate) const MAX_AUTO_N: u64 = 10_000;

const E128: i32 = 128;
/// 2^128.
const EP128: f64 = f64::from_bits((1023 + 128) << 52);
/// 2^-128.
const EM128: f64 = f64::from_bits((1023 - 128) << 52);
const MIN_LOG: f64 = -708.0;
/// Cephes `MINLOG`, `log(2^-1074)`.
const CEPHES_MINLOG: f64 = -7.451332191019412076235E2;

/// Result of the two-sample KS p-value computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KsPValue {
    /// The statistic SciPy reports (rounded to a multiple of `1/lcm(n1, n2)`
    /// in exact mode).
    pub statistic: f64,
    /// Two-sided p-value, clipped to `[0, 1]`.
    pub p_value: f64,
    /// Whether the exact distribution was used.
    pub exact: bool,
}

/// `x * 2^e`, without overflow in the scale factor.
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// The two-sided two-sample p-value for samples of sizes `n1`, `n2` and raw
/// statistic `d`, choosing exact or asymptotic like `ks_2samp(method="auto")`.
/// `allow_exact = false` forces the asymptotic formula (used for sketches).
pub(crate) fn ks_2samp_pvalue(n1: u64, n2: u64, d: f64, allow_exact: bool) -> KsPValue {
    if n1 == 0 || n2 == 0 || d.is_nan() {
        return KsPValue {
            statistic: d,
            p_value: f64::NAN,
            exact: false,
        };
    }
    let mut d = d;
    if allow_exact && n1.max(n2) <= MAX_AUTO_N {
        let g = gcd(n1, n2);
        let lcm = (n1 / g) * n2;
        let h = (d * lcm as f64).round_ties_even();
        let h = if h < 0.0 { 0 } else { h as u64 };
        d = h as f64 / lcm as f64;
        if h == 0 {
            return KsPValue {
                statistic: d,
                p_value: 1.0,
                exact: true,
            };
        }
        let prob = if n1 == n2 {
            Some(prob_outside_square(n1, h))
        } else {
            outer_prob_inside_method(n1, n2, g, h)
        };
        if let Some(p) = prob {
            if (0.0..=1.0).contains(&p) {
                return KsPValue {
                    statistic: d,
                    p_value: p,
                    exact: true,
                };
            }
        }
    }
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = (m * n / (m + n)).round_ties_even();
    let p = if en < 1.0 {
        f64::NAN
    } else {
        kolmogn(en as u64, d, false)
    };
    KsPValue {
        statistic: d,
        p_value: if p.is_nan() { p } else { p.clamp(0.0, 1.0) },
        exact: false,
    }
}

/// `Pr(D_{n,n} >= h/n)` (SciPy `_compute_prob_outside_square`).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// Proportion of lattice paths leaving `|x/m - y/n| < h/lcm` (SciPy
/// `_compute_outer_prob_inside_method`, Viehmann's recursion for `1 - p`).
/// `None` if an index would leave the work array (never for valid input).
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> Option<f64> {
    let (mut m, mut n) = (m as i64, n as i64);
    let (g, h) = (g as i64, h as i64);
    if m < n {
        std::mem::swap(&mut m, &mut n);
    }
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for v in a.iter_mut().take(maxj.max(0) as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = ((((ng * i - h) as f64) / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = ((((ng * i + h) as f64) / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return Some(1.0);
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let src = usize::try_from(jj + minj - lastminj).ok()?;
            let prev = *a.get(src)?;
            val = (prev * i as f64 + val * j as f64) / (i + j) as f64;
            *a.get_mut(jj as usize)? = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = ((maxj - minj) as usize).min(len_a);
            let end = ((maxj - minj + (lastlen - curlen)) as usize).min(len_a);
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a.get((maxj - minj - 1) as usize).copied()
}

/// Clip a probability to `[0, 1]` (NaN stays NaN, like `np.clip`).
fn clip(p: f64) -> f64 {
    if p.is_nan() {
        p
    } else {
        p.clamp(0.0, 1.0)
    }
}

fn select(cdfprob: f64, sfprob: f64, cdf: bool) -> f64 {
    clip(if cdf { cdfprob } else { sfprob })
}

const STIRLING_COEFFS: [f64; 8] = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
];

/// `ln(n! / n^n)` by Stirling's series (SciPy `_log_nfactorial_div_n_pow_n`).
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    let rn = 1.0 / n;
    let poly = STIRLING_COEFFS
        .iter()
        .fold(0.0, |acc, &c| acc * (rn / n) + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// CDF or SF of the two-sided one-sample KS statistic `D_n` at `x`
/// (SciPy `_kolmogn`, Simard & L'Ecuyer's algorithm selection).
pub(crate) fn kolmogn(n: u64, x: f64, cdf: bool) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return select(1.0, 0.0, cdf);
    }
    if x <= 0.0 {
        return select(0.0, 1.0, cdf);
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return select(0.0, 1.0, cdf);
        }
        let prob = if n <= 140 {
            let mut p = 1.0;
            for i in 1..=n {
                p *= i as f64 * (1.0 / nf) * (2.0 * t - 1.0);
            }
            p
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return select(prob, 1.0 - prob, cdf);
    }
    if t >= nf - 1.0 {
        let prob = 2.0 * (1.0 - x).powf(nf);
        return select(1.0 - prob, prob, cdf);
    }
    if x >= 0.5 {
        let prob = 2.0 * smirnov(n, x);
        return select(1.0 - prob, prob, cdf);
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754_693 {
            let prob = kolmogn_dmtw(n, x);
            return select(prob, 1.0 - prob, cdf);
        }
        if nxsquared <= 4.0 {
            let prob = kolmogn_pomeranz(n, x);
            return select(prob, 1.0 - prob, cdf);
        }
        let prob = 2.0 * smirnov(n, x);
        return select(1.0 - prob, prob, cdf);
    }
    if !cdf {
        if nxsquared >= 370.0 {
            return 0.0;
        }
        if nxsquared >= 2.2 {
            return clip(2.0 * smirnov(n, x));
        }
    }
    let cdfprob = if nxsquared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        kolmogn_dmtw(n, x)
    } else {
        kolmogn_pelz_good(n, x)
    };
    select(cdfprob, 1.0 - cdfprob, cdf)
}

/// `Pr(D_n <= d)` by Durbin's matrix algorithm as Marsaglia, Tsang and Wang
/// evaluate it (SciPy `_kolmogn_DMTW`). Only row `k-1` of the running power
/// is kept, which gives the same entry with `m^2` instead of `m^3` work.
fn kolmogn_dmtw(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut hm = vec![0.0f64; m * m];
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0f64; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powf(m as f64) - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tt) * fac;
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    // row = e_{k-1}^T * Hpwr
    let mut row = vec![0.0f64; m];
    row[k - 1] = 1.0;
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    let mut tmp = vec![0.0f64; m * m];
    while nn > 0 {
        if nn % 2 == 1 {
            let mut next = vec![0.0f64; m];
            for (r, &rv) in row.iter().enumerate() {
                if rv != 0.0 {
                    let hrow = &hm[r * m..(r + 1) * m];
                    for (acc, &hv) in next.iter_mut().zip(hrow) {
                        *acc += rv * hv;
                    }
                }
            }
            row = next;
            expnt += hexpnt;
        }
        // H = H @ H
        tmp.iter_mut().for_each(|x| *x = 0.0);
        for r in 0..m {
            for kk in 0..m {
                let a = hm[r * m + kk];
                if a != 0.0 {
                    let (src, dst) = (&hm[kk * m..(kk + 1) * m], &mut tmp[r * m..(r + 1) * m]);
                    for (acc, &b) in dst.iter_mut().zip(src) {
                        *acc += a * b;
                    }
                }
            }
        }
        std::mem::swap(&mut hm, &mut tmp);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            hm.iter_mut().for_each(|x| *x /= EP128);
            hexpnt += i64::from(E128);
        }
        nn /= 2;
    }
    let mut p = row[k - 1];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= i64::from(E128);
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    clip(p)
}

/// Python slice bounds `[start:stop]` (step 1) of a sequence of length `len`.
fn py_range(len: usize, start: i64, stop: i64) -> (usize, usize) {
    let len_i = len as i64;
    let norm = |x: i64| -> usize {
        let x = if x < 0 { x + len_i } else { x };
        x.clamp(0, len_i) as usize
    };
    let (s, e) = (norm(start), norm(stop));
    (s, e.max(s))
}

fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `Pr(D_n <= x)` by Pomeranz's recursion (SciPy `_kolmogn_Pomeranz`).
fn kolmogn_pomeranz(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let ni = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![0.0f64; npwrs];
    let mut twogpower = vec![0.0f64; npwrs];
    let mut onem2gpower = vec![0.0f64; npwrs];
    gpower[0] = 1.0;
    twogpower[0] = 1.0;
    onem2gpower[0] = 1.0;
    let mut expnt: i64 = 0;
    let (g_over_n, two_g_over_n, one_minus_two_g_over_n) =
        (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_over_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / mf;
    }
    let mut v0 = vec![0.0f64; npwrs];
    let mut v1 = vec![0.0f64; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s): (i64, i64) = (0, 0);
    let mut j1 = pomeranz_j1j2(0, ni, ll, ceilf, roundf).0;
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|x| *x = 0.0);
        let (next_j1, j2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        j1 = next_j1;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let (as_, ae) = py_range(npwrs, k1 - v0s, k1 - v0s + ln2);
            let (bs, be) = py_range(npwrs, 0, ln2);
            let a = &v0[as_..ae];
            let b = &pwrs[bs..be];
            let conv_len_full = if a.is_empty() || b.is_empty() {
                0
            } else {
                a.len() + b.len() - 1
            };
            let mut conv = vec![0.0f64; conv_len_full];
            for (ia, &va) in a.iter().enumerate() {
                for (ib, &vb) in b.iter().enumerate() {
                    conv[ia + ib] += va * vb;
                }
            }
            let conv_start = j1 - k1;
            let conv_len = j2 - j1 + 1;
            let (cs, ce) = py_range(conv.len(), conv_start, conv_start + conv_len);
            let (ts, te) = py_range(npwrs, 0, conv_len);
            let width = (ce - cs).min(te - ts);
            v1[ts..ts + width].copy_from_slice(&conv[cs..cs + width]);
            let vmax = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < vmax && vmax < EM128 {
                v1.iter_mut().for_each(|x| *x *= EP128);
                expnt -= i64::from(E128);
            }
            v1s = v0s + j1 - k1;
        }
    }
    let idx = ni - v1s;
    let mut ans = if idx >= 0 && (idx as usize) < npwrs {
        v1[idx as usize]
    } else {
        0.0
    };
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += i64::from(E128);
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    clip(ans)
}

/// Pelz–Good approximation of `Pr(D_n <= x)` (SciPy `_kolmogn_PelzGood`).
fn kolmogn_pelz_good(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z.powi(2), z.powi(3), z.powi(4), z.powi(6));
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let qlog = -pi2 / 8.0 / zsquared;
    if qlog < MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -zsquared;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi4 * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi2 * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (msquared, mfour, msix) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf((8 * kk) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msquared,
            k2a + k2b * msquared + k2c * mfour,
            k3a + k3b * msquared + k3c * mfour + k3d * msix,
        ];
        for (acc, c) in k.iter_mut().zip(coeffs) {
            *acc = *acc * qpower + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let denoms = [z, 6.0 * zfour, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, den) in k.iter_mut().zip(denoms) {
        *acc = *acc * q * sqrt2pi / den;
    }
    let q2 = (-pi2 / 2.0 / zsquared).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2extra = 0.0;
    let mut k3extra = 0.0;
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let ksquared = ks * ks;
        let qp = q2.powf(ksquared);
        let kspi = PI * ks;
        k2extra += ksquared * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qp;
    }
    k[2] += k2extra * (pi2 * sqrt2pi / (-36.0 * zthree));
    k[3] += k3extra * (pi2 * sqrt2pi / (216.0 * zsix));
    for (i, acc) in k.iter_mut().enumerate() {
        *acc /= nf.powf(i as f64 / 2.0);
    }
    k.iter().sum()
}

/// Exact `n·x` split as `(floor, fraction)` using an error-free product.
fn mod_nx(n: u64, x: f64) -> (i64, f64) {
    let nf = n as f64;
    let hi = nf * x;
    let lo = nf.mul_add(x, -hi);
    let mut fl = hi.floor();
    let mut alpha = (hi - fl) + lo;
    if alpha < 0.0 {
        fl -= 1.0;
        alpha += 1.0;
    }
    if alpha >= 1.0 {
        fl += 1.0;
        alpha -= 1.0;
    }
    (fl as i64, alpha)
}

/// One-sided KS survival function `Pr(D_n^+ >= x)` (Cephes `smirnov`).
pub(crate) fn smirnov(n: u64, x: f64) -> f64 {
    if x.is_nan() || n == 0 || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let ni = n as i64;
    let (nxfl, alpha) = mod_nx(n, x);
    let mut n1mxfl = ni - nxfl - i64::from(alpha != 0.0);
    let mut n1mxceil = ni - nxfl;
    if alpha == 0.0 {
        n1mxfl -= 1;
        n1mxceil += 1;
    }
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = (1.0 + x).powf(nf - 1.0);
        return (1.0 - x * t).clamp(0.0, 1.0);
    }
    if -2.0 * nf * x * x < CEPHES_MINLOG {
        return 0.0;
    }
    if nxfl >= ni - 1 {
        return (1.0 - x).powf(nf);
    }
    if n > 1_000_000 {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        let sf = if logp < -std::f64::consts::LN_2 {
            logp.exp()
        } else {
            1.0 + logp.exp_m1()
        };
        return sf.clamp(0.0, 1.0);
    }
    let n_upper_terms = ni - n1mxceil + 1;
    let use_upper =
        (n_upper_terms <= 1 && x < 0.5) || (ni >= 10 && n_upper_terms <= 3 && x <= 0.5 / nf.sqrt());
    // A_v = C(n, v) (1 - x - v/n)^(n-v) (x + v/n)^(v-1), summed in log space.
    let term = |v: i64, ln_c: f64| -> f64 {
        let t2 = ((ni - v - nxfl) as f64 - alpha) / nf; // 1 - x - v/n
        let t1 = ((nxfl + v) as f64 + alpha) / nf; // x + v/n
        let e2 = ni - v;
        let e1 = v - 1;
        if t2 == 0.0 {
            return if e2 == 0 {
                (ln_c + e1 as f64 * t1.ln()).exp()
            } else {
                0.0
            };
        }
        let sign = if t2 < 0.0 && e2 % 2 == 1 { -1.0 } else { 1.0 };
        // ln(1 - t1) is far more accurate than ln(t2) while t1 is small: the
        // rounding of t2 would be amplified by the exponent n - v.
        let ln_t2 = if t1 < 0.5 {
            (-t1).ln_1p()
        } else {
            t2.abs().ln()
        };
        sign * (ln_c + e2 as f64 * ln_t2 + e1 as f64 * t1.ln()).exp()
    };
    let (start, step, n_terms) = if use_upper {
        (ni, -1i64, ni - n1mxceil + 1)
    } else {
        (0i64, 1i64, n1mxfl + 1)
    };
    let mut sum = 0.0;
    let mut comp = 0.0; // Kahan compensation
    let mut ln_c = 0.0; // ln C(n, j)
    let mut ln_c_comp = 0.0;
    let vmid = ni / 2;
    for j in 0..n_terms {
        let v = start + j * step;
        let aj = if v == 0 {
            (1.0 - x).powf(nf) / x
        } else {
            term(v, ln_c)
        };
        if aj.is_finite() && aj != 0.0 {
            let y = aj - comp;
            let t = sum + y;
            comp = (t - sum) - y;
            sum = t;
        }
        if aj != 0.0 {
            if 4.0 * (n_terms - j) as f64 * aj.abs() < f64::EPSILON * sum && j != n_terms - 1 {
                break;
            }
        } else if j > vmid {
            break;
        }
        // ln C(n, j+1) = ln C(n, j) + ln((n-j)/(j+1)), Kahan-summed.
        let y = ((ni - j) as f64 / (j + 1) as f64).ln() - ln_c_comp;
        let t = ln_c + y;
        ln_c_comp = (t - ln_c) - y;
        ln_c = t;
    }
    let prob = x * sum;
    let sf = if step < 0 { 1.0 - prob } else { prob };
    sf.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_square_small_case() {
        // ks_2samp([0, 1], [2, 3]): D = 1, exact p = 2 / C(4, 2) = 1/3.
        let p = ks_2samp_pvalue(2, 2, 1.0, true);
        assert!(p.exact);
        assert!((p.p_value - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn inside_method_small_case() {
        // ks_2samp([0, 1, 2], [3, 4]): D = 1, exact p = 2 / C(5, 2) = 0.2.
        let p = ks_2samp_pvalue(3, 2, 1.0, true);
        assert!(p.exact);
        assert!((p.p_value - 0.2).abs() < 1e-15, "{p:?}");
    }

    #[test]
    fn one_value_each() {
        // ks_2samp([1.0], [2.0]) has p = 1.
        let p = ks_2samp_pvalue(1, 1, 1.0, true);
        assert_eq!(p.p_value, 1.0);
    }

    #[test]
    fn kolmogn_limits() {
        assert_eq!(kolmogn(10, 0.0, false), 1.0);
        assert_eq!(kolmogn(10, 1.0, false), 0.0);
        assert!(kolmogn(0, 0.5, false).is_nan());
        for n in [5u64, 50, 200, 5000, 200_000] {
            let mut prev = 1.0;
            for i in 1..100 {
                let x = f64::from(i) / 100.0;
                let sf = kolmogn(n, x, false);
                assert!((0.0..=1.0).contains(&sf), "n={n} x={x} sf={sf}");
                assert!(sf <= prev + 1e-12, "non-monotone n={n} x={x}");
                prev = sf;
            }
        }
    }

    #[test]
    fn smirnov_n1_and_bounds() {
        assert_eq!(smirnov(1, 0.3), 0.7);
        assert_eq!(smirnov(10, 0.0), 1.0);
        assert_eq!(smirnov(10, 1.0), 0.0);
        assert!(smirnov(10, 1.5).is_nan());
    }
}
