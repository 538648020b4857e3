//! Engine logic over a scripted backend that writes real vLLM-format output files: the order
//! of jobs, retries of transient failures only, resume without repeats, cancellation and the
//! budget. (The real backends are tested end to end with the stand-in engine elsewhere.)

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use runner_core::backend::{GpuLease, JobEnvs};
use runner_core::build::PatchSpec;
use runner_core::dataset::Dataset;
use runner_core::engine::{Engine, EngineOptions, EngineSummary, RetryPolicy, interleaved_jobs};
use runner_core::failure::Failure;
use runner_core::plan::{GpuRequest, StepPlan, TaskPlan, plan_task};
use runner_core::record::{JobStatus, RunId};
use runner_core::settings::Settings;
use runner_core::store::Store;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
    Variant,
};
use tokio_util::sync::CancellationToken;

/// What the scripted backend does for one execute call.
#[derive(Debug, Clone, Copy)]
enum Act {
    Latency(f64),
    Transient,
    Oom,
}

struct Scripted {
    script: Script,
    calls: Mutex<Vec<String>>,
    attempts: AtomicU32,
    cancel_after: Option<(u32, CancellationToken)>,
}

type Script = Box<dyn Fn(Variant, u32) -> Act + Send + Sync>;

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

#[async_trait]
impl Backend for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn check(&self) -> Result<Health, BackendError> {
        Ok(Health::default())
    }
    async fn acquire(&self, _gpu: &GpuRequest, _cx: &RunContext) -> Result<GpuLease, BackendError> {
        // No devices: the scripted jobs need none.
        Ok(GpuLease::default())
    }
    async fn release(&self, _lease: GpuLease) -> Result<(), BackendError> {
        Ok(())
    }
    async fn prepare(&self, b: &BuildSpec, _cx: &RunContext) -> Result<PreparedEnv, BackendError> {
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
        envs: &JobEnvs,
        _s: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        let v = cx.labels["variant"].parse::<Variant>().unwrap();
        let attempt: u32 = cx.labels["attempt"].parse().unwrap();
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        self.calls
            .lock()
            .unwrap()
            .push(format!("{v}:{attempt}:{}", envs.engine.identity));
        if let Some((after, token)) = &self.cancel_after {
            if n >= *after {
                // As a real backend does: the signal kills the running job, which reports it.
                token.cancel();
                return Err(BackendError::new(
                    "scripted",
                    Failure::Cancelled,
                    "stopped by signal",
                ));
            }
        }
        std::fs::create_dir_all(&cx.artifact_dir).unwrap();
        let stdout = cx.artifact_dir.join("client.stdout");
        let stderr = cx.artifact_dir.join("client.stderr");
        let (text, code) = match (self.script)(v, attempt) {
            Act::Latency(x) => (
                format!(
                    "INFO engine started\nAvg prompt throughput: 99.0 tokens/s\nAvg latency: {x} seconds\n50% percentile latency: {x} seconds\n"
                ),
                0,
            ),
            Act::Transient => {
                return Err(BackendError::new(
                    "scripted",
                    Failure::InfraTransient,
                    "connection reset by peer",
                ));
            }
            Act::Oom => (
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
                    .to_string(),
                1,
            ),
        };
        std::fs::write(&stdout, text).unwrap();
        std::fs::write(&stderr, "").unwrap();
        Ok(StepOutput {
            exit_code: Some(code),
            client_stdout: stdout,
            client_stderr: stderr,
            benchmark_seconds: 0.01,
            ..StepOutput::default()
        })
    }
}

fn backend(script: impl Fn(Variant, u32) -> Act + Send + Sync + 'static) -> Scripted {
    Scripted {
        script: Box::new(script),
        calls: Mutex::new(Vec::new()),
        attempts: AtomicU32::new(0),
        cancel_after: None,
    }
}

fn plan() -> TaskPlan {
    plan_of("e3580537a41a46b0f3cd750b86b633c1857a8c90")
}

fn plan_of(commit: &str) -> TaskPlan {
    let row = serde_json::json!({
        "commit_hash": commit,
        "parent_commit": "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a",
        "perf_command": "python benchmarks/benchmark_latency.py --model m/x --num-iters 3",
        "gpu_config": "H100:1",
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

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    run: RunId,
    opts: EngineOptions,
    plan: TaskPlan,
}

fn setup(repeats: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
    let run = RunId::generate();
    let plan = plan();
    store
        .create_run(&run, "scripted", "t", &serde_json::json!({}))
        .unwrap();
    store
        .add_jobs(
            &run,
            &interleaved_jobs(&plan.commit, &Variant::ALL, repeats, false),
        )
        .unwrap();
    let opts = EngineOptions {
        repeats,
        aa: false,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_wall: Duration::from_secs(30),
        },
        concurrency: 2,
        artifact_root: dir.path().join("artifacts"),
        data_dir: dir.path().join("data"),
        dataset_roots: vec![dir.path().to_path_buf()],
        budget_gpu_seconds: None,
        adaptive: None,
        servers: Default::default(),
        burn_in: true,
    };
    Setup {
        _dir: dir,
        store,
        run,
        opts,
        plan,
    }
}

/// Run the engine once over the setup's plan with `b`.
async fn run_with(s: &Setup, b: Arc<Scripted>, cancel: &CancellationToken) -> EngineSummary {
    let engine = Engine::new(b, s.store.clone(), s.opts.clone());
    engine
        .run(&s.run, std::slice::from_ref(&s.plan), cancel)
        .await
        .unwrap()
}

#[tokio::test]
async fn interleaves_variants_and_records_every_attempt() {
    let s = setup(2);
    let b = Arc::new(backend(|v, _| {
        Act::Latency(if v == Variant::Human { 0.8 } else { 1.0 })
    }));
    let sum = run_with(&s, b.clone(), &CancellationToken::new()).await;
    assert_eq!((sum.succeeded, sum.failed, sum.attempts), (6, 0, 6));
    let order: Vec<String> = b
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        ["baseline", "human", "agent", "baseline", "human", "agent"]
    );
    let calls = b.calls.lock().unwrap().clone();
    assert!(
        calls[2].contains("+patch-"),
        "the agent runs its own patched build: {calls:?}"
    );
    let attempts = s.store.attempts(&s.run).unwrap();
    assert_eq!(attempts.len(), 6);
    assert!(
        attempts
            .iter()
            .all(|a| a.step_fingerprint == s.plan.step_fingerprint)
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.client_argv == attempts[0].client_argv)
    );
    let human: Vec<f64> = attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Human)
        .map(|a| a.metrics.get("latency_avg_s").unwrap())
        .collect();
    assert_eq!(human, vec![0.8, 0.8]);
    assert!(
        attempts
            .iter()
            .all(|a| a.metrics.get("total_throughput_tps").is_none()),
        "engine log lines are not metrics"
    );
    // Running again repeats nothing.
    let again = run_with(&s, b.clone(), &CancellationToken::new()).await;
    assert_eq!(again.attempts, 0);
}

#[tokio::test]
async fn transient_failures_are_retried_and_deterministic_ones_are_not() {
    let s = setup(1);
    let b = Arc::new(backend(|v, attempt| match (v, attempt) {
        (Variant::Baseline, 1) => Act::Transient,
        (Variant::Agent, _) => Act::Oom,
        _ => Act::Latency(1.0),
    }));
    let sum = run_with(&s, b.clone(), &CancellationToken::new()).await;
    assert_eq!((sum.succeeded, sum.failed, sum.attempts), (2, 1, 4));
    let attempts = s.store.attempts(&s.run).unwrap();
    let base: Vec<_> = attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Baseline)
        .collect();
    assert_eq!(base.len(), 2);
    assert_eq!(base[0].failure, Some(Failure::InfraTransient));
    assert!(base[1].succeeded());
    let agent: Vec<_> = attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Agent)
        .collect();
    assert_eq!(agent.len(), 1, "a deterministic failure is never retried");
    assert_eq!(agent[0].failure, Some(Failure::Oom));
    assert!(
        agent[0]
            .evidence
            .iter()
            .any(|e| e.contains("CUDA out of memory"))
    );
}

#[tokio::test]
async fn persistent_transient_failures_stop_at_the_bound_and_resume_retries_them() {
    let s = setup(1);
    let b = Arc::new(backend(|v, _| {
        if v == Variant::Human {
            Act::Transient
        } else {
            Act::Latency(1.0)
        }
    }));
    let sum = run_with(&s, b.clone(), &CancellationToken::new()).await;
    assert_eq!((sum.succeeded, sum.failed, sum.attempts), (2, 1, 5));
    let jobs = s.store.jobs(&s.run).unwrap();
    assert_eq!(jobs[1].1, JobStatus::FailedTransient);
    let fixed = Arc::new(backend(|_, _| Act::Latency(1.0)));
    let sum = run_with(&s, fixed.clone(), &CancellationToken::new()).await;
    assert_eq!(
        (sum.succeeded, sum.attempts),
        (1, 1),
        "only the transiently failed job runs again"
    );
}

#[tokio::test]
async fn cancellation_stops_new_work_and_resume_finishes_without_repeats() {
    let s = setup(2);
    let token = CancellationToken::new();
    let mut b = backend(|_, _| Act::Latency(1.0));
    b.cancel_after = Some((2, token.clone()));
    let sum = run_with(&s, Arc::new(b), &token).await;
    assert!(sum.cancelled);
    assert_eq!(sum.succeeded, 1);
    let statuses: Vec<JobStatus> = s
        .store
        .jobs(&s.run)
        .unwrap()
        .into_iter()
        .map(|(_, st)| st)
        .collect();
    assert_eq!(statuses[0], JobStatus::Succeeded);
    assert_eq!(
        statuses[1],
        JobStatus::Cancelled,
        "the job running at the signal is recorded cancelled"
    );
    assert!(statuses[2..].iter().all(|s| *s == JobStatus::Cancelled));
    let b2 = Arc::new(backend(|_, _| Act::Latency(1.0)));
    let sum = run_with(&s, b2.clone(), &CancellationToken::new()).await;
    assert_eq!(sum.succeeded, 5);
    assert_eq!(
        b2.calls.lock().unwrap().len(),
        5,
        "the finished job is not repeated"
    );
}

#[tokio::test]
async fn the_budget_stops_scheduling() {
    let mut s = setup(3);
    s.opts.budget_gpu_seconds = Some(0.0);
    let b = Arc::new(backend(|_, _| Act::Latency(1.0)));
    let sum = run_with(&s, b.clone(), &CancellationToken::new()).await;
    assert!(sum.budget_exhausted);
    assert_eq!((sum.attempts, sum.not_run), (0, 9));
}

#[tokio::test]
async fn a_missing_dataset_fails_every_job_before_any_gpu_is_held() {
    let mut s = setup(1);
    s.plan.step.datasets.push(runner_core::plan::DatasetFile {
        flag: "--dataset-path".into(),
        original: "/nonexistent/ShareGPT.json".into(),
        name: "ShareGPT.json".into(),
    });
    let b = Arc::new(backend(|_, _| Act::Latency(1.0)));
    let sum = run_with(&s, b.clone(), &CancellationToken::new()).await;
    assert_eq!(sum.failed, 3);
    assert!(b.calls.lock().unwrap().is_empty());
    let a = s.store.attempts(&s.run).unwrap();
    assert!(a.iter().all(|a| a.failure == Some(Failure::DatasetMissing)));
}

#[tokio::test]
async fn a_resumed_job_numbers_its_attempts_on_and_counts_gpu_seconds() {
    let s = setup(1);
    let token = CancellationToken::new();
    let mut b = backend(|_, _| Act::Latency(1.0));
    b.cancel_after = Some((1, token.clone()));
    let _ = run_with(&s, Arc::new(b), &token).await;
    let b2 = Arc::new(backend(|_, _| Act::Latency(1.0)));
    let sum = run_with(&s, b2.clone(), &CancellationToken::new()).await;
    assert_eq!(sum.succeeded, 3);
    assert!(sum.gpu_seconds > 0.0, "GPU·s are accounted: {sum:?}");
    let base: Vec<u32> = s
        .store
        .attempts(&s.run)
        .unwrap()
        .iter()
        .filter(|a| a.job.variant == Variant::Baseline)
        .map(|a| a.attempt)
        .collect();
    assert_eq!(
        base,
        vec![1, 2],
        "the resumed attempt is the second, not a second 'first'"
    );
    let calls = b2.calls.lock().unwrap().clone();
    assert!(calls[0].starts_with("baseline:2:"), "{calls:?}");
}

#[tokio::test]
async fn adaptive_repeats_stop_once_the_verdict_is_decided() {
    let mut s = setup(20);
    s.opts.adaptive = Some(runner_core::stats::AdaptiveOptions {
        max_repeats: 20,
        resamples: 500,
        ..Default::default()
    });
    let b = Arc::new(backend(|v, _| {
        Act::Latency(if v == Variant::Human { 0.8 } else { 1.0 })
    }));
    let sum = run_with(&s, b.clone(), &CancellationToken::new()).await;
    let rounds = runner_core::stats::AdaptiveOptions::default().first_deciding_repeats() as u32;
    assert_eq!(sum.succeeded, 3 * rounds, "{sum:?}");
    assert_eq!(sum.not_needed, 3 * (20 - rounds));
    let jobs = s.store.jobs(&s.run).unwrap();
    assert!(
        jobs.iter()
            .filter(|(j, _)| j.repeat >= rounds)
            .all(|(_, st)| *st == JobStatus::NotNeeded)
    );
    // Resume runs nothing more: the verdict was decided.
    let again = run_with(&s, b, &CancellationToken::new()).await;
    assert_eq!(again.attempts, 0);
}

#[tokio::test]
async fn commits_sharing_a_prefix_keep_their_own_artifacts() {
    let mut s = setup(1);
    // Both share their first 20 hex digits with the setup's commit: one run, three tasks.
    let others = [
        plan_of("e3580537a41a46b0f3cd0000000000000000aaaa"),
        plan_of("e3580537a41a46b0f3cd0000000000000000bbbb"),
    ];
    for p in &others {
        s.store
            .add_jobs(
                &s.run,
                &interleaved_jobs(&p.commit, &Variant::ALL, 1, false),
            )
            .unwrap();
    }
    s.opts.concurrency = 3;
    let plans = [s.plan.clone(), others[0].clone(), others[1].clone()];
    let engine = Engine::new(
        Arc::new(backend(|_, _| Act::Latency(1.0))),
        s.store.clone(),
        s.opts.clone(),
    );
    let sum = engine
        .run(&s.run, &plans, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sum.succeeded, 9);
    let dirs: std::collections::BTreeSet<_> = plans
        .iter()
        .map(|p| runner_core::engine::task_dir(&s.opts.artifact_root, &s.run, &p.commit))
        .collect();
    assert_eq!(dirs.len(), 3, "one directory per commit: {dirs:?}");
    for p in &plans {
        let d = s.opts.artifact_root.join(&s.run.0).join(&p.commit);
        assert!(dirs.contains(&d) && d.is_dir(), "{} exists", d.display());
    }
    let attempts = s.store.attempts(&s.run).unwrap();
    let recorded: std::collections::BTreeSet<_> =
        attempts.iter().map(|a| a.artifact_dir.clone()).collect();
    assert_eq!(recorded.len(), 9, "no attempt shares another's directory");
    for a in &attempts {
        let out = Path::new(&a.artifact_dir).join("client.stdout");
        assert!(out.is_file(), "{} kept its output", a.artifact_dir);
        assert!(
            a.artifact_dir.contains(&a.job.commit),
            "{} names the whole commit",
            a.artifact_dir
        );
    }
}
