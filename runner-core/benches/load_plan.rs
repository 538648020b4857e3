//! Loading + planning throughput: generates a 10,000-task JSONL dataset with real-world
//! command shapes, loads it and plans every task, and prints the time and peak RSS.
//!
//! Run with `cargo bench -p runner-core --bench load_plan`. Targets: under 1 s and under 50 MB
//! RSS for 10,000 tasks.

use std::path::Path;
use std::time::Instant;

use runner_core::dataset::Dataset;
use runner_core::plan::plan_task;
use runner_core::settings::Settings;
use runner_core::task::Variant;

const COMMANDS: [&str; 5] = [
    "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B-Instruct --dataset-name sharegpt --dataset-path ShareGPT_V3_unfiltered_cleaned_split.json --num-prompts 1000 --enable-prefix-caching --tensor-parallel-size 2 --port 8000",
    "VLLM_USE_V1=1 vllm bench serve --model Qwen/Qwen3-30B-A3B --dataset-name random --random-input-len 2048 --random-output-len 128 --num-prompts 200 --max-model-len 4096",
    "python3 benchmarks/benchmark_throughput.py --model Qwen/Qwen2.5-7B-Instruct --input-len 1000 --output-len 100 --num-prompts 200 --enforce-eager",
    "python benchmarks/benchmark_latency.py --model meta-llama/Meta-Llama-3-8B --batch-size 8 --input-len 128 --output-len 256 --num-iters 10 -tp 1",
    "python benchmarks/benchmark_serving.py --model MODEL --num-prompts 100",
];

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let n = 10_000;
    let mut text = String::new();
    for i in 0..n {
        let row = serde_json::json!({
            "commit_hash": format!("{:040x}", i as u128 * 0x9e37_79b9_7f4a_7c15),
            "parent_commit": format!("{:040x}", i as u128 * 0x9e37_79b9_7f4a_7c15 + 1),
            "commit_subject": format!("[Perf] task {i}"),
            "perf_command": COMMANDS[i % COMMANDS.len()],
            "models": ["meta-llama/Llama-3.1-8B-Instruct"],
            "gpu_config": if i % 3 == 0 { "H100:2" } else { "H100:1" },
            "files_changed": ["vllm/core/scheduler.py", "vllm/worker/model_runner.py"],
        });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    let rss_before = peak_rss_kib();
    let settings = Settings::embedded();
    let start = Instant::now();
    let ds = Dataset::from_str(&text, "bench", Path::new("."));
    let loaded = start.elapsed();
    let mut planned = 0usize;
    let mut rejected = 0usize;
    for t in &ds.tasks {
        match plan_task(t, &[Variant::Baseline, Variant::Human], &settings, None) {
            Ok(p) => planned += std::hint::black_box(p.builds.len()).min(1),
            Err(_) => rejected += 1,
        }
    }
    let total = start.elapsed();
    println!(
        "load_plan: {} tasks ({} row errors)",
        ds.tasks.len(),
        ds.errors.len()
    );
    println!("  load:          {:>8.1} ms", loaded.as_secs_f64() * 1e3);
    println!(
        "  load + plan:   {:>8.1} ms  ({planned} planned, {rejected} rejected as bad_config)",
        total.as_secs_f64() * 1e3
    );
    println!(
        "  per task:      {:>8.1} µs",
        total.as_secs_f64() * 1e6 / ds.tasks.len().max(1) as f64
    );
    if let (Some(before), Some(peak)) = (rss_before, peak_rss_kib()) {
        println!(
            "  peak RSS:      {:>8.1} MB  (input text {:.1} MB, RSS before loading {:.1} MB)",
            peak as f64 / 1024.0,
            text.len() as f64 / 1e6,
            before as f64 / 1024.0
        );
    }
    println!("  target:        < 1000 ms and < 50 MB peak RSS for 10,000 tasks");
}
