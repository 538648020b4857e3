//! The hostile dataset (`tests/data/hostile.jsonl`) through `tasks`, `triage`, `plan` and a
//! real `batch --force` on the stand-in engine: every hostile row is refused with its row,
//! field or token and the fix; marker files prove that nothing it names ran, and no file from
//! outside the dataset roots was copied. The control row in the same batch does run.
//!
//! The fixture's `__ROOT__` is replaced by a fresh folder that holds the bait: a
//! `sitecustomize.py`, scripts, a fake interpreter and plugins that would each write a marker,
//! and a "secret" next to a dataset root with a link to it from inside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use perf_runner_tests::standin::{
    StandinBuild, StandinConfig, build_standin_wheel, standin_binary,
};
use runner_core::failure::Failure;
use runner_core::record::{JobStatus, RunId};
use runner_core::store::Store;
use serde_json::Value;

mod common;

const SECRET: &str = "SECRET-KEY-MATERIAL-7f3a";

/// One fixture row: its line, commit, class (`[env]`, `[benign]` …) and subject.
struct Row {
    line: usize,
    commit: String,
    class: String,
}

struct Bait {
    dir: tempfile::TempDir,
    rows: Vec<Row>,
}

impl Bait {
    fn new() -> Bait {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/hostile.jsonl");
        let text = std::fs::read_to_string(fixture)
            .unwrap()
            .replace("__ROOT__", root.to_str().unwrap());
        std::fs::write(root.join("hostile.jsonl"), &text).unwrap();
        let markers = root.join("markers");
        for d in ["markers", "py", "bin", "secret", "datasets", "benchmarks"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let py_marker = |name: &str| {
            format!(
                "open({:?}, 'w').write('ran')\n",
                markers.join(name).display().to_string()
            )
        };
        std::fs::write(root.join("py/sitecustomize.py"), py_marker("sitecustomize")).unwrap();
        std::fs::write(root.join("py/start.py"), py_marker("pythonstartup")).unwrap();
        std::fs::write(root.join("py/plugin.py"), py_marker("plugin")).unwrap();
        std::fs::write(root.join("evil.py"), py_marker("evil-script")).unwrap();
        std::fs::write(
            root.join("benchmarks/benchmark_serving.py"),
            py_marker("evil-serving-script"),
        )
        .unwrap();
        let fake_python = format!(
            "#!/bin/sh\necho ran > {}\nexec /usr/bin/env -u PATH python3 \"$@\"\n",
            markers.join("fake-python").display()
        );
        for name in ["python", "python3", "uv", "vllm"] {
            let p = root.join("bin").join(name);
            std::fs::write(&p, &fake_python).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(root.join("secret/id_rsa"), SECRET).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.patch")).unwrap();
        std::fs::write(
            root.join("evil.patch"),
            "--- a/vllm/../../../../evil.py\n+++ b/vllm/../../../../evil.py\n@@ -0,0 +1 @@\n+x\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../secret/id_rsa", root.join("datasets/link.json")).unwrap();
        let rows = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let v: Value = serde_json::from_str(l).unwrap();
                let subject = v["commit_subject"].as_str().unwrap().to_string();
                Row {
                    line: i + 1,
                    commit: v["commit_hash"].as_str().unwrap().to_string(),
                    class: subject[1..subject.find(']').unwrap()].to_string(),
                }
            })
            .collect();
        Bait { dir, rows }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn dataset(&self) -> PathBuf {
        self.root().join("hostile.jsonl")
    }

    /// Rows that must be refused when the dataset is loaded.
    fn hostile(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|r| !["benign", "runtime", "patchfile"].contains(&r.class.as_str()))
    }

    /// The row of a class found only later (when a file is read).
    fn row(&self, class: &str) -> &Row {
        self.rows.iter().find(|r| r.class == class).unwrap()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_perf-runner"));
        c.current_dir(self.root())
            .env_remove("PERF_RUNNER_LOG")
            .env(
                "PERF_RUNNER__INPUTS__DATASET_ROOTS",
                self.root().join("datasets"),
            )
            .args([
                "--store",
                self.root().join("results.sqlite").to_str().unwrap(),
            ]);
        c
    }

    /// Nothing the bait holds has run, and the secret was copied nowhere under `dirs`.
    fn assert_untouched(&self, dirs: &[&Path]) {
        let ran: Vec<_> = std::fs::read_dir(self.root().join("markers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(ran.is_empty(), "hostile code ran: {ran:?}");
        for d in dirs {
            for f in walk(d) {
                let bytes = std::fs::read(&f).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(SECRET),
                    "the secret was copied to {}",
                    f.display()
                );
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_fixture_covers_every_class_with_at_least_thirty_hostile_rows() {
    let b = Bait::new();
    assert!(b.hostile().count() >= 30, "{}", b.hostile().count());
    let classes: std::collections::BTreeSet<&str> = b.hostile().map(|r| r.class.as_str()).collect();
    for c in [
        "env", "script", "dataset", "path", "code", "shell", "control", "patch", "identity",
    ] {
        assert!(classes.contains(c), "no {c} row");
    }
}

#[test]
fn tasks_triage_and_plan_refuse_every_hostile_row_with_its_fix() {
    let b = Bait::new();
    // tasks: rejected rows name line and field; refused commands name token and fix.
    let o = b
        .cmd()
        .args(["tasks", b.dataset().to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "rows are rejected: {}", text(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tasks: BTreeMap<u64, &Value> = out["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["line"].as_u64().unwrap(), t))
        .collect();
    let errors: BTreeMap<u64, &Value> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e))
        .collect();
    for r in &b.rows {
        let line = r.line as u64;
        match r.class.as_str() {
            "benign" | "runtime" | "patchfile" => {
                assert_eq!(tasks[&line]["status"], "ok", "line {line}")
            }
            "patch" | "identity" => {
                let e = errors
                    .get(&line)
                    .unwrap_or_else(|| panic!("line {line} ({}) not rejected", r.class));
                let field = if r.class == "patch" {
                    "patch"
                } else {
                    "commit_hash"
                };
                assert_eq!(e["field"], field, "line {line}");
                assert!(e["message"].as_str().unwrap().len() > 40, "{e}");
            }
            class => {
                let t = tasks[&line];
                let detail = t["detail"].as_str().unwrap_or_default();
                assert!(
                    t["status"] == "bad_config" || t["status"] == "dataset_missing",
                    "line {line} ({class}): {t}"
                );
                if class != "shell" {
                    assert!(
                        detail.contains("refused by the input policy") && detail.contains("fix:"),
                        "line {line} ({class}): {detail}"
                    );
                }
            }
        }
    }
    // triage: every hostile task is not verifiable, with a fix; rejected rows are listed.
    let o = b
        .cmd()
        .args(["triage", b.dataset().to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let out: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let verdicts: BTreeMap<&str, &Value> = out["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["commit"].as_str().unwrap(), t))
        .collect();
    for r in b
        .hostile()
        .filter(|r| r.class != "patch" && r.class != "identity")
    {
        let t = verdicts[r.commit.as_str()];
        assert_eq!(t["verdict"], "not_verifiable", "line {}: {t}", r.line);
        let reason = &t["reasons"][0];
        assert!(
            !reason["fix"].as_str().unwrap_or_default().is_empty(),
            "{reason}"
        );
    }
    assert_eq!(verdicts[b.rows[0].commit.as_str()]["verdict"], "verifiable");
    // plan: a task failure (exit 4) with its code, for every hostile command.
    for r in b
        .hostile()
        .filter(|r| r.class != "patch" && r.class != "identity")
    {
        let o = b
            .cmd()
            .args(["plan", b.dataset().to_str().unwrap(), &r.commit])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(4), "line {}: {}", r.line, text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("[bad_config]") || err.contains("[dataset_missing]"),
            "line {}: {err}",
            r.line
        );
    }
    // The patch whose diff climbs out of the tree is refused when plan reads it.
    let evil = b.row("patchfile");
    let o = b
        .cmd()
        .args(["plan", b.dataset().to_str().unwrap(), &evil.commit])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("agent patch refused at line 1") && text(&o).contains("fix:"),
        "{}",
        text(&o)
    );
    // Nothing ran and nothing was provided: no data or artifact folder was even made.
    b.assert_untouched(&[]);
    assert!(!b.root().join("data").exists() && !b.root().join("art").exists());
}

/// The control row's builds: the baseline at its parent, the human build at its commit.
const BASE_VERSION: &str = "0.6.3.dev1+gf508e03";
const HUMAN_VERSION: &str = "0.6.3.dev2+g7179b99";

fn standin(version: &str) -> StandinConfig {
    StandinConfig {
        version: version.into(),
        startup_ms: 150,
        log_interval_ms: 100,
        ..StandinConfig::default()
    }
}

const TIMEOUTS: &str = "[plan]\nwarmup_prompts = 2\n\
                        [timeouts]\nserver_ready_s = 20\nbenchmark_s = 60\nprepare_s = 300\n";

#[test]
fn a_forced_batch_runs_the_control_row_and_nothing_hostile() {
    let b = Bait::new();
    let root = b.root();
    // Wheels whose versions name the control row's commits, as real per-commit builds do.
    let wheel = |sub: &str, version: &str| -> PathBuf {
        let out = root.join(sub);
        std::fs::create_dir_all(&out).unwrap();
        let binary = standin_binary();
        let config = standin(version);
        build_standin_wheel(&out, &StandinBuild { config, binary }).unwrap()
    };
    let base = wheel("wb", BASE_VERSION);
    let human = wheel("wh", HUMAN_VERSION);
    let toml = format!(
        "[local]\ncache_dir = {cache:?}\ncpu_only = true\nstop_grace_ms = 2000\n\
         [local.wheels]\nbaseline = {base:?}\nhuman = {human:?}\n{TIMEOUTS}",
        cache = root.join("cache"),
    );
    std::fs::write(root.join("perf-runner.toml"), toml).unwrap();
    forced_batch(&b, &[]);
}

#[test]
fn a_forced_batch_on_docker_runs_the_control_row_and_nothing_hostile() {
    if !common::docker::available(
        "a_forced_batch_on_docker_runs_the_control_row_and_nothing_hostile",
    ) {
        return;
    }
    let b = Bait::new();
    let root = b.root();
    let (base, human) = (
        "perf-runner-test/hostile-standin:baseline",
        "perf-runner-test/hostile-standin:human",
    );
    common::docker::standin_image(base, &standin(BASE_VERSION));
    common::docker::standin_image(human, &standin(HUMAN_VERSION));
    let toml = format!(
        "[docker]\npull = \"never\"\ncpu_only = true\nhf_cache = {hf:?}\n\
         [docker.images]\nbaseline = {base:?}\nhuman = {human:?}\n{TIMEOUTS}",
        hf = root.join("hf-cache"),
    );
    std::fs::write(root.join("perf-runner.toml"), toml).unwrap();
    let run = forced_batch(&b, &["--backend", "docker"]);
    assert!(
        common::docker::containers(&run.0).is_empty(),
        "containers left: {:?}",
        common::docker::containers(&run.0)
    );
}

/// `batch --force` over the whole fixture: the control row runs, the link out of the dataset
/// root fails `dataset_missing`, the patch climbing out of the tree fails its task, no hostile
/// row gets a job, nothing ran and the secret was copied nowhere. Returns the run.
fn forced_batch(b: &Bait, extra: &[&str]) -> RunId {
    let root = b.root();
    let (art, data) = (root.join("art"), root.join("data"));
    let o = b
        .cmd()
        .args([
            "batch",
            b.dataset().to_str().unwrap(),
            "--force",
            "--repeats",
            "1",
        ])
        .args(["--artifacts", art.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "some tasks fail: {}", text(&o));
    let store = Store::open(&root.join("results.sqlite")).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    let attempts = store.attempts(&runs[0].id).unwrap();
    let by_commit = |c: &str| attempts.iter().filter(|a| a.job.commit == c).count();
    // The control row ran, both variants.
    let control = &b.rows[0].commit;
    let ok: Vec<_> = attempts
        .iter()
        .filter(|a| &a.job.commit == control)
        .collect();
    assert_eq!(ok.len(), 2, "{}", text(&o));
    assert!(
        ok.iter().all(|a| a.succeeded()),
        "{:?}",
        ok[0].failure_detail
    );
    // The link out of the dataset root: dataset_missing for every job, nothing copied.
    let runtime = b.row("runtime");
    let linked: Vec<_> = attempts
        .iter()
        .filter(|a| a.job.commit == runtime.commit)
        .collect();
    assert!(!linked.is_empty());
    for a in &linked {
        assert_eq!(
            a.failure,
            Some(Failure::DatasetMissing),
            "{:?}",
            a.failure_detail
        );
        assert!(
            a.failure_detail
                .as_deref()
                .unwrap_or_default()
                .contains("link out of it")
        );
    }
    // No hostile row got a job, let alone an attempt.
    let jobs = store.jobs(&runs[0].id).unwrap();
    for r in b.hostile() {
        assert_eq!(by_commit(&r.commit), 0, "line {} ({}) ran", r.line, r.class);
        assert!(
            jobs.iter().all(|(j, _)| j.commit != r.commit),
            "line {} ({}) was planned",
            r.line,
            r.class
        );
    }
    assert!(
        jobs.iter().all(|(_, s)| *s != JobStatus::Running),
        "{jobs:?}"
    );
    // The patch climbing out of the tree fails its task only, before any job.
    let evil = b.row("patchfile");
    assert_eq!(by_commit(&evil.commit), 0);
    let rows = store.tasks(&runs[0].id).unwrap();
    let row = rows.iter().find(|t| t.commit == evil.commit).unwrap();
    assert_eq!(row.status, runner_core::record::TaskStatus::Failed);
    assert!(row.detail.starts_with("patch_failed: "), "{}", row.detail);
    assert!(!data.join("link.json").exists() && !data.join("id_rsa").exists());
    b.assert_untouched(&[&art, &data, &root.join("cache")]);
    runs[0].id.clone()
}
