//! One-sided Mann–Whitney U test (normal approximation with tie correction) and the largest
//! relative effect that is still significant.

use serde::{Deserialize, Serialize};

/// The result of a one-sided Mann–Whitney test of "other is better than base".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MannWhitney {
    /// U statistic of `other` (pairs where other is better, ties counting ½).
    pub u: f64,
    /// Standardised statistic (with continuity and tie correction).
    pub z: f64,
    /// One-sided p-value.
    pub p_value: f64,
}

/// Test whether `other` is stochastically better than `base` (larger when `higher_is_better`,
/// else smaller). `None` when a side is empty or every value ties.
pub fn mann_whitney(base: &[f64], other: &[f64], higher_is_better: bool) -> Option<MannWhitney> {
    let sign = if higher_is_better { 1.0 } else { -1.0 };
    let mut all: Vec<(f64, bool)> = base
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| (sign * x, false))
        .chain(
            other
                .iter()
                .filter(|x| x.is_finite())
                .map(|&x| (sign * x, true)),
        )
        .collect();
    let n1 = all.iter().filter(|(_, o)| !o).count() as f64;
    let n2 = all.len() as f64 - n1;
    if n1 == 0.0 || n2 == 0.0 {
        return None;
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties; accumulate the tie correction term.
    let mut rank_sum_other = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_other += avg_rank * all[i..=j].iter().filter(|(_, o)| *o).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_other - n2 * (n2 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return None;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / var.sqrt();
    Some(MannWhitney {
        u,
        z,
        p_value: upper_tail(z),
    })
}

/// The largest relative improvement `d` (e.g. 0.05 = 5 %) such that `other` is still
/// significantly better than `base` scaled by `1 + d` (or `1 − d` for lower-is-better) at level
/// `alpha`. `None` when not even a zero effect is significant.
pub fn largest_significant_effect(
    base: &[f64],
    other: &[f64],
    higher_is_better: bool,
    alpha: f64,
) -> Option<f64> {
    let significant = |d: f64| {
        let factor = if higher_is_better { 1.0 + d } else { 1.0 - d };
        let shifted: Vec<f64> = base.iter().map(|x| x * factor).collect();
        mann_whitney(&shifted, other, higher_is_better).is_some_and(|m| m.p_value < alpha)
    };
    if !significant(0.0) {
        return None;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    if significant(hi) {
        return Some(hi);
    }
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if significant(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// P(Z > z) for a standard normal Z.
pub(crate) fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
