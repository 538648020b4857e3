//! The native serving client under load: 10,000 streamed requests at 1,000 req/s (Poisson)
//! against the stand-in engine's server (5 ms to the first token, 1,000 tokens/s, 8 tokens per
//! request), run as the real `perf-runner bench serve` process. Prints the client's overhead
//! per request (its time on each request's bytes plus how late the request left), the time
//! from spawning the process to its first request, and what the run measured.
//!
//! `cargo bench -p perf-runner --bench bench_client` (`-- N RATE` for other sizes).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perf_runner_tests::standin::{StandinConfig, StandinServer, standin_binary};
use serde_json::Value;

fn main() {
    let mut argv = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let n: usize = argv.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rate: f64 = argv.next().and_then(|s| s.parse().ok()).unwrap_or(1000.0);
    let cfg = StandinConfig {
        ttft_ms: 5.0,
        tokens_per_s: 1000.0,
        jitter: 0.0,
        startup_ms: 50,
        log_interval_ms: 60_000,
        ..StandinConfig::default()
    };
    let mut srv = StandinServer::start(&standin_binary(), Some(&cfg), "m", &[]).expect("server");
    srv.wait_ready(Duration::from_secs(30))
        .expect("server ready");
    let dir = tempfile::tempdir().expect("temp dir");
    let spawned_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let wall = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .args(["bench", "serve", "--model", "m", "--dataset-name", "random"])
        .args(["--port", &srv.port().to_string()])
        .args([
            "--num-prompts",
            &n.to_string(),
            "--request-rate",
            &rate.to_string(),
        ])
        .args([
            "--random-input-len",
            "16",
            "--random-output-len",
            "8",
            "--disable-tqdm",
        ])
        .args([
            "--save-result",
            "--result-filename",
            "r.json",
            "--result-dir",
        ])
        .arg(dir.path())
        .env("HF_HUB_CACHE", dir.path().join("no-cache"))
        .output()
        .expect("run perf-runner");
    let wall = wall.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("bench serve failed: {}", out.status);
    }
    let text = std::fs::read_to_string(dir.path().join("r.json")).expect("result");
    let j: Value = serde_json::from_str(&text).expect("result JSON");
    let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
    println!("bench_client: {n} requests at {rate} req/s against the stand-in (8 tokens each)");
    println!(
        "  completed {} failed {}, duration {:.2} s (ideal {:.2} s), {:.1} req/s, wall {:.2} s",
        f("completed"),
        f("failed"),
        f("duration"),
        n as f64 / rate,
        f("request_throughput"),
        wall
    );
    println!(
        "  client overhead per request: mean {:.4} ms, p99 {:.4} ms (dispatch lag mean {:.4} \
         ms, p99 {:.4} ms)",
        f("client_overhead_mean_ms"),
        f("client_overhead_p99_ms"),
        f("client_dispatch_lag_mean_ms"),
        f("client_dispatch_lag_p99_ms")
    );
    println!(
        "  start to first request: {:.1} ms in the command, {:.1} ms from the process spawn",
        f("start_to_first_request_ms"),
        f("first_request_unix_ms") - spawned_unix_ms
    );
    println!(
        "  TTFT mean {:.3} ms (configured 5), TPOT mean {:.3} ms (configured 1.000), ITL p99 \
         {:.3} ms",
        f("mean_ttft_ms"),
        f("mean_tpot_ms"),
        f("p99_itl_ms")
    );
}
