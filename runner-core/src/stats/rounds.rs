//! How steady the host was across interleaved rounds.
//!
//! Pairing runs by round cancels a shift that every build shares, but not one that changes the
//! difference itself. On a GPU host with a CPU-bound model, three of six rounds ran every build
//! but one 15–30 % slower, and the per-round agent/baseline ratio fell from 1.95 to 1.05 in
//! those rounds: the verdict stayed inconclusive, and nothing in the report said why. These
//! figures say it: each run's value over its variant's median, the median of those per round
//! (the round's level), and how far the levels spread. They describe the run; they decide
//! nothing.

use serde::{Deserialize, Serialize};

use super::median;

/// Levels that spread more than this (max/min − 1) mark the rounds as unsteady.
pub const UNSTEADY_SPREAD: f64 = 0.15;

/// One round's level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RoundLevel {
    /// The round (repeat index).
    pub round: u32,
    /// Median over the round's runs of value / that variant's median (1 = a typical round).
    pub level: f64,
    /// Runs in the round that counted.
    pub runs: usize,
    /// Median busy share of the runner host's CPU over the round's measured clients, percent,
    /// where recorded (`host_cpu_busy_pct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpu_busy_pct: Option<f64>,
    /// The same for the share stolen by the hypervisor (`host_cpu_steal_pct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpu_steal_pct: Option<f64>,
}

/// The rounds' levels and their spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RoundLevels {
    /// Per round, in round order.
    pub levels: Vec<RoundLevel>,
    /// Highest level / lowest level − 1.
    pub spread: f64,
    /// Whether the spread is above [`UNSTEADY_SPREAD`].
    pub unsteady: bool,
}

/// The levels of the rounds that `sides` (one list of `(round, value)` per variant) ran. A side
/// needs 2 finite positive values to count; a round needs 2 runs; at least 3 rounds are needed.
pub fn round_levels(sides: &[Vec<(u32, f64)>]) -> Option<RoundLevels> {
    let mut by_round: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for side in sides {
        let ok: Vec<(u32, f64)> = side
            .iter()
            .copied()
            .filter(|(_, v)| v.is_finite() && *v > 0.0)
            .collect();
        if ok.len() < 2 {
            continue;
        }
        let Some(m) = median(&ok.iter().map(|x| x.1).collect::<Vec<_>>()) else {
            continue;
        };
        for (r, v) in ok {
            by_round.entry(r).or_default().push(v / m);
        }
    }
    let levels: Vec<RoundLevel> = by_round
        .into_iter()
        .filter(|(_, xs)| xs.len() >= 2)
        .filter_map(|(round, xs)| {
            Some(RoundLevel {
                round,
                level: median(&xs)?,
                runs: xs.len(),
                host_cpu_busy_pct: None,
                host_cpu_steal_pct: None,
            })
        })
        .collect();
    if levels.len() < 3 {
        return None;
    }
    let lv: Vec<f64> = levels.iter().map(|l| l.level).collect();
    let (lo, hi) = lv
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let spread = hi / lo - 1.0;
    Some(RoundLevels {
        levels,
        spread,
        unsteady: spread > UNSTEADY_SPREAD,
    })
}

/// The lowest and highest per-round ratio `other / base` over the rounds both sides ran.
pub fn round_ratio_range(base: &[(u32, f64)], other: &[(u32, f64)]) -> Option<[f64; 2]> {
    let ratios: Vec<f64> = base
        .iter()
        .filter_map(|(r, b)| {
            other
                .iter()
                .find(|(ro, _)| ro == r)
                .map(|(_, o)| o / b)
                .filter(|x| x.is_finite() && *x > 0.0)
        })
        .collect();
    if ratios.len() < 2 {
        return None;
    }
    let lo = ratios.iter().copied().fold(f64::MAX, f64::min);
    let hi = ratios.iter().copied().fold(f64::MIN, f64::max);
    Some([lo, hi])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(xs: &[f64]) -> Vec<(u32, f64)> {
        xs.iter().enumerate().map(|(r, v)| (r as u32, *v)).collect()
    }

    #[test]
    fn the_gpu_hosts_disturbed_rounds_are_found() {
        // Median TPOT (ms) per round on the GPU host: baseline, human, A/A, agent.
        let sides = vec![
            side(&[5.52, 5.53, 6.93, 8.05, 7.48, 5.46]),
            side(&[5.40, 5.78, 9.50, 6.45, 7.53, 5.46]),
            side(&[5.78, 5.27, 6.36, 7.58, 7.76, 5.60]),
            side(&[10.76, 10.85, 7.62, 8.47, 7.89, 9.51]),
        ];
        let l = round_levels(&sides).unwrap();
        assert_eq!(l.levels.len(), 6);
        assert!(l.unsteady, "{l:?}");
        assert!((0.30..0.40).contains(&l.spread), "{l:?}");
        let slow: Vec<u32> = l
            .levels
            .iter()
            .filter(|x| x.level > 1.05)
            .map(|x| x.round)
            .collect();
        assert_eq!(slow, vec![2, 3, 4], "{l:?}");
        let r = round_ratio_range(&sides[0], &sides[3]).unwrap();
        assert!((r[0] - 8.47 / 8.05).abs() < 1e-12 && (r[1] - 10.85 / 5.53).abs() < 1e-12);
    }

    #[test]
    fn a_steady_host_is_steady_and_short_runs_say_nothing() {
        let sides = vec![
            side(&[10.0, 10.2, 9.9, 10.1]),
            side(&[12.0, 11.9, 12.2, 12.1]),
        ];
        let l = round_levels(&sides).unwrap();
        assert!(!l.unsteady && l.spread < 0.05, "{l:?}");
        // Two rounds, one run a side, or values that are not positive: no levels.
        assert_eq!(round_levels(&[side(&[1.0, 2.0]), side(&[1.0, 2.0])]), None);
        assert_eq!(round_levels(&[side(&[1.0]), side(&[2.0])]), None);
        assert_eq!(round_levels(&[side(&[0.0, f64::NAN, -1.0, 0.0])]), None);
        assert_eq!(round_ratio_range(&side(&[1.0]), &side(&[2.0])), None);
    }
}
