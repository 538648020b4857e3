//! Helpers shared by the stand-in's integration tests.
#![allow(dead_code)]

use perf_runner_tests::standin::{Finished, StandinConfig, StandinServer, run_standin};
use std::path::Path;
use std::time::Duration;

/// The stand-in binary cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vllm-standin"))
}

/// A fast build: short start-up, frequent stats lines.
pub fn fast(speed: f64) -> StandinConfig {
    StandinConfig {
        speed,
        startup_ms: 100,
        log_interval_ms: 200,
        ..StandinConfig::default()
    }
}

/// A ready stand-in server of `config` for model `m`.
pub fn server(config: &StandinConfig) -> StandinServer {
    let mut s = StandinServer::start(bin(), Some(config), "m", &[]).expect("spawn server");
    s.wait_ready(Duration::from_secs(10)).expect("server ready");
    s
}

/// Runs the stand-in with `args` under `config` (10 s at most).
pub fn run(config: &StandinConfig, args: &[&str]) -> Finished {
    run_standin(bin(), Some(config), args, Duration::from_secs(10)).expect("run stand-in")
}

/// `bench serve` against `port` with `extra` arguments.
pub fn bench_serve(config: &StandinConfig, port: u16, extra: &[&str]) -> Finished {
    let port = port.to_string();
    let mut args = vec![
        "-m",
        "vllm.entrypoints.cli.main",
        "bench",
        "serve",
        "--host",
        "127.0.0.1",
    ];
    args.extend([
        "--port",
        port.as_str(),
        "--model",
        "m",
        "--dataset-name",
        "random",
    ]);
    args.extend(extra);
    run(config, &args)
}

/// The number after `label` on the line that starts with it (a result-block line).
pub fn metric(text: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{text}"));
    line[label.len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad number in {line:?}"))
}
