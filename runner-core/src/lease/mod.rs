//! Host GPU leases, for every backend that runs on the GPUs of a host it can see (local
//! processes, Docker containers).
//!
//! - [`discovery`]: `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used
//!   --format=csv,noheader,nounits`, parsed robustly (`[N/A]`, odd spacing, junk lines), and SKU
//!   matching (`H100` matches `NVIDIA H100 80GB HBM3`, not `NVIDIA GH200`).
//! - [`LeaseManager`]: each device belongs to at most one lease; `acquire` takes free devices
//!   of the requested SKU, waits (cancellable, bounded by the deadline) while they are busy and
//!   refuses at once (`bad_config`) a request the host can never satisfy; `release` waits,
//!   bounded, until the lease's GPU memory falls (below `release_memory_mib`, or back to what
//!   others used when it was taken) before the devices count as free. Each leased device's
//!   lock file (`flock`, in [`LeaseSettings::lock_dir`]) is held with it, so two perf-runner
//!   processes of one host — two runs, or the local and the Docker backend — never lease the
//!   same GPU unless the lock folder cannot be used (warned); a process that dies gives its
//!   locks back with it (a container it started may still run: a GPU leased with memory in use
//!   is warned about).
//!
//! The `nvidia-smi` program is a setting ([`LeaseSettings::nvidia_smi`]): a wrapper that runs
//! it elsewhere, or a fake in tests. A backend wraps the manager in its `acquire`/`release`;
//! how it hands the devices to a job is its own (`CUDA_VISIBLE_DEVICES`, container device
//! requests).

pub mod discovery;
mod manager;

pub use discovery::{DiscoveryError, GpuStatus, matches_kind, sku};
pub use manager::{
    CPU_ONLY_LEASE, LeaseManager, LeaseSettings, cuda_visible_devices, default_lock_dir, indices,
    lock_dir_health, lock_path,
};
