//! Seed aggregation: mean, sample standard deviation and Student-t 95 % confidence interval.
//!
//! For `n` independent replications (seeds) `x₁…xₙ` of a metric, the interval is
//! `x̄ ± t₀.₉₇₅,ₙ₋₁ · s / √n` with `s` the sample standard deviation (denominator `n − 1`);
//! see Law, *Simulation Modeling and Analysis* (5th ed., 2015), §9.4.1. The Student-t quantile
//! is computed, not tabulated: the t tail `P(T > t) = ½ I_{ν/(ν+t²)}(ν/2, ½)` through the
//! regularised incomplete beta function (continued fraction with the modified Lentz method,
//! Press et al., *Numerical Recipes*, 3rd ed., §6.4), inverted by safeguarded Newton
//! iteration; for `ν = ∞` the normal tail `½ Q(½, z²/2)` uses the regularised incomplete
//! gamma function (ibid. §6.2).
//!
//! Values are sorted before they are summed, so the result is bit-for-bit independent of the
//! order in which runs finished.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Mean of a sample with the half-width of its two-sided 95 % Student-t confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    /// Sample mean (NaN for an empty sample or when any value is NaN).
    pub mean: f64,
    /// `t₀.₉₇₅,ₙ₋₁ · std / √n`; NaN when `n < 2` (one seed says nothing about spread), 0 when
    /// all values are equal.
    pub ci95_half_width: f64,
    /// Number of values.
    pub n: usize,
    /// Sample standard deviation with denominator `n − 1`; NaN when `n < 2`.
    pub std: f64,
}

impl MeanCi {
    /// Lower end of the interval.
    pub fn lo(&self) -> f64 {
        self.mean - self.ci95_half_width
    }

    /// Upper end of the interval.
    pub fn hi(&self) -> f64 {
        self.mean + self.ci95_half_width
    }
}

/// Mean, sample standard deviation and 95 % confidence half-width of `xs` (see [`MeanCi`]
/// for the degenerate cases). NaN values propagate to every statistic.
pub fn mean_ci95(xs: &[f64]) -> MeanCi {
    let n = xs.len();
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mean = if n == 0 { f64::NAN } else { v.iter().sum::<f64>() / n as f64 };
    if n < 2 {
        return MeanCi { mean, ci95_half_width: f64::NAN, n, std: f64::NAN };
    }
    let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
    let std = (ss / (n - 1) as f64).sqrt();
    let half = student_t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt();
    MeanCi { mean, ci95_half_width: half, n, std }
}

/// Rows of one aggregation did not all have the same number of values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row} has {found} values, expected {expected} as in row 0")]
pub struct RaggedRowsError {
    /// Index of the offending row in the input.
    pub row: usize,
    /// Its number of values.
    pub found: usize,
    /// The number of values of row 0.
    pub expected: usize,
}

/// Aggregates replications: rows with equal keys (typically the tuple of all axis values
/// except the seed) are grouped and each value column is summarised by [`mean_ci95`].
///
/// Returns one entry per distinct key, in increasing key order (deterministic whatever the
/// input order), each with one [`MeanCi`] per column. Every row must have the same number of
/// values.
pub fn aggregate_seeds<K: Ord + Clone>(rows: &[(K, Vec<f64>)]) -> Result<Vec<(K, Vec<MeanCi>)>, RaggedRowsError> {
    let width = rows.first().map_or(0, |r| r.1.len());
    let mut groups: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
    for (i, (key, values)) in rows.iter().enumerate() {
        if values.len() != width {
            return Err(RaggedRowsError { row: i, found: values.len(), expected: width });
        }
        groups.entry(key).or_default().push(i);
    }
    Ok(groups
        .into_iter()
        .map(|(key, members)| {
            let stats = (0..width).map(|c| mean_ci95(&members.iter().map(|&i| rows[i].1[c]).collect::<Vec<_>>())).collect();
            (key.clone(), stats)
        })
        .collect())
}

/// Quantile of Student's t distribution: the `t` with `P(T ≤ t) = p` for `df` degrees of
/// freedom (`df = ∞` gives the standard normal). NaN when `p ∉ (0, 1)` or `df ≤ 0` / NaN.
/// Accurate to about 1e-12 relative (checked against tabulated values in the tests).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let valid = p > 0.0 && p < 1.0 && df > 0.0; // false for NaN too
    if !valid {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    if df > LARGE_DF && df.is_finite() {
        return cornish_fisher(student_t_quantile(p, f64::INFINITY), df);
    }
    let alpha = 1.0 - p; // target upper tail, in (0, 0.5)
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while upper_tail(hi, df) > alpha {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return f64::INFINITY;
        }
    }
    let mut t = 0.5 * (lo + hi);
    for _ in 0..200 {
        let f = upper_tail(t, df) - alpha; // decreasing in t
        if f == 0.0 {
            return t;
        }
        if f > 0.0 {
            lo = t
        } else {
            hi = t
        }
        let mut next = t + f / density(t, df);
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - t).abs() <= 1e-15 * t.abs() || hi - lo <= 1e-15 * hi {
            return next;
        }
        t = next;
    }
    t
}

/// Above this many degrees of freedom `ln Γ(ν/2 + ½) − ln Γ(ν/2)` loses digits to
/// cancellation, and the Cornish–Fisher expansion is accurate to far better than 1e-12.
const LARGE_DF: f64 = 1e4;

/// Cornish–Fisher expansion of the t quantile about the normal quantile `z`
/// (Abramowitz & Stegun 26.7.5), error `O(ν⁻⁵)`.
fn cornish_fisher(z: f64, df: f64) -> f64 {
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df
}

/// `P(T > t)` for `t ≥ 0`. Both `x = ν/(ν+t²)` and `1 − x = t²/(ν+t²)` are formed directly
/// so that small `t` keeps its precision.
fn upper_tail(t: f64, df: f64) -> f64 {
    if df.is_infinite() {
        0.5 * gamma_q(0.5, 0.5 * t * t)
    } else {
        let t2 = t * t;
        0.5 * beta_reg(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2))
    }
}

/// Density of Student's t (normal for `df = ∞`).
fn density(t: f64, df: f64) -> f64 {
    if df.is_infinite() {
        (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt()
    } else {
        (ln_gamma(0.5 * (df + 1.0)) - ln_gamma(0.5 * df) - 0.5 * (df * std::f64::consts::PI).ln() - 0.5 * (df + 1.0) * (t * t / df).ln_1p())
            .exp()
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, n = 9; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    // Published coefficients, kept verbatim.
    #[allow(clippy::excessive_precision)]
    const G: [f64; 9] = [
        0.999_999_999_999_809_93,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_13,
        -176.615_029_162_140_59,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_571_6e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let a = G[1..].iter().enumerate().fold(G[0], |acc, (i, &g)| acc + g / (x + i as f64 + 1.0));
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

const EPS: f64 = 4.0 * f64::EPSILON;
const TINY: f64 = 1e-300;
const MAX_ITER: usize = 100_000;

/// Regularised incomplete beta `I_x(a, b)`, given both `x` and `y = 1 − x`.
fn beta_reg(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) { front * beta_cf(a, b, x) / a } else { 1.0 - front * beta_cf(b, a, y) / b }
}

/// Continued fraction for the incomplete beta (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Regularised upper incomplete gamma `Q(a, x)` (series for `x < a + 1`, else continued
/// fraction).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut ap, mut sum, mut del) = (a, 1.0 / a, 1.0 / a);
        for _ in 0..MAX_ITER {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                break;
            }
        }
        1.0 - sum * front
    } else {
        let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..=MAX_ITER {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = 1.0 / clamp(an * d + b);
            c = clamp(b + an / c);
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < EPS {
                break;
            }
        }
        front * h
    }
}
