//! The step kit's cross-backend conformance suite (cargo feature `conformance`, for tests
//! only). Every backend's tests run the same scenarios through its [`Backend`] on the stand-in
//! engine of the test crate, and the suite checks that they all behave as the step kit says:
//!
//! 1. [`same_argv`]: the same plan gives the same filled argv up to placeholder values (read
//!    back from each attempt's `commands.txt`), server → warm-up → client, one port.
//! 2. [`warmup_failure_stops`]: a failed warm-up stops the step; the measured client is not
//!    run and the output is the warm-up's.
//! 3. [`cancel_mid_client`]: cancelling while the measured client runs is `cancelled` and
//!    leaves nothing of the run behind (the backend's own leftover finder says so).
//! 4. [`crash_at_start`] and [`hanging_server`]: a server that crashes at start is
//!    `server_failed` with the engine's own words; one that never gets ready is `timeout`
//!    after `server_ready_s`, and is gone afterwards.
//!
//! Faults reach the stand-in through the plan's environment (`VLLM_STANDIN_FAULT`, which
//! overrides its configuration's `fault` for one run) — so these scenarios also show that a
//! plan's environment reaches the server and the clients of every backend.
//!
//! A backend's test gives the suite a [`Subject`]: the backend, how to prepare the stand-in
//! builds, fresh attempt contexts, and how to find what a run left behind.

mod scenarios;
pub mod transcript;

use async_trait::async_trait;

use crate::backend::{Backend, BackendError, GpuLease, JobEnvs, RunContext};
use crate::dataset::Dataset;
use crate::plan::{StepPlan, TaskPlan, plan_task};
use crate::settings::Settings;
use crate::task::Variant;

pub use scenarios::{
    Report, cancel_mid_client, crash_at_start, hanging_server, same_argv, warmup_failure_stops,
};

/// The environment variable that overrides the stand-in's configured fault for one run.
pub const FAULT_ENV: &str = "VLLM_STANDIN_FAULT";

/// The serving command of the suite (20 requests of the stand-in's `standin/model`).
pub const SERVE: &str = "vllm bench serve --model standin/model --dataset-name random \
     --random-input-len 32 --random-output-len 16 --num-prompts 20";

/// A serving command whose client runs for about `prompts / 2` seconds (2 requests per second).
pub fn slow_serve(prompts: u32) -> String {
    format!(
        "vllm bench serve --model standin/model --dataset-name random --random-input-len 16 \
         --random-output-len 8 --request-rate 2 --num-prompts {prompts}"
    )
}

/// The commit of the suite's task, and its parent.
pub const COMMIT: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
/// The parent commit (the baseline).
pub const PARENT: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";

/// The plan every backend gets for `cmd`: runner-core's planner on a one-row dataset, the
/// baseline and human variants, the embedded settings, `server_ready_s` 30 and
/// `benchmark_s` 60.
pub fn plan(cmd: &str) -> Result<TaskPlan, String> {
    let row =
        serde_json::json!({"commit_hash": COMMIT, "parent_commit": PARENT, "perf_command": cmd});
    let ds = Dataset::from_str(&row.to_string(), "conformance", std::path::Path::new("."));
    if !ds.errors.is_empty() {
        return Err(format!("{:?}", ds.errors));
    }
    let task = ds.tasks.into_iter().next().ok_or("no task")?;
    let variants = [Variant::Baseline, Variant::Human];
    let mut p =
        plan_task(&task, &variants, &Settings::embedded(), None).map_err(|e| e.to_string())?;
    p.step.timeouts.server_ready_s = 30;
    p.step.timeouts.benchmark_s = 60;
    Ok(p)
}

/// `step` with the stand-in's fault `fault` for every process.
pub fn with_fault(step: &StepPlan, fault: &str) -> StepPlan {
    let mut s = step.clone();
    s.env.retain(|(k, _)| k != FAULT_ENV);
    s.env.push((FAULT_ENV.to_string(), fault.to_string()));
    s
}

/// What a backend's test gives the suite.
#[async_trait]
pub trait Subject: Send + Sync {
    /// The backend under test.
    fn backend(&self) -> &dyn Backend;

    /// A fresh context for one attempt of `scenario`: its own artifact folder, and labels
    /// (a run id) by which [`Subject::leftovers`] finds what the attempt started.
    fn context(&self, scenario: &str) -> RunContext;

    /// The job's environments for `plan` (the stand-in engine as the engine and the client
    /// build), prepared the way this backend prepares builds.
    async fn envs(&self, plan: &TaskPlan, cx: &RunContext) -> Result<JobEnvs, BackendError>;

    /// The GPUs the step runs on, as the engine would hold them (default: none).
    async fn lease(&self, step: &StepPlan, cx: &RunContext) -> Result<GpuLease, BackendError> {
        let _ = (step, cx);
        Ok(GpuLease::default())
    }

    /// Give a lease of [`Subject::lease`] back (default: nothing to do).
    async fn release(&self, lease: GpuLease) {
        let _ = lease;
    }

    /// What of the attempt of `cx` is still there — processes, containers, job steps — each
    /// described for people; empty when nothing is.
    async fn leftovers(&self, cx: &RunContext) -> Vec<String>;
}
