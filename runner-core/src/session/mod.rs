//! A batch session: everything between "these tasks, these choices" and the engine's jobs, and
//! the run's exit code after it — the same for every front end (the CLI parses arguments and
//! prints what a session returns; it decides nothing here).
//!
//! - [`Session::plan`] plans a new run: triage gates what it calls not verifiable (unless
//!   `force`), a skip list skips its commits, an unusable agent patch fails its one task, a task
//!   no backend can take here is skipped with every backend's reason; a planned task gets its
//!   plan (own column), its step fingerprint and its interleaved job rows. Every task gets a
//!   row, and a [`TaskOutcome`] says what happened to it — also when a signal interrupts the
//!   planning: the tasks not planned yet are skipped as interrupted (a resume runs the planned
//!   ones; the report names the rest).
//! - [`Session::resume`] takes a stored run up again: each planned task is planned afresh and
//!   must give the same step fingerprint (and, routed, the same backend its attempts ran on),
//!   or the resume is refused (the dataset or the settings changed since);
//!   [`Session::plan_interrupted`] plans the tasks a signal kept from being planned.
//! - [`engine_options`] turns the settings and the run's choices into the engine's options.
//! - [`exit_code`] says how the run ends, in the codes of [`crate::exit`].
//!
//! Planning goes through a [`Planner`]: [`Direct`] plans for one backend; a front end with a
//! router (the CLI's `--backend auto`) gives its own.

mod plan;
mod resume;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::build::PatchSpec;
use crate::engine::{EngineOptions, EngineSummary, RetryPolicy};
use crate::failure::Failure;
use crate::plan::{PlanError, TaskPlan, plan_task};
use crate::record::RunId;
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::task::{Task, Variant};
use tokio_util::sync::CancellationToken;

pub use plan::{PatchFileError, patch_spec, read_skip_list, triage_options};

/// One run's session: where it is recorded, its settings, how it plans, and the signal that
/// stops it. [`Session::plan`] plans a new run, [`Session::resume`] takes one up again,
/// [`Session::plan_interrupted`] plans what a signal kept from being planned.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    /// The results store.
    pub store: &'a Store,
    /// The run.
    pub run: &'a RunId,
    /// The settings the plans are made with (for the run's backend).
    pub settings: &'a Settings,
    /// How each task is planned.
    pub planner: &'a dyn Planner,
    /// Cancelled by a signal: planning stops between tasks.
    pub cancel: &'a CancellationToken,
}

/// How a session plans one task.
#[async_trait]
pub trait Planner: Send + Sync {
    /// Plan `task` (`Ok(Err(why))`: no backend can take it here, with every reason).
    async fn plan(
        &self,
        task: &Task,
        variants: &[Variant],
        settings: &Settings,
        patch: Option<PatchSpec>,
    ) -> Result<Result<TaskPlan, String>, PlanError>;

    /// The backend a planned task was given, when the planner chooses one per task.
    fn backend_of(&self, commit: &str) -> Option<String> {
        let _ = commit;
        None
    }
}

/// Plans every task for the one backend the settings were made for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

#[async_trait]
impl Planner for Direct {
    async fn plan(
        &self,
        task: &Task,
        variants: &[Variant],
        settings: &Settings,
        patch: Option<PatchSpec>,
    ) -> Result<Result<TaskPlan, String>, PlanError> {
        plan_task(task, variants, settings, patch).map(Ok)
    }
}

/// What a run was asked to do with its tasks.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// The variants (`None`: baseline and human, plus the agent when a patch is given).
    pub variants: Option<Vec<Variant>>,
    /// Measured repeats per variant.
    pub repeats: u32,
    /// Also an A/A baseline per repeat.
    pub aa: bool,
    /// One agent patch for every task (else each task's own).
    pub patch: Option<PathBuf>,
    /// Run what triage calls not verifiable, and what the skip list names.
    pub force: bool,
    /// Commits (or prefixes, lower case) to skip.
    pub skip: std::collections::BTreeSet<String>,
}

/// What a session did with one task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// Planned: its jobs are in the store.
    Planned {
        /// The task's commit.
        commit: String,
        /// The planner's warnings (flags it moved, assumptions it made).
        warnings: Vec<String>,
        /// The backend it was given, when the planner routes.
        backend: Option<String>,
    },
    /// Skipped, with why (and never run).
    Skipped {
        /// The task's commit.
        commit: String,
        /// Why.
        why: Skip,
    },
    /// Not plannable: the failure code and what went wrong.
    Failed {
        /// The task's commit.
        commit: String,
        /// The failure code.
        code: Failure,
        /// What went wrong.
        detail: String,
    },
}

/// Why a task was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The skip list names it.
    Listed,
    /// Triage says it cannot be verified (its primary reason: `code: detail`).
    NotVerifiable(String),
    /// No backend can take it here (every backend's reason).
    NoBackend(String),
    /// The run was interrupted (a signal) before the task was planned.
    Interrupted,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Listed => f.write_str("listed in the skip list"),
            Skip::NotVerifiable(why) => write!(f, "triage: {why}"),
            Skip::NoBackend(why) => write!(f, "not verifiable here: {why}"),
            Skip::Interrupted => f.write_str("interrupted before it was planned"),
        }
    }
}

/// A new run's planning: the plans of its planned tasks and what happened to each task.
#[derive(Debug, Clone, Default)]
pub struct Planning {
    /// Plans of the planned tasks, in dataset order.
    pub plans: Vec<TaskPlan>,
    /// One outcome per task, in order.
    pub outcomes: Vec<TaskOutcome>,
}

impl Planning {
    /// Tasks no backend could take here.
    pub fn unroutable(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    TaskOutcome::Skipped {
                        why: Skip::NoBackend(_),
                        ..
                    }
                )
            })
            .count()
    }
}

/// Errors that stop a session (not one task's failure).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An input the whole run depends on is unusable (a skip list, a stored plan).
    #[error("{0}")]
    Input(String),
    /// A resumed run cannot go on as it was started.
    #[error("--resume {run}: {why}")]
    Resume {
        /// The run.
        run: String,
        /// Why, and what to do.
        why: String,
    },
    /// Planning failed for a reason that is not one task's.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// The engine's options for a run: the settings' `[engine]` section, the run's choices, and
/// where artifacts and dataset files go.
pub fn engine_options(
    settings: &Settings,
    choices: &Choices,
    concurrency: Option<usize>,
    budget_gpu_hours: Option<f64>,
    adaptive: bool,
    artifact_root: PathBuf,
    data_dir: PathBuf,
) -> EngineOptions {
    let e = &settings.engine;
    let secs = |s: f64| Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 });
    EngineOptions {
        repeats: choices.repeats,
        aa: choices.aa,
        retry: RetryPolicy {
            max_attempts: e.max_attempts.max(1),
            base_delay: secs(e.retry_base_s),
            max_delay: secs(e.retry_max_s),
            max_wall: secs(e.retry_wall_s),
        },
        concurrency: concurrency.unwrap_or(e.concurrency).max(1),
        artifact_root,
        data_dir,
        dataset_roots: settings.inputs.dataset_roots.clone(),
        budget_gpu_seconds: budget_gpu_hours.map(|h| h * 3600.0),
        adaptive: adaptive.then(|| crate::stats::AdaptiveOptions {
            max_repeats: choices.repeats as usize,
            floor: e.noise_floor,
            ..crate::stats::AdaptiveOptions::default()
        }),
        servers: e.servers,
        burn_in: e.burn_in,
    }
}

/// What decides a run's exit code besides the engine's summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending {
    /// Tasks planned (run or not).
    pub planned: usize,
    /// Tasks skipped or not plannable.
    pub unplanned: usize,
    /// Tasks no backend could take here.
    pub unroutable: usize,
}

/// How a run ends: interrupted; no backend here for any task; some job, task or plan failed
/// or was not run; or success.
pub fn exit_code(summary: &EngineSummary, ending: &Ending) -> i32 {
    use crate::exit;
    if summary.cancelled {
        exit::INTERRUPTED
    } else if ending.unroutable > 0 && ending.planned == 0 {
        exit::BACKEND_UNAVAILABLE
    } else if summary.failed > 0 || summary.not_run > 0 || ending.unplanned > 0 {
        exit::TASKS_FAILED
    } else {
        exit::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_classes() {
        let ok = EngineSummary::default();
        let all = Ending {
            planned: 2,
            ..Ending::default()
        };
        assert_eq!(exit_code(&ok, &all), crate::exit::SUCCESS);
        let cancelled = EngineSummary {
            cancelled: true,
            failed: 1,
            ..EngineSummary::default()
        };
        assert_eq!(exit_code(&cancelled, &all), crate::exit::INTERRUPTED);
        let none_here = Ending {
            unroutable: 1,
            unplanned: 1,
            ..Ending::default()
        };
        assert_eq!(exit_code(&ok, &none_here), crate::exit::BACKEND_UNAVAILABLE);
        let one_skipped = Ending {
            planned: 1,
            unplanned: 1,
            unroutable: 1,
        };
        assert_eq!(exit_code(&ok, &one_skipped), crate::exit::TASKS_FAILED);
        let failed = EngineSummary {
            failed: 1,
            ..EngineSummary::default()
        };
        assert_eq!(exit_code(&failed, &all), crate::exit::TASKS_FAILED);
    }

    #[test]
    fn non_finite_retry_settings_do_not_panic() {
        let mut s = Settings::default();
        s.engine.retry_base_s = f64::NAN;
        s.engine.retry_max_s = f64::INFINITY;
        let o = engine_options(
            &s,
            &Choices::default(),
            None,
            None,
            false,
            PathBuf::from("a"),
            PathBuf::from("d"),
        );
        assert_eq!(o.retry.base_delay, Duration::ZERO);
        assert!(o.concurrency >= 1);
    }
}
