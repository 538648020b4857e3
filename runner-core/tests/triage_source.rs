//! The engine-version check against a real git clone that mimics vLLM across two versions.

#[path = "fixtures/triage/fake_vllm.rs"]
mod fake_vllm;
#[path = "fixtures/triage/support.rs"]
mod support;

use fake_vllm::FakeVllm;
use runner_core::failure::Failure;
use runner_core::task::Task;
use runner_core::triage::{TaskTriage, TriageOptions, Verdict, VllmSource, triage_dataset};
use support::{serving, task};

const FILES: &[&str] = &["vllm/worker.py"];
const DATE: &str = "2025-06-20";

/// A task whose human commit is `commit` and parent `parent`.
fn on(n: u32, cmd: &str, parent: &str, commit: &str) -> Task {
    let mut t = task(n, cmd, Some("H100:2"), FILES, DATE);
    t.parent = Some(parent.to_string());
    t.commit = commit.to_string();
    t
}

fn has(t: &TaskTriage, code: Failure, detail: &str) -> bool {
    t.reasons
        .iter()
        .any(|r| r.code == code && r.detail.contains(detail))
}

fn evidence(t: &TaskTriage) -> String {
    t.reasons
        .iter()
        .flat_map(|r| r.evidence.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn verdicts_follow_the_parent_commit_with_one_git_process() {
    let repo = FakeVllm::new();
    let [c0, c1, c2, c3] = [0, 1, 2, 3].map(|i| repo.commits[i].clone());
    let llama = |extra: &str| serving("meta-llama/Llama-3.1-8B-Instruct", extra);
    let qwen = serving("Qwen/Qwen3-30B-A3B", "--tensor-parallel-size 2");
    let bench = "vllm bench serve --model meta-llama/Llama-3.1-8B-Instruct --max-concurrency 4";
    let latency = "python benchmarks/benchmark_latency.py --model meta-llama/Llama-3.1-8B-Instruct --input-len 32 --speculative-config {}";
    let mut orphan = task(11, &qwen, Some("H100:2"), FILES, DATE);
    orphan.parent = None;
    orphan.commit = c1.clone();
    let tasks = vec![
        on(1, &llama("--max-concurrency 8"), &c0, &c1),
        on(2, &llama("--max-concurrency 8"), &c1, &c2),
        on(3, &qwen, &c0, &c1),
        on(4, &qwen, &c2, &c3),
        on(5, &format!("VLLM_USE_V1=1 {}", llama("")), &c0, &c1),
        on(6, &format!("VLLM_USE_V1=1 {}", llama("")), &c2, &c3),
        on(7, bench, &c0, &c1),
        on(8, bench, &c2, &c3),
        on(9, latency, &c1, &c2),
        on(10, &llama("--speculative-config {}"), &c1, &c2),
        orphan,
        on(12, &qwen, &"f".repeat(40), &"e".repeat(40)),
        on(13, bench, &c1, &c2),
    ];
    let src = VllmSource::parse(&repo.path().display().to_string());
    let opts = TriageOptions {
        vllm_source: Some(src.clone()),
        ..TriageOptions::default()
    };
    let r = triage_dataset(&tasks, &opts).await;
    let t = &r.tasks;
    let short = |c: &str| c[..12].to_string();

    // Serving: the client runs from the human build, so only the human commit's script counts.
    assert!(
        has(&t[0], Failure::VllmVersion, "benchmark at"),
        "{:#?}",
        t[0]
    );
    assert!(evidence(&t[0]).contains(&format!(
        "benchmarks/benchmark_serving.py@{}: no \"--max-concurrency\"",
        short(&c1)
    )));
    assert_eq!(t[1].verdict, Verdict::Verifiable, "{:#?}", t[1]);

    assert!(
        has(&t[2], Failure::ModelUnsupported, "Qwen3MoeForCausalLM"),
        "{:#?}",
        t[2]
    );
    assert!(evidence(&t[2]).contains(&format!(
        "vllm/model_executor/models/registry.py@{}: no \"Qwen3MoeForCausalLM\"",
        short(&c0)
    )));
    assert_eq!(t[3].verdict, Verdict::Verifiable, "{:#?}", t[3]);

    assert_eq!(t[4].verdict, Verdict::NeedsAttention, "{:#?}", t[4]);
    assert!(evidence(&t[4]).contains(&format!("vllm/envs.py@{}: no \"VLLM_USE_V1\"", short(&c0))));
    assert_eq!(t[5].verdict, Verdict::Verifiable, "{:#?}", t[5]);

    assert!(
        has(&t[6], Failure::VllmVersion, "`vllm bench` does not exist"),
        "{:#?}",
        t[6]
    );
    assert_eq!(t[7].verdict, Verdict::Verifiable, "{:#?}", t[7]);
    // `vllm bench serve` is the client: only the human commit needs it.
    assert_eq!(t[12].verdict, Verdict::Verifiable, "{:#?}", t[12]);

    // Offline scripts run from each build: the parent's engine lacks the flag.
    assert!(
        has(
            &t[8],
            Failure::VllmVersion,
            &format!("at {} does not accept --speculative-config", short(&c1))
        ),
        "{:#?}",
        t[8]
    );
    assert!(evidence(&t[8]).contains(&format!("vllm/engine/arg_utils.py@{}", short(&c1))));
    // Serving: the parent's server lacks the engine flag.
    assert!(
        has(
            &t[9],
            Failure::VllmVersion,
            &format!("server at {}", short(&c1))
        ),
        "{:#?}",
        t[9]
    );

    // No parent: COMMIT^ is resolved by the clone.
    assert!(
        has(&t[10], Failure::ModelUnsupported, "Qwen3MoeForCausalLM"),
        "{:#?}",
        t[10]
    );

    // Commits the clone does not have fall back to the date estimate, and say so.
    assert_eq!(t[11].verdict, Verdict::Verifiable, "{:#?}", t[11]);
    assert!(
        t[11].not_checked.iter().any(|n| n.contains("is not in it")),
        "{:?}",
        t[11].not_checked
    );
    assert!(
        t[11]
            .not_checked
            .iter()
            .any(|n| n.contains("engine version: no vLLM source"))
    );

    assert_eq!(
        src.processes_started(),
        1,
        "one git cat-file --batch for every probe"
    );
}

#[tokio::test]
async fn a_path_that_is_no_clone_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = VllmSource::parse(&dir.path().display().to_string());
    let opts = TriageOptions {
        vllm_source: Some(src.clone()),
        ..TriageOptions::default()
    };
    let tasks = vec![
        task(
            1,
            &serving("Qwen/Qwen3-30B-A3B", "--tensor-parallel-size 2"),
            Some("H100:2"),
            FILES,
            "2025-01-10",
        ),
        task(
            2,
            &serving("meta-llama/Llama-3.1-8B", ""),
            Some("H100:2"),
            FILES,
            DATE,
        ),
    ];
    let r = triage_dataset(&tasks, &opts).await;
    assert!(
        r.tasks[0]
            .not_checked
            .iter()
            .any(|n| n.contains("git cat-file --batch")),
        "{:?}",
        r.tasks[0].not_checked
    );
    assert_eq!(
        r.tasks[0].primary().unwrap().code,
        Failure::ModelUnsupported,
        "the estimate still decides"
    );
    assert_eq!(r.tasks[1].verdict, Verdict::Verifiable);
    assert!(src.processes_started() <= 1);
}
