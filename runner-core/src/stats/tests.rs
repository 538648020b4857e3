use super::*;
use rand::Rng;

/// `n` draws of `center × (1 + noise·N(0,1))`, Box–Muller from a seeded generator.
fn noisy(center: f64, noise: f64, n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            center * (1.0 + noise * z)
        })
        .collect()
}

#[test]
fn median_and_summary() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(&[f64::NAN]), None);
    let s = summarize(&[10.0, 11.0, 9.0, 10.5, 9.5], 500, 1).unwrap();
    assert_eq!((s.n, s.median), (5, 10.0));
    assert!(s.ci[0] <= 10.0 && s.ci[1] >= 10.0 && s.ci[0] >= 9.0 && s.ci[1] <= 11.0);
    assert_eq!(summarize(&[], 10, 1), None);
}

#[test]
fn bootstrap_is_reproducible_by_seed() {
    let xs = [1.0, 2.0, 3.0, 4.0, 10.0, 2.5];
    assert_eq!(summarize(&xs, 300, 7), summarize(&xs, 300, 7));
    assert_eq!(ratio(&xs, &xs, 300, 7), ratio(&xs, &xs, 300, 7));
}

#[test]
fn verdicts_are_direction_aware() {
    let r = |lo, hi| Ratio {
        value: (lo + hi) / 2.0,
        ci: [lo, hi],
    };
    assert_eq!(verdict(&r(1.08, 1.12), true, 0.02), Verdict::Improved);
    assert_eq!(verdict(&r(1.08, 1.12), false, 0.02), Verdict::Regressed);
    assert_eq!(verdict(&r(0.85, 0.9), false, 0.02), Verdict::Improved);
    assert_eq!(verdict(&r(0.99, 1.01), true, 0.02), Verdict::NoChange);
    assert_eq!(verdict(&r(0.97, 1.08), true, 0.02), Verdict::Inconclusive);
    assert_eq!(verdict(&r(1.01, 1.03), true, 0.02), Verdict::Inconclusive);
}

#[test]
fn aa_floor_is_at_least_the_minimum() {
    let aa = Ratio {
        value: 1.0,
        ci: [0.97, 1.01],
    };
    let f = NoiseFloor::from_aa(&aa, 0.01);
    assert!((f.value - 0.03).abs() < 1e-12);
    assert_eq!(f.source, FloorSource::AaMeasured);
}

#[test]
fn mann_whitney_detects_shifts_and_not_noise() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let base = noisy(100.0, 0.03, 30, &mut rng);
    let faster = noisy(110.0, 0.03, 30, &mut rng);
    let mw = mann_whitney(&base, &faster, true).unwrap();
    assert!(mw.p_value < 1e-6, "{mw:?}");
    let mw = mann_whitney(&faster, &base, true).unwrap();
    assert!(mw.p_value > 0.99, "{mw:?}");
    // Lower-is-better: a smaller latency is the improvement.
    assert!(mann_whitney(&faster, &base, false).unwrap().p_value < 1e-6);
    let effect = largest_significant_effect(&base, &faster, true, 0.05).unwrap();
    assert!(effect > 0.03 && effect < 0.10, "{effect}");
    assert!(
        mann_whitney(&[1.0; 5], &[1.0; 5], true).is_none(),
        "all ties"
    );
    assert!(mann_whitney(&[], &[1.0], true).is_none());
}

#[test]
fn erfc_matches_known_values() {
    assert!((mann_whitney::upper_tail(0.0) - 0.5).abs() < 1e-7);
    assert!((mann_whitney::upper_tail(1.959_964) - 0.025).abs() < 1e-6);
    assert!((mann_whitney::upper_tail(-1.644_854) - 0.95).abs() < 1e-6);
}

/// Error rates at the default repeats (6 per side, `plan.repeats`) with 3 % run-to-run noise: A/A comparisons
/// call a change in at most 5 % of trials; a real 10 % speedup is detected in at least 90 %.
#[test]
fn error_rates_at_default_repeats() {
    const TRIALS: usize = 400;
    const REPEATS: usize = 6;
    let floor = 0.02;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (mut false_calls, mut detected) = (0, 0);
    for t in 0..TRIALS {
        let a = noisy(1000.0, 0.03, REPEATS, &mut rng);
        let b = noisy(1000.0, 0.03, REPEATS, &mut rng);
        let r = ratio(&a, &b, 1000, t as u64).unwrap();
        if matches!(
            verdict(&r, true, floor),
            Verdict::Improved | Verdict::Regressed
        ) {
            false_calls += 1;
        }
        let fast = noisy(1100.0, 0.03, REPEATS, &mut rng);
        let r = ratio(&a, &fast, 1000, t as u64).unwrap();
        if verdict(&r, true, floor) == Verdict::Improved {
            detected += 1;
        }
    }
    let fp = false_calls as f64 / TRIALS as f64;
    let power = detected as f64 / TRIALS as f64;
    eprintln!("A/A false-call rate {fp}, 10 % detection rate {power}");
    assert!(fp <= 0.05, "A/A false-call rate {fp}");
    assert!(power >= 0.90, "10 % speedup detection rate {power}");
}
