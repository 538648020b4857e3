#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod check;
mod config;
mod containers;
mod derive;
mod error;
mod images;
mod layout;
mod logs;
mod patch;
mod run;
mod version;
mod wait;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use runner_core::backend::{GpuLease, JobEnvs};
use runner_core::lease::{LeaseManager, LeaseSettings};
use runner_core::plan::{GpuRequest, StepPlan};
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Failure, Health, PreparedEnv, RunContext,
    StepOutput,
};
use tokio::sync::OnceCell;

pub use config::{DEFAULT_TOML, DockerConfig, GpuDevices, NetworkMode, PullPolicy};

use crate::error::{Redactor, fail};

/// The backend's stable name.
pub(crate) const NAME: &str = "docker";

/// The label every perf-runner container carries with its run id.
pub const LABEL_RUN_ID: &str = "perf-runner.run-id";
/// The label with the task's commit.
pub const LABEL_TASK: &str = "perf-runner.task";
/// The label with the variant.
pub const LABEL_VARIANT: &str = "perf-runner.variant";
/// The label with the attempt number.
pub const LABEL_ATTEMPT: &str = "perf-runner.attempt";
/// The label with the container's role (`server`, `warmup`, `client`, `probe`).
pub const LABEL_ROLE: &str = "perf-runner.role";
/// The label of a container given GPUs: the lease's device ids (UUIDs, else indices), comma
/// separated, as handed to the engine.
pub const LABEL_GPUS: &str = "perf-runner.gpus";

/// Secret values copied from the caller's environment; `Debug` shows only their names.
#[derive(Clone, Default)]
pub(crate) struct Secrets(pub(crate) Vec<(String, String)>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// The Docker backend: images per build, one container per process, cleanup by label.
///
/// The Engine connection is opened lazily (on the first call that needs it) and its API
/// version negotiated down to the engine's (Docker 20.10 speaks API 1.41).
#[derive(Debug)]
pub struct DockerBackend {
    pub(crate) config: DockerConfig,
    client: OnceCell<Docker>,
    pub(crate) secrets: Secrets,
    pub(crate) redactor: Redactor,
    /// vLLM versions found in images, by image id.
    pub(crate) versions: Mutex<HashMap<String, Option<String>>>,
    facts: OnceCell<EngineFacts>,
    /// The engine host's GPUs, leased to tasks (shared code with the local backend).
    leases: LeaseManager,
    /// Warm servers' container ids, by run, task and variant (their clients join them).
    pub(crate) warm_servers: Mutex<HashMap<String, String>>,
}

/// What a step needs to know about the engine, asked once.
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineFacts {
    /// The engine host's name.
    pub host: Option<String>,
}

impl DockerBackend {
    /// The backend's stable name.
    pub const NAME: &'static str = NAME;

    /// A backend with these settings. Secret environment variables (`secret_env`) are read
    /// now; nothing touches the Engine until the first call.
    pub fn new(config: DockerConfig) -> Self {
        let secrets = Secrets(config.secrets());
        let redactor = Redactor::new(secrets.0.iter().map(|(_, v)| v.clone()));
        let leases = LeaseManager::new(LeaseSettings {
            cpu_only: config.cpu_only,
            lock_dir: Some(
                config
                    .gpu_lock_dir
                    .clone()
                    .unwrap_or_else(runner_core::lease::default_lock_dir),
            ),
            ..LeaseSettings::new(NAME, config.nvidia_smi.clone())
        });
        DockerBackend {
            config,
            client: OnceCell::new(),
            secrets,
            redactor,
            versions: Mutex::new(HashMap::new()),
            facts: OnceCell::new(),
            leases,
            warm_servers: Mutex::new(HashMap::new()),
        }
    }

    /// The GPU indices leased now (by this backend instance).
    pub fn leased_indices(&self) -> Vec<u32> {
        self.leases.held_indices()
    }

    /// The settings in use.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// The Engine client, connected and version-negotiated on first use.
    pub async fn docker(&self) -> Result<Docker, BackendError> {
        let d = self
            .client
            .get_or_try_init(|| async {
                let host = self
                    .config
                    .docker_host
                    .clone()
                    .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
                    .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
                // A missing socket (engine down or restarting) is transient; a bad address is
                // a configuration error.
                let d = Docker::connect_with_host(&host)
                    .map_err(|e| match e {
                        bollard::errors::Error::UnsupportedURISchemeError { .. } => fail(
                            Failure::BadConfig,
                            format!("failed to connect to the Docker Engine at {host}: {e}"),
                        ),
                        e => error::wrap(
                            format_args!("connect to the Docker Engine at {host}"),
                            e,
                            error::Subject::Container,
                        ),
                    })?
                    .with_timeout(Duration::from_secs(self.config.request_timeout_s.max(1)));
                d.negotiate_version().await.map_err(|e| {
                    error::wrap(
                        format_args!("reach the Docker Engine at {host}"),
                        e,
                        error::Subject::Container,
                    )
                })
            })
            .await?;
        Ok(d.clone())
    }

    /// The engine's host name (not cached when the engine does not answer).
    pub(crate) async fn facts(&self, d: &Docker) -> EngineFacts {
        let r = self
            .facts
            .get_or_try_init(|| async {
                let info = d.info().await?;
                Ok::<_, bollard::errors::Error>(EngineFacts { host: info.name })
            })
            .await;
        r.cloned().unwrap_or_default()
    }

    /// Remove leftover containers by label: those of one run, or every perf-runner container
    /// when `run_id` is `None`. Returns how many were removed.
    pub async fn gc(&self, run_id: Option<&str>) -> Result<usize, BackendError> {
        let d = self.docker().await?;
        containers::gc(&d, run_id).await
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            gpus: self.leases.sku_counts(),
            needs_network: true,
            ..Capabilities::default()
        }
    }

    async fn check(&self) -> Result<Health, BackendError> {
        Ok(check::health(self).await)
    }

    /// GPUs of the engine's host (as `nvidia_smi` lists them) through runner-core's lease
    /// manager: devices of the step's kind, exclusive per task, waited for while busy; a
    /// request the host can never satisfy is refused at once. `cpu_only`: no device.
    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError> {
        self.leases.acquire(gpu, cx).await
    }

    /// Free the lease's GPUs once their memory is released (bounded wait).
    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        self.leases.release(lease).await
    }

    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        let work = self.prepare_build(build, cx);
        let r = match cx.remaining() {
            Some(left) => tokio::time::timeout(left, work).await.unwrap_or_else(|_| {
                Err(fail(
                    Failure::Timeout,
                    format!(
                        "preparing {} ran past the attempt's deadline",
                        build.identity
                    ),
                ))
            }),
            None => work.await,
        };
        r.map_err(|e| self.redactor.error(e))
    }

    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        run::execute(self, envs, step, cx)
            .await
            .map_err(|e| self.redactor.error(e))
    }

    /// Warm servers: server containers kept across a task's jobs, clients joining them.
    async fn warm_kit<'a>(
        &'a self,
        step: &'a StepPlan,
        cx: &'a RunContext,
    ) -> Option<runner_core::stepkit::WarmKit<'a>> {
        let d = self.docker().await.ok()?;
        Some(run::warm_kit(self, d, step, cx).await)
    }
}
