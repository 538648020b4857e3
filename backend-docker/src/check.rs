//! `check()`: a read-only health report for `perf-runner doctor`.

use bollard::Docker;
use bollard::models::SystemInfo;
use runner_core::Health;
use runner_core::backend::HealthCheck;

use crate::DockerBackend;

fn line(name: &str, ok: bool, detail: impl Into<String>) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// Whether the engine can give containers NVIDIA GPUs, and how.
pub(crate) fn nvidia_support(info: &SystemInfo) -> Option<String> {
    let runtimes: Vec<String> = info
        .runtimes
        .as_ref()
        .map(|r| r.keys().filter(|k| k.contains("nvidia")).cloned().collect())
        .unwrap_or_default();
    if !runtimes.is_empty() {
        return Some(format!("runtime {}", runtimes.join(", ")));
    }
    let cdi: Vec<String> = info
        .discovered_devices
        .as_ref()
        .map(|d| {
            d.iter()
                .filter_map(|x| x.id.clone())
                .filter(|id| id.contains("nvidia.com/gpu"))
                .collect()
        })
        .unwrap_or_default();
    if !cdi.is_empty() {
        return Some(format!("CDI devices {}", cdi.join(", ")));
    }
    None
}

async fn engine_lines(d: &Docker, out: &mut Vec<HealthCheck>) -> bool {
    if let Err(e) = d.ping().await {
        out.push(line("docker", false, format!("ping failed: {e}")));
        return false;
    }
    match d.version().await {
        Ok(v) => out.push(line(
            "docker",
            true,
            format!(
                "{} (API {}, client API {})",
                v.version.unwrap_or_else(|| "?".into()),
                v.api_version.unwrap_or_else(|| "?".into()),
                d.client_version()
            ),
        )),
        Err(e) => out.push(line(
            "docker",
            true,
            format!("reachable; version unknown: {e}"),
        )),
    }
    match d.info().await {
        Ok(info) => {
            let gpu = nvidia_support(&info);
            out.push(line(
                "nvidia runtime",
                gpu.is_some(),
                gpu.unwrap_or_else(|| {
                    "absent: GPU containers need the NVIDIA Container Toolkit (nvidia runtime or CDI)"
                        .into()
                }),
            ));
            out.push(line(
                "docker host",
                true,
                format!(
                    "{} ({} CPUs, {} MiB)",
                    info.name.unwrap_or_else(|| "?".into()),
                    info.ncpu.unwrap_or(0),
                    info.mem_total.unwrap_or(0) / (1024 * 1024)
                ),
            ));
        }
        Err(e) => out.push(line(
            "nvidia runtime",
            false,
            format!("docker info failed: {e}"),
        )),
    }
    true
}

/// The health of the backend on this host. Never fails: what is wrong is in the report.
pub(crate) async fn health(b: &DockerBackend) -> Health {
    let mut checks = Vec::new();
    let usable = match b.docker().await {
        Ok(d) => engine_lines(&d, &mut checks).await,
        Err(e) => {
            checks.push(line("docker", false, e.message));
            false
        }
    };
    let hf = match b.config.hf_cache_dir() {
        Some(p) if p.is_dir() => line("hf cache", true, format!("{} (mounted)", p.display())),
        Some(p) => line(
            "hf cache",
            true,
            format!("{} (created on first run)", p.display()),
        ),
        None => line("hf cache", true, "not mounted"),
    };
    checks.push(hf);
    if !b.config.cpu_only {
        let dir = b
            .config
            .gpu_lock_dir
            .clone()
            .unwrap_or_else(runner_core::lease::default_lock_dir);
        checks.push(match runner_core::lease::lock_dir_health(&dir) {
            Ok(d) => line("gpu locks", true, d),
            Err(d) => line("gpu locks", false, d),
        });
    }
    let secrets: Vec<&str> = b.secrets.0.iter().map(|(k, _)| k.as_str()).collect();
    checks.push(line(
        "secrets",
        true,
        if secrets.is_empty() {
            "none set (gated models need HF_TOKEN)".to_string()
        } else {
            format!("passed to containers: {}", secrets.join(", "))
        },
    ));
    Health { usable, checks }
}
