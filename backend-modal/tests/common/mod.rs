//! Shared test helpers: real plans from real commands, run contexts, and backends wired to the
//! fake shim (`tests/fake_shim.py`) or to the real SDK.

#![allow(dead_code)]

pub mod run;

#[allow(unused_imports)]
pub use run::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use backend_modal::{ModalBackend, ModalConfig};
use perf_runner_tests::standin::{free_port, standin_binary};
use runner_core::RunContext;
use runner_core::backend::{GpuLease, NoProgress};
use runner_core::dataset::Dataset;
use runner_core::plan::{TaskPlan, plan_task};
use runner_core::settings::Settings;
use runner_core::task::Variant;
use tokio_util::sync::CancellationToken;

pub const C: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
pub const P: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";

/// A serving command on `tp` GPUs (a ShareGPT file as its dataset).
pub fn serving(tp: u32) -> String {
    format!(
        "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B-Instruct \
         --dataset-name sharegpt --dataset-path /data/ShareGPT_V3_unfiltered_cleaned_split.json \
         --num-prompts 200 --enable-prefix-caching --tensor-parallel-size {tp}"
    )
}

/// An offline latency command on `tp` GPUs.
pub fn latency(tp: u32) -> String {
    format!(
        "python benchmarks/benchmark_latency.py --model meta-llama/Llama-3.1-8B-Instruct \
         --input-len 512 --output-len 128 --batch-size 8 --tensor-parallel-size {tp}"
    )
}

/// The plan of `cmd` on `gpu` (`H100:2`) for baseline and human.
pub fn plan(cmd: &str, gpu: &str) -> TaskPlan {
    let row = serde_json::json!({
        "commit_hash": C, "parent_commit": P, "perf_command": cmd, "gpu_config": gpu,
    });
    // The commands name their datasets under /data: that folder is a configured dataset root.
    let mut settings = Settings::embedded();
    settings.inputs.dataset_roots = vec!["/data".into()];
    let ds = Dataset::from_str_with(&row.to_string(), "t", Path::new("."), &settings.inputs);
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    let task = ds.tasks.into_iter().next().expect("one task");
    plan_task(&task, &[Variant::Baseline, Variant::Human], &settings, None)
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// A run context writing into `dir/art`, with datasets in `dir/data`.
pub fn cx(dir: &Path) -> RunContext {
    let art = dir.join("art");
    let data = dir.join("data");
    std::fs::create_dir_all(&art).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    RunContext {
        cancel: CancellationToken::new(),
        deadline: None,
        artifact_dir: art,
        data_dir: data,
        lease: GpuLease::default(),
        labels: [("run".to_string(), "r1".to_string())]
            .into_iter()
            .collect(),
        progress: Arc::new(NoProgress),
    }
}

/// Whether `python3` runs.
pub fn python_ok() -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the real `modal` SDK imports; prints why a test is skipped when not.
pub fn modal_ok(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import modal"])
        .status()
        .is_ok_and(|s| s.success());
    ok || perf_runner_tests::require::skip_or_fail(
        "modal",
        test,
        "`python3 -c \"import modal\"` failed; run `pip install modal`",
    )
}

/// A backend wired to the fake shim playing `scenario`; its state lands in `dir/state`. The
/// fake's "sandbox" is this machine: the container's paths (work folder, Volume mounts) lie
/// under `dir`, `{PYTHON}` is the stand-in engine, and the server's port is a free one.
pub fn fake(dir: &Path, scenario: &str, tweak: impl FnOnce(&mut ModalConfig)) -> ModalBackend {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let fake = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fake_shim.py");
    let wrapper = dir.join("shim.py");
    std::fs::write(
        &wrapper,
        format!(
            "SCENARIO = {scenario:?}\nSTATE_DIR = {:?}\nexec(compile(open({:?}).read(), {:?}, 'exec'))\n",
            state.display().to_string(),
            fake.display().to_string(),
            fake.display().to_string()
        ),
    )
    .unwrap();
    let mnt = |name: &str| backend_modal::VolumeMount {
        name: format!("perf-runner-{name}"),
        path: dir.join("mnt").join(name).display().to_string(),
    };
    let mut cfg = ModalConfig {
        shim_override: Some(wrapper),
        cache_dir: Some(dir.join("cache")),
        container_python: standin_binary().display().to_string(),
        workdir: dir.join("work").display().to_string(),
        hf_cache: mnt("hf-cache"),
        datasets: mnt("datasets"),
        port: free_port().expect("a free port"),
        health_poll_s: 0.05,
        stop_grace_ms: 2_000,
        cancel_grace_ms: 5_000,
        kill_grace_ms: 1_000,
        ..ModalConfig::default()
    };
    tweak(&mut cfg);
    ModalBackend::new(cfg)
}

/// The requests the fake shim received.
pub fn requests(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("state/requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Whether the fake shim left `marker` behind.
pub fn marked(dir: &Path, marker: &str) -> bool {
    dir.join("state").join(marker).exists()
}

/// Whether the fake shim's process still exists (a zombie counts).
pub fn shim_alive(dir: &Path) -> bool {
    let pid = std::fs::read_to_string(dir.join("state/pid")).unwrap_or_default();
    !pid.trim().is_empty() && Path::new("/proc").join(pid.trim()).exists()
}

/// The processes of this machine whose environment carries the sandbox tag `run-id = run`
/// (the fake shim puts every tag of its sandbox into its processes' environments), zombies
/// left out: what a run left behind. Each as `pid (command line)`.
pub fn tagged_processes(run: &str) -> Vec<String> {
    let want = format!("PERF_RUNNER_TAG_RUN_ID={run}").into_bytes();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|kv| kv == want.as_slice()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
        if state == Some('Z') {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        found.push(format!("{name} ({})", cmd.trim()));
    }
    found
}
