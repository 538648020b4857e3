//! Host GPU leases on the Docker backend (runner-core's lease manager over a fake
//! `nvidia-smi`): a request the host can never satisfy is refused before the engine is even
//! contacted, and a leased GPU reaches the container (`gpu_devices = "env"`: this engine may
//! have no NVIDIA runtime) and the step's output names its SKU.

use std::time::{Duration, Instant};

use backend_docker::{GpuDevices, LABEL_GPUS};
use runner_core::backend::JobEnvs;
use runner_core::plan::GpuRequest;
use runner_core::{Backend, Failure, Variant};

use crate::support::{self, H100};

fn req(kind: &str, count: u32) -> GpuRequest {
    GpuRequest {
        kind: Some(kind.into()),
        count,
    }
}

#[tokio::test]
async fn an_h200_task_on_an_h100_host_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let smi = support::fake_smi(dir.path());
    let b = support::backend(dir.path(), |c| {
        c.nvidia_smi = smi;
        c.gpu_lock_dir = Some(dir.path().join("gpu-locks"));
        // No engine answers here: leasing must not need one.
        c.docker_host = Some("unix:///nonexistent/perf-runner-test.sock".into());
    });
    assert_eq!(b.capabilities().gpus.get("H100"), Some(&2));
    let cx = support::context(dir.path(), "t-refuse", "baseline");
    let t = Instant::now();
    let e = b.acquire(&req("H200", 1), &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert_eq!(e.backend, "docker");
    assert!(
        e.message.contains("never satisfy 1 GPU(s) of kind H200") && e.message.contains(H100),
        "{e}"
    );
    let e = b.acquire(&req("H100", 3), &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refused without waiting"
    );
    assert!(b.leased_indices().is_empty());

    // The two H100s go to two leases; a third waits until cancelled.
    let l1 = b.acquire(&req("H100", 1), &cx).await.unwrap();
    let l2 = b.acquire(&req("H100", 1), &cx).await.unwrap();
    assert_ne!(l1.devices[0].uuid, l2.devices[0].uuid);
    assert!(l1.id.starts_with("docker-"), "{}", l1.id);
    let cancel = cx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let e = b.acquire(&req("H100", 1), &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled);
    b.release(l1).await.unwrap();
    b.release(l2).await.unwrap();
    assert!(b.leased_indices().is_empty());

    // No nvidia-smi: refused with the settings that help; CPU-only: an empty lease.
    let none = support::backend(dir.path(), |c| c.nvidia_smi = dir.path().join("absent"));
    let e = none.acquire(&req("H100", 1), &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
    assert!(
        e.message.contains("cpu_only = true") && e.message.contains("[docker]"),
        "{e}"
    );
    let cpu = support::backend(dir.path(), |c| c.cpu_only = true);
    let lease = cpu.acquire(&req("H200", 8), &cx).await.unwrap();
    assert!(lease.devices.is_empty());
    assert!(cpu.capabilities().gpus.is_empty());
    cpu.release(lease).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leased_gpu_reaches_the_server_container_and_the_output() {
    let Some(d) = support::engine("leased_gpu_reaches_the_container").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let smi = support::fake_smi(dir.path());
    let b = support::backend(dir.path(), |c| {
        c.nvidia_smi = smi;
        c.gpu_lock_dir = Some(dir.path().join("gpu-locks"));
        c.gpu_devices = GpuDevices::Env;
        c.keep_containers = true;
        c.probe_version = false;
    });
    let mut plan = support::plan(dir.path(), support::SERVE);
    // The step's own value is replaced by the lease's.
    plan.step
        .env
        .push(("NVIDIA_VISIBLE_DEVICES".into(), "all".into()));
    let run = support::run_id("lease");
    let mut cx = support::context(dir.path(), &run, "baseline");
    let build = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Baseline)
        .unwrap();
    let env = b.prepare(build, &cx).await.unwrap();
    // Take GPU 0 first, so this job's lease is GPU 1.
    let other = b.acquire(&req("H100", 1), &cx).await.unwrap();
    cx.lease = b.acquire(&plan.step.gpu, &cx).await.unwrap();
    assert_eq!(cx.lease.devices.len(), 1);
    let uuid = cx.lease.devices[0].uuid.clone();
    assert_ne!(uuid, other.devices[0].uuid);
    let job = JobEnvs {
        engine: env.clone(),
        client: env,
    };
    let out = b.execute(&job, &plan.step, &cx).await;
    let server = format!("pr-{run}-{}-baseline-1-server", support::COMMIT);
    let client = format!("pr-{run}-{}-baseline-1-client", support::COMMIT);
    let (s, c) = (
        d.inspect_container(&server, None).await.unwrap(),
        d.inspect_container(&client, None).await.unwrap(),
    );
    assert_eq!(
        b.gc(Some(&run)).await.unwrap(),
        3,
        "server, warm-up, client"
    );
    let out = out.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.gpu_names, [H100], "the output names the GPU SKU");

    let config = s.config.unwrap();
    let env = config.env.unwrap();
    let visible: Vec<_> = env
        .iter()
        .filter(|e| e.starts_with("NVIDIA_VISIBLE_DEVICES="))
        .collect();
    assert_eq!(visible, [&format!("NVIDIA_VISIBLE_DEVICES={uuid}")]);
    assert_eq!(config.labels.unwrap()[LABEL_GPUS], uuid);
    let requests = s.host_config.unwrap().device_requests.unwrap_or_default();
    assert!(requests.is_empty(), "env mode: no device request");
    // The serving client uses no GPU.
    assert!(!c.config.unwrap().labels.unwrap().contains_key(LABEL_GPUS));

    b.release(std::mem::take(&mut cx.lease)).await.unwrap();
    b.release(other).await.unwrap();
    assert!(b.leased_indices().is_empty());
}
