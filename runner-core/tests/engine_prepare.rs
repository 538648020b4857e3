//! The engine's prepare phase: transient failures are retried through the one cancellable
//! backoff, every try is kept in `prepare-<variant>/attempts.json`, and a signal during a
//! backoff ends it at once instead of sleeping it out.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use runner_core::backend::{GpuLease, JobEnvs};
use runner_core::dataset::Dataset;
use runner_core::engine::{Engine, EngineOptions, RetryPolicy, interleaved_jobs, task_dir};
use runner_core::failure::Failure;
use runner_core::plan::{GpuRequest, StepPlan, TaskPlan, plan_task};
use runner_core::record::RunId;
use runner_core::settings::Settings;
use runner_core::store::Store;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
    Variant,
};
use tokio_util::sync::CancellationToken;

/// Prepare fails transiently `failures` times, then succeeds; execute prints a latency.
#[derive(Debug)]
struct Flaky {
    failures: u32,
    tries: AtomicU32,
}

#[async_trait]
impl Backend for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn check(&self) -> Result<Health, BackendError> {
        Ok(Health::default())
    }
    async fn acquire(&self, _gpu: &GpuRequest, _cx: &RunContext) -> Result<GpuLease, BackendError> {
        Ok(GpuLease::default())
    }
    async fn release(&self, _lease: GpuLease) -> Result<(), BackendError> {
        Ok(())
    }
    async fn prepare(&self, b: &BuildSpec, _cx: &RunContext) -> Result<PreparedEnv, BackendError> {
        if self.tries.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(BackendError::new(
                "flaky",
                Failure::InfraTransient,
                "download reset by peer",
            ));
        }
        Ok(PreparedEnv {
            identity: b.identity.clone(),
            handle: String::new(),
            engine_version: Some("0.6.0".into()),
            digest: None,
            reused: false,
            scripts_dir: None,
        })
    }
    async fn execute(
        &self,
        _envs: &JobEnvs,
        _s: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        std::fs::create_dir_all(&cx.artifact_dir).unwrap();
        let stdout = cx.artifact_dir.join("client.stdout");
        std::fs::write(&stdout, "Avg latency: 1.0 seconds\n").unwrap();
        let stderr = cx.artifact_dir.join("client.stderr");
        std::fs::write(&stderr, "").unwrap();
        Ok(StepOutput {
            exit_code: Some(0),
            client_stdout: stdout,
            client_stderr: stderr,
            ..StepOutput::default()
        })
    }
}

fn plan() -> TaskPlan {
    let row = serde_json::json!({
        "commit_hash": "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        "parent_commit": "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a",
        "perf_command": "python benchmarks/benchmark_latency.py --model m/x --num-iters 3",
    });
    let ds = Dataset::from_str(&row.to_string(), "t", Path::new("."));
    let variants = [Variant::Baseline];
    plan_task(&ds.tasks[0], &variants, &Settings::embedded(), None).unwrap()
}

fn engine(dir: &Path, failures: u32, base_delay: Duration) -> (Engine, Arc<Store>, RunId) {
    let store = Arc::new(Store::open(&dir.join("s.db")).unwrap());
    let run = RunId::generate();
    store
        .create_run(&run, "flaky", "t", &serde_json::json!({}))
        .unwrap();
    let plan = plan();
    store
        .add_jobs(
            &run,
            &interleaved_jobs(&plan.commit, &[Variant::Baseline], 1, false),
        )
        .unwrap();
    let opts = EngineOptions {
        repeats: 1,
        aa: false,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay,
            max_delay: base_delay,
            max_wall: Duration::from_secs(3600),
        },
        concurrency: 1,
        artifact_root: dir.join("art"),
        data_dir: dir.join("data"),
        dataset_roots: vec![],
        budget_gpu_seconds: None,
        adaptive: None,
    };
    let backend = Arc::new(Flaky {
        failures,
        tries: AtomicU32::new(0),
    });
    (Engine::new(backend, store.clone(), opts), store, run)
}

#[tokio::test]
async fn prepare_retries_are_kept_try_by_try() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _store, run) = engine(dir.path(), 2, Duration::from_millis(5));
    let plan = plan();
    let sum = engine
        .run(&run, std::slice::from_ref(&plan), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sum.succeeded, 1, "{sum:?}");
    let tries = task_dir(&dir.path().join("art"), &run, &plan.commit)
        .join("prepare-baseline")
        .join("attempts.json");
    let tries: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tries).unwrap()).unwrap();
    let tries = tries.as_array().unwrap();
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert_eq!(tries[0]["failure"], "infra_transient");
    assert_eq!(tries[0]["detail"], "download reset by peer");
    assert_eq!(tries[2]["ok"], true);
}

#[tokio::test]
async fn a_signal_during_a_prepare_backoff_ends_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A one-hour backoff: only the cancellation can end it in time.
    let (engine, store, run) = engine(dir.path(), 5, Duration::from_secs(3600));
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.cancel();
    });
    let t = Instant::now();
    let sum = tokio::time::timeout(
        Duration::from_secs(20),
        engine.run(&run, std::slice::from_ref(&plan()), &cancel),
    )
    .await
    .expect("the backoff ignored the cancellation")
    .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(sum.succeeded, 0);
    let jobs = store.jobs(&run).unwrap();
    assert!(
        jobs.iter().all(|(_, s)| s.needs_resume()),
        "the job stays resumable: {jobs:?}"
    );
}
