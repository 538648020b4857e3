//! Offline triage: model sizes against GPU memory, the model table, impossible models.

#[path = "fixtures/triage/support.rs"]
mod support;

use runner_core::failure::Failure;
use runner_core::task::Task;
use runner_core::triage::models::{Lookup, ModelTable, TableFile};
use runner_core::triage::{TaskTriage, TriageOptions, Verdict, triage_offline};
use support::{serving, task};

const RECENT: &str = "2025-06-20T12:00:00Z";
const FILES: &[&str] = &["vllm/worker/model_runner.py"];

fn run(t: Task) -> TaskTriage {
    triage_offline(&[t], &TriageOptions::default())
        .tasks
        .remove(0)
}

fn llama8(extra: &str) -> String {
    serving("meta-llama/Llama-3.1-8B-Instruct", extra)
}

#[test]
fn model_sizes_against_gpus() {
    let big = |extra: &str| serving("meta-llama/Llama-3.1-70B-Instruct", extra);
    let t = run(task(1, &big(""), Some("H100:2"), FILES, RECENT));
    let r = t.primary().unwrap();
    assert_eq!(
        (t.verdict, r.code),
        (Verdict::NotVerifiable, Failure::ModelTooLarge)
    );
    assert!(r.fix.contains("--tensor-parallel-size 2"), "{}", r.fix);
    assert!(
        r.evidence.iter().any(|e| e.contains("70.6 B params")),
        "{:?}",
        r.evidence
    );
    assert_eq!(
        run(task(
            2,
            &big("--tensor-parallel-size 2"),
            Some("H100:2"),
            FILES,
            RECENT
        ))
        .verdict,
        Verdict::Verifiable
    );
    let t = run(task(
        3,
        &big("--tensor-parallel-size 4"),
        Some("H100:2"),
        FILES,
        RECENT,
    ));
    assert_eq!(t.primary().unwrap().code, Failure::BadConfig);
    assert!(t.primary().unwrap().detail.contains("needs 4 GPUs"));
    // FP8 halves the weights: 65.8 GiB fit one H100 (72 GiB usable), but only just.
    let fp8 = serving("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", "");
    let t = run(task(4, &fp8, Some("H100:1"), FILES, RECENT));
    assert_eq!(t.verdict, Verdict::Verifiable, "{t:#?}");
    assert!(
        t.warnings.iter().any(|w| w.contains("leaves only")),
        "{:?}",
        t.warnings
    );
    let t = run(task(5, &fp8, Some("H200:1"), FILES, RECENT));
    assert!(
        t.verdict == Verdict::Verifiable && t.warnings.iter().all(|w| !w.contains("leaves only"))
    );
    assert_eq!(
        run(task(5, &big(""), Some("H200:1"), FILES, RECENT))
            .primary()
            .unwrap()
            .code,
        Failure::ModelTooLarge
    );
    let awq = serving("TheBloke/Llama-2-70B-Chat-AWQ", "");
    let t = run(task(6, &awq, Some("H100:1"), FILES, RECENT));
    assert_eq!(t.verdict, Verdict::Verifiable, "{t:#?}");
    let lat =
        "python benchmarks/benchmark_latency.py --model meta-llama/Llama-2-70b-hf --dtype float16";
    let t = run(task(10, lat, Some("H100:1"), FILES, RECENT));
    assert_eq!(
        t.primary().unwrap().fix,
        "use gpu_config H100:2 with --tensor-parallel-size 2"
    );
    let ds = serving("deepseek-ai/DeepSeek-V3", "--tensor-parallel-size 8");
    assert_eq!(
        run(task(7, &ds, Some("H100:8"), FILES, RECENT))
            .primary()
            .unwrap()
            .code,
        Failure::ModelTooLarge
    );
    let t = run(task(7, &ds, Some("H100:8"), FILES, RECENT));
    assert_eq!(
        t.primary().unwrap().fix,
        "use gpu_config H200:8 with --tensor-parallel-size 8"
    );
    assert_eq!(
        run(task(8, &ds, Some("H200:8"), FILES, RECENT)).verdict,
        Verdict::Verifiable
    );
    // fp32 doubles them.
    let t = run(task(
        9,
        &llama8("--dtype float32 --gpu-memory-utilization 0.4"),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert_eq!(t.primary().unwrap().code, Failure::ModelTooLarge, "{t:#?}");
}

#[test]
fn impossible_and_unknown_models() {
    for m in ["meta-llama/Llama-3.1-13B", "Qwen/Qwen2.5-9B-Instruct"] {
        let t = run(task(1, &serving(m, ""), Some("H100:1"), FILES, RECENT));
        let r = t.primary().unwrap();
        assert_eq!(r.code, Failure::BadConfig, "{m}");
        assert!(r.detail.contains("has no"), "{}", r.detail);
    }
    let t = run(task(
        2,
        &serving("someone/Qwen2.5-9B-merge", ""),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert_eq!(t.verdict, Verdict::Verifiable, "community models only warn");
    let t = run(task(
        3,
        &serving("acme/secret-model", ""),
        Some("H100:1"),
        FILES,
        RECENT,
    ));
    assert_eq!(t.verdict, Verdict::Verifiable);
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("not in the model table"))
    );
    assert!(t.not_checked.iter().any(|n| n.starts_with("model size")));
    let t = run(task(4, &llama8(""), None, FILES, RECENT));
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("assuming the largest single node, H100:8")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn model_table_lookups() {
    let table = ModelTable::builtin();
    let known = |name: &str| match table.lookup(name) {
        Lookup::Known(i) => i,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(known("mistralai/Mixtral-8x7B-Instruct-v0.1").params_b, 46.7);
    assert_eq!(known("mistralai/Mixtral-8x22B-v0.1").params_b, 140.6);
    let q = known("Qwen/Qwen3-30B-A3B-FP8");
    assert_eq!(
        (q.arch.as_str(), q.active_b),
        ("Qwen3MoeForCausalLM", Some(3.3))
    );
    assert_eq!(
        known("qwen/qwen2-57b-a14b-instruct").arch,
        "Qwen2MoeForCausalLM"
    );
    assert_eq!(
        known("Qwen/Qwen2.5-VL-7B-Instruct").arch,
        "Qwen2_5_VLForConditionalGeneration"
    );
    assert_eq!(known("facebook/opt-125m").params_b, 0.125);
    assert_eq!(known("DEEPSEEK-AI/deepseek-v3").dtype_bytes, 1.0);
    assert_eq!(known("deepseek-ai/DeepSeek-V2-Lite-Chat").params_b, 15.7);
    assert_eq!(
        known("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B").arch,
        "Qwen2ForCausalLM"
    );
    assert_eq!(known("meta-llama/Meta-Llama-3-8B-Instruct").params_b, 8.03);
    assert_eq!(known("google/gemma-2-9b-it").arch, "Gemma2ForCausalLM");
    assert_eq!(known("microsoft/Phi-3-mini-4k-instruct").params_b, 3.82);
    assert_eq!(known("ibm-ai-platform/Bamba-9B").arch, "BambaForCausalLM");
    assert_eq!(
        known("/models/meta-llama/Llama-2-7b-chat-hf").params_b,
        6.74
    );
    assert!(matches!(
        table.lookup("huggyllama/llama-30b"),
        Lookup::Unknown
    ));
    assert!(matches!(
        table.lookup("facebook/opt-1b"),
        Lookup::Impossible { official: true, .. }
    ));

    let extra = TableFile::parse(include_str!("fixtures/triage/extra_models.toml")).unwrap();
    let mut notes = Vec::new();
    let t = table.with_extra(&extra.model, &extra.family, &mut notes);
    assert_eq!(notes.len(), 1, "the invalid entry is reported: {notes:?}");
    match t.lookup("acme/Widget-7B") {
        Lookup::Known(i) => assert_eq!(i.arch, "WidgetForCausalLM"),
        other => panic!("{other:?}"),
    }
    match t.lookup("meta-llama/Llama-3.1-8B") {
        Lookup::Known(i) => assert_eq!(i.params_b, 8.5, "extra entries win"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn kernel_benchmarks_are_not_sized() {
    let cmd = "python benchmarks/kernels/benchmark_moe.py --model mistralai/Mixtral-8x7B-Instruct-v0.1 --tune";
    let t = run(task(1, cmd, Some("H100:1"), FILES, RECENT));
    assert_eq!(t.verdict, Verdict::NeedsAttention, "{t:#?}");
    assert!(t.reasons.iter().all(|r| r.code != Failure::ModelTooLarge));
    assert!(t.not_checked.iter().any(|n| n.contains("may not load")));
}
