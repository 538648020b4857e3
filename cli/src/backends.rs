//! Choosing and configuring a backend by name. A new backend is one more arm here.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use runner_core::Backend;
use runner_core::settings::Settings;

/// The backends this binary knows.
pub const NAMES: [&str; 3] = ["local", "docker", "modal"];

/// perf-runner's cache root (artifacts, datasets, environments).
pub fn cache_dir() -> PathBuf {
    dirs_cache().join("perf-runner")
}

fn dirs_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// The backend `name`, configured from its settings section.
pub fn make(name: &str, settings: &Settings) -> Result<Arc<dyn Backend>> {
    Ok(match name {
        "local" => {
            let cfg: backend_local::LocalConfig = settings
                .local
                .clone()
                .try_into()
                .context("invalid [local] settings")?;
            Arc::new(backend_local::LocalBackend::new(cfg))
        }
        "docker" => {
            let (cfg, unknown) = backend_docker::DockerConfig::from_table(&settings.docker)
                .map_err(|e| anyhow::anyhow!("invalid [docker] settings: {e}"))?;
            for key in unknown {
                tracing::warn!(key = %key, "unknown [docker] setting ignored");
            }
            Arc::new(backend_docker::DockerBackend::new(cfg))
        }
        "modal" => {
            let cfg: backend_modal::ModalConfig = settings
                .modal
                .clone()
                .try_into()
                .context("invalid [modal] settings")?;
            Arc::new(backend_modal::ModalBackend::new(cfg))
        }
        other => bail!(
            "--backend {other}: unknown backend; expected one of {}",
            NAMES.join(", ")
        ),
    })
}
