//! How many paired rounds an inconclusive comparison would need: a planning figure that turns
//! "inconclusive" into "about N rounds would decide it, if the estimate and spread hold".
//!
//! The paired ratio's CI is `m̂ ± t975(k−1)·s/√k` on the per-round log ratios. Taking the
//! measured mean `m` as the true log ratio and the measured spread `s` as the true one, the
//! estimate after `k` rounds is about `N(m, s²/k)`, and the chance that its CI clears the noise
//! floor's band `[ln(1−f), ln(1+f)]` is, with `se = s/√k` and `t = t975(k−1)`:
//! - beyond the band's upper edge (a change): `Φ((m − ln(1+f))/se − t)`; below the lower edge
//!   likewise;
//! - inside the band (`no_change` needs both CI ends inside):
//!   `Φ((ln(1+f) − m)/se − t) + Φ((m − ln(1−f))/se − t) − 1`.
//!
//! The figure is the smallest `k` where that chance reaches 90 %. It is an estimate from the
//! run's own numbers (the measured effect stands in for the true one), and says so wherever it
//! is shown.

use serde::{Deserialize, Serialize};

use super::{Verdict, log_ratio_moments, t975};

/// The most rounds worth naming; beyond it the answer is "more than this".
pub const MAX_ROUNDS: u32 = 1000;

/// The chance to decide that the figure asks for.
const CHANCE: f64 = 0.9;

/// What more rounds would likely show, and how many it takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RoundsToDecide {
    /// Paired rounds in all (the ones that ran included) for a 90 % chance to decide; `None`
    /// when more than [`MAX_ROUNDS`] (the estimate sits on the band's edge, or the spread
    /// dwarfs the distance to it).
    pub rounds: Option<u32>,
    /// The verdict those rounds would likely give: the measured direction's change when the
    /// estimate lies beyond the noise floor, `no_change` when it lies within.
    pub toward: Verdict,
    /// The standard deviation of the per-round log ratios it assumes.
    pub log_sd: f64,
}

/// The estimate for paired `(base, other)` values judged against `floor` (relative), or `None`
/// without two finite, positive pairs.
pub fn rounds_to_decide(
    pairs: &[(f64, f64)],
    higher_is_better: bool,
    floor: f64,
) -> Option<RoundsToDecide> {
    if !(0.0..1.0).contains(&floor) {
        return None;
    }
    let (_, m, s) = log_ratio_moments(pairs)?;
    if !m.is_finite() || !s.is_finite() {
        return None;
    }
    let (up, down) = ((1.0 + floor).ln(), (1.0 - floor).ln());
    let toward = if m > up {
        if higher_is_better {
            Verdict::Improved
        } else {
            Verdict::Regressed
        }
    } else if m < down {
        if higher_is_better {
            Verdict::Regressed
        } else {
            Verdict::Improved
        }
    } else {
        Verdict::NoChange
    };
    let rounds = (2..=MAX_ROUNDS).find(|&k| chance(m, s, up, down, k) >= CHANCE);
    Some(RoundsToDecide {
        rounds,
        toward,
        log_sd: s,
    })
}

/// The chance that `k` rounds decide, as the module says.
fn chance(m: f64, s: f64, up: f64, down: f64, k: u32) -> f64 {
    let t = t975(k as usize - 1);
    // Φ(x) = P(Z ≤ x); a zero spread makes the estimate exact.
    let phi = |room: f64| {
        if s == 0.0 {
            if room > 0.0 { 1.0 } else { 0.0 }
        } else {
            super::mann_whitney::upper_tail(-(room / (s / f64::from(k).sqrt()) - t))
        }
    };
    if m > up {
        phi(m - up)
    } else if m < down {
        phi(down - m)
    } else {
        (phi(up - m) + phi(m - down) - 1.0).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rounds whose log ratios are `mean ± sd` alternately (sample sd ≈ `sd`).
    fn pairs(mean: f64, sd: f64, n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let l = mean + if i % 2 == 0 { sd } else { -sd };
                (10.0, 10.0 * l.exp())
            })
            .collect()
    }

    #[test]
    fn the_last_gpu_run_would_have_needed_about_fifteen_rounds() {
        // The known-effect run on the GPU host: agent/baseline median TPOT per round.
        let r = [1.95, 1.96, 1.10, 1.05, 1.06, 1.74];
        let p: Vec<(f64, f64)> = r.iter().map(|x| (1.0, *x)).collect();
        let d = rounds_to_decide(&p, false, 0.071).unwrap();
        assert_eq!(d.toward, Verdict::Regressed);
        assert!((d.log_sd - 0.313).abs() < 0.01, "{}", d.log_sd);
        let k = d.rounds.unwrap();
        assert!((14..=17).contains(&k), "{k}");
    }

    #[test]
    fn more_spread_or_less_room_needs_more_rounds_and_within_the_floor_points_to_no_change() {
        let base = rounds_to_decide(&pairs(0.2, 0.1, 6), false, 0.02).unwrap();
        let noisier = rounds_to_decide(&pairs(0.2, 0.2, 6), false, 0.02).unwrap();
        let smaller = rounds_to_decide(&pairs(0.08, 0.1, 6), false, 0.02).unwrap();
        assert!(noisier.rounds.unwrap() > base.rounds.unwrap());
        assert!(smaller.rounds.unwrap() > base.rounds.unwrap());
        // Throughput up is an improvement; latency up a regression.
        assert_eq!(
            rounds_to_decide(&pairs(0.2, 0.1, 6), true, 0.02)
                .unwrap()
                .toward,
            Verdict::Improved
        );
        assert_eq!(
            rounds_to_decide(&pairs(-0.2, 0.1, 6), false, 0.02)
                .unwrap()
                .toward,
            Verdict::Improved
        );
        let within = rounds_to_decide(&pairs(0.0, 0.05, 6), false, 0.05).unwrap();
        assert_eq!(within.toward, Verdict::NoChange);
        assert!(within.rounds.is_some());
        // On the band's edge no number of rounds decides it.
        let edge = rounds_to_decide(&pairs(1.05f64.ln(), 0.05, 6), false, 0.05).unwrap();
        assert_eq!(edge.rounds, None);
        // No spread: the fewest rounds a CI needs.
        assert_eq!(
            rounds_to_decide(&pairs(0.3, 0.0, 3), false, 0.02)
                .unwrap()
                .rounds,
            Some(2)
        );
    }

    #[test]
    fn the_estimate_holds_in_simulation() {
        // Draw rounds with the assumed effect and spread: at the named count, the paired CI
        // decides the named way in about 90 % of trials, for a change and for no change.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (effect, sd, floor, want) in [
            (0.15f64, 0.12, 0.03, Verdict::Regressed),
            (0.0, 0.05, 0.05, Verdict::NoChange),
            (0.02, 0.04, 0.05, Verdict::NoChange),
        ] {
            let d = rounds_to_decide(&pairs(effect, sd, 40), false, floor).unwrap();
            assert_eq!(d.toward, want);
            let k = d.rounds.unwrap() as usize;
            let mut normal = || {
                let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            };
            let trials = 4000;
            let decided = (0..trials)
                .filter(|_| {
                    let p: Vec<(f64, f64)> = (0..k)
                        .map(|_| (1.0, (effect + sd * normal()).exp()))
                        .collect();
                    let r = super::super::paired_ratio(&p).unwrap();
                    super::super::verdict(&r, false, floor) == want
                })
                .count();
            let rate = decided as f64 / trials as f64;
            assert!(
                (0.87..=0.95).contains(&rate),
                "{rate} at {k} rounds for {want:?}"
            );
            // The count is the smallest: one round fewer falls short of the chance.
            let (_, m, s) = log_ratio_moments(&pairs(effect, sd, 40)).unwrap();
            let (up, down) = ((1.0 + floor).ln(), (1.0 - floor).ln());
            assert!(chance(m, s, up, down, k as u32 - 1) < CHANCE);
        }
    }

    #[test]
    fn overflowing_ratios_give_no_estimate_rather_than_nan() {
        let p = [(1e-300, 1e300), (1.0, 1.0), (1e-300, 1e300)];
        let d = rounds_to_decide(&p, false, 0.02);
        assert!(d.is_none_or(|d| d.log_sd.is_finite()), "{d:?}");
    }
}
