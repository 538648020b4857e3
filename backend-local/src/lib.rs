#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod gc;
pub mod gpu;
pub mod lease;
pub mod patch;
pub mod process;
pub mod scripts;
pub mod source;
pub mod step;
pub mod venv;
pub mod wheel;

mod agent;
mod execute;
mod prepare;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use runner_core::backend::{GpuLease, HealthCheck, JobEnvs};
use runner_core::plan::{GpuRequest, StepPlan};
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
};
use tokio::sync::OnceCell;

pub use config::{DEFAULT_TOML, LocalConfig};
use lease::LeaseManager;
pub use runner_core::lease::sku;
use venv::Installer;

/// The backend's stable name.
pub(crate) const NAME: &str = "local";

/// The local backend: GPUs of this host, venvs in a cache dir, processes in process groups.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LocalConfig,
    leases: LeaseManager,
    installer: OnceCell<Installer>,
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend::new(LocalConfig::default())
    }
}

impl LocalBackend {
    /// The backend's stable name.
    pub const NAME: &'static str = NAME;

    /// A backend with this configuration.
    pub fn new(config: LocalConfig) -> Self {
        let leases = LeaseManager::new(lease::settings(&config));
        LocalBackend {
            inner: Arc::new(Inner {
                config,
                leases,
                installer: OnceCell::new(),
            }),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &LocalConfig {
        &self.inner.config
    }

    /// The GPU indices leased now (by this backend instance).
    pub fn leased_indices(&self) -> Vec<u32> {
        self.inner.leases.held_indices()
    }

    async fn installer(&self) -> &Installer {
        self.inner
            .installer
            .get_or_init(|| Installer::detect(&self.inner.config))
            .await
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            gpus: self.inner.leases.sku_counts(),
            source_builds: self.inner.config.allow_source_build,
            needs_network: self.inner.config.find_links.is_none(),
            native_client: true,
        }
    }

    async fn check(&self) -> Result<Health, BackendError> {
        Ok(health(&self.inner.config).await)
    }

    /// Devices of this host through runner-core's lease manager (`cpu_only`: none).
    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError> {
        self.inner.leases.acquire(gpu, cx).await
    }

    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        self.inner.leases.release(lease).await
    }

    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        prepare::prepare(&self.inner.config, &self.inner.installer, build, cx).await
    }

    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        let installer = self.installer().await;
        execute::execute(&self.inner.config, installer, envs, step, cx).await
    }

    async fn warm_kit<'a>(
        &'a self,
        step: &'a StepPlan,
        cx: &'a RunContext,
    ) -> Option<runner_core::stepkit::WarmKit<'a>> {
        Some(execute::warm_kit(&self.inner.config, step, cx))
    }
}

async fn version_of(program: &Path, arg: &str) -> Option<String> {
    let out = tokio::process::Command::new(program)
        .arg(arg)
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success().then(|| text.trim().to_string())
}

async fn health(cfg: &LocalConfig) -> Health {
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(HealthCheck {
            name: name.into(),
            ok,
            detail,
        });
    };
    let mut gpus = false;
    match gpu::query(&cfg.nvidia_smi).await {
        Ok(g) => {
            gpus = !g.is_empty();
            let list: Vec<String> = g
                .iter()
                .map(|g| {
                    format!(
                        "{}: {} ({} MiB)",
                        g.device.index, g.device.name, g.device.memory_mib
                    )
                })
                .collect();
            check(
                "nvidia-smi",
                !g.is_empty(),
                format!("{} GPU(s): {}", g.len(), list.join("; ")),
            );
            let driver = gpu::driver_version(&cfg.nvidia_smi).await;
            check(
                "driver",
                driver.is_some(),
                driver.unwrap_or_else(|| "unknown".into()),
            );
        }
        Err(e) => check("nvidia-smi", false, e.to_string()),
    }
    if cfg.cpu_only {
        check(
            "gpus",
            true,
            "cpu_only = true: jobs run without GPUs".into(),
        );
    } else if !gpus {
        check(
            "gpus",
            false,
            format!(
                "no GPU found through {}; jobs here need GPUs (cpu_only = true runs without)",
                cfg.nvidia_smi.display()
            ),
        );
    }
    if !cfg.cpu_only {
        let dir = cfg
            .gpu_lock_dir
            .clone()
            .unwrap_or_else(runner_core::lease::default_lock_dir);
        let (ok, detail) = match runner_core::lease::lock_dir_health(&dir) {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        check("gpu locks", ok, detail);
    }
    let python = version_of(&cfg.python, "--version").await;
    let usable = python.is_some() && (gpus || cfg.cpu_only);
    check(
        "python",
        usable,
        python.unwrap_or_else(|| format!("{} not found", cfg.python.display())),
    );
    match version_of(&cfg.uv, "--version").await {
        Some(v) => check("uv", true, v),
        None => check(
            "uv",
            false,
            format!(
                "{} not found; python -m venv + pip is used",
                cfg.uv.display()
            ),
        ),
    }
    let root = cfg.cache_root();
    let free = free_bytes(&root);
    check(
        "cache",
        free.is_some(),
        match free {
            Some(b) => format!(
                "{}: {:.1} GiB free",
                root.display(),
                b as f64 / f64::from(1u32 << 30)
            ),
            None => format!("{}: free space unknown", root.display()),
        },
    );
    Health { usable, checks }
}

/// Free bytes on the file system of `path` (or of its nearest existing ancestor).
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_reports_the_host() {
        let cfg = LocalConfig {
            nvidia_smi: "/nonexistent/nvidia-smi".into(),
            ..LocalConfig::default()
        };
        let h = health(&cfg).await;
        let smi = h.checks.iter().find(|c| c.name == "nvidia-smi").unwrap();
        assert!(!smi.ok);
        assert!(h.checks.iter().any(|c| c.name == "cache"));
        assert!(free_bytes(Path::new("/")).is_some());
    }
}
