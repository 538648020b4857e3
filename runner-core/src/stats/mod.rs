//! Statistics that carry their noise: medians with seeded bootstrap confidence intervals,
//! ratios with CIs, a one-sided Mann–Whitney test, and verdicts decided by a CI against a noise
//! floor.
//!
//! Every random draw comes from a ChaCha8 generator seeded by the caller, so the same inputs
//! and seed give the same numbers on every machine.

mod adaptive;
mod compare;
mod mann_whitney;
mod needed;
mod rounds;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use adaptive::{AdaptiveOptions, Decision, StopReason, ratio_at_level, should_continue};
pub use compare::{
    COMPARE_SCHEMA_VERSION, CompareOptions, Comparison, DEFAULT_MIN_RUNS, compare, compare_rounds,
};
pub use mann_whitney::{MannWhitney, largest_significant_effect, mann_whitney};
pub use needed::{MAX_ROUNDS, RoundsToDecide, rounds_to_decide};
pub use rounds::{RoundLevel, RoundLevels, UNSTEADY_SPREAD, round_levels, round_ratio_range};

/// Default bootstrap resamples.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Default seed of the bootstrap.
pub const DEFAULT_SEED: u64 = 0x005e_ed0f_be7c;
/// Minimum samples per side before a Mann–Whitney test is reported.
pub const MIN_MW_SAMPLES: usize = 10;

/// A sample's median with its 95 % bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// 95 % percentile-bootstrap CI of the median, `[lo, hi]`.
    pub ci: [f64; 2],
}

/// The ratio `median(other) / median(base)` with its 95 % bootstrap CI.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ratio {
    /// Point estimate.
    pub value: f64,
    /// 95 % CI, `[lo, hi]`.
    pub ci: [f64; 2],
}

/// The outcome of comparing one metric between two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The CI lies entirely beyond the noise floor, in the good direction.
    Improved,
    /// The CI lies entirely beyond the noise floor, in the bad direction.
    Regressed,
    /// The CI lies entirely within the noise floor.
    NoChange,
    /// The CI straddles the noise floor: more samples are needed.
    Inconclusive,
}

impl Verdict {
    /// The stable snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::NoChange => "no_change",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Whether the verdict is decided (not inconclusive).
    pub fn is_decided(self) -> bool {
        self != Verdict::Inconclusive
    }
}

/// Where the noise floor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FloorSource {
    /// Measured by an A/A comparison (the same build run twice in the same lease).
    AaMeasured,
    /// The configured default.
    Configured,
}

/// A relative noise floor (e.g. 0.02 = ±2 %) and its source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoiseFloor {
    /// Relative half-width.
    pub value: f64,
    /// Where it came from.
    pub source: FloorSource,
}

impl NoiseFloor {
    /// A configured floor.
    pub fn configured(value: f64) -> Self {
        NoiseFloor {
            value,
            source: FloorSource::Configured,
        }
    }

    /// The floor measured by an A/A ratio CI: its largest distance from 1, but never below
    /// `minimum`.
    pub fn from_aa(aa: &Ratio, minimum: f64) -> Self {
        let spread = (aa.ci[1] - 1.0).max(1.0 - aa.ci[0]).max(minimum);
        NoiseFloor {
            value: spread,
            source: FloorSource::AaMeasured,
        }
    }
}

impl std::fmt::Display for NoiseFloor {
    /// `±2.0 % (configured)` or `±3.1 % (A/A-measured)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let src = match self.source {
            FloorSource::AaMeasured => "A/A-measured",
            FloorSource::Configured => "configured",
        };
        write!(f, "±{:.1} % ({src})", self.value * 100.0)
    }
}

/// The median of finite values (`None` when there are none).
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn resampled_median(xs: &[f64], rng: &mut ChaCha8Rng, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..xs.len()).map(|_| xs[rng.random_range(0..xs.len())]));
    buf.sort_by(f64::total_cmp);
    let m = buf.len() / 2;
    if buf.len() % 2 == 1 {
        buf[m]
    } else {
        (buf[m - 1] + buf[m]) / 2.0
    }
}

fn finite(xs: &[f64]) -> Vec<f64> {
    xs.iter().copied().filter(|x| x.is_finite()).collect()
}

/// Median and 95 % percentile-bootstrap CI (`None` for an empty sample).
pub fn summarize(xs: &[f64], resamples: usize, seed: u64) -> Option<Summary> {
    let xs = finite(xs);
    let med = median(&xs)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = Vec::with_capacity(xs.len());
    let mut meds: Vec<f64> = (0..resamples.max(1))
        .map(|_| resampled_median(&xs, &mut rng, &mut buf))
        .collect();
    meds.sort_by(f64::total_cmp);
    Some(Summary {
        n: xs.len(),
        median: med,
        ci: [
            percentile_sorted(&meds, 0.025),
            percentile_sorted(&meds, 0.975),
        ],
    })
}

/// `median(other) / median(base)` with a 95 % CI from resampling both sides independently.
/// `None` when a side is empty or the base median is zero.
pub fn ratio(base: &[f64], other: &[f64], resamples: usize, seed: u64) -> Option<Ratio> {
    let (base, other) = (finite(base), finite(other));
    let (mb, mo) = (median(&base)?, median(&other)?);
    if mb == 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = Vec::new();
    let mut ratios = Vec::with_capacity(resamples.max(1));
    for _ in 0..resamples.max(1) {
        let b = resampled_median(&base, &mut rng, &mut buf);
        let o = resampled_median(&other, &mut rng, &mut buf);
        if b != 0.0 {
            ratios.push(o / b);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(Ratio {
        value: mo / mb,
        ci: [
            percentile_sorted(&ratios, 0.025),
            percentile_sorted(&ratios, 0.975),
        ],
    })
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        // Beyond 30: the normal quantile plus the first correction term.
        _ => 1.960 + 2.4 / df as f64,
    }
}

/// The ratio of `other` to `base` over paired runs — runs of the same interleaved round, which
/// share that round's conditions (clocks, thermal state, neighbours) — as the geometric mean of
/// the per-round ratios, with a 95 % Student-t CI on the mean log ratio (honest at 3 rounds,
/// where a bootstrap is far too narrow). Pairing removes the round effect that unpaired medians
/// carry as noise. `None` without two finite, positive pairs.
pub fn paired_ratio(pairs: &[(f64, f64)]) -> Option<Ratio> {
    let (n, mean, sd) = log_ratio_moments(pairs)?;
    let half = t975(n - 1) * sd / (n as f64).sqrt();
    Some(Ratio {
        value: mean.exp(),
        ci: [(mean - half).exp(), (mean + half).exp()],
    })
}

/// Over the finite, positive pairs: how many, and the mean and sample standard deviation of
/// their log ratios `ln(other/base)`; `None` with fewer than two.
fn log_ratio_moments(pairs: &[(f64, f64)]) -> Option<(usize, f64, f64)> {
    let logs: Vec<f64> = pairs
        .iter()
        .filter(|(b, o)| b.is_finite() && o.is_finite() && *b > 0.0 && *o > 0.0)
        .map(|(b, o)| (o / b).ln())
        .collect();
    let n = logs.len();
    if n < 2 {
        return None;
    }
    let mean = logs.iter().sum::<f64>() / n as f64;
    let var = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((n, mean, var.sqrt()))
}

/// The verdict of a ratio CI against a relative noise floor, direction-aware.
pub fn verdict(r: &Ratio, higher_is_better: bool, floor: f64) -> Verdict {
    let [lo, hi] = r.ci;
    let (up, down) = (lo > 1.0 + floor, hi < 1.0 - floor);
    if up || down {
        let improved = if higher_is_better { up } else { down };
        return if improved {
            Verdict::Improved
        } else {
            Verdict::Regressed
        };
    }
    if lo >= 1.0 - floor && hi <= 1.0 + floor {
        Verdict::NoChange
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests;
