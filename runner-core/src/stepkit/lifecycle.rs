//! The one step lifecycle, for every backend that runs processes it can watch:
//!
//! 1. Every argv is filled before anything starts (a step that cannot run fails at once).
//! 2. The server (serving modes) starts on a port from the backend; it is **ready** when
//!    `GET /health` answers 200 AND it is alive AND `server_ready_s` (or the attempt's
//!    deadline) has not passed. A server that exits first is `server_failed` with its log's
//!    tail — or, when its log says its port was taken meanwhile, starts again on a fresh port
//!    (`port_attempts`).
//! 3. The warm-up runs. **A failed warm-up stops the step**: the measured client is not run,
//!    and the output is the warm-up's (the engine fails the attempt with its evidence).
//! 4. The measured client runs.
//! 5. Everything started is stopped — on success, error, timeout and cancellation.
//!
//! Timeouts: each phase ends at the earlier of its own limit (`server_ready_s`, `benchmark_s`
//! for the warm-up and for the client) and the attempt's deadline; past it, the phase's process
//! is stopped and the step is `timeout`. Cancellation ends any phase at once as `cancelled`.
//! A server that ends while a client runs — or is found ended when the client exits, whatever
//! the client's code — is `server_failed`: nothing that client measured counts.

use std::time::{Duration, Instant};

use super::host_cpu::HostCpu;
use super::layout::AttemptFiles;
use super::runtime::{Exit, Launch, Role, Running, StepRuntime};
use crate::backend::{BackendError, JobEnvs, PreparedEnv, RunContext, StepOutput};
use crate::failure::Failure;
use crate::plan::{ProcessPlan, StepPlan};

/// The most a client's leftovers get between the request to end and the kill, once the client
/// itself has ended (or was given up on).
const CLIENT_GRACE: Duration = Duration::from_secs(2);

/// A backend's settings for the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPolicy {
    /// Between the request to end and the kill, for the server.
    pub stop_grace: Duration,
    /// Between readiness probes.
    pub health_poll: Duration,
    /// Server starts tried with a fresh port when the port was taken meanwhile (at least 1).
    pub port_attempts: u32,
    /// Lines of the server's log quoted in errors.
    pub log_tail_lines: usize,
}

impl Default for StepPolicy {
    fn default() -> Self {
        StepPolicy {
            stop_grace: Duration::from_secs(10),
            health_poll: Duration::from_millis(500),
            port_attempts: 1,
            log_tail_lines: 40,
        }
    }
}

/// Run one step through `rt` (see the module docs). The output's client files are the
/// warm-up's when the warm-up failed.
pub async fn run_step(
    rt: &dyn StepRuntime,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
    policy: &StepPolicy,
) -> Result<StepOutput, BackendError> {
    let files = AttemptFiles::of(cx);
    let life = Life {
        rt,
        envs,
        step,
        cx,
        policy,
        log: files.server_log(),
        files,
    };
    life.prelude()?;
    let mut server = None;
    let r = life.phases(&mut server).await;
    if let Some(mut s) = server {
        cx.progress.event("server", "stopping the server");
        s.stop(policy.stop_grace).await;
    }
    r
}

/// The end of a phase: when and what people call it.
pub(super) struct Limit {
    pub(super) at: Instant,
    pub(super) what: String,
}

impl Limit {
    /// `secs` from now (the setting `key`), or the attempt's deadline when that is earlier.
    pub(super) fn phase(secs: u64, key: &str, cx: &RunContext) -> Limit {
        let now = Instant::now();
        // A huge setting means "no phase limit", never an overflow.
        let phase = now
            .checked_add(Duration::from_secs(secs))
            .unwrap_or(now + Duration::from_secs(10 * 365 * 86_400));
        match cx.deadline {
            Some(d) if d < phase => Limit {
                at: d,
                what: "the attempt's deadline".into(),
            },
            _ => Limit {
                at: phase,
                what: format!("{key} = {secs} s"),
            },
        }
    }
}

enum Ended {
    Exited(Result<Exit, BackendError>),
    ServerGone(Result<Exit, BackendError>),
    Cancelled,
    TimedOut,
}

/// One step being run.
pub(super) struct Life<'a> {
    pub(super) rt: &'a dyn StepRuntime,
    pub(super) envs: &'a JobEnvs,
    pub(super) step: &'a StepPlan,
    pub(super) cx: &'a RunContext,
    pub(super) policy: &'a StepPolicy,
    pub(super) files: AttemptFiles,
    /// The server's log: the attempt's own, or a warm server's (which outlives attempts).
    pub(super) log: std::path::PathBuf,
}

impl Life<'_> {
    pub(super) fn err(&self, kind: Failure, message: impl Into<String>) -> BackendError {
        BackendError::new(self.rt.backend(), kind, message)
    }

    fn serving(&self) -> bool {
        self.step.server.is_some()
    }

    /// The attempt's folder, the dataset files, and not cancelled yet.
    pub(super) fn prelude(&self) -> Result<(), BackendError> {
        self.files.create().map_err(|e| {
            self.err(
                Failure::EnvironmentBroken,
                format!("{}: {e}", self.files.results_dir().display()),
            )
        })?;
        for ds in &self.step.datasets {
            let p = self.cx.data_dir.join(&ds.name);
            if !p.is_file() {
                return Err(self.err(
                    Failure::DatasetMissing,
                    format!("{} ({} {}) is missing", p.display(), ds.flag, ds.original),
                ));
            }
        }
        if self.cx.cancel.is_cancelled() {
            return Err(self.err(Failure::Cancelled, "cancelled before the step started"));
        }
        Ok(())
    }

    pub(super) fn fill(
        &self,
        role: Role,
        env: &PreparedEnv,
        plan: &ProcessPlan,
        port: Option<u16>,
    ) -> Result<Vec<String>, BackendError> {
        self.rt
            .values(role, env, port)
            .fill(&plan.argv)
            .map(|f| f.argv)
            .map_err(|e| e.into_backend(self.rt.backend()))
    }

    async fn phases(
        &self,
        server: &mut Option<Box<dyn Running>>,
    ) -> Result<StepOutput, BackendError> {
        let client_env = if self.serving() {
            &self.envs.client
        } else {
            &self.envs.engine
        };
        let first_port = match self.serving() {
            true => Some(self.rt.server_port()?),
            false => None,
        };
        // Fill every argv now: a step that cannot run fails before a server loads a model.
        if let Some(plan) = &self.step.server {
            self.fill(Role::Server, &self.envs.engine, plan, first_port)?;
        }
        if let Some(w) = &self.step.warmup {
            self.fill(Role::Warmup, client_env, w, first_port)?;
        }
        self.fill(Role::Client, client_env, &self.step.client, first_port)?;

        let port = match &self.step.server {
            Some(plan) => Some(self.start_server(plan, first_port, server).await?),
            None => None,
        };
        if let Some(w) = &self.step.warmup {
            let (exit, _, _) = self
                .run_to_end(Role::Warmup, w, client_env, port, server)
                .await?;
            if !exit.success() {
                tracing::warn!(%exit, "the warm-up failed; the measured client is not run");
                self.cx.progress.event(
                    "warmup",
                    &format!("the warm-up exited {exit}; the measured client is not run"),
                );
                return Ok(self.output(Role::Warmup, exit, 0.0, None));
            }
        }
        let (exit, secs, cpu) = self
            .run_to_end(Role::Client, &self.step.client, client_env, port, server)
            .await?;
        self.cx.progress.event(
            "benchmark",
            &format!("the client exited {exit} after {secs:.1} s"),
        );
        Ok(self.output(Role::Client, exit, secs, cpu))
    }

    /// The step's output after `role` ran; `host_cpu`: the runner host's CPU over the measured
    /// client.
    pub(super) fn output(
        &self,
        role: Role,
        exit: Exit,
        benchmark_seconds: f64,
        host_cpu: Option<HostCpu>,
    ) -> StepOutput {
        StepOutput {
            exit_code: exit.code,
            client_stdout: self.files.stdout(role),
            client_stderr: self.files.stderr(role),
            server_log: self.serving().then(|| self.files.server_log()),
            // After a failed warm-up the measured client never ran: nothing in results/ is
            // this attempt's measurement.
            result_files: match role {
                Role::Client => self.files.result_files(),
                _ => Vec::new(),
            },
            host: self.rt.host(),
            gpu_names: self
                .cx
                .lease
                .devices
                .iter()
                .map(|d| d.name.clone())
                .collect(),
            benchmark_seconds,
            cost_usd: None,
            host_cpu,
        }
    }

    /// Whether the step's processes run on this machine (their host is this host's name).
    fn on_this_host(&self) -> bool {
        self.rt
            .host()
            .is_some_and(|h| h == crate::store::hostname())
    }

    pub(super) fn cancelled(&self, when: &str) -> BackendError {
        self.err(Failure::Cancelled, format!("cancelled {when}"))
    }

    /// Record and start one process; cancellation ends the wait for it.
    pub(super) async fn spawn(
        &self,
        role: Role,
        env: &PreparedEnv,
        argv: Vec<String>,
        port: Option<u16>,
    ) -> Result<Box<dyn Running>, BackendError> {
        self.files
            .record_command(role, &argv, &self.rt.shown_env(role));
        let launch = Launch {
            role,
            env,
            argv,
            output: self.files.output(role),
            gpus: role == Role::Server || (role == Role::Client && !self.serving()),
            port,
        };
        tokio::select! {
            biased;
            _ = self.cx.cancel.cancelled() => Err(self.cancelled(&format!("while starting the {}", role.describe()))),
            r = self.rt.spawn(launch) => r,
        }
    }

    /// Run a client (or the warm-up) to its end; returns its exit, its wall time and, for the
    /// measured client on the runner's host, the host's CPU meanwhile.
    pub(super) async fn run_to_end(
        &self,
        role: Role,
        plan: &ProcessPlan,
        env: &PreparedEnv,
        port: Option<u16>,
        server: &mut Option<Box<dyn Running>>,
    ) -> Result<(Exit, f64, Option<HostCpu>), BackendError> {
        let argv = self.fill(role, env, plan, port)?;
        // The host's CPU over the measured client, where the step runs on the runner's host.
        let cpu_from = (role == Role::Client && self.on_this_host())
            .then(super::host_cpu::mark)
            .flatten();
        let limit = Limit::phase(self.step.timeouts.benchmark_s, "benchmark_s", self.cx);
        match role {
            Role::Warmup => self.cx.progress.event("warmup", "warming up"),
            _ => self
                .cx
                .progress
                .event("benchmark", "running the benchmark client"),
        }
        let mut p = self.spawn(role, env, argv, port).await?;
        let started = Instant::now();
        let ended = {
            let server_gone = async {
                match server.as_mut() {
                    Some(s) => s.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = p.wait() => Ended::Exited(r),
                r = server_gone => Ended::ServerGone(r),
                _ = self.cx.cancel.cancelled() => Ended::Cancelled,
                _ = tokio::time::sleep_until(limit.at.into()) => Ended::TimedOut,
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_from.and_then(|a| super::host_cpu::between(a, super::host_cpu::mark()?));
        // Whatever it left behind goes with it.
        p.stop(self.policy.stop_grace.min(CLIENT_GRACE)).await;
        let during = format!("while the {} ran", role.describe());
        match ended {
            Ended::Exited(Ok(exit)) => {
                // A client that ends because the server died (even with exit code 0, as vLLM's
                // client does after failed requests) measured nothing.
                let gone = match server.as_mut() {
                    Some(s) => s.try_wait().await?,
                    None => None,
                };
                match gone {
                    Some(sx) => Err(self.server_died(server, sx, &during).await),
                    None => Ok((exit, secs, cpu)),
                }
            }
            Ended::Exited(Err(e)) | Ended::ServerGone(Err(e)) => Err(e),
            Ended::ServerGone(Ok(sx)) => Err(self.server_died(server, sx, &during).await),
            Ended::Cancelled => Err(self.cancelled(&format!("during the {}", role.describe()))),
            Ended::TimedOut => Err(self.err(
                Failure::Timeout,
                format!("the {} ran past {}; stopped", role.describe(), limit.what),
            )),
        }
    }

    /// The error of a server found ended: stopped first, so that its log is complete.
    async fn server_died(
        &self,
        server: &mut Option<Box<dyn Running>>,
        exit: Exit,
        during: &str,
    ) -> BackendError {
        if let Some(s) = server.as_mut() {
            s.stop(self.policy.stop_grace).await;
        }
        self.err(
            Failure::ServerFailed,
            format!(
                "the server exited {exit} {during}; {}",
                self.server_log_tail()
            ),
        )
    }
}
