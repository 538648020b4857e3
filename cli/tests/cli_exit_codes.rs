//! Every documented exit code (`runner_core::exit`) from a command that produces it, and the
//! error text it prints (once, not doubled).

use std::path::Path;
use std::process::{Command, Output};

use runner_core::exit;

fn perf_runner(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .current_dir(dir)
        .env_remove("PERF_RUNNER_LOG")
        .args(["--store", dir.join("results.sqlite").to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn success_is_0_and_a_bad_flag_is_2() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        perf_runner(d.path(), &["tasks"]).status.code(),
        Some(exit::SUCCESS)
    );
    let o = perf_runner(d.path(), &["tasks", "--nope"]);
    assert_eq!(o.status.code(), Some(exit::USAGE), "{}", stderr(&o));
    // No store yet: a file that cannot be read is an input error.
    let o = perf_runner(d.path(), &["report", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(
        o.status.code(),
        Some(exit::INPUT),
        "no store: {}",
        stderr(&o)
    );
    std::fs::write(
        d.path().join("perf-runner.toml"),
        "[local]\ncpu_only = true\n",
    )
    .unwrap();
    let o = perf_runner(
        d.path(),
        &[
            "run",
            "--commit",
            "e3580537a41a46b0f3cd750b86b633c1857a8c90",
            "--parent",
            "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a",
            "--perf-command",
            "vllm bench serve --model MODEL",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(exit::TASKS_FAILED),
        "a task that cannot be planned: {}",
        stderr(&o)
    );
    let o = perf_runner(d.path(), &["report", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(
        o.status.code(),
        Some(exit::INPUT),
        "no such run: {}",
        stderr(&o)
    );
    let o = perf_runner(d.path(), &["report", "not/a/run"]);
    assert_eq!(
        o.status.code(),
        Some(exit::USAGE),
        "a malformed id: {}",
        stderr(&o)
    );
}

#[test]
fn a_missing_dataset_is_an_input_error_said_once() {
    let d = tempfile::tempdir().unwrap();
    let o = perf_runner(d.path(), &["tasks", "missing.jsonl"]);
    assert_eq!(o.status.code(), Some(exit::INPUT), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    // Rows rejected: the rest is listed, the exit says some were not taken.
    std::fs::write(
        d.path().join("d.jsonl"),
        "{\"commit_hash\": \"not a hash\"}\n",
    )
    .unwrap();
    let o = perf_runner(d.path(), &["tasks", "d.jsonl"]);
    assert_eq!(o.status.code(), Some(exit::INPUT), "{}", stderr(&o));
}

#[test]
fn a_corrupt_store_is_an_internal_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("results.sqlite"), vec![0x5a; 4096]).unwrap();
    let o = perf_runner(d.path(), &["runs"]);
    assert_eq!(o.status.code(), Some(exit::INTERNAL), "{}", stderr(&o));
}

#[test]
fn a_run_without_gpus_is_refused_before_it_is_written() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("perf-runner.toml"),
        "[local]\nnvidia_smi = \"/nonexistent/nvidia-smi\"\ncpu_only = false\n",
    )
    .unwrap();
    let o = perf_runner(d.path(), &["run", "e3580537"]);
    assert_eq!(
        o.status.code(),
        Some(exit::BACKEND_UNAVAILABLE),
        "{}",
        stderr(&o)
    );
    let e = stderr(&o);
    assert!(
        e.contains("not usable here") && e.contains("no GPU found"),
        "{e}"
    );
    let o = perf_runner(d.path(), &["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(0),
        "no run left behind: {runs}"
    );
    let o = perf_runner(d.path(), &["doctor", "--backend", "local"]);
    assert_eq!(
        o.status.code(),
        Some(exit::BACKEND_UNAVAILABLE),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_setting_names_its_key_and_variable() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .current_dir(d.path())
        .env("PERF_RUNNER__ENGINE__CONCURRENCY", "abc")
        .args(["config"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(exit::USAGE));
    let e = stderr(&o);
    assert!(
        e.contains("engine.concurrency") && e.contains("PERF_RUNNER__ENGINE__CONCURRENCY"),
        "{e}"
    );
}
