//! One task inside its lease: preparing builds and running jobs, attempt by attempt, each
//! recorded.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::warm::Exec;
use super::{Engine, EngineError, EngineSummary, folders, vet};
use crate::backend::{BackendError, GpuLease, JobEnvs, PreparedEnv, StepOutput};
use crate::benchmark::{OutputSource, RunOutput, SourceKind};
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::plan::TaskPlan;
use crate::record::{AttemptRecord, DatasetHash, JobKey, JobStatus, RunId, ServeMode, ServeRecord};
use crate::stepkit::AttemptFiles;
use crate::store::PrepareTry;
use crate::task::Variant;

/// State of one task while it runs.
pub(super) struct TaskRun<'a> {
    engine: &'a Engine,
    run: &'a RunId,
    plan: &'a TaskPlan,
    dir: PathBuf,
    pub(super) datasets: Vec<DatasetHash>,
    pub(super) lease: GpuLease,
}

/// What one attempt produced.
struct Outcome {
    failure: Option<(Failure, String, Vec<String>)>,
    metrics: Metrics,
    output: Option<StepOutput>,
    serve: Option<ServeRecord>,
}

impl Outcome {
    /// A failure without any output.
    fn failed(code: Failure, msg: String) -> Outcome {
        Outcome {
            failure: Some((code, msg, Vec::new())),
            metrics: Metrics::new(),
            output: None,
            serve: None,
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl<'a> TaskRun<'a> {
    pub(super) fn new(engine: &'a Engine, run: &'a RunId, plan: &'a TaskPlan, dir: &Path) -> Self {
        TaskRun {
            engine,
            run,
            plan,
            dir: dir.to_path_buf(),
            datasets: Vec::new(),
            lease: GpuLease::default(),
        }
    }

    /// The task's artifact folder.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run this task belongs to.
    pub(super) fn run_id(&self) -> &'a RunId {
        self.run
    }

    fn gpus(&self) -> f64 {
        self.lease
            .devices
            .len()
            .max(self.plan.step.gpu.count as usize) as f64
    }

    fn record(
        &self,
        job: &JobKey,
        attempt: u32,
        env: Option<&PreparedEnv>,
        started: (String, Instant),
        out: Outcome,
        status: JobStatus,
    ) -> Result<f64, EngineError> {
        let wall = started.1.elapsed().as_secs_f64();
        // A warm server's start before any job is charged to its first attempt.
        let setup = out.serve.as_ref().map_or(0.0, |s| s.setup_charged_s);
        let gpu_seconds = (wall + setup) * self.gpus();
        self.engine
            .spent_millis
            .fetch_add((gpu_seconds * 1000.0) as u64, Ordering::Relaxed);
        let (failure, detail, evidence) = match out.failure {
            Some((f, d, e)) => (Some(f), Some(d), e),
            None => (None, None, Vec::new()),
        };
        let step = &self.plan.step;
        let rec = AttemptRecord {
            run_id: self.run.clone(),
            job: job.clone(),
            attempt,
            started_at: started.0,
            finished_at: now(),
            backend: self
                .engine
                .backend
                .backend_of(&self.plan.commit)
                .to_string(),
            host: out.output.as_ref().and_then(|o| o.host.clone()),
            gpu_names: out
                .output
                .as_ref()
                .map(|o| o.gpu_names.clone())
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| self.lease.devices.iter().map(|d| d.name.clone()).collect()),
            build_identity: env.map(|e| e.identity.clone()).unwrap_or_default(),
            engine_version: env.and_then(|e| e.engine_version.clone()),
            build_digest: env.and_then(|e| e.digest.clone()),
            step_fingerprint: self.plan.step_fingerprint.clone(),
            client_argv: step.client.argv.clone(),
            server_argv: step.server.as_ref().map(|s| {
                let mut argv = s.argv.clone();
                if out
                    .serve
                    .as_ref()
                    .is_some_and(|r| r.mode == ServeMode::Sleep)
                {
                    argv.push(crate::stepkit::warm::SLEEP_FLAG.to_string());
                }
                argv
            }),
            datasets: self.datasets.clone(),
            warmed_up: step.warmup.is_some() && out.output.is_some(),
            failure,
            failure_detail: detail,
            evidence,
            metrics: out.metrics,
            artifact_dir: self.job_dir(job, attempt).display().to_string(),
            wall_s: wall,
            benchmark_s: out
                .output
                .as_ref()
                .map(|o| o.benchmark_seconds)
                .unwrap_or(0.0),
            gpu_seconds,
            cost_usd: out.output.as_ref().and_then(|o| o.cost_usd),
            serve: out.serve,
        };
        self.engine.store.record_attempt(&rec, status)?;
        Ok(gpu_seconds)
    }

    fn job_dir(&self, job: &JobKey, attempt: u32) -> PathBuf {
        folders::job_dir(&self.dir, job, attempt)
    }

    /// Record a failure for every job without running it.
    pub(super) fn fail_all(
        &self,
        jobs: &[JobKey],
        code: Failure,
        msg: &str,
        summary: &mut EngineSummary,
    ) -> Result<(), EngineError> {
        for job in jobs {
            let out = Outcome::failed(code, msg.to_string());
            let status = if code.is_transient() {
                JobStatus::FailedTransient
            } else {
                JobStatus::Failed
            };
            let n = self.engine.store.attempt_count(self.run, job)? + 1;
            // Its own folder too, so the record never points at another attempt's files.
            let n = folders::fresh(&self.dir, job, n).map_or(n, |(n, _)| n);
            summary.gpu_seconds +=
                self.record(job, n, None, (now(), Instant::now()), out, status)?;
            summary.failed += 1;
            summary.attempts += 1;
        }
        Ok(())
    }

    /// Mark jobs cancelled (resume runs them again).
    pub(super) fn cancel_all(
        &self,
        jobs: &[JobKey],
        summary: &mut EngineSummary,
    ) -> Result<(), EngineError> {
        for job in jobs {
            self.engine
                .store
                .set_job_status(self.run, job, JobStatus::Cancelled)?;
            summary.not_run += 1;
        }
        Ok(())
    }

    /// Prepare a variant's build, retrying transient failures.
    pub(super) async fn prepare(
        &self,
        v: Variant,
        cancel: &CancellationToken,
    ) -> Result<PreparedEnv, (Failure, String)> {
        let Some(build) = self.plan.builds.iter().find(|b| b.variant == v).cloned() else {
            return Err((Failure::BadConfig, format!("no build planned for {v}")));
        };
        let started = Instant::now();
        // A resumed run numbers on from the tries it made before.
        let mut attempt = self
            .engine
            .store
            .prepare_try_count(self.run, &self.plan.commit, v)
            .unwrap_or(0)
            + 1;
        // Every try is kept in the store (its own table: a build belongs to a variant, not to
        // one job) and in `prepare-<variant>/attempts.json` beside the build's logs.
        let mut tries: Vec<PrepareTry> = Vec::new();
        let dir = self.dir.join(format!("prepare-{v}"));
        let span = tracing::info_span!("prepare", variant = %v, build = %build.identity);
        loop {
            let mut cx = self
                .engine
                .context(self.run, self.plan, &self.lease, cancel, dir.clone());
            // The prepare phase has its own deadline (download, install, image pull).
            cx.deadline = Some(
                Instant::now() + std::time::Duration::from_secs(self.plan.step.timeouts.prepare_s),
            );
            self.engine
                .progress
                .event("prepare", &format!("{v}: {}", build.identity));
            let (at, t0) = (now(), Instant::now());
            let r = tokio::select! {
                r = tracing::Instrument::instrument(self.engine.backend.prepare(&build, &cx), span.clone()) => r,
                _ = cancel.cancelled() => Err(BackendError::new(self.engine.backend.name(), Failure::Cancelled, "cancelled while preparing")),
            };
            let this = PrepareTry {
                commit: self.plan.commit.clone(),
                variant: v,
                build: build.identity.clone(),
                attempt,
                started_at: at,
                finished_at: now(),
                seconds: t0.elapsed().as_secs_f64(),
                failure: r.as_ref().err().map(|e| e.kind),
                detail: r.as_ref().err().map(|e| e.message.clone()),
            };
            if let Err(e) = self.engine.store.record_prepare_try(self.run, &this) {
                tracing::warn!(variant = %v, error = %e, "the prepare try was not stored");
            }
            tries.push(this);
            let _ = std::fs::create_dir_all(&dir).and_then(|_| {
                std::fs::write(
                    dir.join("attempts.json"),
                    serde_json::to_vec_pretty(&tries).unwrap_or_default(),
                )
            });
            match r {
                Ok(env) => return Ok(env),
                Err(e) if e.is_transient() => {
                    attempt += 1;
                    match self.engine.opts.retry.delay_before(
                        attempt,
                        started.elapsed(),
                        rand::random(),
                    ) {
                        Some(d) => {
                            tracing::warn!(variant = %v, error = %e, "transient failure preparing; retrying in {d:?}");
                            if !super::retry::wait(d, cancel).await {
                                return Err((
                                    Failure::Cancelled,
                                    "cancelled while waiting to retry the preparation".into(),
                                ));
                            }
                        }
                        None => {
                            return Err((
                                e.kind,
                                format!("{} (after {} attempt(s))", e.message, tries.len()),
                            ));
                        }
                    }
                }
                Err(e) => return Err((e.kind, e.message)),
            }
        }
    }

    /// Run one job to completion: attempts until success, a deterministic failure, or the
    /// retry policy says stop. Returns the job's final status.
    pub(super) async fn run_job(
        &self,
        job: &JobKey,
        engine_env: PreparedEnv,
        client_env: PreparedEnv,
        cancel: &CancellationToken,
        summary: &mut EngineSummary,
        exec: &mut Exec<'_>,
    ) -> Result<JobStatus, EngineError> {
        let envs = JobEnvs {
            engine: engine_env,
            client: client_env,
        };
        let first = Instant::now();
        // A resumed job numbers on from its earlier attempts, whose artifacts stay; every
        // attempt gets a folder of its own that did not exist before.
        let mut next = self.engine.store.attempt_count(self.run, job)? + 1;
        let mut tries = 0;
        self.engine
            .store
            .set_job_status(self.run, job, JobStatus::Running)?;
        loop {
            let (attempt, dir) = match folders::fresh(&self.dir, job, next) {
                Ok(d) => d,
                Err(e) => {
                    let msg = format!("cannot create the attempt's artifact folder: {e}");
                    let out = Outcome::failed(Failure::EnvironmentBroken, msg);
                    summary.attempts += 1;
                    summary.failed += 1;
                    let started = (now(), Instant::now());
                    summary.gpu_seconds +=
                        self.record(job, next, None, started, out, JobStatus::Failed)?;
                    return Ok(JobStatus::Failed);
                }
            };
            tries += 1;
            let _ = std::fs::write(
                AttemptFiles::new(&dir).plan(),
                serde_json::to_vec_pretty(self.plan).unwrap_or_default(),
            );
            let mut cx = self
                .engine
                .context(self.run, self.plan, &self.lease, cancel, dir.clone());
            cx.labels.insert("variant".into(), job.variant.to_string());
            cx.labels.insert("attempt".into(), attempt.to_string());
            // The job within its task: names made from labels differ between jobs.
            cx.labels.insert(
                "job".into(),
                format!("r{}{}", job.repeat, if job.aa { "-aa" } else { "" }),
            );
            self.engine
                .progress
                .event("benchmark", &format!("{job} attempt {attempt}"));
            let started = (now(), Instant::now());
            let since = std::time::SystemTime::now();
            let span = tracing::info_span!(
                "attempt",
                commit = %job.commit,
                variant = %job.variant,
                repeat = job.repeat,
                attempt
            );
            let (result, mut serve) = match exec {
                Exec::Restart { why, order } => {
                    let run = self.engine.backend.execute(&envs, &self.plan.step, &cx);
                    let r = tracing::Instrument::instrument(run, span).await;
                    (r, Exec::restart_record(why, order, job.repeat))
                }
                Exec::Warm(pool) => {
                    let run = pool.run(self.engine, job, &envs, &cx);
                    let (r, rec) = tracing::Instrument::instrument(run, span).await;
                    (r, Some(rec))
                }
            };
            if let Some(s) = serve.as_mut().filter(|s| s.kv_cache.is_none()) {
                // A server started for this job: what it allotted is in this attempt's log.
                s.kv_cache =
                    crate::stepkit::warm::capacity_of(&AttemptFiles::new(&dir).server_log());
            }
            let mut out = match result {
                Ok(output) => self.parse(output, since),
                Err(e) => backend_failure(e, &dir, self.engine.limits.result()),
            };
            out.serve = serve;
            summary.attempts += 1;
            let code = out.failure.as_ref().map(|f| f.0);
            let retry_delay = match code {
                Some(c) if c.is_transient() && !cancel.is_cancelled() => self
                    .engine
                    .opts
                    .retry
                    .delay_before(tries + 1, first.elapsed(), rand::random()),
                _ => None,
            };
            let status = match code {
                None => JobStatus::Succeeded,
                Some(_) if cancel.is_cancelled() => JobStatus::Cancelled,
                Some(Failure::Cancelled) => JobStatus::Cancelled,
                Some(_) if retry_delay.is_some() => JobStatus::Running,
                Some(c) if c.is_transient() => JobStatus::FailedTransient,
                Some(_) => JobStatus::Failed,
            };
            let out = if status == JobStatus::Cancelled && code != Some(Failure::Cancelled) {
                Outcome {
                    failure: Some((Failure::Cancelled, "cancelled by signal".into(), Vec::new())),
                    ..out
                }
            } else {
                out
            };
            summary.gpu_seconds +=
                self.record(job, attempt, Some(&envs.engine), started, out, status)?;
            match status {
                JobStatus::Succeeded => summary.succeeded += 1,
                JobStatus::Failed | JobStatus::FailedTransient => summary.failed += 1,
                JobStatus::Cancelled => summary.not_run += 1,
                _ => {}
            }
            let Some(delay) = retry_delay.filter(|_| status == JobStatus::Running) else {
                return Ok(status);
            };
            tracing::warn!(job = %job, "transient failure; retrying in {delay:?}");
            if !super::retry::wait(delay, cancel).await {
                self.engine
                    .store
                    .set_job_status(self.run, job, JobStatus::Cancelled)?;
                return Ok(JobStatus::Cancelled);
            }
            next = attempt + 1;
        }
    }

    /// Parse what this attempt's client produced; `since` = when the attempt started (see
    /// [`vet`] for what counts).
    fn parse(&self, output: StepOutput, since: std::time::SystemTime) -> Outcome {
        let vetted = vet::results(&output, since);
        let cap = self.engine.limits.result();
        let mut sources = Vec::new();
        // Result files the engine could not read (not regular, over the cap): evidence.
        let mut unread = Vec::new();
        let mut add = |path: &Path, kind: SourceKind| {
            // A result file over the cap is not read; a log keeps its end.
            let text = match kind {
                SourceKind::ResultJson => crate::input::read_capped(path, cap)
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
                _ => crate::input::read_tail(path, cap).map(|(text, _)| text),
            };
            match text {
                Ok(text) => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    sources.push(OutputSource { name, kind, text });
                }
                Err(crate::input::InputError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, "output not read");
                    unread.push(e.to_string());
                }
            }
        };
        for f in &vetted.trusted {
            add(f, SourceKind::ResultJson);
        }
        add(&output.client_stdout, SourceKind::Stdout);
        add(&output.client_stderr, SourceKind::Stderr);
        if let Some(s) = &output.server_log {
            add(s, SourceKind::ServerLog);
        }
        let run_output = RunOutput {
            sources,
            exit_code: output.exit_code,
        };
        let mut parsed = crate::parse::benchmark_for(self.plan.step.mode).parse(&run_output);
        if let Some(c) = parsed.failure.as_mut() {
            unread.append(&mut c.evidence);
            c.evidence = unread;
        }
        let failure = vet::judge(&vetted, parsed.failure, &run_output);
        // Nothing of a client that did not run or did not exit 0 is a measurement.
        let mut metrics = match vetted.client_failed {
            Some(_) => Metrics::new(),
            None => parsed.metrics,
        };
        // Beside a measurement only: the host's CPU never stands in for a missing one.
        if let (None, false, Some(cpu)) = (&failure, metrics.is_empty(), &output.host_cpu) {
            crate::stepkit::host_cpu::add_to(&mut metrics, cpu);
        }
        Outcome {
            failure,
            metrics,
            output: Some(output),
            serve: None,
        }
    }
}

/// A backend error as an outcome. A server that died is classified from its log, so the root
/// cause (OOM, unsupported model, a transient download error …) wins over "server failed".
fn backend_failure(e: BackendError, dir: &Path, cap: crate::input::Cap) -> Outcome {
    let mut failure = (e.kind, e.message.clone(), Vec::new());
    if matches!(e.kind, Failure::ServerFailed | Failure::Unknown) {
        let sources: Vec<OutputSource> = AttemptFiles::new(dir)
            .server_evidence()
            .into_iter()
            .filter_map(|(name, path)| {
                let (text, _) = crate::input::read_tail(&path, cap).ok()?;
                Some(OutputSource {
                    name: name.to_string(),
                    kind: SourceKind::ServerLog,
                    text,
                })
            })
            .collect();
        let c = crate::parse::classify(&RunOutput {
            sources,
            exit_code: None,
        });
        if !matches!(c.code, Failure::NoMetrics | Failure::Unknown) {
            failure = (c.code, e.message, c.evidence);
        }
    }
    Outcome {
        failure: Some(failure),
        metrics: Metrics::new(),
        output: None,
        serve: None,
    }
}
