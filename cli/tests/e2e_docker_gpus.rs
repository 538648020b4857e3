//! Host GPU leases on the Docker backend, end to end: `perf-runner batch --backend docker
//! --concurrency 2` on a host whose (fake) `nvidia-smi` reports two H100s. The two H100 tasks
//! run at the same time on different GPUs — read back from the containers themselves with
//! `docker inspect` — and their records name the SKU; a task asking for an H200 is refused up
//! front and gets no container. The engine has no NVIDIA runtime here, so containers get their
//! GPUs as `NVIDIA_VISIBLE_DEVICES` (`gpu_devices = "env"`); everything else is real.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{docker, text};
use perf_runner_tests::fake_gpus::{H100, H100_UUIDS, fake_nvidia_smi, two_h100s};
use perf_runner_tests::standin::StandinConfig;
use runner_core::failure::Failure;
use runner_core::record::RunId;
use runner_core::store::Store;

const PARENT: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";
/// Two tasks that fit the host (one H100 each) and one that never can (an H200).
const H100_A: &str = "7179b997bf64252a43ef28c3d7ee3ef56a3f4bd8";
const H100_B: &str = "2f6a0c1e9b8d7a6f5e4d3c2b1a09f8e7d6c5b4a3";
const H200: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
const SERVE: &str = "vllm bench serve --model m/tiny --dataset-name random --random-input-len 32 \
                     --random-output-len 24 --num-prompts 24 --ignore-eos";
const UUIDS: [&str; 2] = H100_UUIDS;
const SKU: &str = H100;

/// A fake `nvidia-smi` in `dir` that reports two idle H100s.
fn fake_smi(dir: &Path) -> PathBuf {
    fake_nvidia_smi(dir, &two_h100s()).unwrap()
}

/// `docker inspect` of every container of the run.
fn inspect_all(run: &RunId) -> Vec<serde_json::Value> {
    let names: Vec<String> = docker::containers(&run.0)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    assert!(!names.is_empty(), "keep_containers kept no container");
    let o = Command::new("docker")
        .arg("inspect")
        .args(&names)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

/// A container's start and end, seconds since the epoch.
fn interval(c: &serde_json::Value) -> (f64, f64) {
    let t = |k: &str| {
        let s = c["State"][k].as_str().unwrap();
        let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
        t.timestamp_micros() as f64 / 1e6
    };
    (t("StartedAt"), t("FinishedAt"))
}

#[test]
fn concurrent_docker_tasks_get_distinct_gpus_and_records_name_the_sku() {
    const TEST: &str = "concurrent_docker_tasks_get_distinct_gpus_and_records_name_the_sku";
    if !docker::available(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (base, human) = (
        "perf-runner-test/gpu-standin:baseline",
        "perf-runner-test/gpu-standin:human",
    );
    for (tag, version) in [
        (base, "0.6.3.dev1+gf508e03"),
        (human, "0.6.3.dev2+g7179b99"),
    ] {
        let config = StandinConfig {
            version: version.into(),
            startup_ms: 300,
            log_interval_ms: 100,
            ..StandinConfig::default()
        };
        docker::standin_image(tag, &config);
    }
    let smi = fake_smi(root);
    let toml = format!(
        "[docker]\npull = \"never\"\nhf_cache = {hf:?}\nnvidia_smi = {smi:?}\n\
         gpu_lock_dir = {locks:?}\n\
         gpu_devices = \"env\"\nkeep_containers = true\n\
         [docker.images]\nbaseline = {base:?}\nhuman = {human:?}\n\
         [plan]\nwarmup_prompts = 2\n\
         [timeouts]\nserver_ready_s = 20\nbenchmark_s = 60\nprepare_s = 300\n",
        hf = root.join("hf-cache"),
        locks = root.join("gpu-locks"),
    );
    std::fs::write(root.join("perf-runner.toml"), toml).unwrap();
    let rows: String = [(H100_A, "H100:1"), (H100_B, "H100:1"), (H200, "H200:1")]
        .iter()
        .map(|(c, g)| {
            serde_json::json!({"commit_hash": c, "parent_commit": PARENT, "gpu_config": g,
                               "perf_command": SERVE})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(root.join("tasks.jsonl"), rows).unwrap();

    let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .current_dir(root)
        .env_remove("PERF_RUNNER_LOG")
        .args(["--store", root.join("results.sqlite").to_str().unwrap()])
        .args(["batch", "tasks.jsonl", "--backend", "docker", "--force"])
        .args(["--repeats", "1", "--concurrency", "2"])
        .args(["--artifacts", root.join("art").to_str().unwrap()])
        .args(["--data-dir", root.join("data").to_str().unwrap()])
        .output()
        .unwrap();
    let store = Store::open(&root.join("results.sqlite")).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1, "{}", text(&o));
    let run = runs[0].id.clone();
    let containers = inspect_all(&run);
    // Remove the kept containers before asserting, so that a failure leaves none behind.
    let gc = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .current_dir(root)
        .args(["gc", &run.0, "--grace-s", "2"])
        .output()
        .unwrap();
    let left = docker::containers(&run.0);
    assert!(left.is_empty(), "gc left {left:?}: {}", text(&gc));
    assert_eq!(
        o.status.code(),
        Some(4),
        "the H200 task fails: {}",
        text(&o)
    );

    // Records: the H100 tasks ran both variants on an H100 and say so; the H200 task was
    // refused before anything ran.
    let attempts = store.attempts(&run).unwrap();
    for commit in [H100_A, H100_B] {
        let mine: Vec<_> = attempts.iter().filter(|a| a.job.commit == commit).collect();
        assert_eq!(mine.len(), 2, "{}", text(&o));
        for a in mine {
            assert!(a.succeeded(), "{:?}", a.failure_detail);
            assert_eq!(a.backend, "docker");
            assert_eq!(a.gpu_names, [SKU], "the record names the GPU SKU");
        }
    }
    let refused: Vec<_> = attempts.iter().filter(|a| a.job.commit == H200).collect();
    assert!(!refused.is_empty());
    for a in &refused {
        assert_eq!(a.failure, Some(Failure::BadConfig));
        let detail = a.failure_detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains("never satisfy 1 GPU(s) of kind H200") && detail.contains(SKU),
            "{detail}"
        );
        assert!(a.gpu_names.is_empty());
    }

    // What the containers received: each task's GPU containers (its servers) name one GPU of
    // the host, in the label and in NVIDIA_VISIBLE_DEVICES; clients get none.
    let mut by_task: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for c in &containers {
        let labels = &c["Config"]["Labels"];
        let task = labels["perf-runner.task"].as_str().unwrap().to_string();
        let role = labels["perf-runner.role"].as_str().unwrap();
        let env: Vec<&str> = c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_str())
            .collect();
        let visible: Vec<&str> = env
            .iter()
            .filter_map(|e| e.strip_prefix("NVIDIA_VISIBLE_DEVICES="))
            .collect();
        assert!(
            c["HostConfig"]["DeviceRequests"].is_null()
                || c["HostConfig"]["DeviceRequests"] == serde_json::json!([]),
            "env mode makes no device request"
        );
        match role {
            "server" => {
                let gpus = labels["perf-runner.gpus"].as_str().unwrap();
                assert_eq!(visible, [gpus], "{task}: env and label agree");
                assert!(UUIDS.contains(&gpus), "{gpus} is one GPU of the host");
                by_task.entry(task).or_default().push(c);
            }
            _ => {
                assert!(
                    labels.get("perf-runner.gpus").is_none(),
                    "{role} has no GPU"
                );
                assert!(visible.is_empty(), "{role}: {visible:?}");
            }
        }
    }
    assert!(!by_task.contains_key(H200), "the refused task ran nothing");
    let gpu_of = |task: &str| -> &str {
        let servers = &by_task[task];
        assert_eq!(servers.len(), 2, "{task}: a server per variant");
        let g = servers[0]["Config"]["Labels"]["perf-runner.gpus"]
            .as_str()
            .unwrap();
        assert!(
            servers
                .iter()
                .all(|s| s["Config"]["Labels"]["perf-runner.gpus"] == g),
            "{task}: one lease for all its variants"
        );
        g
    };
    let (ga, gb) = (gpu_of(H100_A), gpu_of(H100_B));
    assert_ne!(ga, gb, "two tasks at once never share a GPU");
    // They really ran at once: some server of one task ran while one of the other did.
    let overlap = by_task[H100_A].iter().any(|a| {
        by_task[H100_B].iter().any(|b| {
            let ((a0, a1), (b0, b1)) = (interval(a), interval(b));
            a0 < b1 && b0 < a1
        })
    });
    assert!(overlap, "the two tasks' servers never ran at the same time");
}
