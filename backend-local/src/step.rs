//! The local pieces of a step that are plain data: the child environment, the host's name, and
//! best-effort snapshots of the host (placeholders, files and the lifecycle are the step kit's).

use std::path::Path;

use runner_core::RunContext;
use runner_core::backend::{GpuLease, JobEnvs};
use runner_core::plan::StepPlan;
use runner_core::stepkit::AttemptFiles;

use crate::config::LocalConfig;
use crate::lease::cuda_visible_devices;
use crate::venv::{self, Installer};

/// The loopback address every server listens on and every client connects to.
pub const HOST: &str = "127.0.0.1";

/// The `CUDA_VISIBLE_DEVICES` a child gets: the lease's devices, else the step's own value.
pub fn visible_devices(step: &StepPlan, lease: &GpuLease) -> Option<String> {
    cuda_visible_devices(lease).or_else(|| {
        step.env
            .iter()
            .rev()
            .find(|(k, _)| k == "CUDA_VISIBLE_DEVICES")
            .map(|(_, v)| v.clone())
    })
}

/// The environment variables added to a child: the step's, the venv's, and the lease's
/// `CUDA_VISIBLE_DEVICES` (which wins over the step's).
pub fn child_env(step: &StepPlan, venv_dir: &Path, lease: &GpuLease) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = step
        .env
        .iter()
        .filter(|(k, _)| k != "CUDA_VISIBLE_DEVICES" || lease.devices.is_empty())
        .cloned()
        .collect();
    if let Some(v) = cuda_visible_devices(lease) {
        env.push(("CUDA_VISIBLE_DEVICES".into(), v));
    }
    let bin = venv_dir.join("bin").display().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    env.push((
        "PATH".into(),
        if path.is_empty() {
            bin
        } else {
            format!("{bin}:{path}")
        },
    ));
    env.push(("VIRTUAL_ENV".into(), venv_dir.display().to_string()));
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    env
}

/// Best effort: `nvidia-smi.txt`, `pip-freeze.txt` (and `pip-freeze-client.txt` when the client
/// runs in another build) in the artifact dir.
pub async fn snapshots(
    cfg: &LocalConfig,
    installer: &Installer,
    envs: &JobEnvs,
    serving: bool,
    cx: &RunContext,
) {
    let files = AttemptFiles::of(cx);
    if let Ok(report) = crate::gpu::report(&cfg.nvidia_smi).await {
        let _ = std::fs::write(files.nvidia_smi(), report);
    }
    if let Some(f) = venv::freeze(cfg, installer, Path::new(&envs.engine.handle), cx).await {
        let _ = std::fs::write(files.pip_freeze(), f);
    }
    if serving && envs.client.handle != envs.engine.handle {
        if let Some(f) = venv::freeze(cfg, installer, Path::new(&envs.client.handle), cx).await {
            let _ = std::fs::write(files.pip_freeze_client(), f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_core::backend::GpuDevice;
    use runner_core::plan::{ClientBuild, GpuRequest, ProcessPlan};
    use runner_core::settings::Timeouts;
    use runner_core::spec::{EntryPoint, Mode};

    #[test]
    fn the_lease_pins_the_gpus_over_the_step() {
        let mut step = StepPlan {
            mode: Mode::Serving,
            entry: EntryPoint::VllmBench {
                subcommand: "serve".into(),
            },
            server: None,
            client: ProcessPlan {
                argv: vec!["x".into()],
            },
            warmup: None,
            client_build: ClientBuild::SameAsVariant,
            env: vec![
                ("CUDA_VISIBLE_DEVICES".into(), "0,1".into()),
                ("A".into(), "b".into()),
            ],
            datasets: Vec::new(),
            gpu: GpuRequest {
                kind: None,
                count: 1,
            },
            timeouts: Timeouts {
                prepare_s: 1,
                server_ready_s: 1,
                benchmark_s: 1,
            },
            result_file: None,
            unclassified_flags: Vec::new(),
            replaced_flags: Vec::new(),
        };
        let none = GpuLease::default();
        assert_eq!(visible_devices(&step, &none).as_deref(), Some("0,1"));
        let lease = GpuLease {
            id: "l".into(),
            devices: vec![GpuDevice {
                index: 3,
                uuid: "GPU-3".into(),
                name: "H100".into(),
                memory_mib: 1,
            }],
        };
        assert_eq!(visible_devices(&step, &lease).as_deref(), Some("3"));
        let env = child_env(&step, Path::new("/v"), &lease);
        let cuda: Vec<_> = env
            .iter()
            .filter(|(k, _)| k == "CUDA_VISIBLE_DEVICES")
            .collect();
        assert_eq!(cuda.len(), 1);
        assert_eq!(cuda[0].1, "3");
        assert!(env.iter().any(|(k, v)| k == "VIRTUAL_ENV" && v == "/v"));
        step.env.clear();
        assert_eq!(visible_devices(&step, &none), None);
    }
}
