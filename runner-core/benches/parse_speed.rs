//! Parse speed over ~10 MB of mixed log (engine logs, progress bars, docker pull noise,
//! tracebacks) built from the parse fixtures. Target: under 100 ms per 10 MB in release.
//!
//! Run: `cargo bench -p runner-core --bench parse_speed`. In debug builds the log is shrunk to
//! 1 MB so a debug run stays quick.

use std::time::{Duration, Instant};

use runner_core::benchmark::{OutputSource, ParseOutcome, RunOutput, SourceKind};
use runner_core::parse::{benchmark_for, parse_output};
use runner_core::spec::Mode;

const NOISE: &[&str] = &[
    include_str!("../tests/fixtures/parse/noise_never_metrics.txt"),
    include_str!("../tests/fixtures/parse/fail_engine_log_only.txt"),
    include_str!("../tests/fixtures/parse/fail_import_error.txt"),
    include_str!("../tests/fixtures/parse/fail_version_warning_is_not_import_error.txt"),
    include_str!("../tests/fixtures/parse/fail_vllm_c_missing.txt"),
];
const SERVING: &str = include_str!("../tests/fixtures/parse/serving_bench_cli_full.txt");
const LATENCY: &str = include_str!("../tests/fixtures/parse/latency_avg_percentiles.txt");
const OOM: &str = include_str!("../tests/fixtures/parse/fail_oom_during_server_start.txt");

/// About `bytes` of the given noise pieces, in turn.
fn noise_of(pieces: &[&str], bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 4096);
    let mut i = 0usize;
    while out.len() < bytes {
        // Vary the numbers a little so nothing is trivially repeated.
        out.push_str(&pieces[i % pieces.len()].replace("03:03:3", &format!("03:0{}:3", i % 10)));
        i += 1;
    }
    out
}

/// About `bytes` of mixed noise, tracebacks included.
fn noise(bytes: usize) -> String {
    noise_of(NOISE, bytes)
}

fn combined(text: String) -> RunOutput {
    RunOutput {
        sources: vec![OutputSource {
            name: "combined.log".into(),
            kind: SourceKind::Combined,
            text,
        }],
        exit_code: None,
    }
}

/// Best wall time of `reps` parses, and the last outcome.
fn time(reps: usize, f: impl Fn() -> ParseOutcome) -> (Duration, ParseOutcome) {
    let mut best = Duration::MAX;
    let mut last = ParseOutcome::default();
    for _ in 0..reps {
        let t = Instant::now();
        last = std::hint::black_box(f());
        best = best.min(t.elapsed());
    }
    (best, last)
}

fn run() {
    let (size, reps) = if cfg!(debug_assertions) {
        (1 << 20, 1)
    } else {
        (10 << 20, 7)
    };
    let serving = combined(format!("{}{SERVING}", noise(size)));
    let latency = combined(format!("{}{LATENCY}", noise(size)));
    let failing = combined(format!("{}{OOM}", noise(size)));
    let unknown = combined(noise_of(&NOISE[..2], size));
    let cases = [
        ("serving, block at the end", &serving, Some(Mode::Serving)),
        ("auto-detect, serving block", &serving, None),
        ("latency, block at the end", &latency, Some(Mode::Latency)),
        ("serving, no block: classify", &failing, Some(Mode::Serving)),
        ("auto, nothing known", &unknown, None),
    ];
    let mut worst_per_10mb = 0.0f64;
    for (name, out, mode) in cases {
        let mb = out.sources[0].text.len() as f64 / (1 << 20) as f64;
        let (best, outcome) = time(reps, || match mode {
            Some(m) => benchmark_for(m).parse(out),
            None => parse_output(None, out),
        });
        let ms = best.as_secs_f64() * 1e3;
        worst_per_10mb = worst_per_10mb.max(ms * 10.0 / mb);
        let result = match &outcome.failure {
            Some(f) => format!("failure {}", f.code),
            None => format!("{} metrics", outcome.metrics.len()),
        };
        println!(
            "{name:<30} {mb:6.2} MB {ms:8.2} ms {:8.1} MB/s  ({result})",
            mb / best.as_secs_f64()
        );
    }
    let verdict = if cfg!(debug_assertions) {
        "debug build: not comparable to"
    } else if worst_per_10mb < 100.0 {
        "within"
    } else {
        "OVER"
    };
    println!("slowest case scaled to 10 MB: {worst_per_10mb:.1} ms ({verdict} the 100 ms target)");
}

fn main() {
    run();
}
