//! Planning a new run: the triage gate, the skip list, agent patches, planning, and the rows
//! and jobs every task leaves in the store.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Choices, Planning, Session, SessionError, Skip, TaskOutcome};
use crate::build::PatchSpec;
use crate::engine::interleaved_jobs;
use crate::failure::Failure;
use crate::record::TaskStatus;
use crate::settings::{Limits, Settings};
use crate::store::TaskRow;
use crate::task::{Task, Variant};
use crate::triage::{TriageOptions, TriageReport, Verdict, triage_dataset};

/// The commits of a skip list (`<commit> <code> <detail>` per line, `#` comments), lower case.
/// The file is untrusted input: read at most `limits.max_dataset_bytes`, and only a regular
/// file.
pub fn read_skip_list(path: &Path, limits: &Limits) -> Result<BTreeSet<String>, SessionError> {
    let text = crate::input::read_text(path, limits.dataset())
        .map_err(|e| SessionError::Input(format!("--skip-list {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| !c.starts_with('#'))
        .map(str::to_ascii_lowercase)
        .collect())
}

/// Why an agent patch cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PatchFileError {
    /// It cannot be read (missing, not a regular file, over `limits.max_patch_bytes`).
    #[error("cannot read the agent patch '{path}': {source}")]
    Read {
        /// The patch file.
        path: String,
        /// Why.
        #[source]
        source: crate::input::InputError,
    },
    /// It leaves the source tree or makes links.
    #[error("'{path}': {source}")]
    Unsafe {
        /// The patch file.
        path: String,
        /// What it does.
        #[source]
        source: crate::patch::UnsafePatch,
    },
}

/// An agent patch as planned: its path and the sha256 of its bytes, after the safety check
/// (a patch that leaves the tree or makes links is refused here, before any run).
pub fn patch_spec(path: &Path, limits: &Limits) -> Result<PatchSpec, PatchFileError> {
    let shown = || path.display().to_string();
    let bytes =
        crate::input::read_capped(path, limits.patch()).map_err(|source| PatchFileError::Read {
            path: shown(),
            source,
        })?;
    crate::patch::check_safety(&String::from_utf8_lossy(&bytes)).map_err(|source| {
        PatchFileError::Unsafe {
            path: shown(),
            source,
        }
    })?;
    Ok(PatchSpec {
        path: shown(),
        sha256: Some(crate::digest::sha256_hex(&bytes)),
    })
}

/// Triage's options for a run: the settings' artifact sources and dataset catalogue, offline.
pub fn triage_options(settings: &Settings) -> TriageOptions {
    TriageOptions {
        datasets: settings.datasets.clone(),
        ..TriageOptions::from_sources(settings.artifacts.clone())
    }
}

/// Why triage says a task cannot be verified (its primary reason), if it says so.
fn not_verifiable(report: &TriageReport, commit: &str) -> Option<String> {
    let t = report.tasks.iter().find(|t| t.commit == commit)?;
    if t.verdict != Verdict::NotVerifiable {
        return None;
    }
    t.primary().map(|r| format!("{}: {}", r.code, r.detail))
}

fn listed(skip: &BTreeSet<String>, commit: &str) -> bool {
    skip.iter()
        .any(|s| commit.starts_with(s.as_str()) || s.starts_with(commit))
}

impl Session<'_> {
    /// Plan every task of the new run (see the module docs of [`crate::session`]): each task
    /// gets a row in the store; a planned one also its plan and its interleaved jobs.
    pub async fn plan(&self, tasks: &[Task], choices: &Choices) -> Result<Planning, SessionError> {
        let Session {
            store,
            run,
            settings,
            planner,
            cancel,
        } = *self;
        let report = triage_dataset(tasks, &triage_options(settings)).await;
        let mut out = Planning::default();
        for t in tasks {
            let row = |status: TaskStatus, detail: String| TaskRow {
                commit: t.commit.clone(),
                line: t.source_line,
                subject: t.subject.clone(),
                status,
                detail,
                step_fingerprint: None,
                plan: None,
            };
            let skipped = |why: Skip| TaskOutcome::Skipped {
                commit: t.commit.clone(),
                why,
            };
            if cancel.is_cancelled() {
                store.put_task(
                    run,
                    &row(TaskStatus::Skipped, Skip::Interrupted.to_string()),
                )?;
                out.outcomes.push(skipped(Skip::Interrupted));
                continue;
            }
            if !choices.force && listed(&choices.skip, &t.commit) {
                store.put_task(run, &row(TaskStatus::Skipped, Skip::Listed.to_string()))?;
                out.outcomes.push(skipped(Skip::Listed));
                continue;
            }
            if let Some(why) = not_verifiable(&report, &t.commit).filter(|_| !choices.force) {
                let why = Skip::NotVerifiable(why);
                store.put_task(run, &row(TaskStatus::Skipped, why.to_string()))?;
                out.outcomes.push(skipped(why));
                continue;
            }
            let patch_path = choices.patch.clone().or_else(|| t.patch.clone());
            let variants = match &choices.variants {
                Some(v) => v.clone(),
                None if patch_path.is_some() => Variant::ALL.to_vec(),
                None => vec![Variant::Baseline, Variant::Human],
            };
            let patch = match &patch_path {
                Some(p) if variants.contains(&Variant::Agent) => {
                    match patch_spec(p, &settings.limits) {
                        Ok(spec) => Some(spec),
                        Err(e) => {
                            // One task's unusable patch fails that task, not the batch.
                            let code = Failure::PatchFailed;
                            let detail = e.to_string();
                            store.put_task(
                                run,
                                &row(TaskStatus::Failed, format!("{code}: {detail}")),
                            )?;
                            out.outcomes.push(TaskOutcome::Failed {
                                commit: t.commit.clone(),
                                code,
                                detail,
                            });
                            continue;
                        }
                    }
                }
                _ => None,
            };
            let mut t = t.clone();
            crate::catalogue::inject(&mut t, &settings.datasets);
            match planner.plan(&t, &variants, settings, patch).await {
                Ok(Err(why)) => {
                    let why = Skip::NoBackend(why);
                    store.put_task(run, &row(TaskStatus::Skipped, why.to_string()))?;
                    out.outcomes.push(skipped(why));
                }
                Ok(Ok(p)) => {
                    let plan = serde_json::to_string(&p)
                        .map_err(|e| SessionError::Input(format!("plan of {}: {e}", t.commit)))?;
                    store.put_task(
                        run,
                        &TaskRow {
                            step_fingerprint: Some(p.step_fingerprint.clone()),
                            plan: Some(plan),
                            ..row(TaskStatus::Planned, String::new())
                        },
                    )?;
                    store.add_jobs(
                        run,
                        &interleaved_jobs(&p.commit, &variants, choices.repeats, choices.aa),
                    )?;
                    out.outcomes.push(TaskOutcome::Planned {
                        commit: t.commit.clone(),
                        warnings: p.warnings.iter().map(ToString::to_string).collect(),
                        backend: planner.backend_of(&p.commit),
                    });
                    out.plans.push(p);
                }
                Err(e) => {
                    let code = e.failure();
                    store.put_task(run, &row(TaskStatus::Failed, format!("{code}: {e}")))?;
                    out.outcomes.push(TaskOutcome::Failed {
                        commit: t.commit.clone(),
                        code,
                        detail: e.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }
}
