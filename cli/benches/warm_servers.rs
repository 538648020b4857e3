//! Warm servers vs a restart per job, on the stand-in engine with a simulated engine load time:
//! the same `perf-runner run` (baseline and a faster human build, 6 repeats) in both modes,
//! with the accounting the closing figures of a GPU host use — server starts per task, GPU·s
//! per job outside the client's own run, and the share of GPU·s inside measured windows.
//!
//! `cargo bench -p perf-runner --bench warm_servers` (needs `uv` or python3's venv + pip).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::Instant;

use common::{World, text};
use runner_core::record::AttemptRecord;

/// The simulated engine load (the stand-in's `startup_ms`).
const STARTUP_MS: u64 = 3000;
const REPEATS: &str = "6";

struct Figures {
    wall_s: f64,
    gpu_s: f64,
    jobs: usize,
    starts: usize,
    outside_per_job: f64,
    measured_share: f64,
}

fn starts(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == "server.log") {
                n += std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .matches("Starting vLLM API server")
                    .count();
            }
        }
    }
    n
}

fn run(restart: bool) -> Figures {
    let w = World::with_configs(|sub, c| {
        c.startup_ms = STARTUP_MS;
        c.jitter = 0.0;
        if sub == "wh" {
            c.speed = 1.2;
        }
    });
    if restart {
        w.restart_servers();
    }
    let t = Instant::now();
    let o = w.run(&["--repeats", REPEATS]);
    let wall_s = t.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attempts: Vec<AttemptRecord> = w.attempts(&w.only_run());
    let gpu_s: f64 = attempts.iter().map(|a| a.gpu_seconds).sum();
    let client_s: f64 = attempts.iter().map(|a| a.benchmark_s).sum();
    let measured: f64 = attempts
        .iter()
        .filter_map(|a| a.metrics.get("duration_s"))
        .sum();
    Figures {
        wall_s,
        gpu_s,
        jobs: attempts.len(),
        starts: starts(&w.path("art")),
        outside_per_job: (gpu_s - client_s) / attempts.len() as f64,
        measured_share: measured / gpu_s,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "warm servers vs restart per job: stand-in engine, engine load {STARTUP_MS} ms, 2 builds × {REPEATS} repeats, 1 (simulated) GPU"
    );
    let warm = run(false);
    let restart = run(true);
    println!(
        "{:<8} {:>6} {:>7} {:>7} {:>9} {:>22} {:>15}",
        "mode", "jobs", "starts", "wall s", "GPU·s", "GPU·s/job outside run", "measured share"
    );
    for (name, f) in [("sleep", &warm), ("restart", &restart)] {
        println!(
            "{name:<8} {:>6} {:>7} {:>7.1} {:>9.1} {:>22.2} {:>14.1}%",
            f.jobs,
            f.starts,
            f.wall_s,
            f.gpu_s,
            f.outside_per_job,
            f.measured_share * 100.0
        );
    }
    println!(
        "restart/sleep: GPU·s ×{:.2}, GPU·s per job outside the client's run ×{:.1}, measured share ×{:.2} in favour of sleep",
        restart.gpu_s / warm.gpu_s,
        restart.outside_per_job / warm.outside_per_job.max(1e-9),
        warm.measured_share / restart.measured_share.max(1e-9)
    );
}
