//! The dummy backend through the real engine, end to end: a dataset row is planned, its GPUs
//! leased, each build prepared, each job executed, its output parsed by runner-core's parser
//! and the attempt stored — with nothing in runner-core that knows this backend exists.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backend_dummy::{DummyBackend, DummyConfig};
use runner_core::build::PatchSpec;
use runner_core::dataset::Dataset;
use runner_core::engine::{Engine, EngineOptions, EngineSummary, RetryPolicy, interleaved_jobs};
use runner_core::plan::{TaskPlan, plan_task};
use runner_core::record::{AttemptRecord, JobStatus, RunId};
use runner_core::settings::Settings;
use runner_core::store::Store;
use runner_core::{Failure, Variant};
use tokio_util::sync::CancellationToken;

const PARENT: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";
const LATENCY: &str = "python benchmarks/benchmark_latency.py --model m/x --num-iters 3";
const SERVE: &str = "vllm bench serve --model m/tiny --dataset-name random --random-input-len 32 \
                     --random-output-len 24 --num-prompts 12 --ignore-eos --port 8000";

/// The plan of one dataset row, every variant (the agent with a patch).
fn plan(commit: &str, command: &str, gpu: &str) -> TaskPlan {
    let row = serde_json::json!({
        "commit_hash": commit, "parent_commit": PARENT,
        "perf_command": command, "gpu_config": gpu,
    });
    let ds = Dataset::from_str(&row.to_string(), "t", Path::new("."));
    let patch = PatchSpec {
        path: "p.diff".into(),
        sha256: Some("ab".repeat(32)),
    };
    plan_task(
        &ds.tasks[0],
        &Variant::ALL,
        &Settings::embedded(),
        Some(patch),
    )
    .unwrap()
}

struct Run {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    run: RunId,
    summary: EngineSummary,
}

impl Run {
    fn attempts(&self) -> Vec<AttemptRecord> {
        self.store.attempts(&self.run).unwrap()
    }
}

/// Store the plans' jobs (`repeats` each) and run them on a dummy configured by `config`.
async fn run(config: DummyConfig, plans: &[TaskPlan], repeats: u32, concurrency: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
    let run = RunId::generate();
    store
        .create_run(&run, "dummy", "t", &serde_json::json!({}))
        .unwrap();
    for p in plans {
        let jobs = interleaved_jobs(&p.commit, &Variant::ALL, repeats, false);
        store.add_jobs(&run, &jobs).unwrap();
    }
    let opts = EngineOptions {
        repeats,
        aa: false,
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_wall: Duration::from_secs(30),
        },
        concurrency,
        artifact_root: dir.path().join("artifacts"),
        data_dir: dir.path().join("data"),
        dataset_roots: vec![dir.path().to_path_buf()],
        budget_gpu_seconds: None,
        adaptive: None,
        servers: Default::default(),
        burn_in: true,
    };
    let engine = Engine::new(Arc::new(DummyBackend::new(config)), store.clone(), opts);
    let summary = engine
        .run(&run, plans, &CancellationToken::new())
        .await
        .unwrap();
    Run {
        dir,
        store,
        run,
        summary,
    }
}

fn human_faster() -> DummyConfig {
    DummyConfig {
        speed: [(Variant::Human, 1.25), (Variant::Agent, 1.1)].into(),
        ..DummyConfig::default()
    }
}

#[tokio::test]
async fn a_latency_task_runs_end_to_end_through_the_engine() {
    let p = plan(
        "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        LATENCY,
        "H100:1",
    );
    let r = run(human_faster(), std::slice::from_ref(&p), 2, 1).await;
    assert_eq!(
        (r.summary.succeeded, r.summary.failed, r.summary.attempts),
        (6, 0, 6)
    );
    let attempts = r.attempts();
    for a in &attempts {
        assert_eq!(a.backend, "dummy");
        assert_eq!(a.failure, None, "{a:?}");
        assert_eq!(a.gpu_names, ["NVIDIA H100 80GB HBM3 (dummy)"]);
        assert_eq!(a.engine_version.as_deref(), Some("0.0.0+dummy"));
        assert_eq!(a.step_fingerprint, p.step_fingerprint);
        // The metric came from the JSON result file the plan asked for, not from stdout.
        let m = &a.metrics.0["latency_avg_s"];
        assert!(m.provenance.file.ends_with("result.json"), "{m:?}");
        // What the client "ran": the plan's argv with every placeholder filled.
        let argv =
            std::fs::read_to_string(Path::new(&a.artifact_dir).join("client.argv.json")).unwrap();
        assert!(
            !argv.contains("{RESULT_DIR}") && !argv.contains("{PYTHON}"),
            "{argv}"
        );
        assert!(argv.contains("--output-json"), "{argv}");
    }
    let latency = |v: Variant| -> Vec<f64> {
        attempts
            .iter()
            .filter(|a| a.job.variant == v)
            .map(|a| a.metrics.get("latency_avg_s").unwrap())
            .collect()
    };
    assert_eq!(latency(Variant::Baseline), [1.0, 1.0]);
    assert_eq!(latency(Variant::Human), [0.8, 0.8]);
    let agent = latency(Variant::Agent);
    assert!(
        agent.len() == 2 && agent.iter().all(|x| (x - 1.0 / 1.1).abs() < 1e-12),
        "{agent:?}"
    );
    // The agent ran its own (patched) build, prepared once for both repeats.
    let agent = attempts
        .iter()
        .find(|a| a.job.variant == Variant::Agent)
        .unwrap();
    assert!(
        agent.build_identity.contains("+patch-"),
        "{}",
        agent.build_identity
    );
    assert!(r.dir.path().join("artifacts").exists());
}

#[tokio::test]
async fn a_serving_task_is_parsed_from_its_saved_result() {
    let p = plan("299ebb62e1c7a8e6a6e3a0e0f0a9c5a7e1b2c3d4", SERVE, "H100:1");
    assert!(p.step.server.is_some() && p.step.result_file.is_some());
    let r = run(human_faster(), std::slice::from_ref(&p), 1, 1).await;
    assert_eq!((r.summary.succeeded, r.summary.failed), (3, 0));
    let tps = |v: Variant| {
        let a = r
            .attempts()
            .into_iter()
            .find(|a| a.job.variant == v)
            .unwrap();
        a.metrics.get("output_throughput_tps").unwrap()
    };
    assert!((tps(Variant::Human) / tps(Variant::Baseline) - 1.25).abs() < 1e-9);
}

#[tokio::test]
async fn an_out_of_memory_client_is_classified_by_the_engine_and_not_retried() {
    let p = plan(
        "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        LATENCY,
        "H100:1",
    );
    let config = DummyConfig {
        oom: vec![Variant::Agent],
        ..DummyConfig::default()
    };
    let r = run(config, std::slice::from_ref(&p), 1, 1).await;
    assert_eq!((r.summary.succeeded, r.summary.failed), (2, 1));
    let agent: Vec<_> = r
        .attempts()
        .into_iter()
        .filter(|a| a.job.variant == Variant::Agent)
        .collect();
    assert_eq!(agent.len(), 1, "a deterministic failure is not retried");
    assert_eq!(agent[0].failure, Some(Failure::Oom));
    assert!(agent[0].metrics.is_empty());
}

#[tokio::test]
async fn a_gpu_kind_the_pool_lacks_fails_every_job_at_once() {
    let p = plan(
        "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        LATENCY,
        "A100:1",
    );
    let r = run(DummyConfig::default(), std::slice::from_ref(&p), 1, 1).await;
    assert_eq!((r.summary.succeeded, r.summary.failed), (0, 3));
    for a in r.attempts() {
        assert_eq!(a.failure, Some(Failure::BadConfig));
        let detail = a.failure_detail.unwrap();
        assert!(detail.contains("kind A100"), "{detail}");
    }
    let jobs = r.store.jobs(&r.run).unwrap();
    assert!(jobs.iter().all(|(_, s)| *s == JobStatus::Failed));
}

#[tokio::test]
async fn concurrent_tasks_never_share_the_one_gpu() {
    let a = plan(
        "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        LATENCY,
        "H100:1",
    );
    let b = plan(
        "0ec82edda59aaf5cf3b07aadf4ecce1aa1131add",
        LATENCY,
        "H100:1",
    );
    let config = DummyConfig {
        step_ms: 100,
        ..DummyConfig::default()
    };
    let r = run(config, &[a.clone(), b.clone()], 1, 2).await;
    assert_eq!(r.summary.succeeded, 6);
    // Each task holds the GPU for all its jobs: one task's jobs all end before the other's
    // first job starts.
    let span = |commit: &str| {
        let mine: Vec<_> = r
            .attempts()
            .into_iter()
            .filter(|x| x.job.commit == commit)
            .collect();
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        let start = mine.iter().map(|x| t(&x.started_at)).min().unwrap();
        let end = mine.iter().map(|x| t(&x.finished_at)).max().unwrap();
        (start, end)
    };
    let (sa, ea) = span(&a.commit);
    let (sb, eb) = span(&b.commit);
    assert!(
        ea <= sb || eb <= sa,
        "leases overlapped: {sa}..{ea} and {sb}..{eb}"
    );
}
