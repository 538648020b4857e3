//! The step kit's conformance suite (`runner_core::conformance`) on this backend, against the
//! fake shim (`tests/fake_shim.py`): the same sandbox protocol as the real shim, with Modal's
//! servers replaced by this machine — the stand-in engine runs as real processes in their own
//! process groups, the server's tunnel is its real port. Everything the lifecycle decides
//! (readiness through the tunnel, the warm-up rule, timeouts, cancellation, failure codes) is
//! the step kit's `run_step` driving the backend's primitives, as for every backend.
//! Leftovers are the processes that carry the run's sandbox tag, and a live shim.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use backend_modal::ModalBackend;
use runner_core::backend::{JobEnvs, NoProgress};
use runner_core::conformance::{self, Report, Subject};
use runner_core::plan::TaskPlan;
use runner_core::{Backend, BackendError, RunContext, Variant};
use tokio_util::sync::CancellationToken;

mod common;

struct Sandbox {
    backend: ModalBackend,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Option<Sandbox> {
        if !common::python_ok() {
            perf_runner_tests::require::skip_or_fail("python3", "modal conformance", "no python3");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Some(Sandbox {
            backend: common::fake(&root, "ok", |_| {}),
            _dir: dir,
            root,
        })
    }
}

#[async_trait]
impl Subject for Sandbox {
    fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    fn context(&self, scenario: &str) -> RunContext {
        let run = format!("conf-{}-{scenario}", std::process::id());
        let art = self.root.join("art").join(&run);
        let data = self.root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        RunContext {
            cancel: CancellationToken::new(),
            deadline: None,
            artifact_dir: art,
            data_dir: data,
            lease: Default::default(),
            labels: [("run-id".to_string(), run)].into_iter().collect(),
            progress: Arc::new(NoProgress),
        }
    }

    /// The baseline build serves and runs the clients: a client from another build is a layer
    /// of the image (a venv), which the fake does not build (`tests/fake.rs` checks that layer
    /// in what the shim is asked).
    async fn envs(&self, plan: &TaskPlan, cx: &RunContext) -> Result<JobEnvs, BackendError> {
        let build = plan
            .builds
            .iter()
            .find(|b| b.variant == Variant::Baseline)
            .unwrap();
        let engine = self.backend.prepare(build, cx).await?;
        Ok(JobEnvs {
            client: engine.clone(),
            engine,
        })
    }

    async fn leftovers(&self, cx: &RunContext) -> Vec<String> {
        let run = cx.labels.get("run-id").cloned().unwrap_or_default();
        let mut left = common::tagged_processes(&run);
        if common::shim_alive(&self.root) {
            left.push("the shim".into());
        }
        left
    }
}

fn done(r: Result<Report, String>) {
    match r {
        Ok(r) => println!("modal {}: {:.1} s; {}", r.scenario, r.seconds, r.detail),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_same_argv() {
    let Some(s) = Sandbox::new() else { return };
    done(conformance::same_argv(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_warmup_failure_stops() {
    let Some(s) = Sandbox::new() else { return };
    done(conformance::warmup_failure_stops(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cancel_mid_client() {
    let Some(s) = Sandbox::new() else { return };
    done(conformance::cancel_mid_client(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_crash_at_start() {
    let Some(s) = Sandbox::new() else { return };
    done(conformance::crash_at_start(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hanging_server() {
    let Some(s) = Sandbox::new() else { return };
    done(conformance::hanging_server(&s).await);
}
