//! Adaptive repeats vs a fixed 20-repeat scheme, by seeded simulation.
//!
//! Each simulated task draws baseline and human values as `center × (1 + 0.03·N(0,1))`
//! (≈3 % run-to-run noise) on a higher-is-better metric, one interleaved round at a time.
//!
//! - adaptive: `stats::should_continue` after every round (min 3, max 20 repeats per side,
//!   Bonferroni-widened CI per look, floor ±2 %);
//! - fixed-20: 20 repeats per side, one look with the report's 95 % CI (`stats::ratio`).
//!
//! Scenarios: A/A (no true difference: any improved/regressed call is false) and a real 10 %
//! speedup (a detection is an `improved` call). Printed per scheme: the false-call rate, the
//! detection rate, the share decided, the mean GPU runs per task (repeats × 2 variants) and
//! the GPU runs spent per decided verdict, with adaptive / fixed ratios.
//!
//! Run with `cargo bench -p runner-core --bench adaptive_repeats`. `ADAPTIVE_SIMS` sets the
//! simulated tasks per scenario (default 1000); `ADAPTIVE_NOISE` the relative noise (0.03);
//! `ADAPTIVE_FLOORS` the floors, comma-separated (0.02,0.05).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner_core::stats::{AdaptiveOptions, Decision, Verdict, ratio, should_continue, verdict};

const FIXED_REPEATS: usize = 20;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn draw(center: f64, noise: f64, rng: &mut ChaCha8Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    center * (1.0 + noise * z)
}

/// The outcome of one simulated task: its verdict and the repeats per side it used.
struct Outcome {
    verdict: Verdict,
    repeats: usize,
}

fn adaptive(effect: f64, noise: f64, opts: &AdaptiveOptions, rng: &mut ChaCha8Rng) -> Outcome {
    let (mut base, mut other) = (Vec::new(), Vec::new());
    loop {
        base.push(draw(100.0, noise, rng));
        other.push(draw(100.0 * effect, noise, rng));
        if let Decision::Stop {
            verdict, repeats, ..
        } = should_continue(&base, &other, true, opts)
        {
            return Outcome { verdict, repeats };
        }
    }
}

fn fixed(effect: f64, noise: f64, floor: f64, seed: u64, rng: &mut ChaCha8Rng) -> Outcome {
    let base: Vec<f64> = (0..FIXED_REPEATS)
        .map(|_| draw(100.0, noise, rng))
        .collect();
    let other: Vec<f64> = (0..FIXED_REPEATS)
        .map(|_| draw(100.0 * effect, noise, rng))
        .collect();
    let v = ratio(&base, &other, 2000, seed)
        .map(|r| verdict(&r, true, floor))
        .unwrap_or(Verdict::Inconclusive);
    Outcome {
        verdict: v,
        repeats: FIXED_REPEATS,
    }
}

/// Aggregates over the simulated tasks of one scenario and scheme.
#[derive(Default)]
struct Tally {
    n: usize,
    improved: usize,
    regressed: usize,
    no_change: usize,
    runs: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        self.n += 1;
        self.runs += 2 * o.repeats;
        match o.verdict {
            Verdict::Improved => self.improved += 1,
            Verdict::Regressed => self.regressed += 1,
            Verdict::NoChange => self.no_change += 1,
            Verdict::Inconclusive => {}
        }
    }
    fn rate(&self, k: usize) -> f64 {
        k as f64 / self.n.max(1) as f64
    }
    fn decided(&self) -> usize {
        self.improved + self.regressed + self.no_change
    }
    fn mean_runs(&self) -> f64 {
        self.runs as f64 / self.n.max(1) as f64
    }
    /// GPU runs spent per decided verdict; `None` when nothing was decided.
    fn runs_per_decided(&self) -> Option<f64> {
        (self.decided() > 0).then(|| self.runs as f64 / self.decided() as f64)
    }
}

fn opt_text(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "n/a (none decided)".into())
}

fn opt_ratio(a: Option<f64>, f: Option<f64>) -> String {
    match (a, f) {
        (Some(a), Some(f)) => ratio_text(a, f),
        _ => "-".into(),
    }
}

fn ratio_text(a: f64, f: f64) -> String {
    if f > 0.0 {
        format!("{:.2}", a / f)
    } else if a > 0.0 {
        "inf".into()
    } else {
        "-".into()
    }
}

fn main() {
    let sims: usize = env_or("ADAPTIVE_SIMS", 1000);
    let noise: f64 = env_or("ADAPTIVE_NOISE", 0.03);
    let floors: Vec<f64> = std::env::var("ADAPTIVE_FLOORS")
        .unwrap_or_else(|_| "0.02,0.05".into())
        .split(',')
        .filter_map(|f| f.trim().parse().ok())
        .collect();
    let t0 = Instant::now();
    for floor in floors {
        simulate(sims, noise, floor);
    }
    println!("(simulated in {:.1} s)", t0.elapsed().as_secs_f64());
}

fn simulate(sims: usize, noise: f64, floor: f64) {
    let opts = AdaptiveOptions {
        floor,
        ..AdaptiveOptions::default()
    };
    println!(
        "## floor ±{:.1} %: adaptive (min {} / max {} repeats, per-look CI level {:.4} over {} looks, \
         alpha {}) vs fixed-{FIXED_REPEATS}; {sims} simulated tasks per scenario, noise {:.1} %",
        floor * 100.0,
        opts.min_repeats,
        opts.max_repeats,
        opts.per_look_level(),
        opts.looks(),
        opts.alpha,
        noise * 100.0,
    );
    let mut rows = Vec::new();
    for (name, effect) in [("A/A (no difference)", 1.0), ("real 10 % speedup", 1.10)] {
        let (mut a, mut f) = (Tally::default(), Tally::default());
        let mut rng = ChaCha8Rng::seed_from_u64(0xada9 + (effect * 1000.0) as u64);
        for i in 0..sims {
            let o = AdaptiveOptions {
                seed: opts.seed.wrapping_add(i as u64 * 1009),
                ..opts
            };
            a.add(&adaptive(effect, noise, &o, &mut rng));
            f.add(&fixed(effect, noise, floor, o.seed, &mut rng));
        }
        rows.push((name, effect, a, f));
    }
    println!();
    println!(
        "| scenario | scheme | false calls | detection | no_change | decided | GPU runs/task | GPU runs per decided verdict |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, effect, a, f) in &rows {
        for (scheme, t) in [("adaptive", a), ("fixed-20", f)] {
            let false_calls = if *effect == 1.0 {
                format!("{:.1} %", 100.0 * t.rate(t.improved + t.regressed))
            } else {
                format!("{:.1} %", 100.0 * t.rate(t.regressed))
            };
            let detection = if *effect == 1.0 {
                "-".to_string()
            } else {
                format!("{:.1} %", 100.0 * t.rate(t.improved))
            };
            println!(
                "| {name} | {scheme} | {false_calls} | {detection} | {:.1} % | {:.1} % | {:.1} | {} |",
                100.0 * t.rate(t.no_change),
                100.0 * t.rate(t.decided()),
                t.mean_runs(),
                opt_text(t.runs_per_decided())
            );
        }
    }
    println!();
    println!("closing figures (adaptive / fixed-20):");
    for (name, effect, a, f) in &rows {
        let (ra, rf) = if *effect == 1.0 {
            (
                a.rate(a.improved + a.regressed),
                f.rate(f.improved + f.regressed),
            )
        } else {
            (a.rate(a.improved), f.rate(f.improved))
        };
        let what = if *effect == 1.0 {
            "false-call rate"
        } else {
            "detection rate"
        };
        println!(
            "  {name}: {what} {:.1} % vs {:.1} % (ratio {}); GPU runs/task {:.1} vs {:.1} (ratio {}); \
             GPU runs per decided verdict {} vs {} (ratio {})",
            100.0 * ra,
            100.0 * rf,
            ratio_text(ra, rf),
            a.mean_runs(),
            f.mean_runs(),
            ratio_text(a.mean_runs(), f.mean_runs()),
            opt_text(a.runs_per_decided()),
            opt_text(f.runs_per_decided()),
            opt_ratio(a.runs_per_decided(), f.runs_per_decided()),
        );
    }
    println!();
}
