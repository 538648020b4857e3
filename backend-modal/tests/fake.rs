//! The backend against a fake shim (`tests/fake_shim.py`): the same protocol, no Modal. Covers
//! exit codes, error classes and their transience, artifacts, the GPU check, cancellation,
//! deadlines and candidates.

mod common;

use std::time::{Duration, Instant};

use backend_modal::ModalBackend;
use common::*;
use runner_core::backend::JobEnvs;
use runner_core::plan::TaskPlan;
use runner_core::task::Variant;
use runner_core::{Backend, BackendError, Failure, PreparedEnv, RunContext, StepOutput};

fn build(p: &TaskPlan, v: Variant) -> runner_core::BuildSpec {
    p.builds.iter().find(|b| b.variant == v).cloned().unwrap()
}

async fn envs(b: &ModalBackend, p: &TaskPlan, cx: &RunContext) -> JobEnvs {
    let engine = b.prepare(&build(p, Variant::Baseline), cx).await.unwrap();
    let client = b.prepare(&build(p, Variant::Human), cx).await.unwrap();
    JobEnvs { engine, client }
}

/// Prepare both builds and execute the step of `cmd` on `gpu`, with the dataset in place.
async fn run(
    scenario: &str,
    cmd: &str,
    gpu: &str,
) -> (tempfile::TempDir, Result<StepOutput, BackendError>) {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), scenario, |_| {});
    let p = plan(cmd, gpu);
    let cx = cx(dir.path());
    for ds in &p.step.datasets {
        std::fs::write(cx.data_dir.join(&ds.name), b"[]").unwrap();
    }
    let e = envs(&b, &p, &cx).await;
    let r = b.execute(&e, &p.step, &cx).await;
    (dir, r)
}

#[tokio::test]
async fn a_run_leaves_logs_results_gpu_names_and_cost() {
    let (dir, r) = run("ok", &serving(2), "H100:2").await;
    let out = r.unwrap();
    let art = dir.path().join("art");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(
        std::fs::read_to_string(&out.client_stdout).unwrap(),
        "Request throughput (req/s): 12.5\n"
    );
    assert_eq!(
        std::fs::read_to_string(&out.client_stderr).unwrap(),
        "a warning\n"
    );
    let server = std::fs::read_to_string(out.server_log.as_ref().unwrap()).unwrap();
    assert_eq!(server.lines().count(), 3, "{server}");
    assert!(
        std::fs::read_to_string(art.join("warmup.stdout"))
            .unwrap()
            .contains("warm-up done")
    );
    let names: Vec<_> = out
        .result_files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["result.json", "escape.json"],
        "names are reduced to their file name"
    );
    assert!(
        out.result_files
            .iter()
            .all(|p| p.starts_with(art.join("results")))
    );
    assert_eq!(out.gpu_names, vec!["NVIDIA H100 80GB HBM3".to_string(); 2]);
    assert_eq!(out.host.as_deref(), Some("modal:sb-fake"));
    assert_eq!(out.benchmark_seconds, 4.25);
    let cost: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("cost.json")).unwrap()).unwrap();
    let want = 3.95 * 2.0 * 100.0 / 3600.0;
    assert!(
        (cost["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9,
        "{cost}"
    );
    assert_eq!(cost["gpu"], "H100!:2");
    assert!(
        (out.cost_usd.unwrap() - want).abs() < 1e-9,
        "the cost reaches the record"
    );

    // What the shim was asked: the pinned GPU, the prepared image, the human client's layer,
    // placeholders filled for the container, the dataset uploaded by content.
    let reqs = requests(dir.path());
    let run = reqs.iter().find(|r| r["cmd"] == "run").unwrap();
    assert_eq!(run["sandbox"]["gpu"], "H100!:2");
    assert_eq!(
        run["sandbox"]["secrets"],
        serde_json::json!(["huggingface"])
    );
    assert_eq!(run["image"]["base"]["kind"], "from_id");
    assert!(
        run["image"]["ops"]
            .to_string()
            .contains("/opt/perf-runner/client"),
        "client layer: {}",
        run["image"]
    );
    let server_argv: Vec<String> = serde_json::from_value(run["server"]["argv"].clone()).unwrap();
    assert_eq!(server_argv[0], "python3");
    assert!(
        server_argv.windows(2).any(|w| w == ["--port", "8000"]),
        "{server_argv:?}"
    );
    let client: Vec<String> = serde_json::from_value(run["client"]["argv"].clone()).unwrap();
    assert_eq!(
        client[..2],
        [
            "/opt/perf-runner/client/bin/python",
            "/opt/vllm-src-client/benchmarks/benchmark_serving.py"
        ]
    );
    assert!(!run.to_string().contains("{PYTHON}") && !run.to_string().contains("{DATA_DIR}"));
    let upload = &run["uploads"][0];
    assert_eq!(upload["volume"], "perf-runner-datasets");
    let remote = upload["remote_path"].as_str().unwrap();
    assert!(
        remote.starts_with("/sets/")
            && remote.ends_with("/ShareGPT_V3_unfiltered_cleaned_split.json")
    );
    assert!(
        client.iter().any(|a| a == &format!("/datasets{remote}")),
        "{client:?}"
    );
    assert_eq!(
        run["require_files"][0],
        "/opt/vllm-src-client/benchmarks/benchmark_serving.py"
    );
}

#[tokio::test]
async fn the_client_exit_code_is_returned_not_an_error() {
    let (_dir, r) = run("client_fails", &latency(1), "H100:1").await;
    let out = r.unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert!(out.server_log.is_none() && out.result_files.is_empty());
}

#[tokio::test]
async fn unavailable_is_transient_and_retried_by_the_caller() {
    let (_dir, r) = run("unavailable", &latency(1), "H100:1").await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.is_transient() && e.message.contains("UNAVAILABLE"), "{e}");
}

#[tokio::test]
async fn auth_errors_are_permanent() {
    let (_dir, r) = run("auth", &latency(1), "H100:1").await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_sandbox_timeout_is_a_timeout() {
    let (dir, r) = run("sandbox_timeout", &latency(1), "H100:1").await;
    assert_eq!(r.unwrap_err().kind, Failure::Timeout);
    assert!(
        dir.path().join("art/cost.json").exists(),
        "the GPU time is still accounted"
    );
}

#[tokio::test]
async fn a_server_that_dies_is_server_failed_with_its_log() {
    let (_dir, r) = run("server_exited", &serving(1), "H100:1").await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, Failure::ServerFailed);
    assert!(e.message.contains("no kernel image"), "{e}");
}

#[tokio::test]
async fn a_gpu_other_than_the_pinned_one_fails_the_run_and_stops_the_sandbox() {
    let (dir, r) = run("gpu_mismatch", &latency(2), "H100:2").await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.message.contains("NVIDIA H200"), "{e}");
    assert!(marked(dir.path(), "terminated") && !marked(dir.path(), "never_cancelled"));
    assert!(!shim_alive(dir.path()));

    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "gpu_mismatch", |c| c.pin_sku = false);
    let p = plan(&latency(1), "H100:1");
    let cx = cx(dir.path());
    let e = envs(&b, &p, &cx).await;
    let r = b.execute(&e, &p.step, &cx).await.unwrap_err();
    assert_eq!(
        r.kind,
        Failure::BadConfig,
        "unpinned: the config allowed the swap"
    );
    assert_eq!(
        requests(dir.path()).last().unwrap()["sandbox"]["gpu"],
        "H100"
    );
}

async fn cancel_mid_run(
    scenario: &str,
    grace_ms: u64,
) -> (tempfile::TempDir, BackendError, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), scenario, |c| {
        c.cancel_grace_ms = grace_ms;
        c.kill_grace_ms = 300;
    });
    let p = plan(&latency(1), "H100:1");
    let cx = cx(dir.path());
    let e = envs(&b, &p, &cx).await;
    let task = {
        let (b, p, cx) = (b.clone(), p.clone(), cx.clone());
        tokio::spawn(async move { b.execute(&e, &p.step, &cx).await })
    };
    let t0 = Instant::now();
    while !marked(dir.path(), "created") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the fake sandbox never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    cx.cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("execute returns promptly")
        .unwrap();
    (dir, r.unwrap_err(), asked.elapsed())
}

#[tokio::test]
async fn cancelling_terminates_the_sandbox_and_leaves_no_shim() {
    let (dir, e, took) = cancel_mid_run("hang", 5_000).await;
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        marked(dir.path(), "terminated"),
        "the shim got the cancel and terminated its sandbox"
    );
    assert!(!shim_alive(dir.path()), "no shim process is left");
}

#[tokio::test]
async fn a_shim_that_ignores_cancel_and_sigterm_is_killed() {
    let (dir, e, took) = cancel_mid_run("ignore_cancel", 300).await;
    assert_eq!(e.kind, Failure::Cancelled);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!marked(dir.path(), "terminated"));
    assert!(!shim_alive(dir.path()), "SIGKILL ended it");
}

#[tokio::test]
async fn the_deadline_times_the_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "hang", |_| {});
    let p = plan(&latency(1), "H100:1");
    let mut cx = cx(dir.path());
    let e = envs(&b, &p, &cx).await;
    cx.deadline = Some(Instant::now() + Duration::from_millis(1500));
    let r = b.execute(&e, &p.step, &cx).await.unwrap_err();
    assert_eq!(r.kind, Failure::Timeout);
    assert!(marked(dir.path(), "terminated") && !shim_alive(dir.path()));
}

#[tokio::test]
async fn prepare_tries_candidates_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "first_build_fails", |_| {});
    let p = plan(&latency(1), "H100:1");
    let cx = cx(dir.path());
    let env: PreparedEnv = b.prepare(&build(&p, Variant::Human), &cx).await.unwrap();
    assert_eq!(
        env.handle, "im-fake-registry",
        "the wheel candidates failed; the image built"
    );
    assert!(env.reused && env.scripts_dir.as_deref() == Some("/opt/vllm-src"));
    let kinds: Vec<_> = requests(dir.path())
        .iter()
        .map(|r| r["image"]["base"]["kind"].clone())
        .collect();
    assert_eq!(kinds, ["debian_slim", "debian_slim", "registry"]);

    let b = fake(dir.path(), "prepare_unavailable", |_| {});
    let e = b
        .prepare(&build(&p, Variant::Human), &cx)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        Failure::InfraTransient,
        "a transient failure is not a missing wheel"
    );
}

#[tokio::test]
async fn agent_patches_are_checked_and_layered() {
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("agent.patch");
    let py = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a\n+b\n";
    std::fs::write(&patch, py).unwrap();
    let p = plan(&latency(1), "H100:1");
    let mut agent = build(&p, Variant::Baseline);
    agent.patch = Some(runner_core::build::PatchSpec {
        path: patch.display().to_string(),
        sha256: None,
    });
    let cx = cx(dir.path());
    let b = fake(dir.path(), "patch_fails", |_| {});
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::PatchFailed
    );
    let sent = requests(dir.path());
    assert!(
        sent[0]["patch"]
            .to_string()
            .contains("git apply --verbose -p1"),
        "{}",
        sent[0]["patch"]
    );

    // A -p0 patch is a layer too, applied with -p0: never dropped.
    std::fs::write(
        &patch,
        "--- vllm/x.py\t2024-05-01\n+++ vllm/x.py\t2024-05-02\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::PatchFailed
    );
    let sent = requests(dir.path());
    let layer = sent.last().unwrap()["patch"].to_string();
    assert!(layer.contains("git apply --verbose -p0"), "{layer}");
    assert!(layer.contains("add_local_file"), "{layer}");

    std::fs::write(
        &patch,
        format!(
            "{py}diff --git a/csrc/k.cu b/csrc/k.cu\n--- a/csrc/k.cu\n+++ b/csrc/k.cu\n@@ -1 +1 @@\n-a\n+b\n"
        ),
    )
    .unwrap();
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::NeedsCompile
    );
    agent.patch = Some(runner_core::build::PatchSpec {
        path: patch.display().to_string(),
        sha256: Some("00".into()),
    });
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::BadConfig,
        "changed since planning"
    );
}

#[tokio::test]
async fn check_reports_python_modal_and_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let h = fake(dir.path(), "ok", |_| {}).check().await.unwrap();
    let names: Vec<_> = h.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["python", "modal", "token"]);
    assert!(h.checks[0].ok && h.checks[1].detail == "0.0-fake");
    let broken = ModalBackend::new(backend_modal::ModalConfig {
        python: "/nonexistent/python".into(),
        cache_dir: Some(dir.path().into()),
        ..Default::default()
    });
    let h = broken.check().await.unwrap();
    assert!(!h.usable && !h.checks[0].ok);
}
