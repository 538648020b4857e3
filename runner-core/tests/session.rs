//! The batch session (`runner_core::session::Session`) planning a new run on a real store: what
//! each task's planning leaves in the store (rows, plans, fingerprints, interleaved jobs), the
//! triage gate, the skip list, one bad patch failing one task, and a planner that can place no
//! task.

use async_trait::async_trait;
use runner_core::Failure;
use runner_core::build::PatchSpec;
use runner_core::plan::{PlanError, TaskPlan};
use runner_core::record::{JobStatus, TaskStatus};
use runner_core::session::{self, Choices, Direct, Planner, Skip, TaskOutcome};
use runner_core::settings::Settings;
use runner_core::task::{Task, Variant};

mod session_support;
use session_support::*;

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
