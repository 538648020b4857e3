//! execute: real processes, real ports, real signals.

use std::time::{Duration, Instant};

use backend_local::LocalBackend;
use runner_core::backend::PreparedEnv;
use runner_core::{Backend, Failure, Variant};

use crate::common::*;

async fn prepared(s: &Scratch, backend: &LocalBackend) -> PreparedEnv {
    backend
        .prepare(&build(Variant::Human, &s.wheel()), &s.cx())
        .await
        .unwrap()
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test]
async fn serving_end_to_end_with_pinned_gpus() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut cx = s.cx();
    cx.lease = lease_of(&[1]);
    let step = serving_step(&s, &[("CUDA_VISIBLE_DEVICES", "0,1,2,3")]);
    let out = backend.execute(&envs(&env), &step, &cx).await.unwrap();

    assert_eq!(out.exit_code, Some(0), "{}", read(&out.client_stderr));
    assert!(read(&out.client_stdout).contains("Request throughput (req/s):"));
    assert_eq!(out.result_files, [s.path("art/results/result.json")]);
    assert_eq!(out.server_log, Some(s.path("art/server.log")));
    assert!(read(&s.path("art/server.log")).contains("Uvicorn running"));
    assert!(
        read(&s.path("art/warmup.stdout")).contains("Successful requests:                     2")
    );
    assert!(read(&s.path("art/commands.txt")).contains("CUDA_VISIBLE_DEVICES=1 "));
    assert!(read(&s.path("art/pip-freeze.txt")).contains("vllm"));
    assert_eq!(out.gpu_names, ["NVIDIA H100 80GB HBM3"]);
    assert!(out.benchmark_seconds > 0.0);

    // The lease's pin reaches server, warm-up and client, over the step's own value.
    for f in ["server-env.json", "client-env-2.json", "client-env-10.json"] {
        assert_eq!(s.env_of(f)["CUDA_VISIBLE_DEVICES"], "1", "{f}");
        assert_eq!(s.env_of(f)["VIRTUAL_ENV"], env.handle.as_str(), "{f}");
    }
    for pid in ["server.pid", "child.pid"] {
        assert!(gone(s.pid(pid).unwrap()), "{pid} survived");
    }
}

#[tokio::test]
async fn offline_mode_runs_the_script_in_the_engine_env() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut other = env.clone();
    other.handle = s.path("not-a-venv").display().to_string();
    let envs = runner_core::backend::JobEnvs {
        engine: env.clone(),
        client: other,
    };
    let out = backend
        .execute(&envs, &offline_step(&s, &[]), &s.cx())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", read(&out.client_stderr));
    assert!(read(&out.client_stdout).contains("Throughput: 5.00 requests/s"));
    assert_eq!(out.server_log, None);
    assert_eq!(out.result_files, [s.path("art/results/result.json")]);
    assert!(!s.path("art/server.log").exists());
}

#[tokio::test]
async fn a_failing_client_is_output_not_an_error() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let out = backend
        .execute(
            &envs(&env),
            &offline_step(&s, &[("FAKE_VLLM_CLIENT", "fail")]),
            &s.cx(),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(2));
    assert!(read(&out.client_stderr).contains("unrecognized arguments"));
    assert!(out.result_files.is_empty());
}

#[tokio::test]
async fn a_server_that_dies_before_ready_is_server_failed_with_its_log() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let step = serving_step(&s, &[("FAKE_VLLM_SERVER", "crash")]);
    let t = Instant::now();
    let e = backend
        .execute(&envs(&env), &step, &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::ServerFailed, "{e}");
    assert!(e.message.contains("CUDA out of memory (fake)"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "liveness, not the deadline, ended the wait"
    );
    assert!(
        !s.path("art/client.stdout").exists(),
        "no client after a failed server"
    );
}

#[tokio::test]
async fn a_port_taken_before_the_server_binds_is_retried() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let step = serving_step(&s, &[("FAKE_VLLM_SERVER", "port_taken_once")]);
    let out = backend.execute(&envs(&env), &step, &s.cx()).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(
        read(&s.path("art/commands.txt"))
            .matches("server: ")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_server_that_never_gets_ready_times_out_and_is_stopped() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut step = serving_step(&s, &[("FAKE_VLLM_SERVER", "hang")]);
    step.timeouts.server_ready_s = 2;
    let e = backend
        .execute(&envs(&env), &step, &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    for pid in ["server.pid", "child.pid"] {
        assert!(gone(s.pid(pid).unwrap()), "{pid} survived");
    }
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_gets_sigkill() {
    let s = Scratch::new();
    let mut cfg = s.config();
    cfg.stop_grace_ms = 500;
    let backend = LocalBackend::new(cfg);
    let env = prepared(&s, &backend).await;
    let step = serving_step(&s, &[("FAKE_VLLM_SERVER", "ignore_term")]);
    let out = backend.execute(&envs(&env), &step, &s.cx()).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    let (server, child) = (s.pid("server.pid").unwrap(), s.pid("child.pid").unwrap());
    assert!(
        gone(server) && gone(child),
        "no process of the group survives"
    );
}

#[tokio::test]
async fn a_client_past_its_deadline_is_timeout_and_everything_stops() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut step = serving_step(&s, &[("FAKE_VLLM_CLIENT", "hang")]);
    step.warmup = None;
    step.timeouts.benchmark_s = 1;
    let e = backend
        .execute(&envs(&env), &step, &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    for pid in ["server.pid", "child.pid", "client.pid"] {
        assert!(gone(s.pid(pid).unwrap()), "{pid} survived");
    }
}

#[tokio::test]
async fn cancellation_mid_run_leaves_no_child() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut step = serving_step(&s, &[("FAKE_VLLM_CLIENT", "hang")]);
    step.warmup = None;
    let cx = s.cx();
    let cancel = cx.cancel.clone();
    let state = s.path("state/client.pid");
    tokio::spawn(async move {
        while !state.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
    });
    let e = backend.execute(&envs(&env), &step, &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    for pid in ["server.pid", "child.pid", "client.pid"] {
        assert!(gone(s.pid(pid).unwrap()), "{pid} survived");
    }
}

#[tokio::test]
async fn a_dropped_execute_kills_its_groups() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut step = serving_step(&s, &[("FAKE_VLLM_CLIENT", "hang")]);
    step.warmup = None;
    let cx = s.cx();
    let envs = envs(&env);
    let run = backend.execute(&envs, &step, &cx);
    let state = s.path("state/client.pid");
    let wait = async {
        while !state.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the hanging client finished: {r:?}"),
        _ = wait => {}
    }
    // The future is dropped here: the guards SIGKILL the groups.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for pid in ["server.pid", "child.pid", "client.pid"] {
        assert!(gone(s.pid(pid).unwrap()), "{pid} survived");
    }
}

#[tokio::test]
async fn a_script_step_without_scripts_is_vllm_version_and_missing_data_is_reported() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let env = prepared(&s, &backend).await;
    let mut step = offline_step(&s, &[]);
    step.client.argv = [
        "{PYTHON}",
        "{VLLM_SOURCE}/benchmarks/benchmark_throughput.py",
    ]
    .map(String::from)
    .to_vec();
    let e = backend
        .execute(&envs(&env), &step, &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::VllmVersion, "{e}");
    assert!(e.message.contains("vllm_source"));

    step.datasets = vec![runner_core::plan::DatasetFile {
        flag: "--dataset-path".into(),
        original: "/data/sharegpt.json".into(),
        name: "sharegpt.json".into(),
    }];
    let e = backend
        .execute(&envs(&env), &step, &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::DatasetMissing, "{e}");
}
