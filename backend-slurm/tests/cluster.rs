//! The Slurm backend against a real one-node cluster (`scripts/start-test-slurm.sh`: two fake
//! `h100` GPUs): allocations as leases, GPUs Slurm grants, a request that waits, one that can
//! never be satisfied, `doctor` and `gc`. Skipped without a cluster, failed where CI promises
//! one (`PERF_RUNNER_TEST_REQUIRE`).

// Each test holds the cluster's lock for its whole body, across awaits of its own runtime:
// the lock serialises tests on separate threads, never tasks of one runtime.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_slurm::{SlurmBackend, SlurmConfig};
use perf_runner_tests::require::slurm_cluster as cluster;
use runner_core::backend::NoProgress;
use runner_core::plan::GpuRequest;
use runner_core::{Backend, Failure, RunContext};
use tokio_util::sync::CancellationToken;

fn cx(run: &str, dir: &std::path::Path) -> RunContext {
    let mut labels = BTreeMap::new();
    labels.insert("run-id".to_string(), run.to_string());
    labels.insert("task".to_string(), "e3580537".to_string());
    RunContext {
        cancel: CancellationToken::new(),
        deadline: None,
        artifact_dir: dir.to_path_buf(),
        data_dir: dir.to_path_buf(),
        lease: Default::default(),
        labels,
        progress: Arc::new(NoProgress),
    }
}

fn h100(count: u32) -> GpuRequest {
    GpuRequest {
        kind: Some("H100".into()),
        count,
    }
}

/// Job ids in the queue named `perf-runner.<run>`.
fn queued(run: &str) -> Vec<String> {
    let o = Command::new("squeue")
        .args(["-h", "-o", "%i", "-n", &format!("perf-runner.{run}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn run_id(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_get_distinct_gpus_and_a_third_waits_for_one() {
    let Some(_g) = cluster("two_tasks_get_distinct_gpus_and_a_third_waits_for_one") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = run_id("gpus");
    let b = SlurmBackend::new(SlurmConfig {
        poll_ms: 50,
        ..SlurmConfig::default()
    });
    let (d1, d2, d3) = (
        dir.path().join("1"),
        dir.path().join("2"),
        dir.path().join("3"),
    );
    let t = Instant::now();
    let one = b.acquire(&h100(1), &cx(&run, &d1)).await.unwrap();
    let first = t.elapsed();
    let two = b.acquire(&h100(1), &cx(&run, &d2)).await.unwrap();
    assert_eq!(one.devices.len(), 1);
    assert_eq!(two.devices.len(), 1);
    assert_ne!(
        one.devices[0].index, two.devices[0].index,
        "distinct GPUs: {one:?} {two:?}"
    );
    assert_eq!(one.devices[0].name, "H100");
    // What Slurm granted is recorded: CUDA_VISIBLE_DEVICES of a step, and the job's GRES index.
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d1.join("slurm-allocation.json")).unwrap()).unwrap();
    assert_eq!(
        rec["cuda_visible_devices"].as_str(),
        Some(one.devices[0].index.to_string().as_str()),
        "{rec}"
    );
    assert_eq!(
        rec["gpu_indices"][0].as_u64(),
        Some(u64::from(one.devices[0].index))
    );
    eprintln!(
        "allocation granted in {:.0} ms (salloc {:.3} s), first job step {:.0} ms after the grant",
        first.as_secs_f64() * 1000.0,
        rec["wait_s"].as_f64().unwrap_or(-1.0),
        rec["first_step_ms"].as_f64().unwrap_or(-1.0)
    );
    // A third 1-GPU task waits (pending) until one of the two is released.
    let b3 = b.clone();
    let cx3 = cx(&run, &d3);
    let third = tokio::spawn(async move { b3.acquire(&h100(1), &cx3).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !third.is_finished(),
        "the third waits while both GPUs are held"
    );
    assert_eq!(queued(&run).len(), 3, "two running, one pending");
    let freed = one.devices[0].index;
    b.release(one).await.unwrap();
    let three = tokio::time::timeout(Duration::from_secs(20), third)
        .await
        .expect("granted once a GPU is free")
        .unwrap()
        .unwrap();
    assert_eq!(three.devices[0].index, freed, "it gets the freed GPU");
    b.release(two).await.unwrap();
    b.release(three).await.unwrap();
    assert!(
        queued(&run).is_empty(),
        "released = cancelled: {:?}",
        queued(&run)
    );
}

#[tokio::test]
async fn a_request_the_cluster_never_satisfies_is_refused_at_once() {
    let Some(_g) = cluster("a_request_the_cluster_never_satisfies_is_refused_at_once") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = run_id("never");
    let b = SlurmBackend::new(SlurmConfig::default());
    let t = Instant::now();
    let e = b
        .acquire(&h100(3), &cx(&run, dir.path()))
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");
    let e = b
        .acquire(
            &GpuRequest {
                kind: Some("B200".into()),
                count: 1,
            },
            &cx(&run, dir.path()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(queued(&run).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_wait_leaves_nothing_in_the_queue_and_gc_collects_leftovers() {
    let Some(_g) =
        cluster("a_cancelled_wait_leaves_nothing_in_the_queue_and_gc_collects_leftovers")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = run_id("cancel");
    let b = SlurmBackend::new(SlurmConfig {
        poll_ms: 50,
        ..SlurmConfig::default()
    });
    let held = b.acquire(&h100(2), &cx(&run, dir.path())).await.unwrap();
    let waiting_cx = cx(&run, dir.path());
    let cancel = waiting_cx.cancel.clone();
    let b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.acquire(&h100(1), &waiting_cx).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(queued(&run).len(), 2);
    cancel.cancel();
    let e = waiting.await.unwrap().unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled);
    let t = std::time::Instant::now();
    while queued(&run).len() != 1 && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(queued(&run).len(), 1, "the pending request is revoked");
    // A leftover (a runner that never released): gc finds it by the run id and cancels it.
    std::mem::forget(held);
    let other = b.gc(Some("some-other-run")).await.unwrap();
    assert!(other.is_empty());
    let found = b.gc(Some(&run)).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].comment.contains(&format!("run={run}")));
    // scancel is asynchronous: the job may show as completing for a moment.
    let t = std::time::Instant::now();
    while !queued(&run).is_empty() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(queued(&run).is_empty(), "{:?}", queued(&run));
}

#[tokio::test]
async fn doctor_checks_sinfo_the_partition_gpus_and_the_cache() {
    let Some(_g) = cluster("doctor_checks_sinfo_the_partition_gpus_and_the_cache") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SlurmConfig::default();
    cfg.env.cache_dir = Some(dir.path().join("cache"));
    let h = SlurmBackend::new(cfg.clone()).check().await.unwrap();
    assert!(h.usable, "{h:?}");
    let names: Vec<&str> = h.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["sinfo", "partition", "gpus", "cache"]);
    assert!(h.checks[2].detail.contains("gpu:h100:2"), "{h:?}");
    cfg.partition = Some("nosuch".into());
    let h = SlurmBackend::new(cfg).check().await.unwrap();
    assert!(!h.usable && !h.checks[1].ok, "{h:?}");
}
