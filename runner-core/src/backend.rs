//! The `Backend` trait: where and how a build is prepared and a step executed.
//!
//! A backend is minimal and object safe (`Arc<dyn Backend>`). The engine owns scheduling,
//! retries and records; a backend only prepares environments and executes steps, and says —
//! through [`BackendError::kind`] — whether a failure is transient.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::build::BuildSpec;
use crate::failure::Failure;
use crate::plan::{GpuRequest, StepPlan};

/// An error from a backend, classified into the closed [`Failure`] taxonomy.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {kind}: {message}")]
pub struct BackendError {
    /// The backend that failed.
    pub backend: &'static str,
    /// The classification; `kind.is_transient()` drives retries.
    pub kind: Failure,
    /// What happened, for people.
    pub message: String,
    /// The underlying error, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A new error without an underlying source.
    pub fn new(backend: &'static str, kind: Failure, message: impl Into<String>) -> Self {
        BackendError {
            backend,
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The honest error of a backend feature that a later piece of work will build.
    pub fn not_implemented(backend: &'static str, what: &str) -> Self {
        BackendError::new(
            backend,
            Failure::Unknown,
            format!("{what} is not implemented yet in the {backend} backend"),
        )
    }

    /// Attach an underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

/// What a backend can do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// GPU kinds and how many of each it can lease at most (e.g. `H100` → 8).
    pub gpus: BTreeMap<String, u32>,
    /// Whether it can build the engine from source.
    pub source_builds: bool,
    /// Whether it needs network access to fetch builds.
    pub needs_network: bool,
    /// Whether it runs the native serving client: it fills `{PERF_RUNNER}` with this program,
    /// run where the server's port is reachable (the local host; not inside an image).
    #[serde(default)]
    pub native_client: bool,
}

/// Read-only health of a backend on this host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the backend can run jobs here.
    pub usable: bool,
    /// Named checks with a human-readable result each (`docker` → `28.2.2`, `nvidia-smi` →
    /// `not found`).
    pub checks: Vec<HealthCheck>,
}

/// One line of a health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthCheck {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// An environment ready to execute steps of one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedEnv {
    /// The build identity this environment realises.
    pub identity: String,
    /// Backend-specific handle: venv path, image reference, Modal image id …
    pub handle: String,
    /// The engine version actually installed (e.g. `0.6.3.dev123+gabcdef`).
    pub engine_version: Option<String>,
    /// Content identity: wheel sha256 or image digest.
    pub digest: Option<String>,
    /// Whether it was reused from a cache.
    pub reused: bool,
    /// A vLLM source tree at the build's commit, for `benchmarks/*.py` entry points
    /// (`{VLLM_SOURCE}`), when the backend could provide one.
    pub scripts_dir: Option<String>,
}

/// One GPU of a host, as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// Index as the driver numbers it (what `CUDA_VISIBLE_DEVICES` takes).
    pub index: u32,
    /// Stable UUID.
    pub uuid: String,
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
}

/// GPUs held for one task's jobs (all its variants and repeats run inside one lease).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuLease {
    /// Backend-specific lease id.
    pub id: String,
    /// The devices held; empty where the backend leases per job (e.g. a cloud container).
    pub devices: Vec<GpuDevice>,
}

/// The environments one job uses: the engine build (server, or the offline script) and the
/// build that runs the serving client (the same client for every variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEnvs {
    /// The variant's own build.
    pub engine: PreparedEnv,
    /// The build whose client runs (serving: the human build; offline: the engine build).
    pub client: PreparedEnv,
}

/// Where a run's progress goes (the CLI draws bars; tests collect lines).
pub trait ProgressSink: Send + Sync + std::fmt::Debug {
    /// A phase started or advanced (`prepare`, `server`, `benchmark` …).
    fn event(&self, phase: &str, message: &str);

    /// A job ended with `status` (counts and ETAs). Default: nothing.
    fn job_finished(&self, job: &crate::record::JobKey, status: crate::record::JobStatus) {
        let _ = (job, status);
    }
}

/// A sink that drops everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _phase: &str, _message: &str) {}
}

/// The context of one attempt: cancellation, deadline, artifact dir and progress.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Cancelled on Ctrl-C/SIGTERM or budget exhaustion; backends stop and clean up.
    pub cancel: CancellationToken,
    /// The latest instant this attempt may still run.
    pub deadline: Option<Instant>,
    /// Directory for this attempt's logs, plan and result files.
    pub artifact_dir: PathBuf,
    /// Directory holding the step's dataset files (`{DATA_DIR}`), the same for every variant.
    pub data_dir: PathBuf,
    /// The GPUs held for this job.
    pub lease: GpuLease,
    /// Run id, task commit, variant and attempt number, for labels and log lines.
    pub labels: BTreeMap<String, String>,
    /// Progress sink.
    pub progress: std::sync::Arc<dyn ProgressSink>,
}

impl RunContext {
    /// Time left before the deadline (`None` = no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// Everything a step produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    /// The client's exit code (`None` if killed by a signal).
    pub exit_code: Option<i32>,
    /// Client stdout path.
    pub client_stdout: PathBuf,
    /// Client stderr path.
    pub client_stderr: PathBuf,
    /// Server log path (serving mode).
    pub server_log: Option<PathBuf>,
    /// Result files the client wrote (JSON), by logical name.
    pub result_files: Vec<PathBuf>,
    /// Host that ran it.
    pub host: Option<String>,
    /// GPU SKU(s) it ran on, as reported by the GPU (e.g. `NVIDIA H100 80GB HBM3`).
    pub gpu_names: Vec<String>,
    /// Wall time of the benchmark phase, seconds.
    pub benchmark_seconds: f64,
    /// What the backend charged for the job, in US dollars, where it knows (e.g. Modal's
    /// runtime × its GPU price table).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The runner host's CPU use while the measured client ran, where the step ran on that
    /// host (see [`crate::stepkit::host_cpu`]).
    #[serde(default)]
    pub host_cpu: Option<crate::stepkit::host_cpu::HostCpu>,
}

/// A place that prepares builds and executes steps.
#[async_trait]
pub trait Backend: std::fmt::Debug + Send + Sync + 'static {
    /// Short stable name (`local`, `docker`, `modal`).
    fn name(&self) -> &'static str;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// The backend that runs `task`'s jobs (by its commit), as its attempts record it: this
    /// one, unless it hands each task to one of several backends (the CLI's `auto`), which
    /// then names the one it chose.
    fn backend_of(&self, task: &str) -> &'static str {
        let _ = task;
        self.name()
    }

    /// Read-only health check: is it usable here?
    async fn check(&self) -> Result<Health, BackendError>;

    /// Hold GPUs for a task's jobs (all its variants and repeats run inside the lease). Waits
    /// until they are free or the context is cancelled; a request the backend can never satisfy
    /// is refused at once with the reason (`bad_config`). There is no default: a backend on a
    /// host's GPUs leases them through [`crate::lease::LeaseManager`], so that concurrent tasks
    /// never share a device and the step's GPU kind is checked; one that gets GPUs per job (a
    /// cloud container) says so by returning a lease without devices.
    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError>;

    /// Give GPUs back (after waiting for their memory to be released, where that applies).
    async fn release(&self, lease: GpuLease) -> Result<(), BackendError>;

    /// Obtain the environment for a build (cached, idempotent).
    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError>;

    /// Run one step: start the server if the mode has one, wait for readiness, run the client,
    /// collect outputs, stop everything started.
    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError>;

    /// Warm servers: the step kit's primitives for processes of `step` in `cx` that may
    /// outlive one job (a server kept asleep between a task's jobs), with this backend's
    /// lifecycle policy. `None` (the default): this backend starts a server for every job,
    /// and the engine records why.
    async fn warm_kit<'a>(
        &'a self,
        step: &'a StepPlan,
        cx: &'a RunContext,
    ) -> Option<crate::stepkit::WarmKit<'a>> {
        let _ = (step, cx);
        None
    }
}
