//! Verdict error rates and power under per-run noise like the real engine's, by seeded
//! simulation.
//!
//! On a GPU host (real vLLM, tiny model) one build's TPOT varied 5.9–11.2 ms across restarts
//! and about ±15 % without them, and round 0 after a start was slower for every variant. So a
//! simulated run of variant `v` in round `r` is
//! `center_v × round_r × (1 + run_cv·N(0,1))`, where `round_r = (1 + round_cv·N(0,1))`, shared
//! by every variant of the round, and round 0 is `first_round` slower.
//!
//! A third term, `effect_cv`, makes the difference itself vary by round: the other side's run is
//! also multiplied by `(1 + effect_cv·N(0,1))`, drawn per round (A/A pairs included: on the
//! host below even same-build pairs moved more than run noise explains). On the GPU host (warm servers,
//! tiny CPU-bound model, 100-prompt runs, 6 rounds) the same-build runs gave a round CV of
//! 16.5 % and a within-round run CV of 10 %, and the per-round agent/baseline log-ratio had an
//! SD of 0.31 where run noise alone explains 0.14: an interaction of about 0.28
//! (`POWER_RUN_CV=0.10 POWER_ROUND_CV=0.165 POWER_EFFECT_CV=0.28` replays that host).
//!
//! Two estimators of the ratio, judged against the ±2 % floor on a lower-is-better latency:
//! - `unpaired`: medians of each side with a 95 % bootstrap CI (`stats::ratio`, what a report
//!   did before pairing);
//! - `paired`: per-round ratios, geometric mean, 95 % Student-t CI (`stats::paired_ratio`,
//!   what an interleaved run allows).
//!
//! Printed per repeats-per-side: the A/A false-call rate and the detection rate of a real 10 %
//! effect, per estimator, then the fewest repeats with ≥ 90 % power and ≤ 5 % false calls.
//!
//! `cargo bench -p runner-core --bench verdict_power`. Environment: `POWER_SIMS` (trials per
//! cell, default 400), `POWER_RUN_CV` (0.12), `POWER_ROUND_CV` (0.05), `POWER_FIRST_ROUND`
//! (0.07), `POWER_EFFECT_CV` (0), `POWER_REPEATS` (comma-separated, default 3,6,10,15,20,30,40).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner_core::stats::{Verdict, paired_ratio, ratio, verdict};

const FLOOR: f64 = 0.02;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

struct Noise {
    run_cv: f64,
    round_cv: f64,
    first_round: f64,
    effect_cv: f64,
}

/// One interleaved task: `repeats` rounds of (baseline, other); `effect` multiplies the other
/// side's latency (0.9 = 10 % faster).
fn task(repeats: usize, effect: f64, noise: &Noise, rng: &mut ChaCha8Rng) -> Vec<(f64, f64)> {
    (0..repeats)
        .map(|r| {
            let first = if r == 0 { 1.0 + noise.first_round } else { 1.0 };
            let round = first * (1.0 + noise.round_cv * normal(rng));
            // Drawn only when asked for, so the default figures stay those of earlier runs.
            let shift = match noise.effect_cv > 0.0 {
                true => (1.0 + noise.effect_cv * normal(rng)).max(0.05),
                false => 1.0,
            };
            let mut run =
                |center: f64| center * round * (1.0 + noise.run_cv * normal(rng)).max(0.05);
            (run(10.0), run(10.0 * effect * shift))
        })
        .collect()
}

/// (false-call rate, detection rate) of one estimator over `sims` trials of each scenario.
fn rates(
    repeats: usize,
    sims: usize,
    noise: &Noise,
    seed: u64,
    judge: impl Fn(&[(f64, f64)], u64) -> Verdict,
) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut false_calls = 0;
    let mut detected = 0;
    for i in 0..sims {
        let aa = task(repeats, 1.0, noise, &mut rng);
        if judge(&aa, i as u64).is_decided() && judge(&aa, i as u64) != Verdict::NoChange {
            false_calls += 1;
        }
        let effect = task(repeats, 0.9, noise, &mut rng);
        if judge(&effect, i as u64) == Verdict::Improved {
            detected += 1;
        }
    }
    (
        false_calls as f64 / sims as f64,
        detected as f64 / sims as f64,
    )
}

fn unpaired(pairs: &[(f64, f64)], seed: u64) -> Verdict {
    let base: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let other: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    match ratio(&base, &other, 500, seed) {
        Some(r) if pairs.len() >= 3 => verdict(&r, false, FLOOR),
        _ => Verdict::Inconclusive,
    }
}

fn paired(pairs: &[(f64, f64)], _seed: u64) -> Verdict {
    match paired_ratio(pairs) {
        Some(r) if pairs.len() >= 3 => verdict(&r, false, FLOOR),
        _ => Verdict::Inconclusive,
    }
}

fn main() {
    let sims: usize = env_or("POWER_SIMS", 400);
    let noise = Noise {
        run_cv: env_or("POWER_RUN_CV", 0.12),
        round_cv: env_or("POWER_ROUND_CV", 0.05),
        first_round: env_or("POWER_FIRST_ROUND", 0.07),
        effect_cv: env_or("POWER_EFFECT_CV", 0.0),
    };
    let repeats: Vec<usize> = std::env::var("POWER_REPEATS")
        .unwrap_or_else(|_| "3,6,10,15,20,30,40".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "verdict power: run CV {:.0} %, round CV {:.0} %, round 0 +{:.0} %, effect × round CV \
         {:.0} %, floor ±{:.0} %, {sims} trials per cell, 10 % true effect on a lower-is-better \
         latency",
        noise.run_cv * 100.0,
        noise.round_cv * 100.0,
        noise.first_round * 100.0,
        noise.effect_cv * 100.0,
        FLOOR * 100.0
    );
    println!(
        "{:>8} | {:>18} {:>18} | {:>18} {:>18}",
        "repeats", "unpaired A/A false", "unpaired detect", "paired A/A false", "paired detect"
    );
    let started = Instant::now();
    let mut enough: [Option<usize>; 2] = [None, None];
    for &n in &repeats {
        let u = rates(n, sims, &noise, 11, unpaired);
        let p = rates(n, sims, &noise, 11, paired);
        for (i, (f, d)) in [u, p].into_iter().enumerate() {
            if enough[i].is_none() && d >= 0.9 && f <= 0.05 {
                enough[i] = Some(n);
            }
        }
        println!(
            "{n:>8} | {:>17.1}% {:>17.1}% | {:>17.1}% {:>17.1}%",
            u.0 * 100.0,
            u.1 * 100.0,
            p.0 * 100.0,
            p.1 * 100.0
        );
    }
    let say = |x: Option<usize>| x.map_or("more than tried".to_string(), |n| n.to_string());
    println!(
        "repeats per side for ≥ 90 % power at 10 % with ≤ 5 % false calls: unpaired {}, paired {}",
        say(enough[0]),
        say(enough[1])
    );
    if let (Some(u), Some(p)) = (enough[0], enough[1]) {
        println!(
            "paired / unpaired repeats needed: {:.2}",
            p as f64 / u as f64
        );
    }
    println!("({:.1} s)", started.elapsed().as_secs_f64());
}
