//! Offline triage checks: command, ROCm, version estimates, wheels by date, relevance.

#[path = "fixtures/triage/support.rs"]
mod support;

use runner_core::failure::Failure;
use runner_core::task::Task;
use runner_core::triage::{TaskTriage, TriageOptions, Verdict, triage_offline};
use support::{serving, task};

const RECENT: &str = "2025-06-20T12:00:00Z";
const FILES: &[&str] = &["vllm/worker/model_runner.py"];

fn run_with(t: Task, opts: &TriageOptions) -> TaskTriage {
    triage_offline(&[t], opts).tasks.remove(0)
}

fn run(t: Task) -> TaskTriage {
    run_with(t, &TriageOptions::default())
}

fn codes(t: &TaskTriage) -> Vec<Failure> {
    t.reasons.iter().map(|r| r.code).collect()
}

fn llama8(extra: &str) -> String {
    serving("meta-llama/Llama-3.1-8B-Instruct", extra)
}

#[test]
fn a_plain_recent_task_is_verifiable() {
    let t = run(task(1, &llama8(""), Some("H100:1"), FILES, RECENT));
    assert_eq!(t.verdict, Verdict::Verifiable, "{t:#?}");
    assert!(t.primary().is_none());
    assert!(
        t.not_checked.iter().any(|n| n.contains("offline")),
        "{:?}",
        t.not_checked
    );
}

#[test]
fn command_problems() {
    let t = run(task(1, "", Some("H100:1"), FILES, RECENT));
    assert_eq!(
        (t.verdict, codes(&t)),
        (Verdict::NotVerifiable, vec![Failure::NoPerfCommand])
    );

    let mut bad = task(2, "", Some("H100:1"), FILES, RECENT);
    bad.perf_command = Some("python benchmarks/benchmark_serving.py --model".into());
    bad.command_error = Some("flag --model needs a value".into());
    let t = run(bad);
    assert_eq!(codes(&t), vec![Failure::BadConfig]);
    assert!(t.reasons[0].detail.contains("--model needs a value"));

    let t = run(task(
        3,
        &llama8("--tokenizer <tokenizer> | tee log.txt"),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert_eq!(t.primary().unwrap().code, Failure::BadConfig);
    let d = &t.primary().unwrap().detail;
    assert!(d.contains("'<tokenizer>'") && d.contains("'|'"), "{d}");

    let t = run(task(
        4,
        &llama8("--speculative-model [ngram] --num-speculative-tokens 5"),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert!(
        t.reasons
            .iter()
            .any(|r| r.detail.contains("--ngram-prompt-lookup-max")),
        "{t:#?}"
    );
    let t = run(task(
        5,
        &llama8(
            "--speculative-model [ngram] --num-speculative-tokens 5 --ngram-prompt-lookup-max 4",
        ),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert_eq!(t.verdict, Verdict::Verifiable, "{t:#?}");
    let t = run(task(
        6,
        &llama8("--num-speculative-tokens 5"),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert!(
        t.reasons
            .iter()
            .any(|r| r.code == Failure::BadConfig
                && r.detail.contains("without a speculative model"))
    );

    let t = run(task(
        7,
        "python benchmarks/kernels/benchmark_moe.py --model m",
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert_eq!(
        (t.verdict, t.primary().unwrap().code),
        (Verdict::NeedsAttention, Failure::Unknown)
    );

    let cmd = "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B --dataset-name sharegpt --gpu-memory-utilization 1.5 --dtype fp13";
    let t = run(task(8, cmd, Some("H100:1"), FILES, RECENT));
    let details: Vec<&str> = t.reasons.iter().map(|r| r.detail.as_str()).collect();
    assert!(
        details.iter().any(|d| d.contains("--dataset-path")),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d.contains("1.5")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("fp13")), "{details:?}");

    let mut t = task(
        9,
        "python benchmarks/benchmark_latency.py --input-len 32",
        Some("H100:1"),
        FILES,
        RECENT,
    );
    t.models = vec!["meta-llama/Llama-3.1-8B".into()];
    let t = run(t);
    assert_eq!(t.verdict, Verdict::NeedsAttention);
    assert!(t.primary().unwrap().detail.contains("no --model"));

    let t = run(task(
        10,
        &llama8("--mystery-flag 3"),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert!(t.warnings.iter().any(|w| w.contains("--mystery-flag")));
}

#[test]
fn rocm_only_commits() {
    let rocm = &[
        "vllm/attention/backends/rocm_flash_attn.py",
        "csrc/rocm/attention.cu",
        "Dockerfile.rocm",
    ];
    let t = run(task(1, &llama8(""), Some("H100:1"), rocm, RECENT));
    assert_eq!(
        (t.verdict, t.primary().unwrap().code),
        (Verdict::NotVerifiable, Failure::RocmSpecific)
    );
    assert_eq!(t.primary().unwrap().evidence.len(), 3);
    let mixed = &[
        "vllm/attention/backends/rocm_flash_attn.py",
        "vllm/attention/backends/flash_attn.py",
    ];
    assert_eq!(
        run(task(2, &llama8(""), Some("H100:1"), mixed, RECENT)).verdict,
        Verdict::Verifiable
    );
    let lookalikes = &[
        "vllm/chip_utils.py",
        "vllm/ship.py",
        "vllm/entrypoints/command.py",
    ];
    assert_eq!(
        run(task(3, &llama8(""), Some("H100:1"), lookalikes, RECENT)).verdict,
        Verdict::Verifiable
    );
    let t = run(task(4, &llama8(""), Some("H100:1"), &[], RECENT));
    assert!(t.not_checked.iter().any(|n| n.contains("no changed files")));
}

#[test]
fn version_estimates_from_the_date() {
    let qwen = serving("Qwen/Qwen3-30B-A3B", "--tensor-parallel-size 2");
    let t = run(task(1, &qwen, Some("H100:2"), FILES, "2025-01-10"));
    let r = t.primary().unwrap();
    assert_eq!(
        (r.code, t.verdict),
        (Failure::ModelUnsupported, Verdict::NotVerifiable)
    );
    assert!(
        r.evidence.iter().any(|e| e.contains("estimate")),
        "{:?}",
        r.evidence
    );
    assert!(r.detail.contains("0.8.5"));
    let t = run(task(2, &qwen, Some("H100:2"), FILES, "2025-04-20"));
    assert_eq!(t.verdict, Verdict::Verifiable);
    assert!(
        t.warnings.iter().any(|w| w.contains("Qwen3MoeForCausalLM")),
        "{:?}",
        t.warnings
    );
    assert_eq!(
        run(task(3, &qwen, Some("H100:2"), FILES, RECENT)).verdict,
        Verdict::Verifiable
    );

    let t = run(task(
        4,
        &llama8("--max-concurrency 8"),
        Some("H100:1"),
        FILES,
        "2024-08-01",
    ));
    assert_eq!(t.primary().unwrap().code, Failure::VllmVersion);
    let bench = "vllm bench serve --model meta-llama/Llama-3.1-8B-Instruct";
    let t = run(task(5, bench, Some("H100:1"), FILES, "2024-12-01"));
    assert!(
        t.reasons.iter().any(|r| r.detail.contains("vllm bench")),
        "{t:#?}"
    );

    let mut opts = TriageOptions::default();
    let parent = task(6, &qwen, Some("H100:2"), FILES, "2025-01-10")
        .parent
        .unwrap();
    opts.dataset_versions.insert(parent, "0.9.0".into());
    let t = run_with(task(6, &qwen, Some("H100:2"), FILES, "2025-01-10"), &opts);
    assert_eq!(
        t.verdict,
        Verdict::Verifiable,
        "a stated version beats the date: {t:#?}"
    );
}

#[test]
fn wheels_by_date() {
    let t = run(task(1, &llama8(""), Some("H100:1"), FILES, "2024-05-01"));
    let r = t
        .reasons
        .iter()
        .find(|r| r.code == Failure::NoWheel)
        .unwrap();
    assert_eq!(r.severity, Verdict::NeedsAttention);
    assert!(r.detail.contains("2024-07-23"));
    let opts = TriageOptions {
        source_builds: true,
        ..TriageOptions::default()
    };
    let t = run_with(
        task(1, &llama8(""), Some("H100:1"), FILES, "2024-05-01"),
        &opts,
    );
    assert!(t.reasons.iter().all(|r| r.code != Failure::NoWheel));
    assert!(t.warnings.iter().any(|w| w.starts_with("no_wheel")));
    let t = run(task(2, &llama8(""), Some("H100:1"), FILES, ""));
    assert!(t.not_checked.iter().any(|n| n.contains("no date")));
}

#[test]
fn relevance_warnings() {
    let warned = |files: &[&str], cmd: &str| {
        let t = run(task(1, cmd, Some("H100:1"), files, RECENT));
        t.warnings.iter().any(|w| w.contains("may not exercise"))
    };
    let vl = &["vllm/model_executor/models/qwen2_5_vl.py"];
    assert!(warned(vl, &llama8("")));
    assert!(!warned(vl, &serving("Qwen/Qwen2.5-VL-7B-Instruct", "")));
    let sd = &[
        "vllm/spec_decode/ngram_worker.py",
        "tests/spec_decode/test_ngram.py",
    ];
    assert!(warned(sd, &llama8("")));
    assert!(!warned(
        sd,
        &llama8(
            "--speculative-model [ngram] --num-speculative-tokens 5 --ngram-prompt-lookup-max 4"
        )
    ));
    let moe = &["vllm/model_executor/layers/fused_moe/fused_moe.py"];
    assert!(warned(moe, &llama8("")));
    assert!(!warned(
        moe,
        &serving(
            "mistralai/Mixtral-8x7B-Instruct-v0.1",
            "--tensor-parallel-size 1"
        )
    ));
    assert!(!warned(
        &[
            "vllm/model_executor/models/llama.py",
            "vllm/core/scheduler.py"
        ],
        &llama8("")
    ));
    let t = run(task(
        2,
        &llama8(""),
        Some("H100:1"),
        &["benchmarks/benchmark_serving.py", "README.md"],
        RECENT,
    ));
    assert!(t.warnings.iter().any(|w| w.contains("no engine code")));
}
