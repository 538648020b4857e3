//! Verdict error rates measured on the stand-in engine with controlled speeds: every sample is a
//! real `bench latency` run of the stand-in (its own timing noise plus a seeded 2 % jitter),
//! parsed by perf-runner's parser and judged by its statistics at the default repeats.
//!
//! A/A comparisons (the same build twice) must call `improved`/`regressed` in at most 5 % of
//! trials; a real 10 % speedup must be detected in at least 90 %.

use std::path::Path;
use std::process::Command;

use perf_runner_tests::standin::{StandinConfig, standin_binary};
use runner_core::benchmark::{OutputSource, RunOutput, SourceKind};
use runner_core::parse::parse_output;
use runner_core::settings::Settings;
use runner_core::spec::Mode;
use runner_core::stats::{CompareOptions, NoiseFloor, Verdict, compare};

const TRIALS: usize = 60;

/// One stand-in latency run at `speed` with noise seed `seed`: its `latency_avg_s`.
fn latency(bin: &Path, dir: &Path, speed: f64, seed: u64) -> f64 {
    let cfg = StandinConfig {
        speed,
        seed,
        startup_ms: 0,
        tokens_per_s: 2000.0,
        ttft_ms: 2.0,
        jitter: 0.02,
        ..StandinConfig::default()
    };
    let path = dir.join(format!("c-{seed}.json"));
    std::fs::write(&path, cfg.to_json()).unwrap();
    let out = Command::new(bin)
        .args([
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "latency",
            "--model",
            "m/x",
        ])
        .args([
            "--input-len",
            "8",
            "--output-len",
            "16",
            "--batch-size",
            "1",
        ])
        .args(["--num-iters", "3", "--num-iters-warmup", "0"])
        .env("VLLM_STANDIN_CONFIG", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let parsed = parse_output(
        Some(Mode::Latency),
        &RunOutput {
            sources: vec![OutputSource {
                name: "stdout".into(),
                kind: SourceKind::Stdout,
                text,
            }],
            exit_code: Some(0),
        },
    );
    parsed.metrics.get("latency_avg_s").expect("latency parsed")
}

#[test]
fn aa_false_calls_and_speedup_detection_at_the_default_repeats() {
    let bin = standin_binary();
    let dir = tempfile::tempdir().unwrap();
    let repeats = Settings::embedded().plan.repeats as usize;
    let opts = |t: usize| CompareOptions {
        seed: t as u64,
        floor: NoiseFloor::configured(Settings::embedded().engine.noise_floor),
        resamples: 1000,
        ..CompareOptions::default()
    };
    let mut seed = 0u64;
    let mut side = |speed: f64| -> Vec<f64> {
        (0..repeats)
            .map(|_| {
                seed += 1;
                latency(&bin, dir.path(), speed, seed)
            })
            .collect()
    };
    let (mut false_calls, mut detected) = (0, 0);
    for t in 0..TRIALS {
        // Interleaved as the engine runs them: base, other, base, other …
        let (a, b) = (side(1.0), side(1.0));
        let c = compare("latency_avg_s", &a, &b, &opts(t)).unwrap();
        if matches!(c.verdict, Verdict::Improved | Verdict::Regressed) {
            false_calls += 1;
        }
        let (base, fast) = (side(1.0), side(1.1));
        let c = compare("latency_avg_s", &base, &fast, &opts(t)).unwrap();
        if c.verdict == Verdict::Improved {
            detected += 1;
        }
    }
    let fp = false_calls as f64 / TRIALS as f64;
    let power = detected as f64 / TRIALS as f64;
    eprintln!(
        "stand-in, {repeats} repeats, {TRIALS} trials: A/A false calls {fp:.3}, 10 % speedup detected {power:.3}"
    );
    assert!(fp <= 0.05, "A/A false-call rate {fp}");
    assert!(power >= 0.90, "detection rate {power}");
}
