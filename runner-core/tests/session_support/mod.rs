//! Shared by the session tests (`session.rs`, `session_resume.rs`): a dataset of rows that
//! plan, a fresh run in a real store, and the session of a run.

#![allow(dead_code)]

use std::path::Path;

use runner_core::dataset::Dataset;
use runner_core::record::RunId;
use runner_core::session::{Choices, Planner, Session};
use runner_core::settings::Settings;
use runner_core::store::Store;
use runner_core::task::Task;
use tokio_util::sync::CancellationToken;

pub const A: &str = "1111111111111111111111111111111111111111";
pub const B: &str = "2222222222222222222222222222222222222222";
pub const ROCM: &str = "3333333333333333333333333333333333333333";
pub const PARENT: &str = "9999999999999999999999999999999999999999";

pub fn row(commit: &str, files: &[&str], patch: Option<&str>) -> String {
    serde_json::json!({
        "commit_hash": commit,
        "parent_commit": PARENT,
        "commit_subject": format!("task {}", &commit[..4]),
        "perf_command": "python benchmarks/benchmark_latency.py --model facebook/opt-125m --batch-size 8",
        "files_changed": files,
        "gpu_config": "H100:1",
        "patch_path": patch,
    })
    .to_string()
}

pub fn dataset(dir: &Path, rows: &[String]) -> Vec<Task> {
    let ds = Dataset::from_str_with(
        &rows.join("\n"),
        "session-test",
        dir,
        &Settings::embedded().inputs,
    );
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    ds.tasks
}

pub fn new_run(dir: &Path) -> (Store, RunId) {
    let store = Store::open(&dir.join("s.db")).unwrap();
    let run = RunId::generate();
    store
        .create_run(&run, "local", "session-test", &serde_json::json!({}))
        .unwrap();
    (store, run)
}

/// The session of `run`.
pub fn at<'a>(
    store: &'a Store,
    run: &'a RunId,
    settings: &'a Settings,
    planner: &'a dyn Planner,
    cancel: &'a CancellationToken,
) -> Session<'a> {
    Session {
        store,
        run,
        settings,
        planner,
        cancel,
    }
}

/// A cancellation token nobody cancels.
pub fn go() -> CancellationToken {
    CancellationToken::new()
}

pub fn choices(repeats: u32, aa: bool) -> Choices {
    Choices {
        repeats,
        aa,
        ..Choices::default()
    }
}

/// Two plain tasks, `A` and `B`, that plan.
pub fn tasks_a_and_b(dir: &Path) -> Vec<Task> {
    dataset(
        dir,
        &[
            row(A, &["vllm/worker.py"], None),
            row(B, &["vllm/worker.py"], None),
        ],
    )
}
