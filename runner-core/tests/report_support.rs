//! A realistic results store for the report tests (used by `report_*.rs` here and by the
//! CLI's `cli_report.rs` through `#[path]`): four tasks planned by the real planner and
//! attempts recorded as the engine records them.
//!
//! - `SERVING`: human 10 % faster than baseline, agent equal to human, A/A repeats, one
//!   transient failure retried;
//! - `NO_CHANGE`: throughput, human equal to baseline (the validity gate trips), agent 3 %
//!   faster (shown but unscored);
//! - `FAILED`: latency, every human repeat ends in `oom`;
//! - `SKIPPED`: skipped by triage with a reason.
#![allow(dead_code)]

use std::path::Path;

use runner_core::dataset::Dataset;
use runner_core::engine::interleaved_jobs;
use runner_core::failure::Failure;
use runner_core::metrics::{Metrics, Provenance};
use runner_core::plan::plan_task;
use runner_core::record::{AttemptRecord, JobKey, JobStatus, RunId, RunStatus, TaskStatus};
use runner_core::settings::Settings;
use runner_core::store::{Store, TaskRow};
use runner_core::task::Variant;

pub const SERVING: &str = "aaaa1111bbbb2222cccc3333dddd4444eeee5555";
pub const NO_CHANGE: &str = "bbbb2222cccc3333dddd4444eeee5555ffff6666";
pub const FAILED: &str = "cccc3333dddd4444eeee5555ffff6666aaaa7777";
pub const SKIPPED: &str = "dddd4444eeee5555ffff6666aaaa7777bbbb8888";
const PARENT: &str = "0123456789abcdef0123456789abcdef01234567";
pub const REPEATS: u32 = 6;

const SERVING_CMD: &str = "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B-Instruct --dataset-name random --random-input-len 1024 --random-output-len 128 --num-prompts 200 --request-rate 8";
const THROUGHPUT_CMD: &str = "python benchmarks/benchmark_throughput.py --model Qwen/Qwen2.5-7B-Instruct --input-len 1000 --output-len 100 --num-prompts 200";
const LATENCY_CMD: &str = "python benchmarks/benchmark_latency.py --model meta-llama/Meta-Llama-3-8B --batch-size 8 --input-len 128 --output-len 256";

/// A deterministic wobble in [-1, 1].
fn wobble(i: u32, salt: u32) -> f64 {
    (((i * 7919 + salt * 104_729) % 101) as f64 / 50.0) - 1.0
}

fn planned_row(
    commit: &str,
    line: usize,
    subject: &str,
    cmd: &str,
    variants: &[Variant],
) -> TaskRow {
    let row = serde_json::json!({
        "commit_hash": commit, "parent_commit": PARENT, "perf_command": cmd,
        "commit_subject": subject, "gpu_config": "H100:1",
    });
    let ds = Dataset::from_str(&row.to_string(), "report-fixture", Path::new("."));
    let task = ds.tasks.into_iter().next().expect("the fixture row loads");
    let patch = variants
        .contains(&Variant::Agent)
        .then(|| runner_core::build::PatchSpec {
            path: "agent.patch".into(),
            sha256: None,
        });
    let plan = plan_task(&task, variants, &Settings::embedded(), patch).expect("the fixture plans");
    TaskRow {
        commit: commit.into(),
        line,
        subject: Some(subject.into()),
        status: TaskStatus::Planned,
        detail: serde_json::to_string(&plan).unwrap(),
        step_fingerprint: Some(plan.step_fingerprint),
        plan: None,
    }
}

pub fn record(
    run: &RunId,
    job: &JobKey,
    attempt: u32,
    minute: u32,
    metrics: &[(&str, f64)],
    failure: Option<Failure>,
) -> AttemptRecord {
    let mut m = Metrics::new();
    for (k, v) in metrics {
        m.insert_first(
            k,
            *v,
            Provenance {
                file: "result.json".into(),
                line: None,
                source: format!("$.{k}"),
            },
        );
    }
    let evidence = match failure {
        Some(Failure::Oom) => {
            vec!["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB".into()]
        }
        Some(f) => vec![format!("{} happened", f.code())],
        None => vec![],
    };
    AttemptRecord {
        run_id: run.clone(),
        job: job.clone(),
        attempt,
        started_at: format!("2026-11-28T03:{:02}:{:02}Z", minute / 60 % 60, minute % 60),
        finished_at: format!(
            "2026-11-28T03:{:02}:{:02}Z",
            (minute + 1) / 60 % 60,
            (minute + 1) % 60
        ),
        backend: "local".into(),
        host: Some("gpu-host-1".into()),
        gpu_names: vec!["NVIDIA H100 80GB HBM3".into()],
        build_identity: format!("vllm@{}", job.variant),
        engine_version: Some("0.6.4".into()),
        build_digest: None,
        step_fingerprint: "f".repeat(64),
        client_argv: vec![
            "{PYTHON}".into(),
            "benchmarks/benchmark_serving.py".into(),
            "--model".into(),
            "meta-llama/Llama-3.1-8B-Instruct".into(),
            "--num-prompts".into(),
            "200".into(),
            "--request-rate".into(),
            "8".into(),
        ],
        server_argv: None,
        datasets: vec![],
        warmed_up: true,
        failure,
        failure_detail: failure.map(|f| f.describe().to_string()),
        evidence,
        metrics: m,
        artifact_dir: format!("artifacts/{}-{}", job.variant, job.repeat),
        wall_s: 60.0,
        benchmark_s: 50.0,
        gpu_seconds: if failure.is_some() { 20.0 } else { 60.0 },
        cost_usd: None,
        serve: None,
    }
}

/// The serving metrics of one repeat around an output throughput.
fn serving_metrics(tput: f64, ttft: f64, tpot: f64) -> Vec<(&'static str, f64)> {
    vec![
        ("output_throughput_tps", tput),
        ("request_throughput_rps", tput / 128.0),
        ("total_throughput_tps", tput * 9.0),
        ("ttft_mean_ms", ttft),
        ("ttft_median_ms", ttft * 0.95),
        ("ttft_p99_ms", ttft * 1.8),
        ("tpot_mean_ms", tpot),
        ("tpot_median_ms", tpot),
        ("tpot_p99_ms", tpot * 1.5),
        ("itl_mean_ms", tpot),
        ("duration_s", 25.6),
        ("completed", 200.0),
        ("total_input_tokens", 204_800.0),
        ("total_output_tokens", 25_600.0),
    ]
}

/// Create the fixture run in a store at `path`; returns its id.
pub fn build_store(path: &Path) -> RunId {
    let store = Store::open(path).unwrap();
    let run = RunId("20261128-030000-ab12".into());
    store
        .create_run(
            &run,
            "local",
            "examples.jsonl",
            &serde_json::json!({"repeats": REPEATS}),
        )
        .unwrap();
    let all = [Variant::Baseline, Variant::Human, Variant::Agent];
    store
        .put_task(
            &run,
            &planned_row(
                SERVING,
                1,
                "[Perf] Faster sampler for top-p (#1234)",
                SERVING_CMD,
                &all,
            ),
        )
        .unwrap();
    store
        .put_task(
            &run,
            &planned_row(
                NO_CHANGE,
                2,
                "[Core] Refactor the scheduler | no perf change",
                THROUGHPUT_CMD,
                &all,
            ),
        )
        .unwrap();
    store
        .put_task(
            &run,
            &planned_row(
                FAILED,
                3,
                "[Kernel] Fused MoE for <small> batches",
                LATENCY_CMD,
                &[Variant::Baseline, Variant::Human],
            ),
        )
        .unwrap();
    store
        .put_task(
            &run,
            &TaskRow {
                commit: SKIPPED.into(),
                line: 4,
                subject: Some("[ROCm] Tune AITER kernels".into()),
                status: TaskStatus::Skipped,
                detail: "rocm_specific: every change is under csrc/rocm/".into(),
                step_fingerprint: None,
                plan: None,
            },
        )
        .unwrap();
    let mut minute = 0;
    let mut next = || {
        minute += 2;
        minute
    };
    // Serving: human and agent 10 % faster; A/A repeats of the baseline.
    let jobs = interleaved_jobs(SERVING, &all, REPEATS, true);
    store.add_jobs(&run, &jobs).unwrap();
    for j in &jobs {
        let w = wobble(j.repeat, j.variant as u32 + 3 * j.aa as u32);
        let speed = if j.variant == Variant::Baseline {
            1.0
        } else {
            1.10
        };
        let m = serving_metrics(
            1000.0 * speed * (1.0 + 0.008 * w),
            100.0 / speed * (1.0 + 0.01 * w),
            20.0 / speed * (1.0 + 0.008 * w),
        );
        if j.variant == Variant::Human && j.repeat == 2 {
            let t = next();
            store
                .record_attempt(
                    &record(&run, j, 1, t, &[], Some(Failure::InfraTransient)),
                    JobStatus::Running,
                )
                .unwrap();
            let t = next();
            store
                .record_attempt(&record(&run, j, 2, t, &m, None), JobStatus::Succeeded)
                .unwrap();
        } else {
            let t = next();
            store
                .record_attempt(&record(&run, j, 1, t, &m, None), JobStatus::Succeeded)
                .unwrap();
        }
    }
    // Throughput: human equals baseline; agent 3 % faster.
    let jobs = interleaved_jobs(NO_CHANGE, &all, REPEATS, false);
    store.add_jobs(&run, &jobs).unwrap();
    for j in &jobs {
        let w = wobble(j.repeat, 7 + j.variant as u32);
        let speed = if j.variant == Variant::Agent {
            1.03
        } else {
            1.0
        };
        let t = next();
        let m = [
            ("total_throughput_tps", 5000.0 * speed * (1.0 + 0.004 * w)),
            ("request_throughput_rps", 4.5),
        ];
        store
            .record_attempt(&record(&run, j, 1, t, &m, None), JobStatus::Succeeded)
            .unwrap();
    }
    // Latency: the human build runs out of memory every time.
    let jobs = interleaved_jobs(FAILED, &[Variant::Baseline, Variant::Human], REPEATS, false);
    store.add_jobs(&run, &jobs).unwrap();
    for j in &jobs {
        let t = next();
        if j.variant == Variant::Human {
            store
                .record_attempt(
                    &record(&run, j, 1, t, &[], Some(Failure::Oom)),
                    JobStatus::Failed,
                )
                .unwrap();
        } else {
            let m = [("latency_avg_s", 1.5 * (1.0 + 0.01 * wobble(j.repeat, 11)))];
            store
                .record_attempt(&record(&run, j, 1, t, &m, None), JobStatus::Succeeded)
                .unwrap();
        }
    }
    store.set_run_status(&run, RunStatus::Finished).unwrap();
    run
}
