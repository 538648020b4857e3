//! Shared test support: a reachable Docker Engine (or a printed skip), `FROM scratch` images of
//! two test doubles of vLLM, real run plans from runner-core's planner, and run contexts.
//!
//! - The project's stand-in engine (`vllm-standin` of `perf-runner-tests`: an OpenAI server
//!   and a real streaming benchmark client, vLLM's output formats, injectable faults) runs the
//!   steps. Its build (version, speed) is `vllm/standin-config.json` in the image's
//!   site-packages, so the agent patch changes it.
//! - A tiny C double (`standin.c`) covers what that one does not do: `python3 -m pip install`
//!   (base image + wheel builds), `find_spec` and printing an environment variable (secrets).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_docker::{DockerBackend, DockerConfig, LABEL_ROLE, LABEL_RUN_ID, PullPolicy};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use runner_core::backend::{GpuLease, ProgressSink};
use runner_core::build::PatchSpec;
use runner_core::dataset::Dataset;
use runner_core::plan::{TaskPlan, plan_task};
use runner_core::settings::Settings;
use runner_core::{RunContext, Variant};
use tokio_util::sync::CancellationToken;

mod images;
pub use images::*;

pub const COMMIT: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
pub const PARENT: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";

/// The agent patch of the tests: the baseline build becomes 10 % faster and says so in its
/// version; a file outside the package is left out.
pub const AGENT_PATCH: &str = concat!(
    "diff --git a/vllm/standin-config.json b/vllm/standin-config.json\n",
    "--- a/vllm/standin-config.json\n",
    "+++ b/vllm/standin-config.json\n",
    "@@ -1,5 +1,5 @@\n",
    " {\n",
    "-  \"version\": \"0.6.3.dev1+gf508e03\",\n",
    "-  \"speed\": 1.0,\n",
    "+  \"version\": \"0.6.3.dev1+gf508e03.agent\",\n",
    "+  \"speed\": 1.1,\n",
    "   \"startup_ms\": 200,\n",
    "   \"jitter\": 0.0\n",
    " }\n",
    "diff --git a/tests/test_build.py b/tests/test_build.py\n",
    "--- a/tests/test_build.py\n",
    "+++ b/tests/test_build.py\n",
    "@@ -1 +1 @@\n",
    "-x = 1\n",
    "+x = 2\n",
);

/// The engine, or `None` after printing why the test is skipped.
pub async fn engine(test: &str) -> Option<Docker> {
    let d = match Docker::connect_with_defaults() {
        Ok(d) => d,
        Err(e) => {
            perf_runner_tests::require::skip_or_fail(
                "docker",
                test,
                &format!("cannot connect to a Docker Engine: {e}"),
            );
            return None;
        }
    };
    match d.ping().await {
        Ok(_) => Some(d.negotiate_version().await.ok()?),
        Err(e) => {
            perf_runner_tests::require::skip_or_fail(
                "docker",
                test,
                &format!("no Docker Engine reachable (start dockerd or set DOCKER_HOST): {e}"),
            );
            None
        }
    }
}

/// A unique run id for a test.
pub fn run_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t-{test}-{}-{nanos:x}", std::process::id())
}

/// The test configuration: the stand-in's images, no pulls, the HF cache in `dir`.
pub fn config(dir: &Path) -> DockerConfig {
    config_with(dir, BASELINE, HUMAN)
}

/// The test configuration with these baseline and human images.
pub fn config_with(dir: &Path, baseline: &str, human: &str) -> DockerConfig {
    DockerConfig {
        images: BTreeMap::from([
            ("baseline".to_string(), baseline.to_string()),
            ("human".to_string(), human.to_string()),
        ]),
        pull: PullPolicy::Never,
        hf_cache: Some(dir.join("hf-cache")),
        secret_env: Vec::new(),
        request_timeout_s: 120,
        ..DockerConfig::default()
    }
}

/// Progress lines, collected.
#[derive(Debug, Default)]
pub struct Progress(pub Mutex<Vec<String>>);

impl ProgressSink for Progress {
    fn event(&self, phase: &str, message: &str) {
        static T0: OnceLock<Instant> = OnceLock::new();
        let t = T0.get_or_init(Instant::now).elapsed().as_secs_f64();
        if std::env::var_os("PR_TEST_PROGRESS").is_some() {
            eprintln!("[{t:7.2}] {phase}: {message}");
        }
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("{phase}: {message}"));
        }
    }
}

/// A run context for one attempt of `variant` under `dir`.
pub fn context(dir: &Path, run: &str, variant: &str) -> RunContext {
    context_with_progress(dir, run, variant).0
}

/// A run context and the progress lines it collects.
pub fn context_with_progress(dir: &Path, run: &str, variant: &str) -> (RunContext, Arc<Progress>) {
    let progress = Arc::new(Progress::default());
    let labels = BTreeMap::from([
        ("run-id".to_string(), run.to_string()),
        ("task".to_string(), COMMIT.to_string()),
        ("variant".to_string(), variant.to_string()),
        ("attempt".to_string(), "1".to_string()),
    ]);
    let cx = RunContext {
        cancel: CancellationToken::new(),
        deadline: None,
        artifact_dir: dir.join(format!("{run}-{variant}")),
        data_dir: dir.join("data"),
        lease: GpuLease::default(),
        labels,
        progress: progress.clone(),
    };
    (cx, progress)
}

/// A real plan from runner-core's planner for a perf command, for all three variants (the
/// agent patch written under `dir`), with short timeouts.
pub fn plan(dir: &Path, cmd: &str) -> TaskPlan {
    let row =
        serde_json::json!({"commit_hash": COMMIT, "parent_commit": PARENT, "perf_command": cmd});
    let ds = Dataset::from_str(&row.to_string(), "t", Path::new("."));
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    let task = ds.tasks.into_iter().next().unwrap();
    let patch_path = dir.join("agent.patch");
    std::fs::write(&patch_path, AGENT_PATCH).unwrap();
    let patch = PatchSpec {
        path: patch_path.display().to_string(),
        // As planning records it: backends refuse a patch that changed since.
        sha256: Some(runner_core::patch::decide(AGENT_PATCH).unwrap().sha256),
    };
    let variants = [Variant::Baseline, Variant::Human, Variant::Agent];
    let mut p = plan_task(&task, &variants, &Settings::embedded(), Some(patch)).unwrap();
    p.step.timeouts.server_ready_s = 20;
    p.step.timeouts.benchmark_s = 60;
    p
}

/// The serving command of the tests.
pub const SERVE: &str = "vllm bench serve --model standin/model --dataset-name random \
     --random-input-len 32 --random-output-len 16 --num-prompts 20";

/// A serving benchmark that takes a while (2 requests per second).
pub fn slow_serve(prompts: u32) -> String {
    format!(
        "vllm bench serve --model standin/model --dataset-name random --random-input-len 16 \
         --random-output-len 8 --request-rate 2 --num-prompts {prompts}"
    )
}

/// Containers (any state) carrying a run's label, optionally of one role, with their state.
pub async fn containers(d: &Docker, run: &str, role: Option<&str>) -> Vec<(String, String)> {
    let mut labels = vec![format!("{LABEL_RUN_ID}={run}")];
    if let Some(r) = role {
        labels.push(format!("{LABEL_ROLE}={r}"));
    }
    let filters = HashMap::from([("label", labels)]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    d.list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default();
            (
                name.trim_start_matches('/').to_string(),
                c.state.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Wait until a container of the run with this role is running; its name.
pub async fn running(d: &Docker, run: &str, role: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let list = containers(d, run, Some(role)).await;
        if let Some((name, _)) = list.iter().find(|(_, s)| s == "running") {
            return name.clone();
        }
        assert!(
            start.elapsed() < limit,
            "no running {role} container of {run}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A backend with the C double's images and the test config adjusted by `f`.
pub fn backend_c(dir: &Path, f: impl FnOnce(&mut DockerConfig)) -> DockerBackend {
    let mut c = config_with(dir, C_BASELINE, C_HUMAN);
    f(&mut c);
    DockerBackend::new(c)
}

/// A backend with the test config adjusted by `f`.
pub fn backend(dir: &Path, f: impl FnOnce(&mut DockerConfig)) -> DockerBackend {
    let mut c = config(dir);
    f(&mut c);
    DockerBackend::new(c)
}

/// The GPU SKU of the fake `nvidia-smi`.
pub const H100: &str = perf_runner_tests::fake_gpus::H100;

/// A fake `nvidia-smi` in `dir` reporting two idle H100s (as a real one prints them).
pub fn fake_smi(dir: &Path) -> std::path::PathBuf {
    use perf_runner_tests::fake_gpus::{fake_nvidia_smi, two_h100s};
    fake_nvidia_smi(dir, &two_h100s()).unwrap()
}
