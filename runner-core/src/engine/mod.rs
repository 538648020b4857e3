//! The engine: jobs = task × variant × repeat, interleaved (B H A B H A …) inside one lease of
//! the GPUs a task needs; tasks run concurrently up to a limit; transient failures retried;
//! every attempt recorded; Ctrl-C stops new work and records `cancelled`.

mod attempt;
pub mod datasets;
mod folders;
pub mod retry;
mod vet;
mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, GpuLease, NoProgress, PreparedEnv, ProgressSink, RunContext};
use crate::failure::Failure;
use crate::plan::{ClientBuild, TaskPlan};
use crate::record::{JobKey, JobStatus, RunId};
use crate::settings::{Limits, Servers};
use crate::store::{Store, StoreError};
use crate::task::Variant;
use warm::Exec;

pub use retry::RetryPolicy;

/// How long a cancelled `acquire` gets to undo what it started before it is dropped.
const ACQUIRE_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// How the engine runs a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineOptions {
    /// Measured repeats per variant.
    pub repeats: u32,
    /// Also run the baseline a second time per repeat (A/A) to measure the noise floor.
    pub aa: bool,
    /// Transient-failure retries.
    pub retry: RetryPolicy,
    /// Tasks run at once (each still needs its GPUs from the backend).
    pub concurrency: usize,
    /// Root of the artifact directories.
    pub artifact_root: PathBuf,
    /// Where dataset files are provided (`{DATA_DIR}`).
    pub data_dir: PathBuf,
    /// The only folders dataset files are taken from (the setting `inputs.dataset_roots`):
    /// relative paths in commands resolve against them in order; nothing outside them is ever
    /// copied into `data_dir` (which Docker mounts and Modal uploads).
    #[serde(default)]
    pub dataset_roots: Vec<PathBuf>,
    /// Stop scheduling once this many GPU·seconds were spent.
    pub budget_gpu_seconds: Option<f64>,
    /// Adaptive repeats: after each interleaved round, stop once human vs baseline is decided
    /// (the jobs up to `repeats` are planned; the rest are recorded `not_needed`).
    #[serde(default)]
    pub adaptive: Option<crate::stats::AdaptiveOptions>,
    /// How serving steps get their servers (the setting `engine.servers`).
    #[serde(default)]
    pub servers: crate::settings::Servers,
    /// Warm servers: run the measured client's workload once after each server start,
    /// recorded in the server's folder and not scored (the setting `engine.burn_in`).
    #[serde(default)]
    pub burn_in: bool,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EngineSummary {
    /// Jobs that produced metrics.
    pub succeeded: u32,
    /// Jobs that failed (deterministically or after retries).
    pub failed: u32,
    /// Jobs not run because of cancellation or the budget.
    pub not_run: u32,
    /// Jobs adaptive repeats found unnecessary.
    pub not_needed: u32,
    /// Attempts made.
    pub attempts: u32,
    /// GPU·seconds spent.
    pub gpu_seconds: f64,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    /// Whether the budget stopped scheduling.
    pub budget_exhausted: bool,
}

/// Errors that stop the engine itself (not a job's failure).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The artifact directory of a task in a run: `<root>/<run>/<commit>`, with the whole commit
/// (two commits sharing a prefix never share a directory; see [`crate::build::name_part`]).
pub fn task_dir(root: &std::path::Path, run: &RunId, commit: &str) -> PathBuf {
    root.join(&run.0)
        .join(crate::build::name_part(commit).as_ref())
}

/// The jobs of a task in interleaved order: for each repeat, each variant (and the A/A
/// baseline right after the variants).
pub fn interleaved_jobs(commit: &str, variants: &[Variant], repeats: u32, aa: bool) -> Vec<JobKey> {
    let mut jobs = Vec::new();
    for repeat in 0..repeats {
        for &variant in variants {
            jobs.push(JobKey {
                commit: commit.to_string(),
                variant,
                repeat,
                aa: false,
            });
        }
        if aa && variants.contains(&Variant::Baseline) {
            jobs.push(JobKey {
                commit: commit.to_string(),
                variant: Variant::Baseline,
                repeat,
                aa: true,
            });
        }
    }
    jobs
}

/// The engine.
#[derive(Debug, Clone)]
pub struct Engine {
    backend: Arc<dyn Backend>,
    store: Arc<Store>,
    opts: EngineOptions,
    progress: Arc<dyn ProgressSink>,
    spent_millis: Arc<AtomicU64>,
    limits: Limits,
}

impl Engine {
    /// An engine over a backend and a store.
    pub fn new(backend: Arc<dyn Backend>, store: Arc<Store>, opts: EngineOptions) -> Self {
        Engine {
            backend,
            store,
            opts,
            progress: Arc::new(NoProgress),
            spent_millis: Arc::new(AtomicU64::new(0)),
            limits: Limits::default(),
        }
    }

    /// Cap the result files and logs read after each attempt (`limits.max_result_bytes`; a
    /// larger result file is not read, a larger log is read from its end).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Send progress events to `sink`.
    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.progress = sink;
        self
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Run every unfinished job of the given planned tasks (jobs must already be in the store;
    /// see [`Store::add_jobs`]). Finished jobs are never repeated.
    pub async fn run(
        &self,
        run: &RunId,
        plans: &[TaskPlan],
        cancel: &CancellationToken,
    ) -> Result<EngineSummary, EngineError> {
        let jobs = self.store.jobs(run)?;
        let mut by_task: BTreeMap<&str, Vec<JobKey>> = BTreeMap::new();
        for (job, status) in &jobs {
            if status.needs_resume() {
                by_task
                    .entry(job.commit.as_str())
                    .or_default()
                    .push(job.clone());
            }
        }
        let work: Vec<(&TaskPlan, Vec<JobKey>)> = plans
            .iter()
            .filter_map(|p| by_task.get(p.commit.as_str()).map(|j| (p, j.clone())))
            .collect();
        let results: Vec<Result<EngineSummary, EngineError>> = futures::stream::iter(work)
            .map(|(plan, jobs)| {
                let span = tracing::info_span!("task", commit = %plan.commit);
                tracing::Instrument::instrument(self.run_task(run, plan, jobs, cancel), span)
            })
            .buffer_unordered(self.opts.concurrency.max(1))
            .collect()
            .await;
        let mut total = EngineSummary::default();
        for r in results {
            let s = r?;
            total.succeeded += s.succeeded;
            total.failed += s.failed;
            total.not_run += s.not_run;
            total.not_needed += s.not_needed;
            total.attempts += s.attempts;
            total.gpu_seconds += s.gpu_seconds;
            total.budget_exhausted |= s.budget_exhausted;
        }
        total.cancelled = cancel.is_cancelled();
        Ok(total)
    }

    fn finished_all(&self, jobs: &[JobKey], status: JobStatus) {
        for j in jobs {
            self.progress.job_finished(j, status);
        }
    }

    fn budget_left(&self) -> bool {
        match self.opts.budget_gpu_seconds {
            Some(b) => (self.spent_millis.load(Ordering::Relaxed) as f64 / 1000.0) < b,
            None => true,
        }
    }

    fn context(
        &self,
        run: &RunId,
        plan: &TaskPlan,
        lease: &GpuLease,
        cancel: &CancellationToken,
        dir: PathBuf,
    ) -> RunContext {
        let mut labels = BTreeMap::new();
        labels.insert("run-id".to_string(), run.0.clone());
        labels.insert("task".to_string(), plan.commit.clone());
        RunContext {
            cancel: cancel.clone(),
            deadline: None,
            artifact_dir: dir,
            data_dir: self.opts.data_dir.clone(),
            lease: lease.clone(),
            labels,
            progress: self.progress.clone(),
        }
    }

    async fn run_task(
        &self,
        run: &RunId,
        plan: &TaskPlan,
        jobs: Vec<JobKey>,
        cancel: &CancellationToken,
    ) -> Result<EngineSummary, EngineError> {
        let mut summary = EngineSummary::default();
        let task_dir = task_dir(&self.opts.artifact_root, run, &plan.commit);
        let mut t = attempt::TaskRun::new(self, run, plan, &task_dir);
        if cancel.is_cancelled() || !self.budget_left() {
            summary.not_run = jobs.len() as u32;
            summary.budget_exhausted = !self.budget_left();
            return Ok(summary);
        }
        // Datasets before any GPU is held: a missing file fails every job at once.
        let datasets = match datasets::provide(
            &plan.step.datasets,
            &self.opts.data_dir,
            &self.opts.dataset_roots,
        ) {
            Ok(d) => d,
            Err(msg) => {
                t.fail_all(&jobs, Failure::DatasetMissing, &msg, &mut summary)?;
                self.finished_all(&jobs, JobStatus::Failed);
                return Ok(summary);
            }
        };
        t.datasets = datasets;
        self.progress.event(
            "lease",
            &format!(
                "{}: waiting for {} GPU(s)",
                &plan.commit[..8.min(plan.commit.len())],
                plan.step.gpu.count
            ),
        );
        let cx = self.context(run, plan, &GpuLease::default(), cancel, task_dir.clone());
        let acquire = self.backend.acquire(&plan.step.gpu, &cx);
        tokio::pin!(acquire);
        let lease = tokio::select! {
            r = &mut acquire => r,
            _ = cancel.cancelled() => {
                // The backend sees the cancellation too: let it undo what it started (a
                // scheduler's allocation granted meanwhile) instead of dropping it half-way,
                // and give back a lease it got anyway.
                if let Ok(Ok(lease)) = tokio::time::timeout(ACQUIRE_GRACE, &mut acquire).await {
                    if let Err(e) = self.backend.release(lease).await {
                        tracing::warn!(error = %e, "releasing GPUs failed");
                    }
                }
                t.cancel_all(&jobs, &mut summary)?;
                return Ok(summary);
            }
        };
        let lease = match lease {
            Ok(l) => l,
            Err(e) => {
                t.fail_all(&jobs, e.kind, &e.message, &mut summary)?;
                self.finished_all(&jobs, JobStatus::Failed);
                return Ok(summary);
            }
        };
        t.lease = lease.clone();
        let result = self
            .run_leased(&mut t, plan, &jobs, cancel, &mut summary)
            .await;
        if let Err(e) = self.backend.release(lease).await {
            tracing::warn!(error = %e, "releasing GPUs failed");
        }
        result.map(|_| summary)
    }

    async fn run_leased(
        &self,
        t: &mut attempt::TaskRun<'_>,
        plan: &TaskPlan,
        jobs: &[JobKey],
        cancel: &CancellationToken,
        summary: &mut EngineSummary,
    ) -> Result<(), EngineError> {
        // Prepare every build the jobs need, plus the fixed client build (serving).
        let mut needed: Vec<Variant> = jobs.iter().map(|j| j.variant).collect();
        needed.sort();
        needed.dedup();
        let served = needed.clone();
        if let ClientBuild::Fixed(v) = plan.step.client_build {
            needed.push(v);
        }
        needed.sort();
        needed.dedup();
        let mut envs: BTreeMap<Variant, Result<PreparedEnv, (Failure, String)>> = BTreeMap::new();
        for v in needed {
            envs.insert(v, t.prepare(v, cancel).await);
        }
        let why = match (plan.step.server.is_some(), self.opts.servers) {
            (false, _) => None,
            (true, Servers::Restart) => Some("the setting engine.servers = restart".to_string()),
            (true, Servers::Warm) => {
                let ready: Vec<Variant> = served
                    .into_iter()
                    .filter(|v| matches!(envs.get(v), Some(Ok(_))))
                    .collect();
                let dir = t.dir().to_path_buf();
                let opened = warm::Pool::open(
                    self,
                    t.run_id(),
                    plan,
                    &t.lease,
                    &ready,
                    &envs,
                    &dir,
                    cancel,
                )
                .await;
                match opened {
                    Ok(mut pool) => {
                        let (ordered, orders) = warm::rotate(jobs, pool.seed);
                        pool.orders = orders;
                        let r = self
                            .run_jobs(
                                t,
                                plan,
                                &ordered,
                                &envs,
                                &mut Exec::Warm(&mut pool),
                                cancel,
                                summary,
                            )
                            .await;
                        let starts = pool.starts();
                        pool.close().await;
                        tracing::info!(task = %plan.commit, ?starts, "warm servers stopped");
                        return r;
                    }
                    Err(warm::NoPool::Cancelled) => {
                        t.cancel_all(jobs, summary)?;
                        return Ok(());
                    }
                    Err(warm::NoPool::Fallback(why)) => {
                        tracing::warn!(task = %plan.commit, "no warm servers: {why}");
                        self.progress
                            .event("server", &format!("a server per job: {why}"));
                        Some(why)
                    }
                }
            }
        };
        // A server per job: the rounds rotate too (seeded, recorded). On the GPU host, a
        // restart A/A whose copy always started second (after the other's teardown) came out
        // 25 % slower in all 3 rounds.
        let (ordered, order) = match &why {
            Some(_) => {
                let seed = warm::seed(t.run_id(), &plan.commit);
                let (ordered, orders) = warm::rotate(jobs, seed);
                (ordered, Some((seed, orders)))
            }
            None => (jobs.to_vec(), None),
        };
        self.run_jobs(
            t,
            plan,
            &ordered,
            &envs,
            &mut Exec::Restart { why, order },
            cancel,
            summary,
        )
        .await
    }

    /// Run the jobs in order, each on the build prepared for it, their servers from `exec`.
    #[allow(clippy::too_many_arguments)]
    async fn run_jobs(
        &self,
        t: &mut attempt::TaskRun<'_>,
        plan: &TaskPlan,
        jobs: &[JobKey],
        envs: &BTreeMap<Variant, Result<PreparedEnv, (Failure, String)>>,
        exec: &mut Exec<'_>,
        cancel: &CancellationToken,
        summary: &mut EngineSummary,
    ) -> Result<(), EngineError> {
        for (i, job) in jobs.iter().enumerate() {
            if cancel.is_cancelled() {
                t.cancel_all(&jobs[i..], summary)?;
                return Ok(());
            }
            if !self.budget_left() {
                summary.not_run += (jobs.len() - i) as u32;
                summary.budget_exhausted = true;
                return Ok(());
            }
            let client_variant = match plan.step.client_build {
                ClientBuild::Fixed(v) => v,
                ClientBuild::SameAsVariant => job.variant,
            };
            let engine_env = envs.get(&job.variant).cloned();
            let client_env = envs.get(&client_variant).cloned();
            let status = match (engine_env, client_env) {
                (Some(Ok(engine)), Some(Ok(client))) => {
                    t.run_job(job, engine, client, cancel, summary, exec)
                        .await?
                }
                (Some(Err((code, msg))), _) | (_, Some(Err((code, msg)))) => {
                    t.fail_all(std::slice::from_ref(job), code, &msg, summary)?;
                    JobStatus::Failed
                }
                _ => {
                    t.fail_all(
                        std::slice::from_ref(job),
                        Failure::Unknown,
                        "no environment prepared",
                        summary,
                    )?;
                    JobStatus::Failed
                }
            };
            self.progress.job_finished(job, status);
            if status == JobStatus::Cancelled {
                t.cancel_all(&jobs[i + 1..], summary)?;
                return Ok(());
            }
            let round_done = jobs.get(i + 1).is_none_or(|next| next.repeat != job.repeat);
            if round_done && self.adaptive_stop(t.run_id(), plan)? {
                for rest in &jobs[i + 1..] {
                    self.store
                        .set_job_status(t.run_id(), rest, JobStatus::NotNeeded)?;
                    summary.not_needed += 1;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// With adaptive repeats: whether the human-vs-baseline verdict on the primary metric is
    /// decided after the rounds so far, so the remaining rounds are not needed.
    fn adaptive_stop(&self, run: &RunId, plan: &TaskPlan) -> Result<bool, EngineError> {
        let Some(opts) = &self.opts.adaptive else {
            return Ok(false);
        };
        let primary = crate::primary::for_step(&plan.step);
        let key = primary.metric.as_str();
        let attempts = self.store.attempts(run)?;
        let values = |v: Variant| -> Vec<f64> {
            attempts
                .iter()
                .filter(|a| a.job.commit == plan.commit && a.job.variant == v && !a.job.aa)
                .filter_map(|a| a.metrics.get(key))
                .collect()
        };
        let decision = crate::stats::should_continue(
            &values(Variant::Baseline),
            &values(Variant::Human),
            crate::metrics::higher_is_better(key),
            opts,
        );
        let stop = matches!(decision, crate::stats::Decision::Stop { .. });
        if stop {
            tracing::info!(task = %plan.commit, ?decision, "adaptive repeats: decided");
        }
        Ok(stop)
    }
}
