//! The REAL shim against the REAL `modal` package with only the remote calls stubbed
//! (`tests/real_shim_harness.py`, whose stand-in sandbox runs the shim's processes on this
//! machine): the sandbox commands as the shim implements them on the SDK — `Sandbox.create`
//! with the server's encrypted port, `exec` under `setsid`, a stop of the process group, the
//! tunnel relayed from TLS to the runner's plain probe, result files through the SDK's
//! filesystem API, cleanup on cancel, and the gRPC status it reads off the SDK's real
//! exceptions. Skipped, with a note, where `import modal` fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backend_modal::{ModalBackend, ModalConfig};
use common::*;
use perf_runner_tests::standin::{free_port, standin_binary};
use runner_core::backend::JobEnvs;
use runner_core::plan::TaskPlan;
use runner_core::{Backend, BackendError, Failure, PreparedEnv, RunContext, StepOutput};

/// A serving command the stand-in runs.
const SERVE: &str = "vllm bench serve --model standin/model --dataset-name random \
     --random-input-len 16 --random-output-len 8 --num-prompts 8";
/// An offline command.
const LATENCY: &str =
    "vllm bench latency --model standin/model --input-len 8 --output-len 8 --batch-size 1";

fn harnessed(dir: &Path, scenario: &str) -> ModalBackend {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let harness = root
        .join("tests/real_shim_harness.py")
        .display()
        .to_string();
    let shim = root.join("shim/modal_shim.py").display().to_string();
    let wrapper = dir.join("harness.py");
    std::fs::write(
        &wrapper,
        format!(
            "SCENARIO = {scenario:?}\nSTATE_DIR = {:?}\nSHIM = {shim:?}\n\
             exec(compile(open({harness:?}).read(), {harness:?}, 'exec'))\n",
            state.display().to_string()
        ),
    )
    .unwrap();
    ModalBackend::new(ModalConfig {
        shim_override: Some(wrapper),
        container_python: standin_binary().display().to_string(),
        workdir: dir.join("work").display().to_string(),
        port: free_port().unwrap(),
        health_poll_s: 0.05,
        stop_grace_ms: 2_000,
        cancel_grace_ms: 10_000,
        ..ModalConfig::default()
    })
}

fn envs() -> JobEnvs {
    let env = PreparedEnv {
        identity: "vllm-test".into(),
        handle: "im-test".into(),
        engine_version: None,
        digest: None,
        reused: true,
        scripts_dir: Some("/opt/vllm-src".into()),
    };
    JobEnvs {
        engine: env.clone(),
        client: env,
    }
}

async fn execute(
    dir: &Path,
    scenario: &str,
    p: &TaskPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    harnessed(dir, scenario).execute(&envs(), &p.step, cx).await
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn nothing_left(dir: &Path, cx: &RunContext) {
    let left = tagged_processes(&cx.labels["run"]);
    assert!(left.is_empty(), "{left:?}");
    assert!(!shim_alive(dir));
}

#[tokio::test]
async fn the_real_shim_runs_a_serving_step_through_its_tunnel() {
    if !modal_ok("the_real_shim_runs_a_serving_step_through_its_tunnel") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cx = cx(dir.path());
    let out = execute(dir.path(), "ok", &plan(SERVE, "H100:2"), &cx)
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    let stdout = std::fs::read_to_string(&out.client_stdout).unwrap();
    assert!(stdout.contains("Request throughput (req/s):"), "{stdout}");
    let log = std::fs::read_to_string(out.server_log.unwrap()).unwrap();
    let shim_err = std::fs::read_to_string(dir.path().join("art/shim.stderr")).unwrap_or_default();
    assert!(log.contains("Uvicorn running"), "{log}\n---\n{shim_err}");
    assert!(
        !out.result_files.is_empty(),
        "fetched through the SDK's filesystem API"
    );
    assert_eq!(out.gpu_names.len(), 2);
    assert!(
        marked(dir.path(), "tls"),
        "readiness was probed through the tunnel's TLS endpoint"
    );
    assert!(
        marked(dir.path(), "terminated"),
        "the sandbox is terminated after a success too"
    );
    let create = json(dir.path().join("state/create.json"));
    assert_eq!(create["args"], serde_json::json!(["sleep", "infinity"]));
    assert_eq!(create["gpu"], "H100!:2");
    assert_eq!(create["image"], "Image");
    assert_eq!(create["secrets"], serde_json::json!(["Secret"]));
    assert_eq!(create["volumes"]["/root/.cache/huggingface"], "Volume");
    let port = create["encrypted_ports"][0].as_u64().unwrap();
    let execs = std::fs::read_to_string(dir.path().join("state/execs.jsonl")).unwrap();
    let server = execs
        .lines()
        .find(|l| l.contains("vllm.entrypoints.openai.api_server"))
        .unwrap();
    assert!(
        server.starts_with("{\"argv\": [\"setsid\", \"--wait\", \"sh\", \"-c\"")
            && server.contains(&format!("\"--port\", \"{port}\"")),
        "{server}"
    );
    assert!(
        server.contains("\"HF_HOME\"") && server.contains("\"secrets\": 1"),
        "{server}"
    );
    assert!(
        execs.lines().any(|l| l.contains("kill -TERM")),
        "the server was stopped by its group"
    );
    assert!(dir.path().join("art/cost.json").exists());
    nothing_left(dir.path(), &cx);
}

#[tokio::test]
async fn real_sdk_errors_carry_their_grpc_status_into_the_table() {
    if !modal_ok("real_sdk_errors_carry_their_grpc_status_into_the_table") {
        return;
    }
    for (scenario, want) in [
        ("unavailable", Failure::InfraTransient),
        ("auth", Failure::BadConfig),
        ("exec_timeout", Failure::Timeout),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let e = execute(dir.path(), scenario, &plan(LATENCY, "H100:1"), &cx)
            .await
            .unwrap_err();
        assert_eq!(e.kind, want, "{scenario}: {e}");
        if scenario == "unavailable" {
            assert!(
                e.message
                    .contains("modal.exception.ServiceError [UNAVAILABLE]"),
                "{e}"
            );
        }
        if scenario == "exec_timeout" {
            assert!(marked(dir.path(), "terminated"));
        }
        nothing_left(dir.path(), &cx);
    }
}

async fn cancel_when(scenario: &str, marker: &str) -> (tempfile::TempDir, BackendError, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cx = cx(dir.path());
    let mut p = plan(SERVE, "H100:1");
    p.step
        .env
        .push(("VLLM_STANDIN_FAULT".into(), "hang".into()));
    let task = {
        let (d, cx) = (dir.path().to_path_buf(), cx.clone());
        let scenario = scenario.to_string();
        tokio::spawn(async move { execute(&d, &scenario, &p, &cx).await })
    };
    let t0 = Instant::now();
    while !marked(dir.path(), marker) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never reached {marker}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    cx.cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("returns promptly")
        .unwrap();
    nothing_left(dir.path(), &cx);
    (dir, r.unwrap_err(), asked.elapsed())
}

#[tokio::test]
async fn cancelling_the_real_shim_terminates_its_sandbox() {
    if !modal_ok("cancelling_the_real_shim_terminates_its_sandbox") {
        return;
    }
    // While the server is not ready yet (it hangs): probed through the tunnel, never ready.
    let (dir, e, took) = cancel_when("ok", "tls").await;
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(marked(dir.path(), "terminated"), "terminated on cancel");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // While Modal is still creating the sandbox: the shim waits for it, then terminates it.
    let (dir, e, _) = cancel_when("slow_create", "creating").await;
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(marked(dir.path(), "created") && marked(dir.path(), "terminated"));
}

#[tokio::test]
async fn a_stop_right_after_exec_still_ends_the_process() {
    if !modal_ok("a_stop_right_after_exec_still_ends_the_process") {
        return;
    }
    // Modal took the server's exec, the readiness probe is running (`tls`), but its `sh -c`
    // has not written its group id yet (it starts 4 s later, past the stop's grace): the stop
    // that follows the cancel must still find and end it.
    let (dir, e, took) = cancel_when("late_start", "tls").await;
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(marked(dir.path(), "terminated"));
    let execs = std::fs::read_to_string(dir.path().join("state/execs.jsonl")).unwrap();
    assert!(
        execs.lines().any(|l| l.contains("kill -TERM")),
        "the server was stopped by its group"
    );
}
