//! GPU leases of this host: runner-core's [`LeaseManager`] (exclusive devices per task, SKU
//! checks, waiting, memory release), which the Docker backend shares. The local backend pins a
//! lease's devices with [`cuda_visible_devices`].

use std::time::Duration;

pub use runner_core::lease::{LeaseManager, LeaseSettings, cuda_visible_devices, indices};

use crate::LocalConfig;

/// The lease settings of a local configuration (`nvidia_smi`, `cpu_only`, the poll, timeout
/// and memory knobs, the GPU lock folder; polls at least every 10 ms).
pub fn settings(config: &LocalConfig) -> LeaseSettings {
    LeaseSettings {
        cpu_only: config.cpu_only,
        acquire_poll: Duration::from_millis(config.acquire_poll_ms.max(10)),
        release_timeout: Duration::from_millis(config.release_timeout_ms),
        release_poll: Duration::from_millis(config.release_poll_ms.max(10)),
        release_memory_mib: config.release_memory_mib,
        lock_dir: Some(
            config
                .gpu_lock_dir
                .clone()
                .unwrap_or_else(runner_core::lease::default_lock_dir),
        ),
        ..LeaseSettings::new(crate::NAME, config.nvidia_smi.clone())
    }
}
