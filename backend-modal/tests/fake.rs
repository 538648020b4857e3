//! The backend against the fake shim (`tests/fake_shim.py`): the same sandbox protocol, with
//! Modal's servers replaced by this machine (real processes of the stand-in engine, real
//! ports). Covers what the backend adds around the step kit's lifecycle: what the shim is
//! asked, artifacts and result files, the GPU check, Modal's error classes and their
//! transience, the scripts check, cancellation and deadlines, the shim's own end, candidates
//! and patches.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use backend_modal::{ModalBackend, ModalConfig};
use common::*;
use runner_core::backend::JobEnvs;
use runner_core::plan::TaskPlan;
use runner_core::task::Variant;
use runner_core::{Backend, BackendError, Failure, PreparedEnv, RunContext, StepOutput};

/// A serving command the stand-in runs, on `tp` GPUs, with a ShareGPT file as its dataset.
fn bench_serve(tp: u32) -> String {
    format!(
        "vllm bench serve --model standin/model --dataset-name sharegpt \
         --dataset-path /data/ShareGPT_V3_unfiltered_cleaned_split.json --num-prompts 8 \
         --tensor-parallel-size {tp}"
    )
}

/// An offline latency command the stand-in runs.
const BENCH_LATENCY: &str =
    "vllm bench latency --model standin/model --input-len 8 --output-len 8 --batch-size 1";

fn build(p: &TaskPlan, v: Variant) -> runner_core::BuildSpec {
    p.builds.iter().find(|b| b.variant == v).cloned().unwrap()
}

/// Baseline as the engine; the human build as the client, or the engine's own.
async fn envs(b: &ModalBackend, p: &TaskPlan, cx: &RunContext, human_client: bool) -> JobEnvs {
    let engine = b.prepare(&build(p, Variant::Baseline), cx).await.unwrap();
    let client = match human_client {
        true => b.prepare(&build(p, Variant::Human), cx).await.unwrap(),
        false => engine.clone(),
    };
    JobEnvs { engine, client }
}

struct Ran {
    dir: tempfile::TempDir,
    cx: RunContext,
    result: Result<StepOutput, BackendError>,
}

impl Ran {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Prepare and execute the step of `cmd` on `gpu` (with `env` added to the plan's, the
/// dataset in place), the baseline build running everything unless `human_client`.
async fn run(
    scenario: &str,
    cmd: &str,
    gpu: &str,
    env: &[(&str, &str)],
    human_client: bool,
    tweak: impl FnOnce(&mut ModalConfig),
) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), scenario, tweak);
    let mut p = plan(cmd, gpu);
    p.step
        .env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let cx = cx(dir.path());
    for ds in &p.step.datasets {
        std::fs::write(cx.data_dir.join(&ds.name), b"[]").unwrap();
    }
    let e = envs(&b, &p, &cx, human_client).await;
    let result = b.execute(&e, &p.step, &cx).await;
    Ran { dir, cx, result }
}

fn nothing_left(r: &Ran) {
    let run = r.cx.labels["run"].clone();
    assert!(
        tagged_processes(&run).is_empty(),
        "{:?}",
        tagged_processes(&run)
    );
    assert!(!shim_alive(r.path()), "no shim process is left");
}

fn commands(dir: &Path, cmd: &str) -> Vec<serde_json::Value> {
    requests(dir)
        .into_iter()
        .filter(|r| r["cmd"] == cmd)
        .collect()
}

#[tokio::test]
async fn a_run_leaves_logs_results_gpu_names_and_cost() {
    let r = run("escape", &bench_serve(2), "H100:2", &[], false, |_| {}).await;
    let out = r.result.as_ref().unwrap();
    let art = r.path().join("art");
    assert_eq!(out.exit_code, Some(0));
    let stdout = std::fs::read_to_string(&out.client_stdout).unwrap();
    assert!(stdout.contains("Request throughput (req/s):"), "{stdout}");
    assert!(out.client_stdout.ends_with("client.stdout"));
    let server = std::fs::read_to_string(out.server_log.as_ref().unwrap()).unwrap();
    assert!(
        server.contains("Uvicorn running on http://0.0.0.0:"),
        "{server}"
    );
    assert!(art.join("warmup.stdout").exists());
    let names: Vec<_> = out
        .result_files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"escape.json".to_string()),
        "names are reduced: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(".json") && n != "escape.json"),
        "{names:?}"
    );
    assert!(
        out.result_files
            .iter()
            .all(|p| p.starts_with(art.join("results")))
    );
    assert!(!r.path().join("escape.json").exists() && !art.join("escape.json").exists());
    assert_eq!(out.gpu_names, vec!["NVIDIA H100 80GB HBM3".to_string(); 2]);
    assert!(out.host.as_deref().unwrap().starts_with("modal:sb-fake-"));
    assert!(out.benchmark_seconds > 0.0);
    let cost: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("cost.json")).unwrap()).unwrap();
    let secs = cost["sandbox_seconds"].as_f64().unwrap();
    let want = 3.95 * 2.0 * secs / 3600.0;
    assert!(
        (cost["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9,
        "{cost}"
    );
    assert_eq!(cost["gpu"], "H100!:2");
    assert!(
        (out.cost_usd.unwrap() - want).abs() < 1e-9,
        "the cost reaches the record"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("modal.json")).unwrap()).unwrap();
    assert!(
        meta["sandbox_id"].as_str().unwrap().starts_with("sb-fake-"),
        "{meta}"
    );
    // The dataset was uploaded by content and reached the client at its mount.
    let create = &commands(r.path(), "create")[0];
    let upload = &create["uploads"][0];
    assert_eq!(upload["volume"], "perf-runner-datasets");
    let remote = upload["remote_path"].as_str().unwrap();
    assert!(
        remote.starts_with("/sets/")
            && remote.ends_with("/ShareGPT_V3_unfiltered_cleaned_split.json")
    );
    let client = commands(r.path(), "exec")
        .into_iter()
        .find(|e| e["id"] == "client-3")
        .unwrap();
    assert!(client["argv"].to_string().contains(remote), "{client}");
    // The server's port is the sandbox's encrypted port.
    assert_eq!(
        create["sandbox"]["encrypted_ports"],
        serde_json::json!([out_port(r.path())])
    );
    assert!(
        marked(r.path(), "terminated"),
        "terminated after a success too"
    );
    nothing_left(&r);
}

/// The port the server was started with (from its exec).
fn out_port(dir: &Path) -> u16 {
    let server = commands(dir, "exec")
        .into_iter()
        .find(|e| e["id"] == "server-1")
        .unwrap();
    let argv: Vec<String> = serde_json::from_value(server["argv"].clone()).unwrap();
    let i = argv.iter().position(|a| a == "--port").unwrap();
    argv[i + 1].parse().unwrap()
}

#[tokio::test]
async fn what_the_shim_is_asked_and_a_missing_script() {
    // The human build as the client: its layer, its venv's Python and its scripts. The scripts
    // are not in the fake's "image": vllm_version before anything starts.
    let r = run("ok", &serving(2), "H100:2", &[], true, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::VllmVersion, "{e}");
    assert!(
        e.message
            .contains("/opt/vllm-src-client/benchmarks/benchmark_serving.py"),
        "{e}"
    );
    let create = &commands(r.path(), "create")[0];
    assert_eq!(create["sandbox"]["gpu"], "H100!:2");
    assert_eq!(
        create["sandbox"]["secrets"],
        serde_json::json!(["huggingface"])
    );
    assert_eq!(create["sandbox"]["tags"]["run"], "r1");
    assert_eq!(create["image"]["base"]["kind"], "from_id");
    assert!(
        create["image"]["ops"]
            .to_string()
            .contains("/opt/perf-runner/client"),
        "{}",
        create["image"]
    );
    let req: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.path().join("art/modal-request.json")).unwrap())
            .unwrap();
    let client: Vec<String> = serde_json::from_value(req["processes"]["client"].clone()).unwrap();
    assert_eq!(
        client[..2],
        [
            "/opt/perf-runner/client/bin/python",
            "/opt/vllm-src-client/benchmarks/benchmark_serving.py"
        ]
    );
    let server: Vec<String> = serde_json::from_value(req["processes"]["server"].clone()).unwrap();
    assert!(
        server
            .windows(2)
            .any(|w| w[0] == "--host" && w[1] == "0.0.0.0"),
        "{server:?}"
    );
    assert!(!req.to_string().contains("{PYTHON}") && !req.to_string().contains("{DATA_DIR}"));
    // Only the checks ran: no step process was started.
    let ids: Vec<_> = commands(r.path(), "exec")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, ["gpu-query", "version-query", "prelude"]);
    assert!(marked(r.path(), "terminated"));
    nothing_left(&r);
}

#[tokio::test]
async fn the_client_exit_code_is_returned_not_an_error() {
    let fault = [("VLLM_STANDIN_FAULT", "unrecognized_arg")];
    let r = run("ok", BENCH_LATENCY, "H100:1", &fault, false, |_| {}).await;
    let out = r.result.as_ref().unwrap();
    assert_eq!(out.exit_code, Some(2));
    assert!(out.server_log.is_none() && out.result_files.is_empty());
    assert!(
        std::fs::read_to_string(&out.client_stderr)
            .unwrap()
            .contains("unrecognized arguments")
    );
    nothing_left(&r);
}

#[tokio::test]
async fn unavailable_is_transient_and_retried_by_the_caller() {
    let r = run("unavailable", BENCH_LATENCY, "H100:1", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.is_transient() && e.message.contains("UNAVAILABLE"), "{e}");
    assert!(
        !r.path().join("art/cost.json").exists(),
        "no sandbox, no cost"
    );
    nothing_left(&r);
}

#[tokio::test]
async fn auth_errors_are_permanent() {
    let r = run("auth", BENCH_LATENCY, "H100:1", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_sandbox_timeout_is_a_timeout() {
    let r = run(
        "sandbox_timeout",
        BENCH_LATENCY,
        "H100:1",
        &[],
        false,
        |_| {},
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap_err().kind, Failure::Timeout);
    assert!(
        r.path().join("art/cost.json").exists(),
        "the GPU time is still accounted"
    );
    nothing_left(&r);
}

#[tokio::test]
async fn a_gpu_other_than_the_pinned_one_fails_the_run_and_stops_the_sandbox() {
    let r = run("gpu_mismatch", BENCH_LATENCY, "H100:2", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.message.contains("NVIDIA H200"), "{e}");
    assert!(marked(r.path(), "terminated"));
    let ids: Vec<_> = commands(r.path(), "exec")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, ["gpu-query"], "nothing else ran");
    nothing_left(&r);

    let r = run("gpu_mismatch", BENCH_LATENCY, "H100:1", &[], false, |c| {
        c.pin_sku = false
    })
    .await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(
        e.kind,
        Failure::BadConfig,
        "unpinned: the config allowed the swap"
    );
    assert_eq!(commands(r.path(), "create")[0]["sandbox"]["gpu"], "H100");
}

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
