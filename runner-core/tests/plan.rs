//! Run plans from real-world commands: the server/client split, one step for every variant,
//! replaced endpoint and result flags, GPU requests and plan errors.

use std::path::Path;

use runner_core::build::PatchSpec;
use runner_core::dataset::Dataset;
use runner_core::failure::Failure;
use runner_core::plan::{ClientBuild, PlanError, TaskPlan, plan_task};
use runner_core::settings::Settings;
use runner_core::task::{Task, Variant};

const C: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
const P: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";

fn task(cmd: &str, gpu: Option<&str>) -> Task {
    let mut row = serde_json::json!({"commit_hash": C, "parent_commit": P, "perf_command": cmd});
    if let Some(g) = gpu {
        row["gpu_config"] = g.into();
    }
    let ds = Dataset::from_str_with(&row.to_string(), "t", Path::new("."), &settings().inputs);
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    ds.tasks.into_iter().next().unwrap()
}

/// The embedded defaults, with `/data` as a dataset root (the commands name files there).
fn settings() -> Settings {
    let mut s = Settings::embedded();
    s.inputs.dataset_roots = vec!["/data".into()];
    s
}

fn plan(cmd: &str, gpu: Option<&str>) -> TaskPlan {
    let t = task(cmd, gpu);
    plan_task(&t, &[Variant::Baseline, Variant::Human], &settings(), None)
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn has_seq(argv: &[String], seq: &[&str]) -> bool {
    argv.windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

#[test]
fn serving_flags_go_to_the_server_and_nothing_is_dropped() {
    let p = plan(
        "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B-Instruct \
         --dataset-name sharegpt --dataset-path /data/ShareGPT_V3_unfiltered_cleaned_split.json \
         --num-prompts 1000 --enable-prefix-caching --enable-chunked-prefill \
         --max-model-len 4096 --tensor-parallel-size 2 --speculative-model '[ngram]' \
         --num-speculative-tokens 5 --ngram-prompt-lookup-max 4 --port 8000 --save-result",
        Some("H100:2"),
    );
    let s = &p.step;
    let server = &s.server.as_ref().expect("serving has a server").argv;
    for seq in [
        &["--model", "meta-llama/Llama-3.1-8B-Instruct"][..],
        &["--enable-prefix-caching"],
        &["--enable-chunked-prefill"],
        &["--max-model-len", "4096"],
        &["--tensor-parallel-size", "2"],
        &["--speculative-model", "[ngram]"],
        &["--num-speculative-tokens", "5"],
        &["--ngram-prompt-lookup-max", "4"],
        &["--host", "{HOST}", "--port", "{PORT}"],
    ] {
        assert!(has_seq(server, seq), "server lacks {seq:?}: {server:?}");
    }
    let client = &s.client.argv;
    assert_eq!(
        &client[..2],
        ["{PYTHON}", "{VLLM_SOURCE}/benchmarks/benchmark_serving.py"]
    );
    for seq in [
        &["--model", "meta-llama/Llama-3.1-8B-Instruct"][..],
        &["--dataset-name", "sharegpt"],
        &[
            "--dataset-path",
            "{DATA_DIR}/ShareGPT_V3_unfiltered_cleaned_split.json",
        ],
        &["--num-prompts", "1000"],
        &["--host", "{HOST}", "--port", "{PORT}"],
        &[
            "--save-result",
            "--result-dir",
            "{RESULT_DIR}",
            "--result-filename",
            "result.json",
        ],
    ] {
        assert!(has_seq(client, seq), "client lacks {seq:?}: {client:?}");
    }
    for engine_flag in [
        "--enable-prefix-caching",
        "--tensor-parallel-size",
        "--max-model-len",
    ] {
        assert!(
            !client.iter().any(|a| a == engine_flag),
            "{engine_flag} leaked into the client"
        );
    }
    assert!(
        !client.iter().any(|a| a == "8000"),
        "the dataset's port is replaced"
    );
    assert!(
        s.replaced_flags.contains(&"--port 8000".to_string()),
        "{:?}",
        s.replaced_flags
    );
    assert!(s.replaced_flags.contains(&"--save-result".to_string()));
    assert_eq!(s.datasets.len(), 1);
    assert_eq!(
        s.datasets[0].original,
        "/data/ShareGPT_V3_unfiltered_cleaned_split.json"
    );
    assert_eq!(s.client_build, ClientBuild::Fixed(Variant::Human));
    let warmup = &s.warmup.as_ref().expect("serving warms up").argv;
    assert!(has_seq(warmup, &["--num-prompts", "16"]));
    assert!(
        !warmup.iter().any(|a| a == "--save-result"),
        "warm-up results are not kept"
    );
    assert_eq!(s.gpu.count, 2);
}

#[test]
fn every_variant_shares_one_step_and_only_the_build_differs() {
    let t = task(
        "VLLM_USE_V1=1 vllm bench serve --model Qwen/Qwen3-30B-A3B --dataset-name random \
         --random-input-len 2048 --num-prompts 200",
        Some("H100:1"),
    );
    let patch = PatchSpec {
        path: "agent.diff".into(),
        sha256: Some("ab".repeat(32)),
    };
    let p = plan_task(&t, &Variant::ALL, &Settings::embedded(), Some(patch)).unwrap();
    assert_eq!(p.builds.len(), 3);
    assert_eq!(p.step_fingerprint, p.step.fingerprint());
    assert_eq!(
        p.step.env,
        vec![("VLLM_USE_V1".to_string(), "1".to_string())]
    );
    let commits: Vec<&str> = p.builds.iter().map(|b| b.commit.as_str()).collect();
    assert_eq!(commits, vec![P, C, P]);
    assert!(p.builds[2].patch.is_some() && p.builds[0].patch.is_none());
    let identities: std::collections::BTreeSet<_> = p.builds.iter().map(|b| &b.identity).collect();
    assert_eq!(identities.len(), 3, "each build has its own identity");
    // Planning again gives the same step: the plan is a pure function of the task.
    let again = plan_task(
        &t,
        &Variant::ALL,
        &Settings::embedded(),
        p.builds[2].patch.clone(),
    );
    assert_eq!(again.unwrap().step_fingerprint, p.step_fingerprint);
    assert_eq!(
        &p.step.client.argv[..5],
        [
            "{PYTHON}",
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "serve"
        ]
    );
}

#[test]
fn offline_modes_have_no_server_and_keep_every_flag_on_the_script() {
    let p = plan(
        "python benchmarks/benchmark_latency.py --model meta-llama/Meta-Llama-3-8B --batch-size 8 \
         --input-len 128 --output-len 256 --num-iters 10 -tp 1 --enforce-eager \
         --output-json /tmp/x.json",
        None,
    );
    let s = &p.step;
    assert!(s.server.is_none() && s.warmup.is_none());
    assert_eq!(s.client_build, ClientBuild::SameAsVariant);
    let c = &s.client.argv;
    for seq in [
        &["--tensor-parallel-size", "1"][..],
        &["--enforce-eager"],
        &["--batch-size", "8"],
        &["--output-json", "{RESULT_DIR}/result.json"],
    ] {
        assert!(has_seq(c, seq), "client lacks {seq:?}: {c:?}");
    }
    assert!(!c.iter().any(|a| a == "/tmp/x.json"));
    assert_eq!((s.gpu.kind.as_deref(), s.gpu.count), (None, 1));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("gpu_config is missing"))
    );
}

#[test]
fn parallelism_beyond_the_gpus_is_warned() {
    let p = plan(
        "python benchmarks/benchmark_throughput.py --model x/y --tensor-parallel-size 4",
        Some("H100:2"),
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("needs 4 GPUs")),
        "{:?}",
        p.warnings
    );
    let p = plan("vllm bench latency --model x/y -tp 2 -pp 2", None);
    assert_eq!(p.step.gpu.count, 4);
}

#[test]
fn unknown_flags_stay_with_the_client_and_are_reported() {
    let p = plan(
        "python benchmarks/benchmark_serving.py --model m/x --dataset-name random --frobnicate 3",
        Some("H100"),
    );
    assert!(has_seq(&p.step.client.argv, &["--frobnicate", "3"]));
    assert_eq!(p.step.unclassified_flags, vec!["--frobnicate"]);
    assert!(p.warnings.iter().any(|w| w.contains("--frobnicate")));
}

#[test]
fn plan_errors_map_to_failure_codes() {
    let s = Settings::embedded();
    let mut t = task("python benchmarks/benchmark_latency.py --model m/x", None);
    t.perf_command = None;
    t.spec = None;
    let e = plan_task(&t, &[Variant::Human], &s, None).unwrap_err();
    assert_eq!(e.failure(), Failure::NoPerfCommand);

    let t = task("python benchmarks/benchmark_latency.py --model MODEL", None);
    let e = plan_task(&t, &[Variant::Human], &s, None).unwrap_err();
    assert!(matches!(&e, PlanError::BadCommand { detail, .. } if detail.contains("MODEL")));
    assert_eq!(e.failure(), Failure::BadConfig);

    let mut t = task("python benchmarks/benchmark_latency.py --model m/x", None);
    t.parent = None;
    assert!(matches!(
        plan_task(&t, &[Variant::Baseline], &s, None),
        Err(PlanError::NoParent(_))
    ));
    let t = task("python benchmarks/benchmark_latency.py --model m/x", None);
    assert!(matches!(
        plan_task(&t, &[Variant::Agent], &s, None),
        Err(PlanError::NoPatch(_))
    ));
}

#[test]
fn the_real_world_dataset_plans_with_identical_steps() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/real-world.jsonl");
    let ds = Dataset::load(&path).unwrap();
    assert_eq!(ds.errors.len(), 5, "{:#?}", ds.errors);
    let s = Settings::embedded();
    let mut planned = 0;
    for t in &ds.tasks {
        if let Ok(p) = plan_task(t, &[Variant::Baseline, Variant::Human], &s, None) {
            planned += 1;
            assert_eq!(p.builds.len(), 2);
            assert_ne!(
                p.builds[0].commit, p.builds[1].commit,
                "line {}",
                t.source_line
            );
            if let Some(server) = &p.step.server {
                assert!(
                    server.argv.iter().any(|a| a == "--model"),
                    "line {}",
                    t.source_line
                );
            }
        }
    }
    assert!(
        planned >= 90,
        "only {planned} of {} planned",
        ds.tasks.len()
    );
}
