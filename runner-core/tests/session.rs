//! The batch session (`runner_core::session`) on a real store: what each task's planning
//! leaves in the store (rows, plans, fingerprints, interleaved jobs), the triage gate, the skip
//! list, one bad patch failing one task, a planner that can place no task, and the resume
//! check that refuses a run whose plan changed.

use std::path::Path;

use async_trait::async_trait;
use runner_core::Failure;
use runner_core::build::PatchSpec;
use runner_core::dataset::Dataset;
use runner_core::plan::{PlanError, TaskPlan};
use runner_core::record::{JobStatus, RunId, TaskStatus};
use runner_core::session::{
    self, Choices, Direct, Planner, Session, SessionError, Skip, TaskOutcome,
};
use runner_core::settings::Settings;
use runner_core::store::Store;
use runner_core::task::{Task, Variant};
use tokio_util::sync::CancellationToken;

#[path = "report_support.rs"]
mod support;

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";
const ROCM: &str = "3333333333333333333333333333333333333333";
const PARENT: &str = "9999999999999999999999999999999999999999";

fn row(commit: &str, files: &[&str], patch: Option<&str>) -> String {
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

fn dataset(dir: &Path, rows: &[String]) -> Vec<Task> {
    let ds = Dataset::from_str_with(
        &rows.join("\n"),
        "session-test",
        dir,
        &Settings::embedded().inputs,
    );
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    ds.tasks
}

fn new_run(dir: &Path) -> (Store, RunId) {
    let store = Store::open(&dir.join("s.db")).unwrap();
    let run = RunId::generate();
    store
        .create_run(&run, "local", "session-test", &serde_json::json!({}))
        .unwrap();
    (store, run)
}

/// The session of `run`.
fn at<'a>(
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
fn go() -> CancellationToken {
    CancellationToken::new()
}

fn choices(repeats: u32, aa: bool) -> Choices {
    Choices {
        repeats,
        aa,
        ..Choices::default()
    }
}

#[tokio::test]
async fn every_task_gets_a_row_and_planned_ones_their_interleaved_jobs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.diff"),
        "--- a/../../etc/x\n+++ b/../../etc/x\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    let tasks = dataset(
        dir.path(),
        &[
            row(A, &["vllm/worker.py"], None),
            row(B, &["vllm/worker.py"], Some("bad.diff")),
            row(ROCM, &["csrc/rocm/attention.cu", "Dockerfile.rocm"], None),
        ],
    );
    let (store, run) = new_run(dir.path());
    let settings = Settings::embedded();
    let planning = at(&store, &run, &settings, &Direct, &go())
        .plan(&tasks, &choices(3, true))
        .await
        .unwrap();

    // A: planned, its plan and fingerprint stored, 2 variants × 3 repeats + 3 A/A jobs.
    assert_eq!(planning.plans.len(), 1);
    assert_eq!(planning.plans[0].commit, A);
    let rows = store.tasks(&run).unwrap();
    let a = rows.iter().find(|r| r.commit == A).unwrap();
    assert_eq!(a.status, TaskStatus::Planned);
    let stored: TaskPlan = serde_json::from_str(a.plan_json().unwrap()).unwrap();
    assert_eq!(stored.step_fingerprint, planning.plans[0].step_fingerprint);
    assert_eq!(
        a.step_fingerprint.as_deref(),
        Some(stored.step_fingerprint.as_str())
    );
    let jobs = store.jobs(&run).unwrap();
    assert_eq!(jobs.len(), 9, "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|(j, s)| j.commit == A && *s == JobStatus::Pending)
    );
    // Interleaved: each repeat's variants come together, in order.
    let order: Vec<(u32, Variant, bool)> = jobs
        .iter()
        .map(|(j, _)| (j.repeat, j.variant, j.aa))
        .collect();
    assert_eq!(
        order[0..3],
        [
            (0, Variant::Baseline, false),
            (0, Variant::Human, false),
            (0, Variant::Baseline, true)
        ]
    );

    // B: the patch leaves the tree, so B alone fails (patch_failed), naming the file.
    let b = rows.iter().find(|r| r.commit == B).unwrap();
    assert_eq!(b.status, TaskStatus::Failed);
    assert!(b.detail.starts_with("patch_failed: "), "{}", b.detail);
    assert!(matches!(
        &planning.outcomes[1],
        TaskOutcome::Failed { code: Failure::PatchFailed, detail, .. } if detail.contains("bad.diff")
    ));

    // The ROCm-only commit: triage says not verifiable, so it is skipped with the reason.
    let r = rows.iter().find(|r| r.commit == ROCM).unwrap();
    assert_eq!(r.status, TaskStatus::Skipped);
    assert!(
        r.detail.starts_with("triage: rocm_specific"),
        "{}",
        r.detail
    );
    assert!(matches!(
        &planning.outcomes[2],
        TaskOutcome::Skipped { why: Skip::NotVerifiable(w), .. } if w.starts_with("rocm_specific")
    ));
    assert_eq!(planning.unroutable(), 0);
}

#[tokio::test]
async fn the_skip_list_skips_by_prefix_and_force_runs_everything() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("skip.txt"),
        "# commit code detail\n11111111 server_failed seen before\n",
    )
    .unwrap();
    let tasks = dataset(
        dir.path(),
        &[
            row(A, &["vllm/worker.py"], None),
            row(ROCM, &["csrc/rocm/attention.cu", "Dockerfile.rocm"], None),
        ],
    );
    let settings = Settings::embedded();
    let skip = session::read_skip_list(&dir.path().join("skip.txt"), &settings.limits).unwrap();
    assert_eq!(skip.len(), 1);

    let (store, run) = new_run(dir.path());
    let listed = Choices {
        skip: skip.clone(),
        ..choices(1, false)
    };
    let p = at(&store, &run, &settings, &Direct, &go())
        .plan(&tasks, &listed)
        .await
        .unwrap();
    assert!(p.plans.is_empty());
    assert_eq!(
        p.outcomes[0],
        TaskOutcome::Skipped {
            commit: A.into(),
            why: Skip::Listed
        }
    );
    assert!(store.jobs(&run).unwrap().is_empty());

    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let (store, run) = new_run(&second);
    let forced = Choices {
        skip,
        force: true,
        ..choices(1, false)
    };
    let p = at(&store, &run, &settings, &Direct, &go())
        .plan(&tasks, &forced)
        .await
        .unwrap();
    assert_eq!(p.plans.len(), 2, "{:?}", p.outcomes);
    assert_eq!(store.jobs(&run).unwrap().len(), 4);
}

/// A planner that can place no task (as `auto` when no backend here has the GPUs).
struct Nowhere;

#[async_trait]
impl Planner for Nowhere {
    async fn plan(
        &self,
        _: &Task,
        _: &[Variant],
        _: &Settings,
        _: Option<PatchSpec>,
    ) -> Result<Result<TaskPlan, String>, PlanError> {
        Ok(Err("local: no H100 here; docker: no engine".into()))
    }
}

#[tokio::test]
async fn a_task_no_backend_takes_is_skipped_with_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dataset(dir.path(), &[row(A, &["vllm/worker.py"], None)]);
    let (store, run) = new_run(dir.path());
    let p = at(&store, &run, &Settings::embedded(), &Nowhere, &go())
        .plan(&tasks, &choices(1, false))
        .await
        .unwrap();
    assert_eq!(p.unroutable(), 1);
    let rows = store.tasks(&run).unwrap();
    assert_eq!(rows[0].status, TaskStatus::Skipped);
    assert!(
        rows[0].detail.contains("no H100 here"),
        "{}",
        rows[0].detail
    );
    let code = session::exit_code(
        &Default::default(),
        &session::Ending {
            planned: 0,
            unplanned: 1,
            unroutable: p.unroutable(),
        },
    );
    assert_eq!(code, runner_core::exit::BACKEND_UNAVAILABLE);
}

#[tokio::test]
async fn a_resume_gets_the_stored_plans_and_refuses_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dataset(
        dir.path(),
        &[
            row(A, &["vllm/worker.py"], None),
            row(B, &["vllm/worker.py"], None),
        ],
    );
    let (store, run) = new_run(dir.path());
    let settings = Settings::embedded();
    let first = at(&store, &run, &settings, &Direct, &go())
        .plan(&tasks, &choices(2, false))
        .await
        .unwrap();
    let again = at(&store, &run, &settings, &Direct, &go())
        .resume(&tasks)
        .await
        .unwrap();
    assert_eq!(again, first.plans);

    // A longer benchmark limit changes the step, so the run cannot be resumed as it was.
    let mut edited = settings.clone();
    edited.timeouts.benchmark_s += 1;
    let e = at(&store, &run, &edited, &Direct, &go())
        .resume(&tasks)
        .await
        .unwrap_err();
    assert!(matches!(e, SessionError::Resume { .. }), "{e}");
    assert!(
        e.to_string().contains("changed since the run started"),
        "{e}"
    );

    // A planned commit gone from the dataset.
    let e = at(&store, &run, &settings, &Direct, &go())
        .resume(&tasks[..1])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("commit {B} is no longer in the dataset")),
        "{e}"
    );

    // A corrupt stored plan is named, not a panic.
    let mut rows = store.tasks(&run).unwrap();
    rows[0].plan = Some("{not json".into());
    store.put_task(&run, &rows[0]).unwrap();
    let e = at(&store, &run, &settings, &Direct, &go())
        .resume(&tasks)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not decode"), "{e}");
}

#[tokio::test]
async fn a_signal_during_planning_skips_the_rest_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dataset(
        dir.path(),
        &[
            row(A, &["vllm/worker.py"], None),
            row(B, &["vllm/worker.py"], None),
        ],
    );
    let (store, run) = new_run(dir.path());
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let p = at(&store, &run, &Settings::embedded(), &Direct, &cancelled)
        .plan(&tasks, &choices(1, false))
        .await
        .unwrap();
    assert!(p.plans.is_empty());
    assert!(p.outcomes.iter().all(|o| matches!(
        o,
        TaskOutcome::Skipped {
            why: Skip::Interrupted,
            ..
        }
    )));
    let rows = store.tasks(&run).unwrap();
    assert_eq!(rows.len(), 2, "every task keeps a row");
    assert!(rows.iter().all(
        |r| r.status == TaskStatus::Skipped && r.detail == "interrupted before it was planned"
    ));
    assert!(store.jobs(&run).unwrap().is_empty());
}

/// Plans like [`Direct`], cancelling `token` once it planned one task (a signal mid-planning),
/// and says every task goes to `backend` (as the `auto` router would).
struct SignalAfterOne {
    token: CancellationToken,
    backend: &'static str,
}

#[async_trait]
impl Planner for SignalAfterOne {
    async fn plan(
        &self,
        task: &Task,
        variants: &[Variant],
        settings: &Settings,
        patch: Option<PatchSpec>,
    ) -> Result<Result<TaskPlan, String>, PlanError> {
        let p = Direct.plan(task, variants, settings, patch).await;
        self.token.cancel();
        p
    }

    fn backend_of(&self, _: &str) -> Option<String> {
        Some(self.backend.to_string())
    }
}

#[tokio::test]
async fn a_resume_plans_what_a_signal_kept_from_being_planned() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dataset(
        dir.path(),
        &[
            row(A, &["vllm/worker.py"], None),
            row(B, &["vllm/worker.py"], None),
        ],
    );
    let (store, run) = new_run(dir.path());
    let settings = Settings::embedded();
    let token = CancellationToken::new();
    let signal = SignalAfterOne {
        token: token.clone(),
        backend: "local",
    };
    let first = at(&store, &run, &settings, &signal, &token)
        .plan(&tasks, &choices(2, false))
        .await
        .unwrap();
    // A was planned before the signal and keeps its plan and jobs; B was not.
    assert_eq!(first.plans.len(), 1);
    assert_eq!(first.plans[0].commit, A);
    assert_eq!(
        first.outcomes[1],
        TaskOutcome::Skipped {
            commit: B.into(),
            why: Skip::Interrupted
        }
    );
    assert_eq!(store.jobs(&run).unwrap().len(), 4);

    // The resume keeps A's plan and plans B now, with its jobs.
    let stored = at(&store, &run, &settings, &Direct, &go())
        .resume(&tasks)
        .await
        .unwrap();
    assert_eq!(stored, first.plans);
    let more = at(&store, &run, &settings, &Direct, &go())
        .plan_interrupted(&tasks, &choices(2, false))
        .await
        .unwrap();
    assert_eq!(more.plans.len(), 1);
    assert_eq!(more.plans[0].commit, B);
    assert_eq!(store.jobs(&run).unwrap().len(), 8);
    let rows = store.tasks(&run).unwrap();
    assert!(
        rows.iter().all(|r| r.status == TaskStatus::Planned),
        "{rows:?}"
    );
    // Nothing is left to plan the next time.
    let none = at(&store, &run, &settings, &Direct, &go())
        .plan_interrupted(&tasks, &choices(2, false))
        .await
        .unwrap();
    assert!(none.outcomes.is_empty());
}

#[tokio::test]
async fn a_resume_refuses_a_task_that_would_move_to_another_backend() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dataset(dir.path(), &[row(A, &["vllm/worker.py"], None)]);
    let (store, run) = new_run(dir.path());
    let settings = Settings::embedded();
    let plans = at(&store, &run, &settings, &Direct, &go())
        .plan(&tasks, &choices(2, false))
        .await
        .unwrap()
        .plans;
    // One attempt ran on `local`.
    let job = store.jobs(&run).unwrap()[0].0.clone();
    let mut rec = support::record(&run, &job, 1, 0, &[("avg_latency_s", 1.0)], None);
    rec.backend = "local".into();
    store
        .record_attempt(&rec, runner_core::record::JobStatus::Succeeded)
        .unwrap();

    // Routed to the same backend: resumed; to another one: refused, naming both.
    let same = SignalAfterOne {
        token: CancellationToken::new(),
        backend: "local",
    };
    assert_eq!(
        at(&store, &run, &settings, &same, &go())
            .resume(&tasks)
            .await
            .unwrap(),
        plans
    );
    let moved = SignalAfterOne {
        token: CancellationToken::new(),
        backend: "slurm",
    };
    let e = at(&store, &run, &settings, &moved, &go())
        .resume(&tasks)
        .await
        .unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("ran on backend local") && e.contains("gives it to slurm"),
        "{e}"
    );
}
