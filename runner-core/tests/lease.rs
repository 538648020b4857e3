//! runner-core's host GPU leases against a fake `nvidia-smi` (a shell script printing what a
//! real one prints; no GPU exists in CI): exclusive devices, SKU checks up front, waiting with
//! cancellation and deadlines, memory-release waits, CPU-only mode, and leases kept apart
//! across processes by the host's lock files.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner_core::Failure;
use runner_core::backend::{GpuLease, NoProgress, RunContext};
use runner_core::lease::{
    CPU_ONLY_LEASE, LeaseManager, LeaseSettings, cuda_visible_devices, lock_dir_health, lock_path,
};
use runner_core::plan::GpuRequest;
use tokio_util::sync::CancellationToken;

/// A folder with a fake `nvidia-smi` that prints `gpus.csv` for queries.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new(csv: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        perf_runner_tests::fake_gpus::fake_nvidia_smi(dir.path(), csv).unwrap();
        Host { dir }
    }

    fn smi(&self) -> PathBuf {
        self.dir.path().join("nvidia-smi")
    }

    fn set(&self, csv: &str) {
        std::fs::write(self.dir.path().join("gpus.csv"), csv).unwrap();
    }

    fn manager(&self, f: impl FnOnce(&mut LeaseSettings)) -> LeaseManager {
        manager_for(&self.smi(), f)
    }
}

fn manager_for(smi: &Path, f: impl FnOnce(&mut LeaseSettings)) -> LeaseManager {
    let mut s = LeaseSettings {
        acquire_poll: Duration::from_secs(5),
        release_poll: Duration::from_millis(50),
        release_timeout: Duration::from_secs(5),
        // The host's lock files of this fake host only (its UUIDs are every fake host's).
        lock_dir: smi.parent().map(|d| d.join("locks")),
        ..LeaseSettings::new("docker", smi)
    };
    f(&mut s);
    LeaseManager::new(s)
}

/// Two H100s and an H200, `used` MiB in use on each.
fn mixed(used: u64) -> String {
    format!(
        "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, {used}\n\
         1, GPU-bbbbbbbb-1111-1111-1111-111111111111, NVIDIA H100 80GB HBM3, 81559, {used}\n\
         2, GPU-cccccccc-2222-2222-2222-222222222222, NVIDIA H200, 143771, {used}\n"
    )
}

fn cx() -> RunContext {
    RunContext {
        cancel: CancellationToken::new(),
        deadline: None,
        artifact_dir: PathBuf::from("unused"),
        data_dir: PathBuf::from("unused"),
        lease: GpuLease::default(),
        labels: Default::default(),
        progress: Arc::new(NoProgress),
    }
}

fn req(kind: Option<&str>, count: u32) -> GpuRequest {
    GpuRequest {
        kind: kind.map(String::from),
        count,
    }
}

#[tokio::test]
async fn leases_are_exclusive_and_of_the_asked_kind() {
    let host = Host::new(&mixed(3));
    let m = host.manager(|_| {});
    let cx = cx();
    let h200 = m.acquire(&req(Some("H200"), 1), &cx).await.unwrap();
    assert_eq!(h200.devices.len(), 1);
    assert_eq!(h200.devices[0].index, 2);
    assert_eq!(h200.devices[0].name, "NVIDIA H200");
    assert!(h200.id.starts_with("docker-"), "{}", h200.id);
    let (upper, lower) = (req(Some("H100"), 1), req(Some("h100"), 1));
    let (a, b) = tokio::join!(m.acquire(&upper, &cx), m.acquire(&lower, &cx));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut got = [a.devices[0].index, b.devices[0].index];
    got.sort_unstable();
    assert_eq!(
        got,
        [0, 1],
        "two concurrent H100 leases, two different H100s"
    );
    assert_ne!(a.id, b.id);
    assert_eq!(m.held_indices(), [0, 1, 2]);
    assert_eq!(cuda_visible_devices(&h200).as_deref(), Some("2"));

    // Any kind, none free: waits until one is released, then gets exactly that one.
    let m = Arc::new(m);
    let t = {
        let (m, cx) = (m.clone(), cx.clone());
        tokio::spawn(async move { m.acquire(&req(None, 1), &cx).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!t.is_finished(), "every GPU is held: the acquire waits");
    let freed = b.devices[0].index;
    let started = Instant::now();
    m.release(b).await.unwrap();
    let c = t.await.unwrap().unwrap();
    assert_eq!(c.devices[0].index, freed);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "woken by the release, not by the 5 s poll"
    );
    for l in [a, c, h200] {
        m.release(l).await.unwrap();
    }
    assert!(m.held_indices().is_empty());
    assert_eq!(
        m.sku_counts(),
        [("H100".to_string(), 2), ("H200".to_string(), 1)].into()
    );
}

#[tokio::test]
async fn requests_the_host_can_never_satisfy_are_refused_up_front() {
    let host = Host::new(&mixed(3));
    let m = host.manager(|_| {});
    let t = Instant::now();
    let e = m.acquire(&req(Some("H200"), 2), &cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert_eq!(e.backend, "docker");
    assert!(
        e.message.contains("never satisfy 2 GPU(s) of kind H200")
            && e.message.contains("1 matching of 3")
            && e.message.contains("0: NVIDIA H100 80GB HBM3"),
        "{e}"
    );
    let e = m.acquire(&req(Some("A100"), 1), &cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    let e = m.acquire(&req(None, 4), &cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(t.elapsed() < Duration::from_secs(2), "no waiting");
    assert!(m.held_indices().is_empty());

    // No nvidia-smi: refused, naming the program and the settings that help.
    let none = manager_for(&host.dir.path().join("absent"), |_| {});
    let e = none.acquire(&req(None, 1), &cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(
        e.message.contains("nvidia-smi not found") && e.message.contains("cpu_only = true"),
        "{e}"
    );
    assert!(e.message.contains("[docker]"), "{e}");
    assert!(none.sku_counts().is_empty());
}

#[tokio::test]
async fn a_waiting_acquire_ends_on_cancel_and_on_the_deadline() {
    let host = Host::new(&mixed(3));
    let m = host.manager(|_| {});
    let cx = cx();
    let all = m.acquire(&req(Some("H100"), 2), &cx).await.unwrap();
    let cancel = cx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let e = m.acquire(&req(Some("H100"), 1), &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled);

    let mut late = self::cx();
    late.deadline = Some(Instant::now() + Duration::from_millis(150));
    let t = Instant::now();
    let e = m.acquire(&req(Some("H100"), 1), &late).await.unwrap_err();
    assert_eq!(e.kind, Failure::Timeout);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(m.held_indices(), [0, 1], "failed waits hold nothing");
    m.release(all).await.unwrap();
}

#[tokio::test]
async fn release_waits_bounded_for_the_memory_to_fall() {
    let host = Host::new(&mixed(3));
    let m = host.manager(|_| {});
    let lease = m.acquire(&req(Some("H200"), 1), &cx()).await.unwrap();
    host.set(&mixed(70_000));
    let csv = host.dir.path().join("gpus.csv");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::write(csv, mixed(3)).unwrap();
    });
    let t = Instant::now();
    m.release(lease).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
    assert!(m.held_indices().is_empty());

    let quick = host.manager(|s| s.release_timeout = Duration::from_millis(300));
    let lease = quick.acquire(&req(None, 1), &cx()).await.unwrap();
    host.set(&mixed(70_000));
    let t = Instant::now();
    quick.release(lease).await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "memory that never falls delays a release by release_timeout only: {took:?}"
    );
    assert!(quick.held_indices().is_empty());
}

#[tokio::test]
async fn cpu_only_and_zero_gpus_hold_nothing() {
    let cpu = manager_for(Path::new("/nonexistent/nvidia-smi"), |s| s.cpu_only = true);
    let lease = cpu.acquire(&req(Some("H200"), 8), &cx()).await.unwrap();
    assert_eq!(lease.id, CPU_ONLY_LEASE);
    assert!(lease.devices.is_empty());
    assert!(cpu.sku_counts().is_empty());
    cpu.release(lease).await.unwrap();

    let host = Host::new(&mixed(3));
    let m = host.manager(|_| {});
    let none = m.acquire(&req(Some("H100"), 0), &cx()).await.unwrap();
    assert!(none.devices.is_empty() && m.held_indices().is_empty());
    assert_eq!(cuda_visible_devices(&none), None);
    m.release(none).await.unwrap();
}

/// Two managers on one host stand for two perf-runner processes (each opens the lock files
/// itself, so their locks conflict as two processes' do): neither leases a GPU the other
/// holds, and a release by one is seen by the other at its next poll.
#[tokio::test]
async fn two_runners_on_one_host_never_share_a_gpu() {
    let host = Host::new(&mixed(3));
    let fast = |s: &mut LeaseSettings| s.acquire_poll = Duration::from_millis(50);
    let (a, b) = (host.manager(fast), host.manager(fast));
    let cx = cx();
    let first = a.acquire(&req(Some("H100"), 1), &cx).await.unwrap();
    let second = b.acquire(&req(Some("H100"), 1), &cx).await.unwrap();
    assert_ne!(first.devices[0].index, second.devices[0].index);

    // Both H100s are held, one by each: a third request waits until the other runner lets go.
    let b = Arc::new(b);
    let waiting = {
        let (b, cx) = (b.clone(), cx.clone());
        tokio::spawn(async move { b.acquire(&req(Some("H100"), 1), &cx).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the other runner's GPU is not leased"
    );
    let freed = first.devices[0].index;
    a.release(first).await.unwrap();
    let third = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("seen at the next poll")
        .unwrap()
        .unwrap();
    assert_eq!(third.devices[0].index, freed);
    b.release(third).await.unwrap();
    b.release(second).await.unwrap();
}

/// A process group killed (and reaped) when dropped, also when an assertion fails first.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lock folder and files are made usable by every user of the host (1777 and 0666, as
/// `/tmp`), whatever the umask: another user's runs take the same locks.
#[tokio::test]
async fn lock_files_are_shared_by_every_user_of_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let host = Host::new(&mixed(3));
    let dir = host.dir.path().join("fresh-locks");
    let m = host.manager(|s| s.lock_dir = Some(dir.clone()));
    let lease = m.acquire(&req(Some("H200"), 1), &cx()).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o1777);
    assert_eq!(mode(&lock_path(&dir, &lease.devices[0])), 0o666);
    m.release(lease).await.unwrap();
}

/// `doctor`'s check of the lock folder: a usable folder is said so, one that cannot exist
/// (under a regular file) names itself and what it means.
#[test]
fn the_lock_folder_check_says_whether_processes_are_kept_apart() {
    let d = tempfile::tempdir().unwrap();
    let ok = lock_dir_health(&d.path().join("locks")).unwrap();
    assert!(ok.contains("shared by every perf-runner"), "{ok}");
    std::fs::write(d.path().join("file"), "x").unwrap();
    let bad = d.path().join("file").join("locks");
    let e = lock_dir_health(&bad).unwrap_err();
    assert!(
        e.contains(&bad.display().to_string()) && e.contains("may lease the same GPU"),
        "{e}"
    );
}

/// A real other process (`flock`, holding GPU 0's lock file) keeps GPU 0 from this one; when
/// it is killed, the lock goes with it and GPU 0 is leased.
#[tokio::test]
async fn a_gpu_locked_by_another_process_is_not_leased_until_that_process_is_gone() {
    let host = Host::new(&mixed(3));
    let m = host.manager(|s| s.acquire_poll = Duration::from_millis(50));
    let cx = cx();
    // Learn GPU 0's device (and so its lock file) by leasing it once.
    let probe = m.acquire(&req(Some("H100"), 2), &cx).await.unwrap();
    let gpu0 = probe.devices.iter().find(|d| d.index == 0).unwrap().clone();
    m.release(probe).await.unwrap();
    let lock = lock_path(&host.dir.path().join("locks"), &gpu0);
    // `-o`: flock itself holds the lock, not its `sleep`; its own process group, so that the
    // whole of it goes at the end.
    let holder = Holder(
        std::process::Command::new("flock")
            .args(["-x", "-o"])
            .arg(&lock)
            .args(["sleep", "60"])
            .process_group(0)
            .spawn()
            .expect("flock (util-linux) runs"),
    );
    // Until flock holds it, a lease could still take GPU 0: wait for the lock to be taken.
    let free = || {
        std::process::Command::new("flock")
            .args(["-n", "-s"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while free() {
        assert!(Instant::now() < until, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }

    let one = m.acquire(&req(Some("H100"), 1), &cx).await.unwrap();
    assert_eq!(
        one.devices[0].index, 1,
        "GPU 0 belongs to the other process"
    );
    let m = Arc::new(m);
    let waiting = {
        let (m, cx) = (m.clone(), cx.clone());
        tokio::spawn(async move { m.acquire(&req(Some("H100"), 1), &cx).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    drop(holder);
    let zero = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("GPU 0 leased once its holder is gone")
        .unwrap()
        .unwrap();
    assert_eq!(zero.devices[0].index, 0);
}
