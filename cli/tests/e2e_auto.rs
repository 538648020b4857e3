//! Profiles and `backend = "auto"` end to end: a profile selects the backend; `auto` on a host
//! with one (fake) H100 runs the 1-GPU task of a batch locally on the stand-in engine and
//! sends the 8-GPU task to the dummy backend (fictional GPUs), in one run, one store, one
//! report; a task no backend can take is reported with every backend's reason, and `run`
//! exits 5 for it.
//!
//! `cargo test -p perf-runner --features dummy-backend --test e2e_auto`

mod common;

use std::io::Write;

use common::{HUMAN, PARENT, SERVE, World, text};
use perf_runner_tests::fake_gpus::{H100, fake_nvidia_smi};
use runner_core::exit;

/// A task for the dummy's eight fictional H100s, and one no backend here has (an A100).
const EIGHT: &str = "2f6a0c1e9b8d7a6f5e4d3c2b1a09f8e7d6c5b4a3";
const A100: &str = "7179b997bf64252a43ef28c3d7ee3ef56a3f4bd8";

/// The world's local backend on one fake H100 (instead of CPU-only), the dummy with eight,
/// and the profile `lab` that routes with `auto` (local first).
fn lab_world() -> World {
    let w = World::new(1.25, None);
    let smi = fake_nvidia_smi(
        w.dir.path(),
        &format!("0, GPU-aaaaaaaa-0000-0000-0000-000000000000, {H100}, 81559, 3\n"),
    )
    .unwrap();
    let p = w.path("perf-runner.toml");
    let toml = std::fs::read_to_string(&p).unwrap();
    assert!(toml.contains("cpu_only = true"));
    let locks = w.path("gpu-locks");
    let mut toml = toml.replace(
        "cpu_only = true",
        &format!("nvidia_smi = {smi:?}\ngpu_lock_dir = {locks:?}"),
    );
    toml.push_str(
        "[dummy]\ngpus = 8\nspeed = { human = 1.25 }\n\
         [profile.lab]\nbackend = \"auto\"\nauto.order = [\"local\", \"dummy\"]\n",
    );
    std::fs::write(&p, toml).unwrap();
    let rows: String = [(HUMAN, "H100:1"), (EIGHT, "H100:8"), (A100, "A100:1")]
        .iter()
        .map(|(c, g)| {
            serde_json::json!({"commit_hash": c, "parent_commit": PARENT, "gpu_config": g,
                               "perf_command": SERVE})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(w.path("tasks.jsonl"), rows).unwrap();
    w
}

fn json(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)))
}

fn task<'a>(report: &'a serde_json::Value, commit: &str) -> &'a serde_json::Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["commit"] == commit)
        .unwrap_or_else(|| panic!("no task {commit} in {report}"))
}

#[test]
fn auto_routes_a_one_gpu_and_an_eight_gpu_task_of_one_batch_to_two_backends() {
    let w = lab_world();
    let art = w.path("art").display().to_string();
    let data = w.path("data").display().to_string();

    // Before anything runs: which backend would take each task, and why the others would not.
    let o = w
        .cmd()
        .args([
            "--profile",
            "lab",
            "triage",
            "tasks.jsonl",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let triage = json(&o.stdout);
    let route = |c: &str| triage["backends"][c].clone();
    assert_eq!(route(HUMAN)["backend"], "local", "{triage}");
    assert_eq!(route(EIGHT)["backend"], "dummy", "{triage}");
    let local_no = route(EIGHT)["backends"][0]["reason"].to_string();
    assert!(
        local_no.contains("at most 1") && local_no.contains("needs 8"),
        "{local_no}"
    );
    assert_eq!(route(A100)["backend"], serde_json::Value::Null);
    for b in route(A100)["backends"].as_array().unwrap() {
        assert_eq!(b["can_take"], false, "{b}");
        assert!(
            b["reason"].as_str().unwrap().contains("no A100 GPUs"),
            "{b}"
        );
    }

    let o = w
        .cmd()
        .args(["--profile", "lab", "batch", "tasks.jsonl", "--force"])
        .args(["--repeats", "2", "--artifacts", &art, "--data-dir", &data])
        .output()
        .unwrap();
    let out = text(&o);
    // Two tasks ran; the A100 task was not verifiable here, so the batch is not a success.
    assert_eq!(o.status.code(), Some(exit::TASKS_FAILED), "{out}");
    assert!(out.contains("8 job(s) succeeded, 0 failed"), "{out}");
    assert!(
        out.contains("backend local") && out.contains("backend dummy"),
        "{out}"
    );
    assert!(
        out.contains("not verifiable here: no backend can take it"),
        "{out}"
    );

    let run = w.only_run();
    let attempts = w.attempts(&run);
    assert_eq!(attempts.len(), 8);
    for a in &attempts {
        let want = if a.job.commit == HUMAN {
            "local"
        } else {
            "dummy"
        };
        assert_eq!(a.backend, want, "{:?}", a.job);
        assert!(a.succeeded(), "{:?}", a.failure_detail);
    }
    // The local task ran on the host's one GPU; the dummy's on its fictional ones.
    let local = attempts.iter().find(|a| a.job.commit == HUMAN).unwrap();
    assert_eq!(local.gpu_names, [H100]);

    let o = w
        .cmd()
        .args(["report", &run.0, "--format", "json"])
        .output()
        .unwrap();
    let report = json(&o.stdout);
    assert_eq!(report["run"]["backend"], "auto");
    assert_eq!(report["run"]["profile"], "lab");
    assert_eq!(
        task(&report, HUMAN)["backends"],
        serde_json::json!(["local"])
    );
    assert_eq!(
        task(&report, EIGHT)["backends"],
        serde_json::json!(["dummy"])
    );
    let none = task(&report, A100);
    assert_eq!(none["status"], "skipped");
    let why = none["reason"].as_str().unwrap();
    assert!(
        why.contains("local: has no A100 GPUs") && why.contains("dummy: has no A100 GPUs"),
        "{why}"
    );
    let o = w.cmd().args(["report", &run.0]).output().unwrap();
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("backend auto · profile lab"), "{md}");
    assert!(md.contains("| local |") && md.contains("| dummy |"), "{md}");

    // One task no backend can take: `run` says every backend's reason and exits 5.
    let o = w
        .cmd()
        .args(["--profile", "lab", "run", "tasks.jsonl", A100])
        .args(["--artifacts", &art, "--data-dir", &data])
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(exit::BACKEND_UNAVAILABLE), "{out}");
    assert!(
        out.contains("local: has no A100 GPUs") && out.contains("dummy: has no A100 GPUs"),
        "{out}"
    );
}

#[test]
fn two_profiles_select_two_backends() {
    let w = World::new(1.25, None);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(w.path("perf-runner.toml"))
        .unwrap();
    write!(
        f,
        "[profile.default]\nbackend = \"local\"\n\
         [profile.cloud]\nbackend = \"dummy\"\n[profile.cloud.plan]\nrepeats = 1\n\
         [profile.cloud.dummy]\nspeed = {{ human = 1.5 }}\n"
    )
    .unwrap();
    drop(f);
    let art = w.path("art").display().to_string();
    let data = w.path("data").display().to_string();
    let run = |profile: Option<&str>| {
        let mut c = w.cmd();
        if let Some(p) = profile {
            c.env("PERF_RUNNER_PROFILE", p);
        }
        c.args([
            "run",
            "--commit",
            HUMAN,
            "--parent",
            PARENT,
            "--perf-command",
            SERVE,
        ])
        .args(["--repeats", "1", "--artifacts", &art, "--data-dir", &data])
        .output()
        .unwrap()
    };
    let o = run(Some("cloud"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The profile's dummy section applies: the human build is 1.5× as fast.
    let cloud = w.only_run();
    let human: Vec<f64> = w
        .attempts(&cloud)
        .iter()
        .filter(|a| a.job.variant == runner_core::Variant::Human)
        .filter_map(|a| a.metrics.get("output_throughput_tps"))
        .collect();
    assert_eq!(human, [1920.0], "{}", text(&o));
    let o = run(None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = w.cmd().args(["runs", "--format", "json"]).output().unwrap();
    let runs = json(&o.stdout);
    let mut backends: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["backend"].as_str().unwrap())
        .collect();
    backends.sort();
    assert_eq!(backends, ["dummy", "local"], "{runs}");
    for r in runs["runs"].as_array().unwrap() {
        let id: runner_core::record::RunId = r["id"].as_str().unwrap().parse().unwrap();
        let attempts = w.attempts(&id);
        assert!(!attempts.is_empty());
        assert!(attempts.iter().all(|a| a.backend == r["backend"]), "{r}");
        let o = w
            .cmd()
            .args(["report", &id.0, "--format", "json"])
            .output()
            .unwrap();
        let profile = &json(&o.stdout)["run"]["profile"];
        let want = if r["backend"] == "dummy" {
            "cloud"
        } else {
            "default"
        };
        assert_eq!(profile, want);
    }

    // `config --profile` shows the merged result and where each value came from.
    let o = w
        .cmd()
        .args(["config", "--profile", "cloud"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    let merged: toml::Table = toml::from_str(&shown).unwrap();
    assert_eq!(merged["backend"].as_str(), Some("dummy"), "{shown}");
    assert_eq!(merged["plan"]["repeats"].as_integer(), Some(1));
    assert!(!merged.contains_key("profile"), "{shown}");
    for line in [
        "# profile: cloud",
        "#   backend ← [profile.cloud] in",
        "#   dummy.speed.human ← [profile.cloud] in",
        "#   local.cpu_only ← ",
    ] {
        assert!(shown.contains(line), "{line} in\n{shown}");
    }
    let o = w
        .cmd()
        .env("PERF_RUNNER__PLAN__REPEATS", "7")
        .args(["config"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("backend = \"local\""), "{shown}");
    assert!(
        shown.contains("#   plan.repeats ← the environment (PERF_RUNNER__PLAN__REPEATS)"),
        "{shown}"
    );
    let o = w
        .cmd()
        .args(["config", "--profile", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(exit::USAGE));
    assert!(
        text(&o).contains("no [profile.nosuch] (it has: cloud, default)"),
        "{}",
        text(&o)
    );
}
