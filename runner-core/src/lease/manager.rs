//! The lease manager: which devices of this host are held, by which lease; waiting for free
//! ones; giving them back once their memory is released.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::discovery::{self, GpuStatus};
use crate::backend::{BackendError, GpuDevice, GpuLease, RunContext};
use crate::failure::Failure;
use crate::plan::GpuRequest;

/// The id of the lease a CPU-only manager hands out (no device held).
pub const CPU_ONLY_LEASE: &str = "cpu-only";

/// Knobs of a [`LeaseManager`].
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The backend the manager leases for: named in errors, lease ids and the settings hint
    /// (`[local]`, `[docker]`).
    pub backend: &'static str,
    /// The `nvidia-smi` program (a name looked up on `PATH`, or a path: a wrapper or a fake).
    pub nvidia_smi: PathBuf,
    /// Hold no device at all: every request gets an empty lease and nothing is pinned (CPU
    /// engines, such as the test stand-in).
    pub cpu_only: bool,
    /// Re-check interval of a waiting acquire (it is also woken by every release).
    pub acquire_poll: Duration,
    /// How long a release waits for memory to fall.
    pub release_timeout: Duration,
    /// Poll interval during a release.
    pub release_poll: Duration,
    /// Memory (MiB) under which a GPU counts as released.
    pub release_memory_mib: u64,
    /// A folder of lock files, one per GPU (by UUID), shared by every perf-runner process of
    /// this host: a GPU one process leased is not leased by another (the local and the Docker
    /// backend, two runs at once) until it is released or that process is gone (the lock goes
    /// with it). `None` — or a folder that cannot be used, which is warned about — keeps leases
    /// apart within this process only.
    pub lock_dir: Option<PathBuf>,
}

/// The host-wide folder of GPU lock files: `/var/tmp/perf-runner-gpu-leases`. A fixed path,
/// not one from the environment: `TMPDIR` differs between a Slurm job, a systemd service with a
/// private `/tmp` and a login shell, and processes that looked in different folders would share
/// GPUs. It is made writable by every user (mode 1777, like `/tmp`), its files 0666.
pub fn default_lock_dir() -> PathBuf {
    PathBuf::from("/var/tmp/perf-runner-gpu-leases")
}

impl LeaseSettings {
    /// Settings for `backend` with `nvidia_smi` and the defaults: not CPU-only, re-check every
    /// 2 s, release waits up to 120 s (polling every 1 s) for memory to fall under 1024 MiB.
    pub fn new(backend: &'static str, nvidia_smi: impl Into<PathBuf>) -> Self {
        LeaseSettings {
            backend,
            nvidia_smi: nvidia_smi.into(),
            cpu_only: false,
            acquire_poll: Duration::from_secs(2),
            release_timeout: Duration::from_secs(120),
            release_poll: Duration::from_secs(1),
            release_memory_mib: 1_024,
            lock_dir: Some(default_lock_dir()),
        }
    }
}

#[derive(Debug)]
struct Held {
    lease: String,
    /// Memory in use when the lease was taken (what others were using then).
    used_at_acquire: u64,
    /// The GPU's host-wide lock file, locked while held (dropping it unlocks).
    _lock: Option<std::fs::File>,
}

/// Who holds which GPU index of this host: each device belongs to at most one lease at a time,
/// so concurrent tasks of a run never share a GPU — and, through the lock files of
/// [`LeaseSettings::lock_dir`], neither do two perf-runner processes of one host.
#[derive(Debug)]
pub struct LeaseManager {
    settings: LeaseSettings,
    held: Mutex<BTreeMap<u32, Held>>,
    freed: Notify,
    next: AtomicU64,
    host: OnceLock<Vec<GpuStatus>>,
}

impl LeaseManager {
    /// A manager with nothing held.
    pub fn new(settings: LeaseSettings) -> Self {
        LeaseManager {
            settings,
            held: Mutex::new(BTreeMap::new()),
            freed: Notify::new(),
            next: AtomicU64::new(1),
            host: OnceLock::new(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// The host's GPUs, discovered once (blocking; for sync callers such as
    /// `Backend::capabilities`). Empty when `nvidia-smi` does not answer.
    pub fn host_gpus(&self) -> &[GpuStatus] {
        self.host.get_or_init(|| {
            discovery::query_blocking(&self.settings.nvidia_smi).unwrap_or_else(|e| {
                tracing::info!(backend = self.settings.backend, "no GPUs: {e}");
                Vec::new()
            })
        })
    }

    /// How many GPUs of each SKU can be leased (`H100` → 2), for `Capabilities::gpus`; none
    /// when CPU-only (`nvidia-smi` is then not run).
    pub fn sku_counts(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        if self.settings.cpu_only {
            return out;
        }
        for g in self.host_gpus() {
            *out.entry(discovery::sku(&g.device.name)).or_insert(0u32) += 1;
        }
        out
    }

    /// The indices held now.
    pub fn held_indices(&self) -> Vec<u32> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Held>> {
        // A poisoned map is still a consistent map of plain data.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, kind: Failure, message: impl Into<String>) -> BackendError {
        BackendError::new(self.settings.backend, kind, message)
    }

    /// Hold `req.count` GPUs of `req.kind`, waiting (cancellable, bounded by `cx.deadline`)
    /// while they are busy. A request the host can never satisfy — too few GPUs of the kind,
    /// or no `nvidia-smi` — is refused at once (`bad_config`). A CPU-only manager holds
    /// nothing ([`CPU_ONLY_LEASE`]).
    pub async fn acquire(
        &self,
        req: &GpuRequest,
        cx: &RunContext,
    ) -> Result<GpuLease, BackendError> {
        if self.settings.cpu_only {
            return Ok(GpuLease {
                id: CPU_ONLY_LEASE.into(),
                devices: Vec::new(),
            });
        }
        if req.count == 0 {
            return Ok(GpuLease {
                id: self.new_id(),
                devices: Vec::new(),
            });
        }
        let all = discovery::query(&self.settings.nvidia_smi)
            .await
            .map_err(|e| {
                self.error(
                    Failure::BadConfig,
                    format!(
                        "cannot lease {} GPU(s): {e} (set `nvidia_smi`, or `cpu_only = true` for \
                         CPU-only engines, in [{}])",
                        req.count, self.settings.backend
                    ),
                )
            })?;
        let kind = req.kind.as_deref();
        let matching: Vec<GpuStatus> = all
            .iter()
            .filter(|g| discovery::matches_kind(&g.device.name, kind))
            .cloned()
            .collect();
        if (matching.len() as u64) < u64::from(req.count) {
            let have: Vec<String> = all
                .iter()
                .map(|g| format!("{}: {}", g.device.index, g.device.name))
                .collect();
            return Err(self.error(
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
                    return Err(self.error(Failure::Cancelled, "cancelled while waiting for GPUs"));
                }
                _ = deadline => {
                    return Err(self.error(Failure::Timeout, "deadline passed while waiting for GPUs"));
                }
            }
        }
    }

    fn new_id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.settings.backend,
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn try_take(&self, matching: &[GpuStatus], count: u32) -> Option<GpuLease> {
        let mut held = self.lock();
        let mut free: Vec<(&GpuStatus, Option<std::fs::File>)> = Vec::new();
        for g in matching
            .iter()
            .filter(|g| !held.contains_key(&g.device.index))
        {
            if free.len() == count as usize {
                break;
            }
            match self.host_lock(g) {
                Ok(lock) => free.push((g, lock)),
                // Another process holds it; the locks taken so far go back when `free` drops.
                Err(()) => continue,
            }
        }
        if free.len() < count as usize {
            return None;
        }
        let id = self.new_id();
        let devices = free.iter().map(|(g, _)| g.device.clone()).collect();
        for (g, lock) in free {
            // Free by every lock, yet in use: a process no lock knows (a container a killed
            // runner left, another tool). Said, so a slow or failed run has its reason.
            if let Some(used) = g
                .memory_used_mib
                .filter(|&m| m >= self.settings.release_memory_mib)
            {
                tracing::warn!(
                    gpu = g.device.index,
                    used_mib = used,
                    "leased GPU already has {used} MiB in use by something else (`perf-runner gc` removes what an earlier run left)"
                );
            }
            held.insert(
                g.device.index,
                Held {
                    lease: id.clone(),
                    used_at_acquire: g.memory_used_mib.unwrap_or(0),
                    _lock: lock,
                },
            );
        }
        Some(GpuLease { id, devices })
    }

    /// The host-wide lock of `g`, taken: `Ok(None)` when locks are off or the folder cannot be
    /// used (said once: leases are then kept apart within this process only), `Err` when
    /// another process holds it.
    fn host_lock(&self, g: &GpuStatus) -> Result<Option<std::fs::File>, ()> {
        let Some(dir) = &self.settings.lock_dir else {
            return Ok(None);
        };
        let path = lock_path(dir, &g.device);
        let file = open_lock(dir, &path);
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::warn!(
                        path = %path.display(),
                        "cannot use the GPU lock files ({e}); another perf-runner process on this host may lease the same GPUs"
                    )
                });
                return Ok(None);
            }
        };
        match try_flock(&file) {
            Ok(true) => Ok(Some(file)),
            Ok(false) => {
                tracing::debug!(gpu = g.device.index, "held by another process");
                Err(())
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot lock ({e}); leased without it");
                Ok(Some(file))
            }
        }
    }

    /// Give a lease back: wait (bounded) until its GPUs' memory in use falls below the
    /// threshold (or to what it was when leased), then mark them free. A lease without devices
    /// (CPU-only, zero GPUs, another backend's) holds nothing and returns at once.
    pub async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        if lease.devices.is_empty() {
            return Ok(());
        }
        self.wait_memory_released(&lease).await;
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
            let busy = match discovery::query(&self.settings.nvidia_smi).await {
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

/// Whether the GPU lock folder `dir` can keep this host's perf-runner processes apart: `Ok`
/// with what was checked, or why not (leases then hold within this process only). Creates the
/// folder and a probe file as a lease would; takes no GPU's lock.
pub fn lock_dir_health(dir: &Path) -> Result<String, String> {
    let probe = dir.join("probe.lock");
    match open_lock(dir, &probe).and_then(|f| try_flock(&f).map(|got| (f, got))) {
        Ok((_, true)) => Ok(format!(
            "{} (shared by every perf-runner of this host)",
            dir.display()
        )),
        Ok((_, false)) => Ok(format!(
            "{} (a probe is locked by another process)",
            dir.display()
        )),
        Err(e) => Err(format!(
            "{}: {e}; two perf-runner processes of this host may lease the same GPU (set gpu_lock_dir)",
            dir.display()
        )),
    }
}

/// Open (creating) the lock file `path` in `dir`, the folder created writable by every user
/// (1777) and the file by every user (0666), so that the runs of other users on this host take
/// the same locks. An existing file another user made read-only is opened read-only (`flock`
/// needs no write access).
fn open_lock(dir: &Path, path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        // The umask narrowed it; only its creator can widen it (another user's folder stays).
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(path)
    {
        Ok(f) => {
            let _ = f.set_permissions(std::fs::Permissions::from_mode(0o666));
            Ok(f)
        }
        Err(_) => std::fs::File::open(path),
    }
}

/// Take an exclusive `flock` on `file` without waiting: `Ok(false)` when another open file
/// (another process) holds it. Closing the file — or the process ending — gives it back.
fn try_flock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` on a descriptor that `file` owns and keeps open; no memory is shared.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The lock file of `device` in the lock folder `dir`: `gpu-<UUID>-<index>.lock` (the UUID
/// reduced to letters, digits and `-`).
pub fn lock_path(dir: &Path, device: &GpuDevice) -> PathBuf {
    let name: String = device
        .uuid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("gpu-{name}-{}.lock", device.index))
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
