//! The step kit's conformance suite (`runner_core::conformance`) on this backend: real venvs
//! with the stand-in engine's wheel, real process groups; leftovers are what `gc` finds by
//! the run id.

// One scenario at a time: the lock is held across each test's awaits on its own runtime.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backend_local::{LocalBackend, LocalConfig};
use perf_runner_tests::standin::shared_wheels;
use runner_core::backend::{JobEnvs, NoProgress};
use runner_core::conformance::{self, Report, Subject};
use runner_core::plan::TaskPlan;
use runner_core::{Backend, BackendError, RunContext, Variant};
use tokio_util::sync::CancellationToken;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Local {
    backend: LocalBackend,
    root: PathBuf,
}

impl Local {
    fn new() -> Local {
        let wheels = shared_wheels();
        let root = wheels.root.clone();
        let config = LocalConfig {
            cache_dir: Some(root.join("cache")),
            wheels: BTreeMap::from([
                (Variant::Baseline, wheels.baseline.display().to_string()),
                (Variant::Human, wheels.human.display().to_string()),
            ]),
            nvidia_smi: root.join("no-nvidia-smi"),
            cpu_only: true,
            stop_grace_ms: 2_000,
            health_poll_ms: 50,
            ..LocalConfig::default()
        };
        Local {
            backend: LocalBackend::new(config),
            root,
        }
    }
}

#[async_trait]
impl Subject for Local {
    fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    fn context(&self, scenario: &str) -> RunContext {
        let run = format!("conf-{}-{scenario}", std::process::id());
        RunContext {
            cancel: CancellationToken::new(),
            deadline: None,
            artifact_dir: self.root.join("art").join(&run),
            data_dir: self.root.join("data"),
            lease: Default::default(),
            labels: BTreeMap::from([("run-id".to_string(), run)]),
            progress: Arc::new(NoProgress),
        }
    }

    async fn envs(&self, plan: &TaskPlan, cx: &RunContext) -> Result<JobEnvs, BackendError> {
        let build = |v| plan.builds.iter().find(|b| b.variant == v).unwrap();
        let engine = self.backend.prepare(build(Variant::Baseline), cx).await?;
        let client = self.backend.prepare(build(Variant::Human), cx).await?;
        Ok(JobEnvs { engine, client })
    }

    async fn leftovers(&self, cx: &RunContext) -> Vec<String> {
        let run = cx.labels.get("run-id").map(String::as_str);
        backend_local::gc::find(run)
            .into_iter()
            .map(|l| format!("pid {} ({})", l.pid, l.cmdline))
            .collect()
    }
}

fn done(r: Result<Report, String>) {
    match r {
        Ok(r) => println!("local {}: {:.1} s; {}", r.scenario, r.seconds, r.detail),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_same_argv() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    done(conformance::same_argv(&Local::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_warmup_failure_stops() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    done(conformance::warmup_failure_stops(&Local::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cancel_mid_client() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    done(conformance::cancel_mid_client(&Local::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_crash_at_start() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    done(conformance::crash_at_start(&Local::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hanging_server() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    done(conformance::hanging_server(&Local::new()).await);
}
