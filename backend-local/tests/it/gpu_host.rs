//! On a host with NVIDIA GPUs only (`cargo test -p backend-local --test it -- --ignored`): real
//! `nvidia-smi` discovery, `CUDA_VISIBLE_DEVICES` pinning, and a release that waits for real GPU
//! memory to be freed.

use std::time::{Duration, Instant};

use backend_local::LocalBackend;
use runner_core::plan::GpuRequest;
use runner_core::{Backend, Variant};

use crate::common::*;

#[tokio::test]
#[ignore = "needs an NVIDIA GPU host"]
async fn real_gpus_are_discovered_pinned_and_released() {
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.nvidia_smi = "nvidia-smi".into();
    cfg.release_poll_ms = 200;
    let backend = LocalBackend::new(cfg);
    let caps = backend.capabilities();
    println!("capabilities: {caps:?}");
    assert!(!caps.gpus.is_empty());

    let cx = s.cx();
    let lease = backend
        .acquire(
            &GpuRequest {
                kind: None,
                count: 1,
            },
            &cx,
        )
        .await
        .unwrap();
    let dev = lease.devices[0].clone();
    println!("leased {dev:?}");
    assert!(dev.uuid.starts_with("GPU-") && dev.memory_mib > 0);
    let kind = backend_local::sku(&dev.name);
    assert!(backend_local::gpu::matches_kind(&dev.name, Some(&kind)));

    let env = backend
        .prepare(&build(Variant::Human, &s.wheel()), &cx)
        .await
        .unwrap();
    let mut cx = s.cx();
    cx.lease = lease.clone();
    let out = backend
        .execute(&envs(&env), &serving_step(&s, &[]), &cx)
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.gpu_names, std::slice::from_ref(&dev.name));
    assert_eq!(
        s.env_of("server-env.json")["CUDA_VISIBLE_DEVICES"],
        dev.index.to_string()
    );
    assert!(s.path("art/nvidia-smi.txt").exists());

    // A process on the leased GPU holds 4 GiB for 3 s; release waits for it to let go.
    let torch = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .status();
    if !torch.is_ok_and(|s| s.success()) {
        println!("no torch in python3: memory release not exercised");
        return backend.release(lease).await.unwrap();
    }
    let hog = "import torch, time; x = torch.empty(4 << 30, dtype=torch.uint8, device='cuda'); \
               print('allocated', flush=True); time.sleep(3)";
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", hog])
        .env("CUDA_VISIBLE_DEVICES", dev.index.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "allocated");
    let t = Instant::now();
    backend.release(lease).await.unwrap();
    let took = t.elapsed();
    println!("release waited {took:?} for the GPU memory");
    assert!(took > Duration::from_millis(1000), "{took:?}");
    child.wait().await.unwrap();
}
