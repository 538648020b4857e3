//! The batch session taking a run up again, on a real store: the resume check that refuses a
//! run whose plan changed, a task that would move to another backend, and what a signal does
//! to planning (the tasks not planned yet are skipped as interrupted, and a resume plans them).

#[path = "report_support.rs"]
mod support;

use async_trait::async_trait;
use runner_core::build::PatchSpec;
use runner_core::plan::{PlanError, TaskPlan};
use runner_core::record::TaskStatus;
use runner_core::session::{Direct, Planner, SessionError, Skip, TaskOutcome};
use runner_core::settings::Settings;
use runner_core::task::{Task, Variant};
use tokio_util::sync::CancellationToken;

mod session_support;
use session_support::*;

#[tokio::test]
async fn a_resume_gets_the_stored_plans_and_refuses_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = tasks_a_and_b(dir.path());
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
    let tasks = tasks_a_and_b(dir.path());
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
    let tasks = tasks_a_and_b(dir.path());
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
