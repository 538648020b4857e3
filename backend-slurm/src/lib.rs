#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod alloc;
pub mod config;
pub mod dry_run;
pub mod execute;
pub mod gc;
pub mod sched;

mod health;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backend_local::LocalBackend;
use runner_core::backend::{GpuDevice, GpuLease, JobEnvs};
use runner_core::build::BuildSpec;
use runner_core::plan::{GpuRequest, StepPlan};
use runner_core::{
    Backend, BackendError, Capabilities, Failure, Health, PreparedEnv, RunContext, StepOutput,
};

use alloc::Alloc;
pub use config::{DEFAULT_TOML, SlurmConfig};

/// The backend's stable name.
pub(crate) const NAME: &str = "slurm";

/// The Slurm backend: a task's lease is one allocation, its processes are job steps, its
/// environments are the local backend's venvs in a cache dir the nodes share.
#[derive(Debug, Clone)]
pub struct SlurmBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SlurmConfig,
    /// The environment code (venvs, per-commit wheels, offline wheelhouse, patches).
    envs: LocalBackend,
    leases: Mutex<HashMap<String, Arc<Alloc>>>,
    seq: AtomicU64,
}

impl SlurmBackend {
    /// The backend's stable name.
    pub const NAME: &'static str = NAME;

    /// A backend with this configuration.
    pub fn new(config: SlurmConfig) -> Self {
        let envs = LocalBackend::new(config.env.clone());
        SlurmBackend {
            inner: Arc::new(Inner {
                config,
                envs,
                leases: Mutex::new(HashMap::new()),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &SlurmConfig {
        &self.inner.config
    }

    /// The job ids of the allocations held now (by this backend instance).
    pub fn held_jobs(&self) -> Vec<u64> {
        self.inner
            .leases
            .lock()
            .map(|m| {
                m.values()
                    .filter_map(|a| a.current())
                    .map(|g| g.job)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `gc`: `scancel` perf-runner's allocations of run `run_id` (any run when `None`).
    pub async fn gc(&self, run_id: Option<&str>) -> Result<Vec<gc::Leftover>, BackendError> {
        gc::collect(&self.inner.config, run_id).await
    }

    /// `plan --backend slurm`: the allocation and step commands of `build`'s jobs.
    pub fn dry_run(&self, build: &BuildSpec, step: &StepPlan) -> serde_json::Value {
        dry_run::dry_run(&self.inner.config, build, step)
    }

    fn lease(&self, id: &str) -> Result<Arc<Alloc>, BackendError> {
        self.inner
            .leases
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| {
                BackendError::new(
                    NAME,
                    Failure::Unknown,
                    format!("no allocation for lease {id:?} (acquire first)"),
                )
            })
    }
}

#[async_trait]
impl Backend for SlurmBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let cfg = &self.inner.config;
        Capabilities {
            gpus: if cfg.cpu_only {
                Default::default()
            } else {
                cfg.gpus.clone()
            },
            source_builds: cfg.env.allow_source_build,
            needs_network: cfg.env.find_links.is_none(),
            native_client: true,
        }
    }

    async fn check(&self) -> Result<Health, BackendError> {
        Ok(health::health(&self.inner.config).await)
    }

    /// One allocation (`salloc --no-shell`) for the task's jobs; waits while it is pending.
    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError> {
        let cfg = &self.inner.config;
        let args = alloc::salloc_args(cfg, gpu, &cx.labels);
        cx.progress
            .event("lease", &format!("salloc {}", args.join(" ")));
        let a = Alloc::acquire(cfg, args, &cx.cancel).await?;
        let g = a.current().unwrap_or_default();
        let id = format!(
            "slurm-{}-{}",
            g.job,
            self.inner.seq.fetch_add(1, Ordering::Relaxed)
        );
        let _ = std::fs::create_dir_all(&cx.artifact_dir);
        if let Ok(text) = serde_json::to_string_pretty(&g) {
            let _ = std::fs::write(cx.artifact_dir.join("slurm-allocation.json"), text);
        }
        let indices: Vec<u32> = match &g.cuda_visible_devices {
            Some(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
            None => g.gpu_indices.clone(),
        };
        let name = gpu.kind.clone().unwrap_or_else(|| "gpu".into());
        let devices = indices
            .iter()
            .map(|&index| GpuDevice {
                index,
                uuid: format!("slurm:{}:{}:{index}", g.job, g.node),
                name: name.clone(),
                memory_mib: 0,
            })
            .collect();
        if let Ok(mut m) = self.inner.leases.lock() {
            m.insert(id.clone(), Arc::new(a));
        }
        Ok(GpuLease { id, devices })
    }

    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        let a = self
            .inner
            .leases
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&lease.id));
        if let Some(a) = a {
            a.release().await;
        }
        Ok(())
    }

    /// The local backend's environment code, with the configured (shared) cache dir.
    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        self.inner
            .envs
            .prepare(build, cx)
            .await
            .map_err(|e| BackendError { backend: NAME, ..e })
    }

    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        let a = self.lease(&cx.lease.id)?;
        execute::execute(&self.inner.config, a, envs, step, cx).await
    }

    async fn warm_kit<'a>(
        &'a self,
        step: &'a StepPlan,
        cx: &'a RunContext,
    ) -> Option<runner_core::stepkit::WarmKit<'a>> {
        let a = self.lease(&cx.lease.id).ok()?;
        Some(runner_core::stepkit::WarmKit {
            runtime: Box::new(execute::Steps::new(&self.inner.config, a, step, cx)),
            policy: execute::policy(&self.inner.config),
            cleanup: None,
        })
    }
}
