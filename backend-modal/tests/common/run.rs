//! Running a step through the fake shim (`tests/fake_shim.py`): the commands the stand-in
//! runs, a prepare-and-execute helper, and what a run must leave behind.

use std::path::Path;

use backend_modal::{ModalBackend, ModalConfig};
use runner_core::backend::JobEnvs;
use runner_core::plan::TaskPlan;
use runner_core::task::Variant;
use runner_core::{Backend, BackendError, RunContext, StepOutput};

use super::{cx, fake, plan, requests, shim_alive, tagged_processes};

/// A serving command the stand-in runs, on `tp` GPUs, with a ShareGPT file as its dataset.
pub fn bench_serve(tp: u32) -> String {
    format!(
        "vllm bench serve --model standin/model --dataset-name sharegpt \
         --dataset-path /data/ShareGPT_V3_unfiltered_cleaned_split.json --num-prompts 8 \
         --tensor-parallel-size {tp}"
    )
}

/// An offline latency command the stand-in runs.
pub const BENCH_LATENCY: &str =
    "vllm bench latency --model standin/model --input-len 8 --output-len 8 --batch-size 1";

pub fn build(p: &TaskPlan, v: Variant) -> runner_core::BuildSpec {
    p.builds.iter().find(|b| b.variant == v).cloned().unwrap()
}

/// Baseline as the engine; the human build as the client, or the engine's own.
pub async fn envs(b: &ModalBackend, p: &TaskPlan, cx: &RunContext, human_client: bool) -> JobEnvs {
    let engine = b.prepare(&build(p, Variant::Baseline), cx).await.unwrap();
    let client = match human_client {
        true => b.prepare(&build(p, Variant::Human), cx).await.unwrap(),
        false => engine.clone(),
    };
    JobEnvs { engine, client }
}

/// An executed step, its folder and context.
pub struct Ran {
    pub dir: tempfile::TempDir,
    pub cx: RunContext,
    pub result: Result<StepOutput, BackendError>,
}

impl Ran {
    /// The test's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Prepare and execute the step of `cmd` on `gpu` (with `env` added to the plan's, the
/// dataset in place), the baseline build running everything unless `human_client`.
pub async fn run(
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

/// Nothing of the run is left: no tagged process, no shim.
pub fn nothing_left(r: &Ran) {
    let run = r.cx.labels["run"].clone();
    assert!(
        tagged_processes(&run).is_empty(),
        "{:?}",
        tagged_processes(&run)
    );
    assert!(!shim_alive(r.path()), "no shim process is left");
}

/// The commands named `cmd` the fake shim received.
pub fn commands(dir: &Path, cmd: &str) -> Vec<serde_json::Value> {
    requests(dir)
        .into_iter()
        .filter(|r| r["cmd"] == cmd)
        .collect()
}

/// The port the server was started with (from its exec).
pub fn out_port(dir: &Path) -> u16 {
    let server = commands(dir, "exec")
        .into_iter()
        .find(|e| e["id"] == "server-1")
        .unwrap();
    let argv: Vec<String> = serde_json::from_value(server["argv"].clone()).unwrap();
    let i = argv.iter().position(|a| a == "--port").unwrap();
    argv[i + 1].parse().unwrap()
}
