//! Taking a stored run up again: its planned tasks' plans, each checked against a fresh plan.

use super::{Planner, SessionError};
use crate::plan::TaskPlan;
use crate::record::{RunId, TaskStatus};
use crate::settings::Settings;
use crate::store::Store;
use crate::task::{Task, Variant};

/// The stored plans of `run`'s planned tasks, in the store's order. Each task is planned
/// again from `tasks` (today's dataset) and `settings`; its step fingerprint must be the one
/// stored, or the resume is refused — a resumed run measures exactly what it started to. A
/// planned commit that is no longer in the dataset, or that no backend takes any more, is
/// refused too.
pub async fn resume_plans(
    store: &Store,
    run: &RunId,
    tasks: &[Task],
    settings: &Settings,
    planner: &dyn Planner,
) -> Result<Vec<TaskPlan>, SessionError> {
    let refuse = |why: String| SessionError::Resume {
        run: run.0.clone(),
        why,
    };
    let mut plans = Vec::new();
    for row in store
        .tasks(run)?
        .iter()
        .filter(|r| r.status == TaskStatus::Planned)
    {
        let json = row.plan_json().unwrap_or_default();
        let plan: TaskPlan = serde_json::from_str(json).map_err(|e| {
            SessionError::Input(format!(
                "results store: the stored plan of {} does not decode: {e}",
                row.commit
            ))
        })?;
        let Some(task) = tasks.iter().find(|t| t.commit == row.commit) else {
            return Err(refuse(format!(
                "commit {} is no longer in the dataset",
                row.commit
            )));
        };
        let variants: Vec<Variant> = plan.builds.iter().map(|b| b.variant).collect();
        let patch = plan.builds.iter().find_map(|b| b.patch.clone());
        let mut task = task.clone();
        crate::catalogue::inject(&mut task, &settings.datasets);
        let fresh = match planner.plan(&task, &variants, settings, patch).await? {
            Ok(p) => p,
            Err(why) => return Err(refuse(format!("{}: {why}", row.commit))),
        };
        if fresh.step_fingerprint != plan.step_fingerprint {
            return Err(refuse(format!(
                "the plan of {} changed since the run started (dataset or settings edited); start a new run",
                row.commit
            )));
        }
        plans.push(plan);
    }
    Ok(plans)
}
