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
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use backend_local::LocalConfig;
use backend_slurm::{SlurmBackend, SlurmConfig};
use perf_runner_tests::require::skip_or_fail;
use perf_runner_tests::standin::{StandinBuild, StandinConfig, build_standin_wheel};
use runner_core::backend::{GpuLease, JobEnvs, NoProgress};
use runner_core::conformance::{self, Report, Subject};
use runner_core::plan::{GpuRequest, StepPlan, TaskPlan};
use runner_core::{Backend, BackendError, RunContext, Variant};
use tokio_util::sync::CancellationToken;

static CLUSTER: Mutex<()> = Mutex::new(());

fn cluster(test: &str) -> Option<MutexGuard<'static, ()>> {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%G"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("gpu"));
    if !up {
        skip_or_fail(
            "slurm",
            test,
            "no Slurm cluster with GPU gres answers sinfo (scripts/start-test-slurm.sh starts one)",
        );
        return None;
    }
    Some(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The wheels and venv cache, shared by the scenarios of this binary (prepared once).
fn world() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let d = DIR
            .get_or_init(|| tempfile::tempdir().unwrap())
            .path()
            .to_path_buf();
        for (sub, version) in [("wb", "0.6.3.dev1+gf508e03"), ("wh", "0.6.3.dev2+ge358053")] {
            let config = StandinConfig {
                version: version.into(),
                startup_ms: 200,
                log_interval_ms: 200,
                state_dir: Some(d.join(format!("state-{sub}"))),
                ..StandinConfig::default()
            };
            build_standin_wheel(&d.join(sub), &StandinBuild::new(config)).unwrap();
        }
        d
    })
}

struct Steps {
    backend: SlurmBackend,
    root: PathBuf,
}

impl Steps {
    fn new() -> Steps {
        let root = world().clone();
        let wheel = |sub: &str| {
            std::fs::read_dir(root.join(sub))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "whl"))
                .unwrap()
                .display()
                .to_string()
        };
        let env = LocalConfig {
            cache_dir: Some(root.join("cache")),
            wheels: BTreeMap::from([
                (Variant::Baseline, wheel("wb")),
                (Variant::Human, wheel("wh")),
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
