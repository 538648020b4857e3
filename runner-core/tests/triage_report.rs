//! The triage report (markdown, JSON, skip list) and robustness against arbitrary input.

#[path = "fixtures/triage/support.rs"]
mod support;

use proptest::prelude::*;
use runner_core::failure::Failure;
use runner_core::gpu::GpuSpec;
use runner_core::triage::{TriageOptions, Verdict, parse_skip_line, triage_offline};
use support::{serving, task};

const RECENT: &str = "2025-06-20";

fn report() -> runner_core::triage::TriageReport {
    let files = &["vllm/worker/model_runner.py"];
    let tasks = vec![
        task(
            1,
            &serving("meta-llama/Llama-3.1-8B-Instruct", ""),
            Some("H100:1"),
            files,
            RECENT,
        ),
        task(
            2,
            &serving("meta-llama/Llama-3.1-70B-Instruct", ""),
            Some("H100:1"),
            files,
            RECENT,
        ),
        task(3, "", Some("H100:1"), files, RECENT),
        task(
            4,
            &serving("meta-llama/Llama-3.1-8B", "--x a|b"),
            Some("H100:2"),
            &["csrc/rocm/x.cu"],
            RECENT,
        ),
        task(
            5,
            &serving("meta-llama/Llama-3.1-8B", ""),
            Some("H100:2"),
            files,
            "2024-06-20",
        ),
        task(
            6,
            &serving("Qwen/Qwen2.5-7B-Instruct", ""),
            None,
            files,
            RECENT,
        ),
    ];
    triage_offline(&tasks, &TriageOptions::default())
}

#[test]
fn verdicts_and_summary() {
    let r = report();
    let v: Vec<Verdict> = r.tasks.iter().map(|t| t.verdict).collect();
    use Verdict::*;
    assert_eq!(
        v,
        vec![
            Verifiable,
            NotVerifiable,
            NotVerifiable,
            NotVerifiable,
            NeedsAttention,
            Verifiable
        ]
    );
    let s = r.summary();
    assert_eq!(
        (
            s.overall.total,
            s.overall.verifiable,
            s.overall.needs_attention,
            s.overall.not_verifiable
        ),
        (6, 2, 1, 3)
    );
    assert_eq!(s.by_gpu_config["H100:1"].total, 3);
    assert_eq!(s.by_gpu_config["unspecified"].verifiable, 1);
    assert_eq!(s.root_causes["model_too_large"], 1);
    assert_eq!(s.affected["bad_config"], 1);
    assert_eq!(s.affected["rocm_specific"], 1);
}

#[test]
fn markdown_reads_like_a_triage() {
    let md = report().to_markdown();
    for needle in [
        "## Summary by GPU config",
        "| H100:1 | 3 | 1 | 0 | 2 |",
        "| **all** | 6 | 2 | 1 | 3 |",
        "## H100:2",
        "## unspecified",
        "## Root causes",
        "| `model_too_large` | 1 | 1 | the model does not fit on the task's GPUs |",
        "## Recommendations",
        "**Skip 3 commit(s)**",
        "**Look at 1 commit(s)**",
        "**2 of 6 (33.3 %) verifiable**",
        "shell operator '\\|'",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
}

#[test]
fn json_schema() {
    let j = report().to_json();
    assert_eq!(j["schema_version"], 1);
    let t = &j["tasks"][1];
    assert_eq!(t["verdict"], "not_verifiable");
    assert_eq!(t["gpu_config"], "H100:1");
    assert_eq!(t["model"], "meta-llama/Llama-3.1-70B-Instruct");
    assert_eq!(t["primary_reason"], "model_too_large");
    let reason = &t["reasons"][0];
    for k in ["code", "detail", "evidence", "fix"] {
        assert!(!reason[k].is_null(), "{k}");
    }
    assert!(t["warnings"].is_array() && t["not_checked"].is_array());
    assert_eq!(j["summary"]["total"], 6);
    assert_eq!(j["summary"]["verifiable_percent"], 33.3);
    assert_eq!(
        j["summary"]["by_gpu_config"]["H100:2"]["needs_attention"],
        1
    );
    assert!(j["tasks"][0]["primary_reason"].is_null());
}

#[test]
fn skip_list_round_trips() {
    let r = report();
    let list = r.skip_list();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(list.ends_with('\n'));
    let parsed: Vec<_> = lines.iter().filter_map(|l| parse_skip_line(l)).collect();
    assert_eq!(parsed[0].0, r.tasks[1].commit);
    assert_eq!(parsed[0].1, Failure::ModelTooLarge);
    assert_eq!(parsed[1].1, Failure::NoPerfCommand);
    assert_eq!(parsed[1].2, "the task has no benchmark command");
    assert!(parse_skip_line("# comment").is_none() && parse_skip_line("abc nope x").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_panics(
        cmd in ".{0,120}",
        model in "[ -~]{0,40}",
        files in proptest::collection::vec("[ -~]{0,40}", 0..4),
        date in "[0-9T:-]{0,22}",
        gpu in proptest::option::of((prop_oneof!["H100", "A10G", "MI300X", "ZZ9"], 1u32..17)),
        tp in "[0-9a-z-]{0,4}",
    ) {
        let raw = format!("python benchmarks/benchmark_serving.py --model {model} --tensor-parallel-size {tp} {cmd}");
        let mut t = task(1, "", None, &[], "");
        t.perf_command = Some(raw.clone());
        t.spec = Some(support::spec(&raw));
        t.gpu = gpu.map(|(k, n)| GpuSpec::new(k, n));
        t.files_changed = files;
        t.date = Some(date);
        t.models = vec![model];
        let r = triage_offline(&[t], &TriageOptions::default());
        let _ = (r.to_markdown(), r.to_json(), r.skip_list());
    }
}
