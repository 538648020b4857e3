//! Offline triage speed: 1,000 generated tasks, triaged and rendered; prints the times.
//! A plain `fn main` (Cargo.toml: `[[bench]] name = "triage_speed" harness = false`).
//! Target: well under 1 s in release for the whole dataset.

#![allow(dead_code)]

#[path = "../tests/fixtures/triage/support.rs"]
mod support;

use std::time::Instant;

use runner_core::triage::{TriageOptions, triage_offline};

const MODELS: &[&str] = &[
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen3-30B-A3B",
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "deepseek-ai/DeepSeek-V3",
    "facebook/opt-125m",
    "google/gemma-2-9b-it",
    "acme/unknown-model",
    "meta-llama/Llama-3.1-13B",
];
const GPUS: &[Option<&str>] = &[
    Some("H100:1"),
    Some("H100:2"),
    Some("H100:8"),
    Some("H200:8"),
    None,
];
const FILES: &[&[&str]] = &[
    &["vllm/worker/model_runner.py", "tests/test_x.py"],
    &["vllm/attention/backends/rocm_flash_attn.py"],
    &["vllm/model_executor/models/qwen2_5_vl.py"],
    &["vllm/spec_decode/ngram_worker.py"],
    &[
        "vllm/core/scheduler.py",
        "vllm/model_executor/layers/fused_moe/fused_moe.py",
    ],
];
const DATES: &[&str] = &[
    "2024-03-01",
    "2024-09-10",
    "2025-01-10",
    "2025-04-20",
    "2025-08-01",
];
const EXTRA: &[&str] = &[
    "",
    "--tensor-parallel-size 2",
    "--max-concurrency 16 --enable-prefix-caching",
    "--speculative-model [ngram] --num-speculative-tokens 5",
    "--tokenizer <tok> | tee out",
];

fn main() {
    let tasks: Vec<_> = (0..1000u32)
        .map(|i| {
            let i_ = i as usize;
            let cmd = if i % 37 == 0 {
                String::new()
            } else {
                support::serving(MODELS[i_ % MODELS.len()], EXTRA[(i_ / 3) % EXTRA.len()])
            };
            support::task(
                i,
                &cmd,
                GPUS[(i_ / 7) % GPUS.len()],
                FILES[(i_ / 11) % FILES.len()],
                DATES[(i_ / 13) % DATES.len()],
            )
        })
        .collect();
    let opts = TriageOptions::default();
    let start = Instant::now();
    let report = triage_offline(&tasks, &opts);
    let triage = start.elapsed();
    let md = report.to_markdown();
    let json = report.to_json().to_string();
    let skip = report.skip_list();
    let total = start.elapsed();
    let s = report.summary().overall;
    println!(
        "triage_speed: {} tasks triaged offline in {:.1} ms; with markdown ({} KiB), JSON ({} KiB) \
         and skip list ({} lines) {:.1} ms; {} verifiable, {} need attention, {} not verifiable",
        tasks.len(),
        triage.as_secs_f64() * 1e3,
        md.len() / 1024,
        json.len() / 1024,
        skip.lines().count(),
        total.as_secs_f64() * 1e3,
        s.verifiable,
        s.needs_attention,
        s.not_verifiable
    );
}
