//! The step kit's conformance suite (`runner_core::conformance`) on this backend, against a
//! real one-node cluster (`scripts/start-test-slurm.sh`): the stand-in engine's wheels in
//! venvs, every process a job step of the scenario's allocation. Leftovers are the job steps
//! of the run's allocations (`squeue -s`) and the processes that carry its run id. Skipped
//! without a cluster, failed where CI promises one (`PERF_RUNNER_TEST_REQUIRE`).

// One scenario at a time (the cluster has two GPUs): the lock is held across each test's
// awaits on its own runtime.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use backend_local::LocalConfig;
use backend_slurm::{SlurmBackend, SlurmConfig};
use perf_runner_tests::require::slurm_cluster as cluster;
use perf_runner_tests::standin::shared_wheels;
use runner_core::backend::{GpuLease, JobEnvs, NoProgress};
use runner_core::conformance::{self, Report, Subject};
use runner_core::plan::{GpuRequest, StepPlan, TaskPlan};
use runner_core::{Backend, BackendError, RunContext, Variant};
use tokio_util::sync::CancellationToken;

struct Steps {
    backend: SlurmBackend,
    root: PathBuf,
}

impl Steps {
    fn new() -> Steps {
        let wheels = shared_wheels();
        let root = wheels.root.clone();
        let env = LocalConfig {
            cache_dir: Some(root.join("cache")),
            wheels: BTreeMap::from([
                (Variant::Baseline, wheels.baseline.display().to_string()),
                (Variant::Human, wheels.human.display().to_string()),
            ]),
            ..LocalConfig::default()
        };
        let backend = SlurmBackend::new(SlurmConfig {
            poll_ms: 50,
            stop_grace_ms: 2_000,
            health_poll_ms: 50,
            env,
            ..SlurmConfig::default()
        });
        Steps { backend, root }
    }
}

fn lines(program: &str, args: &[&str]) -> Vec<String> {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Subject for Steps {
    fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    fn context(&self, scenario: &str) -> RunContext {
        let run = format!("conf{}-{scenario}", std::process::id());
        RunContext {
            cancel: CancellationToken::new(),
            deadline: None,
            artifact_dir: self.root.join("art").join(&run),
            data_dir: self.root.join("data"),
            lease: Default::default(),
            labels: BTreeMap::from([
                ("run-id".to_string(), run),
                ("task".to_string(), conformance::COMMIT[..8].to_string()),
            ]),
            progress: Arc::new(NoProgress),
        }
    }

    async fn envs(&self, plan: &TaskPlan, cx: &RunContext) -> Result<JobEnvs, BackendError> {
        let build = |v| plan.builds.iter().find(|b| b.variant == v).unwrap();
        let engine = self.backend.prepare(build(Variant::Baseline), cx).await?;
        let client = self.backend.prepare(build(Variant::Human), cx).await?;
        Ok(JobEnvs { engine, client })
    }

    async fn lease(&self, _step: &StepPlan, cx: &RunContext) -> Result<GpuLease, BackendError> {
        let h100 = GpuRequest {
            kind: Some("H100".into()),
            count: 1,
        };
        self.backend.acquire(&h100, cx).await
    }

    async fn release(&self, lease: GpuLease) {
        if let Err(e) = self.backend.release(lease).await {
            eprintln!("release: {e}");
        }
    }

    async fn leftovers(&self, cx: &RunContext) -> Vec<String> {
        let run = cx.labels.get("run-id").cloned().unwrap_or_default();
        let queue = lines("squeue", &["-h", "-o", "%i|%j|%k"]).join("\n");
        let jobs: Vec<String> = backend_slurm::gc::parse(&queue, Some(&run))
            .into_iter()
            .map(|l| l.job)
            .collect();
        let mut left: Vec<String> = lines("squeue", &["-s", "-h", "-o", "%i|%j"])
            .into_iter()
            .filter(|l| {
                let (step, name) = l.trim().split_once('|').unwrap_or((l, ""));
                jobs.iter().any(|j| step.starts_with(&format!("{j}.")))
                    && name.starts_with("perf-runner.")
            })
            .map(|l| format!("job step {l}"))
            .collect();
        left.extend(
            backend_local::gc::find(Some(&run))
                .into_iter()
                .map(|l| format!("pid {} ({})", l.pid, l.cmdline)),
        );
        left
    }
}

fn done(r: Result<Report, String>) {
    match r {
        Ok(r) => println!("slurm {}: {:.1} s; {}", r.scenario, r.seconds, r.detail),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_same_argv() {
    let Some(_c) = cluster("conformance_same_argv") else {
        return;
    };
    done(conformance::same_argv(&Steps::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_warmup_failure_stops() {
    let Some(_c) = cluster("conformance_warmup_failure_stops") else {
        return;
    };
    done(conformance::warmup_failure_stops(&Steps::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cancel_mid_client() {
    let Some(_c) = cluster("conformance_cancel_mid_client") else {
        return;
    };
    done(conformance::cancel_mid_client(&Steps::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_crash_at_start() {
    let Some(_c) = cluster("conformance_crash_at_start") else {
        return;
    };
    done(conformance::crash_at_start(&Steps::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hanging_server() {
    let Some(_c) = cluster("conformance_hanging_server") else {
        return;
    };
    done(conformance::hanging_server(&Steps::new()).await);
}
