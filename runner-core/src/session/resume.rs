//! Taking a stored run up again: its planned tasks' plans, each checked against a fresh plan.

use super::{Choices, Planning, Session, SessionError, Skip};
use crate::plan::TaskPlan;
use crate::record::TaskStatus;
use crate::task::{Task, Variant};

impl Session<'_> {
    /// The stored plans of the run's planned tasks, in the store's order. Each task is planned
    /// again from `tasks` (today's dataset) and `settings`; its step fingerprint must be the one
    /// stored, or the resume is refused — a resumed run measures exactly what it started to. A
    /// planned commit that is no longer in the dataset, or that no backend takes any more, is
    /// refused too; so is one whose attempts ran on another backend than the one the planner (the
    /// `auto` router) gives it now: one task's variants never mix backends.
    pub async fn resume(&self, tasks: &[Task]) -> Result<Vec<TaskPlan>, SessionError> {
        let Session {
            store,
            run,
            settings,
            planner,
            ..
        } = *self;
        let refuse = |why: String| SessionError::Resume {
            run: run.0.clone(),
            why,
        };
        let attempts = store.attempts(run)?;
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
            let ran_on = attempts
                .iter()
                .find(|a| a.job.commit == row.commit)
                .map(|a| a.backend.as_str());
            if let (Some(ran), Some(now)) = (ran_on, planner.backend_of(&row.commit)) {
                if ran != now {
                    return Err(refuse(format!(
                        "{}: its attempts ran on backend {ran}, and `auto` gives it to {now} now (a \
                     backend's availability changed); resume where {ran} is usable, or start a new run",
                        row.commit
                    )));
                }
            }
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

    /// On a resume, plan the tasks that a signal kept from being planned when the run started
    /// (skipped as interrupted), as [`Session::plan`] would have: their rows and jobs join the run.
    /// A commit no longer in the dataset stays skipped.
    pub async fn plan_interrupted(
        &self,
        tasks: &[Task],
        choices: &Choices,
    ) -> Result<Planning, SessionError> {
        let interrupted = Skip::Interrupted.to_string();
        let wanted: Vec<Task> = self
            .store
            .tasks(self.run)?
            .iter()
            .filter(|r| r.status == TaskStatus::Skipped && r.detail == interrupted)
            .filter_map(|r| tasks.iter().find(|t| t.commit == r.commit).cloned())
            .collect();
        if wanted.is_empty() {
            return Ok(Planning::default());
        }
        self.plan(&wanted, choices).await
    }
}
