//! Shared test support: a reachable Docker Engine (or a printed skip), the C stand-in engine
//! (`standin.c`, a test double of vLLM compiled with `cc -static`), `FROM scratch` images built
//! from it, real run plans from runner-core's planner, and run contexts.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_docker::{DockerBackend, DockerConfig, LABEL_ROLE, LABEL_RUN_ID, PullPolicy};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, ListContainersOptionsBuilder};
use futures::StreamExt;
use runner_core::backend::{GpuLease, ProgressSink};
use runner_core::build::PatchSpec;
use runner_core::dataset::Dataset;
use runner_core::plan::{TaskPlan, plan_task};
use runner_core::settings::Settings;
use runner_core::{RunContext, Variant};
use tokio_util::sync::CancellationToken;

/// The baseline build's test image.
pub const BASELINE: &str = "perf-runner-test/standin:baseline";
/// The human build's test image.
pub const HUMAN: &str = "perf-runner-test/standin:human";
/// Where the stand-in's "installed vllm package" lives in the test images.
pub const SITE: &str = "/usr/lib/python3/dist-packages";

pub const COMMIT: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
pub const PARENT: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";

/// The agent patch of the tests: the build label `baseline` becomes `agent`.
pub const AGENT_PATCH: &str = "diff --git a/vllm/build.txt b/vllm/build.txt\n\
--- a/vllm/build.txt\n+++ b/vllm/build.txt\n@@ -1 +1 @@\n-baseline\n+agent\n\
diff --git a/tests/test_build.py b/tests/test_build.py\n--- a/tests/test_build.py\n\
+++ b/tests/test_build.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n";

/// The engine, or `None` after printing why the test is skipped.
pub async fn engine(test: &str) -> Option<Docker> {
    let d = match Docker::connect_with_defaults() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED {test}: cannot connect to a Docker Engine: {e}");
            return None;
        }
    };
    match d.ping().await {
        Ok(_) => Some(d.negotiate_version().await.ok()?),
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: no Docker Engine reachable (start dockerd or set DOCKER_HOST): {e}"
            );
            None
        }
    }
}

/// The static stand-in binary, compiled once per test process.
pub fn standin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/standin.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("backend-docker-standin");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("python3-{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let st = Command::new(&cc)
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("{cc} (needed to build the stand-in): {e}"));
        assert!(st.success(), "compiling the stand-in failed");
        out
    })
}

/// Host files (with the shared libraries they need) copied into the images so that the agent
/// build's `RUN /bin/sh -c …` has `sh`, `patch` and `rm`.
fn host_tools() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for (tool, dest) in [
        ("/bin/sh", "bin/sh"),
        ("/usr/bin/patch", "usr/bin/patch"),
        ("/bin/rm", "bin/rm"),
    ] {
        out.push((PathBuf::from(tool), dest.to_string()));
        let ldd = Command::new("ldd").arg(tool).output().expect("ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line
                .split("=>")
                .last()
                .and_then(|r| r.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(p) = path {
                let dest = p.trim_start_matches('/').to_string();
                if !out.iter().any(|(_, d)| *d == dest) {
                    out.push((PathBuf::from(p), dest));
                }
            }
        }
    }
    out
}

fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// A `FROM scratch` image: the stand-in as `/usr/bin/python3`, a fake installed `vllm`
/// package whose `build.txt` says `label`, `/tmp`, and the host's sh, patch and rm.
pub async fn build_image(d: &Docker, tag: &str, label: &str) {
    let mut b = tar::Builder::new(Vec::new());
    append(
        &mut b,
        "Dockerfile",
        b"FROM scratch\nCOPY rootfs/ /\n",
        0o644,
    );
    append(
        &mut b,
        "rootfs/usr/bin/python3",
        &std::fs::read(standin()).unwrap(),
        0o755,
    );
    append(
        &mut b,
        &format!("rootfs{SITE}/vllm/build.txt"),
        format!("{label}\n").as_bytes(),
        0o644,
    );
    append(
        &mut b,
        &format!("rootfs{SITE}/vllm/__init__.py"),
        b"",
        0o644,
    );
    append(
        &mut b,
        "rootfs/vllm-workspace/benchmarks/README",
        b"",
        0o644,
    );
    let mut tmp = tar::Header::new_gnu();
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tmp.set_cksum();
    b.append_data(&mut tmp, "rootfs/tmp/", std::io::empty())
        .unwrap();
    for (src, dest) in host_tools() {
        let data = std::fs::read(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        append(&mut b, &format!("rootfs/{dest}"), &data, 0o755);
    }
    let tar = b.into_inner().unwrap();
    let opts = BuildImageOptionsBuilder::new().t(tag).rm(true).build();
    let mut s = d.build_image(opts, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = s.next().await {
        item.unwrap_or_else(|e| panic!("building {tag}: {e}"));
    }
}

/// The baseline and human images, built once per test process.
pub async fn images(d: &Docker) {
    static DONE: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
    let mut done = DONE.lock().await;
    if !*done {
        build_image(d, BASELINE, "baseline").await;
        build_image(d, HUMAN, "human").await;
        *done = true;
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

/// The test configuration: the two test images, no pulls, the HF cache in `dir`.
pub fn config(dir: &Path) -> DockerConfig {
    DockerConfig {
        images: BTreeMap::from([
            ("baseline".to_string(), BASELINE.to_string()),
            ("human".to_string(), HUMAN.to_string()),
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
    let labels = BTreeMap::from([
        ("run-id".to_string(), run.to_string()),
        ("task".to_string(), COMMIT.to_string()),
        ("variant".to_string(), variant.to_string()),
        ("attempt".to_string(), "1".to_string()),
    ]);
    RunContext {
        cancel: CancellationToken::new(),
        deadline: None,
        artifact_dir: dir.join(format!("{run}-{variant}")),
        data_dir: dir.join("data"),
        lease: GpuLease::default(),
        labels,
        progress: Arc::new(Progress::default()),
    }
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
        sha256: Some("0123456789abcdef".into()),
    };
    let variants = [Variant::Baseline, Variant::Human, Variant::Agent];
    let mut p = plan_task(&task, &variants, &Settings::embedded(), Some(patch)).unwrap();
    p.step.timeouts.server_ready_s = 20;
    p.step.timeouts.benchmark_s = 60;
    p
}

/// The serving command of the tests.
pub const SERVE: &str =
    "vllm bench serve --model standin/model --dataset-name random --num-prompts 5";

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

/// A backend with the test config adjusted by `f`.
pub fn backend(dir: &Path, f: impl FnOnce(&mut DockerConfig)) -> DockerBackend {
    let mut c = config(dir);
    f(&mut c);
    DockerBackend::new(c)
}
