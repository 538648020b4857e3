//! GPU leases against a fake `nvidia-smi` (no GPU exists in CI; everything else is real).

use std::time::{Duration, Instant};

use backend_local::{LocalBackend, LocalConfig};
use runner_core::plan::GpuRequest;
use runner_core::{Backend, Failure};

use crate::common::*;

fn backend(s: &Scratch, used: u64) -> LocalBackend {
    LocalBackend::new(LocalConfig {
        nvidia_smi: s.fake_smi(&two_h100(used)),
        gpu_lock_dir: Some(s.path("gpu-locks")),
        release_poll_ms: 50,
        release_timeout_ms: 5_000,
        acquire_poll_ms: 5_000,
        ..s.config()
    })
}

fn req(kind: Option<&str>, count: u32) -> GpuRequest {
    GpuRequest {
        kind: kind.map(String::from),
        count,
    }
}

#[tokio::test]
async fn concurrent_leases_get_distinct_gpus_and_a_third_waits_for_a_release() {
    let s = Scratch::new();
    let b = backend(&s, 3);
    let cx = s.cx();
    let one = req(Some("H100"), 1);
    let (l1, l2) = tokio::join!(b.acquire(&one, &cx), b.acquire(&one, &cx));
    let (l1, l2) = (l1.unwrap(), l2.unwrap());
    assert_eq!(l1.devices.len(), 1);
    assert_ne!(l1.devices[0].index, l2.devices[0].index);
    assert_eq!(b.leased_indices(), [0, 1]);

    let waiter = {
        let (b, cx, one) = (b.clone(), cx.clone(), one.clone());
        tokio::spawn(async move { b.acquire(&one, &cx).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "no GPU is free: the third acquire waits"
    );
    let freed = l2.devices[0].index;
    let t = Instant::now();
    b.release(l2).await.unwrap();
    let l3 = waiter.await.unwrap().unwrap();
    assert_eq!(l3.devices[0].index, freed);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "woken by the release, not the poll"
    );
    b.release(l1).await.unwrap();
    b.release(l3).await.unwrap();
    assert!(b.leased_indices().is_empty());
}

#[tokio::test]
async fn impossible_requests_are_refused_at_once() {
    let s = Scratch::new();
    let b = backend(&s, 3);
    let t = Instant::now();
    let e = b.acquire(&req(None, 3), &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(
        e.message.contains("3 GPU(s)") && e.message.contains("NVIDIA H100 80GB HBM3"),
        "{e}"
    );
    let e = b.acquire(&req(Some("A100"), 1), &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(t.elapsed() < Duration::from_secs(2));

    let none = LocalBackend::new(s.config()); // nvidia-smi absent
    let e = none.acquire(&req(None, 1), &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(e.message.contains("nvidia-smi"), "{e}");
}

#[tokio::test]
async fn a_waiting_acquire_is_cancellable() {
    let s = Scratch::new();
    let b = backend(&s, 3);
    let cx = s.cx();
    let both = b.acquire(&req(None, 2), &cx).await.unwrap();
    let cancel = cx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let e = b.acquire(&req(None, 1), &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled);
    b.release(both).await.unwrap();
}

#[tokio::test]
async fn release_waits_for_gpu_memory_to_fall() {
    let s = Scratch::new();
    let b = backend(&s, 3);
    let lease = b.acquire(&req(None, 1), &s.cx()).await.unwrap();
    // The run's server still holds memory; it lets go 400 ms later.
    std::fs::write(s.path("gpus.csv"), two_h100(70_000)).unwrap();
    let csv = s.path("gpus.csv");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::write(csv, two_h100(3)).unwrap();
    });
    let t = Instant::now();
    b.release(lease).await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "released after {took:?}"
    );
    assert!(b.leased_indices().is_empty());

    // Bounded: memory that never falls delays the release by release_timeout_ms only.
    let lease = b.acquire(&req(None, 1), &s.cx()).await.unwrap();
    std::fs::write(s.path("gpus.csv"), two_h100(70_000)).unwrap();
    let mut quick = LocalConfig {
        release_timeout_ms: 300,
        ..b.config().clone()
    };
    quick.release_poll_ms = 50;
    let b2 = LocalBackend::new(quick);
    let t = Instant::now();
    b2.release(lease).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn capabilities_and_check_read_nvidia_smi() {
    let s = Scratch::new();
    let b = backend(&s, 3);
    let caps = b.capabilities();
    assert_eq!(caps.gpus.get("H100"), Some(&2));
    assert!(!caps.needs_network, "offline with find_links");
    let h = b.check().await.unwrap();
    assert!(h.usable);
    let smi = h.checks.iter().find(|c| c.name == "nvidia-smi").unwrap();
    assert!(smi.ok && smi.detail.starts_with("2 GPU(s)"), "{smi:?}");
    let driver = h.checks.iter().find(|c| c.name == "driver").unwrap();
    assert_eq!(driver.detail, "550.54.15");
    for c in &h.checks {
        println!("{}: {} {}", c.name, c.ok, c.detail);
    }
}
