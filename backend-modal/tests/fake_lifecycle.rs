//! Cancellation, deadlines and the shim's own end, against the fake shim
//! (`tests/fake_shim.py`): however a run ends, the sandbox is terminated and nothing is left.

mod common;

use std::time::{Duration, Instant};

use common::*;
use runner_core::{Backend, Failure};

/// Execute a serving step whose server never gets ready (`hang`), and cancel it once the fake's
/// sandbox exists.
async fn cancel_mid_run(scenario: &str, grace_ms: u64) -> (Ran, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), scenario, |c| {
        c.cancel_grace_ms = grace_ms;
        c.kill_grace_ms = 300;
    });
    let mut p = plan(&bench_serve(1), "H100:1");
    p.step
        .env
        .push(("VLLM_STANDIN_FAULT".into(), "hang".into()));
    let cx = cx(dir.path());
    for ds in &p.step.datasets {
        std::fs::write(cx.data_dir.join(&ds.name), b"[]").unwrap();
    }
    let e = envs(&b, &p, &cx, false).await;
    let task = {
        let (b, p, cx) = (b.clone(), p.clone(), cx.clone());
        tokio::spawn(async move { b.execute(&e, &p.step, &cx).await })
    };
    let t0 = Instant::now();
    while !dir.path().join("state/procs/server-1.pid").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the server never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    cx.cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("execute returns promptly")
        .unwrap();
    (Ran { dir, cx, result }, asked.elapsed())
}

#[tokio::test]
async fn cancelling_terminates_the_sandbox_and_leaves_no_shim() {
    let (r, took) = cancel_mid_run("ok", 5_000).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(marked(r.path(), "terminated"), "the sandbox was terminated");
    nothing_left(&r);
}

#[tokio::test]
async fn a_shim_that_ignores_eof_and_sigterm_is_killed() {
    let (r, took) = cancel_mid_run("ignore_cancel", 300).await;
    assert_eq!(r.result.as_ref().unwrap_err().kind, Failure::Cancelled);
    assert!(took < Duration::from_secs(5), "{took:?}");
    nothing_left(&r);
}

#[tokio::test]
async fn the_deadline_times_the_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "ok", |_| {});
    let mut p = plan(BENCH_LATENCY, "H100:1");
    p.step
        .env
        .push(("VLLM_STANDIN_FAULT".into(), "hang".into()));
    let mut cx = cx(dir.path());
    let e = envs(&b, &p, &cx, false).await;
    cx.deadline = Some(Instant::now() + Duration::from_millis(2500));
    let t0 = Instant::now();
    let result = b.execute(&e, &p.step, &cx).await;
    let e = result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(e.message.contains("deadline"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let r = Ran { dir, cx, result };
    assert!(marked(r.path(), "terminated"));
    nothing_left(&r);
}
