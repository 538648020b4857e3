//! The step kit's conformance suite (`runner_core::conformance`) on this backend: the
//! stand-in engine's `FROM scratch` images, real containers; leftovers are the containers
//! (any state) that carry the run's label.

use std::path::PathBuf;

use async_trait::async_trait;
use backend_docker::DockerBackend;
use bollard::Docker;
use runner_core::backend::JobEnvs;
use runner_core::conformance::{self, Report, Subject};
use runner_core::plan::TaskPlan;
use runner_core::{Backend, BackendError, RunContext, Variant};

use crate::support;

struct Containers {
    backend: DockerBackend,
    d: Docker,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Containers {
    async fn new(test: &str) -> Option<Containers> {
        let d = support::engine(test).await?;
        support::images(&d).await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Some(Containers {
            backend: support::backend(&root, |_| {}),
            d,
            _dir: dir,
            root,
        })
    }
}

#[async_trait]
impl Subject for Containers {
    fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    fn context(&self, scenario: &str) -> RunContext {
        support::context(&self.root, &support::run_id(scenario), "human")
    }

    async fn envs(&self, plan: &TaskPlan, cx: &RunContext) -> Result<JobEnvs, BackendError> {
        let build = |v| plan.builds.iter().find(|b| b.variant == v).unwrap();
        let engine = self.backend.prepare(build(Variant::Baseline), cx).await?;
        let client = self.backend.prepare(build(Variant::Human), cx).await?;
        Ok(JobEnvs { engine, client })
    }

    async fn leftovers(&self, cx: &RunContext) -> Vec<String> {
        let run = cx.labels.get("run-id").cloned().unwrap_or_default();
        support::containers(&self.d, &run, None)
            .await
            .into_iter()
            .map(|(name, state)| format!("container {name} ({state})"))
            .collect()
    }
}

fn done(r: Result<Report, String>) {
    match r {
        Ok(r) => println!("docker {}: {:.1} s; {}", r.scenario, r.seconds, r.detail),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_same_argv() {
    let Some(s) = Containers::new("conformance_same_argv").await else {
        return;
    };
    done(conformance::same_argv(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_warmup_failure_stops() {
    let Some(s) = Containers::new("conformance_warmup_failure_stops").await else {
        return;
    };
    done(conformance::warmup_failure_stops(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cancel_mid_client() {
    let Some(s) = Containers::new("conformance_cancel_mid_client").await else {
        return;
    };
    done(conformance::cancel_mid_client(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_crash_at_start() {
    let Some(s) = Containers::new("conformance_crash_at_start").await else {
        return;
    };
    done(conformance::crash_at_start(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hanging_server() {
    let Some(s) = Containers::new("conformance_hanging_server").await else {
        return;
    };
    done(conformance::hanging_server(&s).await);
}
