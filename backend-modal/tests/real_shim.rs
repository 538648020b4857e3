//! The REAL shim against the REAL `modal` package with only the remote calls stubbed
//! (`tests/real_shim_harness.py`): the shim's own flow — processes, readiness, result files,
//! cleanup on cancel, and the gRPC status it reads off the SDK's real exceptions. Skipped, with
//! a note, where `import modal` fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backend_modal::{ModalBackend, ModalConfig};
use common::*;
use runner_core::backend::JobEnvs;
use runner_core::plan::TaskPlan;
use runner_core::{Backend, BackendError, Failure, PreparedEnv, RunContext, StepOutput};

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
        health_poll_s: 0.05,
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
    for ds in &p.step.datasets {
        std::fs::write(cx.data_dir.join(&ds.name), b"[]").unwrap();
    }
    let mut p = p.clone();
    p.step.datasets.clear(); // uploads would contact Modal
    for a in p
        .step
        .client
        .argv
        .iter_mut()
        .chain(p.step.warmup.iter_mut().flat_map(|w| w.argv.iter_mut()))
    {
        *a = a.replace("{DATA_DIR}/", "/datasets/");
    }
    harnessed(dir, scenario).execute(&envs(), &p.step, cx).await
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_real_shim_runs_a_serving_step_and_terminates_its_sandbox() {
    if !modal_ok("the_real_shim_runs_a_serving_step_and_terminates_its_sandbox") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cx = cx(dir.path());
    let out = execute(dir.path(), "ok", &plan(&serving(2), "H100:2"), &cx)
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(
        std::fs::read_to_string(&out.client_stdout).unwrap(),
        "Request throughput (req/s): 9.0\n"
    );
    assert!(
        std::fs::read_to_string(out.server_log.unwrap())
            .unwrap()
            .contains("Uvicorn running")
    );
    assert_eq!(
        std::fs::read_to_string(&out.result_files[0]).unwrap(),
        "{\"ok\": true}"
    );
    assert_eq!(out.gpu_names.len(), 2);
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
    let execs = std::fs::read_to_string(dir.path().join("state/execs.jsonl")).unwrap();
    let client = execs
        .lines()
        .find(|l| {
            l.contains("[\"python3\", \"/opt/vllm-src/benchmarks/benchmark_serving.py\"")
                && !l.contains("\"16\"")
        })
        .unwrap();
    assert!(
        client.contains("\"HF_HOME\"") && client.contains("\"secrets\": 1"),
        "{client}"
    );
    assert!(dir.path().join("art/cost.json").exists());
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
        let e = execute(dir.path(), scenario, &plan(&latency(1), "H100:1"), &cx)
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
    }
}

async fn cancel_when(scenario: &str, marker: &str) -> (tempfile::TempDir, BackendError, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cx = cx(dir.path());
    let p = plan(&serving(1), "H100:1");
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
    (dir, r.unwrap_err(), asked.elapsed())
}

#[tokio::test]
async fn cancelling_the_real_shim_terminates_its_sandbox() {
    if !modal_ok("cancelling_the_real_shim_terminates_its_sandbox") {
        return;
    }
    // While the server is not ready yet.
    let (dir, e, took) = cancel_when("never_ready", "created").await;
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(marked(dir.path(), "terminated"), "terminated on cancel");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // While Modal is still creating the sandbox: the shim waits for it, then terminates it.
    let (dir, e, _) = cancel_when("slow_create", "creating").await;
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(marked(dir.path(), "created") && marked(dir.path(), "terminated"));
}
