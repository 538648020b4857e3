//! GPU leases inside one process: which devices are held, waiting for free ones, and giving
//! them back once their memory is released.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use runner_core::backend::{GpuDevice, GpuLease};
use runner_core::plan::GpuRequest;
use runner_core::{BackendError, Failure, RunContext};
use tokio::sync::Notify;

use crate::gpu::{self, GpuStatus};

const NAME: &str = crate::NAME;

/// Knobs of the lease manager (from [`crate::LocalConfig`]).
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The `nvidia-smi` program.
    pub nvidia_smi: PathBuf,
    /// Re-check interval of a waiting acquire.
    pub acquire_poll: Duration,
    /// How long a release waits for memory to fall.
    pub release_timeout: Duration,
    /// Poll interval during a release.
    pub release_poll: Duration,
    /// Memory (MiB) under which a GPU counts as released.
    pub release_memory_mib: u64,
}

#[derive(Debug, Clone)]
struct Held {
    lease: String,
    /// Memory in use when the lease was taken (what others were using then).
    used_at_acquire: u64,
}

/// Who holds which GPU index.
#[derive(Debug)]
pub struct LeaseManager {
    settings: LeaseSettings,
    held: Mutex<BTreeMap<u32, Held>>,
    freed: Notify,
    next: AtomicU64,
}

impl LeaseManager {
    /// A manager with nothing held.
    pub fn new(settings: LeaseSettings) -> Self {
        LeaseManager {
            settings,
            held: Mutex::new(BTreeMap::new()),
            freed: Notify::new(),
            next: AtomicU64::new(1),
        }
    }

    /// The indices held now.
    pub fn held_indices(&self) -> Vec<u32> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Held>> {
        // A poisoned map is still a consistent map of plain data.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold `req.count` GPUs of `req.kind`, waiting while they are busy. A request the host can
    /// never satisfy is refused at once (`bad_config`).
    pub async fn acquire(
        &self,
        req: &GpuRequest,
        cx: &RunContext,
    ) -> Result<GpuLease, BackendError> {
        if req.count == 0 {
            return Ok(GpuLease {
                id: self.new_id(),
                devices: Vec::new(),
            });
        }
        let all = gpu::query(&self.settings.nvidia_smi).await.map_err(|e| {
            BackendError::new(
                NAME,
                Failure::BadConfig,
                format!("cannot lease {} GPU(s): {e}", req.count),
            )
        })?;
        let kind = req.kind.as_deref();
        let matching: Vec<GpuStatus> = all
            .iter()
            .filter(|g| gpu::matches_kind(&g.device.name, kind))
            .cloned()
            .collect();
        if (matching.len() as u64) < u64::from(req.count) {
            let have: Vec<String> = all
                .iter()
                .map(|g| format!("{}: {}", g.device.index, g.device.name))
                .collect();
            return Err(BackendError::new(
                NAME,
                Failure::BadConfig,
                format!(
                    "this host can never satisfy {} GPU(s) of kind {}: it has {} matching of {} \
                     GPU(s) [{}]",
                    req.count,
                    kind.unwrap_or("any"),
                    matching.len(),
                    all.len(),
                    have.join("; ")
                ),
            ));
        }
        let mut announced = false;
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_take(&matching, req.count) {
                tracing::info!(lease = %lease.id, devices = ?indices(&lease.devices), "GPUs leased");
                return Ok(lease);
            }
            if !announced {
                announced = true;
                cx.progress.event(
                    "gpu",
                    &format!(
                        "waiting for {} free GPU(s) of kind {}",
                        req.count,
                        kind.unwrap_or("any")
                    ),
                );
            }
            let deadline = async {
                match cx.deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.settings.acquire_poll) => {}
                _ = cx.cancel.cancelled() => {
                    return Err(BackendError::new(NAME, Failure::Cancelled, "cancelled while waiting for GPUs"));
                }
                _ = deadline => {
                    return Err(BackendError::new(NAME, Failure::Timeout, "deadline passed while waiting for GPUs"));
                }
            }
        }
    }

    fn new_id(&self) -> String {
        format!(
            "local-{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn try_take(&self, matching: &[GpuStatus], count: u32) -> Option<GpuLease> {
        let mut held = self.lock();
        let free: Vec<&GpuStatus> = matching
            .iter()
            .filter(|g| !held.contains_key(&g.device.index))
            .take(count as usize)
            .collect();
        if free.len() < count as usize {
            return None;
        }
        let id = self.new_id();
        for g in &free {
            held.insert(
                g.device.index,
                Held {
                    lease: id.clone(),
                    used_at_acquire: g.memory_used_mib.unwrap_or(0),
                },
            );
        }
        Some(GpuLease {
            id,
            devices: free.iter().map(|g| g.device.clone()).collect(),
        })
    }

    /// Give a lease back: wait (bounded) until its GPUs' memory in use falls below the
    /// threshold (or to what it was when leased), then mark them free.
    pub async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        if !lease.devices.is_empty() {
            self.wait_memory_released(&lease).await;
        }
        {
            let mut held = self.lock();
            held.retain(|_, h| h.lease != lease.id);
        }
        self.freed.notify_waiters();
        tracing::info!(lease = %lease.id, "GPUs released");
        Ok(())
    }

    async fn wait_memory_released(&self, lease: &GpuLease) {
        let limits: BTreeMap<u32, u64> = {
            let held = self.lock();
            lease
                .devices
                .iter()
                .map(|d| {
                    let before = held
                        .get(&d.index)
                        .filter(|h| h.lease == lease.id)
                        .map_or(0, |h| h.used_at_acquire);
                    (d.index, self.settings.release_memory_mib.max(before + 256))
                })
                .collect()
        };
        let now = Instant::now();
        let end = now
            .checked_add(self.settings.release_timeout)
            .unwrap_or(now + Duration::from_secs(86_400));
        loop {
            let busy = match gpu::query(&self.settings.nvidia_smi).await {
                Ok(now) => busy_devices(&lease.devices, &now, &limits),
                Err(e) => {
                    tracing::warn!("release: cannot read GPU memory ({e}); freeing the GPUs");
                    return;
                }
            };
            if busy.is_empty() {
                return;
            }
            if Instant::now() >= end {
                tracing::warn!(
                    lease = %lease.id,
                    "GPU memory still in use after {:?} ({}); freeing the GPUs anyway",
                    self.settings.release_timeout,
                    busy.join(", ")
                );
                return;
            }
            tokio::time::sleep(self.settings.release_poll).await;
        }
    }
}

/// The lease's devices whose memory in use is still at or above their limit.
fn busy_devices(
    devices: &[GpuDevice],
    now: &[GpuStatus],
    limits: &BTreeMap<u32, u64>,
) -> Vec<String> {
    devices
        .iter()
        .filter_map(|d| {
            let s = now
                .iter()
                .find(|g| g.device.uuid == d.uuid)
                .or_else(|| now.iter().find(|g| g.device.index == d.index))?;
            let used = s.memory_used_mib?;
            let limit = limits.get(&d.index).copied().unwrap_or(0);
            (used >= limit).then(|| format!("GPU {}: {used} MiB ≥ {limit} MiB", d.index))
        })
        .collect()
}

/// The indices of devices, in order.
pub fn indices(devices: &[GpuDevice]) -> Vec<u32> {
    devices.iter().map(|d| d.index).collect()
}

/// The `CUDA_VISIBLE_DEVICES` value of a lease (`None` for an empty lease).
pub fn cuda_visible_devices(lease: &GpuLease) -> Option<String> {
    (!lease.devices.is_empty()).then(|| {
        lease
            .devices
            .iter()
            .map(|d| d.index.to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(index: u32) -> GpuDevice {
        GpuDevice {
            index,
            uuid: format!("GPU-{index}"),
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_mib: 81559,
        }
    }

    #[test]
    fn busy_and_visible_devices() {
        let devices = vec![dev(0), dev(3)];
        let now = vec![
            GpuStatus {
                device: dev(0),
                memory_used_mib: Some(5),
            },
            GpuStatus {
                device: dev(3),
                memory_used_mib: Some(70_000),
            },
        ];
        let limits = BTreeMap::from([(0, 1024), (3, 1024)]);
        let busy = busy_devices(&devices, &now, &limits);
        assert_eq!(busy.len(), 1);
        assert!(busy[0].starts_with("GPU 3"));
        let lease = GpuLease {
            id: "x".into(),
            devices,
        };
        assert_eq!(cuda_visible_devices(&lease).as_deref(), Some("0,3"));
        assert_eq!(cuda_visible_devices(&GpuLease::default()), None);
    }
}
