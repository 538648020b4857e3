//! A canned backend for engine tests: no GPUs; `prepare` fails transiently a set number of
//! times, then succeeds; `execute` writes what a per-variant function says into the attempt's
//! folder. And the latency task those tests plan.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use runner_core::backend::{GpuLease, JobEnvs};
use runner_core::dataset::Dataset;
use runner_core::failure::Failure;
use runner_core::plan::{GpuRequest, StepPlan, TaskPlan, plan_task};
use runner_core::settings::Settings;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
    Variant,
};

/// Writes a variant's outputs into the attempt's folder; returns (stdout, result files).
pub type Write = fn(&Path, Variant) -> (String, Vec<PathBuf>);

/// The canned backend.
#[derive(Debug)]
pub struct Canned {
    /// Transient `prepare` failures before the first success.
    pub prepare_failures: u32,
    /// `prepare` calls so far.
    pub prepare_tries: AtomicU32,
    /// What `execute` leaves behind.
    pub write: Write,
}

impl Canned {
    /// A backend whose `prepare` always succeeds.
    pub fn new(write: Write) -> Canned {
        Canned::failing_prepare(0, write)
    }

    /// A backend whose `prepare` fails transiently `n` times first.
    pub fn failing_prepare(n: u32, write: Write) -> Canned {
        Canned {
            prepare_failures: n,
            prepare_tries: AtomicU32::new(0),
            write,
        }
    }
}

#[async_trait]
impl Backend for Canned {
    fn name(&self) -> &'static str {
        "canned"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn check(&self) -> Result<Health, BackendError> {
        Ok(Health::default())
    }
    async fn acquire(&self, _gpu: &GpuRequest, _cx: &RunContext) -> Result<GpuLease, BackendError> {
        // No devices: the canned jobs need none.
        Ok(GpuLease::default())
    }
    async fn release(&self, _lease: GpuLease) -> Result<(), BackendError> {
        Ok(())
    }
    async fn prepare(&self, b: &BuildSpec, _cx: &RunContext) -> Result<PreparedEnv, BackendError> {
        if self.prepare_tries.fetch_add(1, Ordering::SeqCst) < self.prepare_failures {
            return Err(BackendError::new(
                "canned",
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
        let v = cx.labels["variant"].parse::<Variant>().unwrap();
        let dir = &cx.artifact_dir;
        std::fs::create_dir_all(dir).unwrap();
        let (stdout_text, result_files) = (self.write)(dir, v);
        let stdout = dir.join("client.stdout");
        let stderr = dir.join("client.stderr");
        std::fs::write(&stdout, stdout_text).unwrap();
        std::fs::write(&stderr, "").unwrap();
        Ok(StepOutput {
            exit_code: Some(0),
            client_stdout: stdout,
            client_stderr: stderr,
            result_files,
            benchmark_seconds: 0.01,
            ..StepOutput::default()
        })
    }
}

/// The plan of a `benchmark_latency.py` task for `variants`.
pub fn latency_plan(variants: &[Variant]) -> TaskPlan {
    let row = serde_json::json!({
        "commit_hash": "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        "parent_commit": "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a",
        "perf_command": "python benchmarks/benchmark_latency.py --model m/x --num-iters 3",
        "gpu_config": "H100:1",
    });
    let ds = Dataset::from_str(&row.to_string(), "t", Path::new("."));
    plan_task(&ds.tasks[0], variants, &Settings::embedded(), None).unwrap()
}
