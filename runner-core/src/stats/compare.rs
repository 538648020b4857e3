//! One metric compared between two sides: summaries, ratio, verdict and (with enough samples)
//! a Mann–Whitney test.

use serde::{Deserialize, Serialize};

use super::{
    DEFAULT_RESAMPLES, DEFAULT_SEED, MIN_MW_SAMPLES, MannWhitney, NoiseFloor, Ratio, Summary,
    Verdict, largest_significant_effect, mann_whitney, paired_ratio, ratio, summarize, verdict,
};
use crate::metrics::higher_is_better;

/// The JSON schema version of comparisons.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// How comparisons are computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// The noise floor the ratio CI is judged against.
    pub floor: NoiseFloor,
    /// Significance level of the Mann–Whitney test.
    pub alpha: f64,
    /// Runs each side needs before a verdict can be decided (never below 2): one run per side
    /// decides nothing, and a run — not a request — is the replicate.
    #[serde(default = "default_min_runs")]
    pub min_runs: usize,
}

/// The default number of runs per side a decided verdict needs.
pub const DEFAULT_MIN_RUNS: usize = 3;

fn default_min_runs() -> usize {
    DEFAULT_MIN_RUNS
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
            floor: NoiseFloor::configured(0.02),
            alpha: 0.05,
            min_runs: DEFAULT_MIN_RUNS,
        }
    }
}

/// One metric compared between `base` and `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    /// Metric key (unit-bearing).
    pub metric: String,
    /// Whether larger is better for this metric.
    pub higher_is_better: bool,
    /// The base side.
    pub base: Summary,
    /// The other side.
    pub other: Summary,
    /// `median(other) / median(base)` with its CI.
    pub ratio: Option<Ratio>,
    /// The decision.
    pub verdict: Verdict,
    /// The floor it was judged against.
    pub noise_floor: NoiseFloor,
    /// One-sided test that other is better, when both sides have enough samples.
    pub mann_whitney: Option<MannWhitney>,
    /// The largest relative improvement still significant at `alpha`, when tested.
    pub largest_significant_effect: Option<f64>,
    /// Why the verdict is inconclusive when the data, not the effect, decided that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Rounds paired for the ratio (runs of both sides in the same interleaved round), when
    /// the ratio is the paired one; `None` = unpaired medians.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_rounds: Option<usize>,
    /// The lowest and highest per-round ratio, when paired: how much the difference itself
    /// moved from round to round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_ratios: Option<[f64; 2]>,
    /// When a paired comparison is inconclusive: about how many paired rounds would decide it,
    /// at the effect and round-to-round spread this run measured ([`super::rounds_to_decide`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds_to_decide: Option<super::RoundsToDecide>,
}

/// Compare one metric over interleaved rounds: `(round, value)` per run on each side. With at
/// least `opts.min_runs` rounds that both sides ran, the ratio is the paired one
/// ([`paired_ratio`]: the round effect cancels); otherwise the unpaired medians decide.
pub fn compare_rounds(
    metric: &str,
    base: &[(u32, f64)],
    other: &[(u32, f64)],
    opts: &CompareOptions,
) -> Option<Comparison> {
    let values = |xs: &[(u32, f64)]| xs.iter().map(|x| x.1).collect::<Vec<f64>>();
    let mut c = compare(metric, &values(base), &values(other), opts)?;
    let pairs: Vec<(f64, f64)> = base
        .iter()
        .filter_map(|(r, b)| other.iter().find(|(ro, _)| ro == r).map(|(_, o)| (*b, *o)))
        .collect();
    if pairs.len() >= opts.min_runs.max(2) {
        if let Some(r) = paired_ratio(&pairs) {
            c.verdict = if c.reason.is_some() {
                Verdict::Inconclusive
            } else {
                verdict(&r, c.higher_is_better, opts.floor.value)
            };
            c.ratio = Some(r);
            c.paired_rounds = Some(pairs.len());
            c.round_ratios = super::round_ratio_range(&pairs);
            if c.verdict == Verdict::Inconclusive && c.reason.is_none() {
                c.rounds_to_decide =
                    super::rounds_to_decide(&pairs, c.higher_is_better, opts.floor.value);
            }
        }
    }
    Some(c)
}

/// Compare one metric. `None` when a side has no finite value.
pub fn compare(
    metric: &str,
    base: &[f64],
    other: &[f64],
    opts: &CompareOptions,
) -> Option<Comparison> {
    let hib = higher_is_better(metric);
    let b = summarize(base, opts.resamples, opts.seed)?;
    let o = summarize(other, opts.resamples, opts.seed.wrapping_add(1))?;
    let r = ratio(base, other, opts.resamples, opts.seed.wrapping_add(2));
    let min_runs = opts.min_runs.max(2);
    let reason = (b.n < min_runs || o.n < min_runs).then(|| {
        format!(
            "{} run(s) on the base side and {} on the other: a decided verdict needs at least \
             {min_runs} runs per side (a run, not a request, is the replicate)",
            b.n, o.n
        )
    });
    let v = match (&r, &reason) {
        (Some(r), None) => verdict(r, hib, opts.floor.value),
        _ => Verdict::Inconclusive,
    };
    let enough = b.n >= MIN_MW_SAMPLES && o.n >= MIN_MW_SAMPLES;
    let mw = enough.then(|| mann_whitney(base, other, hib)).flatten();
    let effect = enough
        .then(|| largest_significant_effect(base, other, hib, opts.alpha))
        .flatten();
    Some(Comparison {
        metric: metric.to_string(),
        higher_is_better: hib,
        base: b,
        other: o,
        ratio: r,
        verdict: v,
        noise_floor: opts.floor,
        mann_whitney: mw,
        largest_significant_effect: effect,
        reason,
        paired_rounds: None,
        round_ratios: None,
        rounds_to_decide: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_drop_is_an_improvement() {
        let base = [
            1.00, 1.02, 0.99, 1.01, 1.00, 0.98, 1.01, 1.0, 0.99, 1.02, 1.0,
        ];
        let other: Vec<f64> = base.iter().map(|x| x * 0.8).collect();
        let c = compare("latency_avg_s", &base, &other, &CompareOptions::default()).unwrap();
        assert!(!c.higher_is_better);
        assert_eq!(c.verdict, Verdict::Improved);
        assert!(c.mann_whitney.unwrap().p_value < 0.001);
        assert!(c.largest_significant_effect.unwrap() > 0.1);
        let c = compare(
            "output_throughput_tps",
            &base,
            &other,
            &CompareOptions::default(),
        );
        assert_eq!(c.unwrap().verdict, Verdict::Regressed);
    }

    #[test]
    fn few_samples_skip_the_rank_test() {
        let c = compare(
            "ttft_mean_ms",
            &[1.0, 2.0],
            &[1.0, 2.0],
            &CompareOptions::default(),
        );
        let c = c.unwrap();
        assert!(c.mann_whitney.is_none() && c.largest_significant_effect.is_none());
        assert!(compare("x", &[], &[1.0], &CompareOptions::default()).is_none());
    }

    #[test]
    fn pairing_rounds_cancels_a_round_effect() {
        // A drift of ±30 % across rounds, shared by both variants; other is 5 % faster in every
        // round. Unpaired medians drown in the drift; paired rounds see it.
        let drift = [1.0, 1.3, 0.8, 1.2, 0.7, 1.1];
        let base: Vec<(u32, f64)> = drift
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u32, 100.0 * d))
            .collect();
        let other: Vec<(u32, f64)> = base.iter().map(|(r, v)| (*r, v * 1.05)).collect();
        let opts = CompareOptions::default();
        let plain: Vec<f64> = base.iter().map(|x| x.1).collect();
        let faster: Vec<f64> = other.iter().map(|x| x.1).collect();
        let c = compare("output_throughput_tps", &plain, &faster, &opts).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive);
        let c = compare_rounds("output_throughput_tps", &base, &other, &opts).unwrap();
        assert_eq!(c.verdict, Verdict::Improved, "{c:?}");
        assert_eq!(c.paired_rounds, Some(6));
        assert!((c.ratio.unwrap().value - 1.05).abs() < 1e-9);
        // Rounds only one side ran do not pair; too few pairs fall back to unpaired.
        let c = compare_rounds("output_throughput_tps", &base[..2], &other[..2], &opts).unwrap();
        assert_eq!(c.paired_rounds, None);
        assert_eq!(c.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn one_or_two_runs_per_side_decide_nothing() {
        let opts = CompareOptions::default();
        // A 2x effect, but one run per side: the CI of a single value has no width.
        let c = compare("output_throughput_tps", &[100.0], &[200.0], &opts).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(
            c.reason.as_deref().unwrap().contains("at least 3 runs"),
            "{c:?}"
        );
        let c = compare(
            "output_throughput_tps",
            &[100.0, 101.0],
            &[200.0, 199.0],
            &opts,
        );
        assert_eq!(c.unwrap().verdict, Verdict::Inconclusive);
        let three = [100.0, 101.0, 99.0];
        let c = compare(
            "output_throughput_tps",
            &three,
            &[200.0, 199.0, 201.0],
            &opts,
        );
        let c = c.unwrap();
        assert_eq!(c.verdict, Verdict::Improved);
        assert!(c.reason.is_none());
        // The floor of 2 holds even when asked for less.
        let lax = CompareOptions {
            min_runs: 1,
            ..opts
        };
        let c = compare("output_throughput_tps", &[100.0], &[200.0], &lax).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive);
    }
}
