//! `execute`: start the server (serving) on a free port in its own process group, wait until it
//! is ready (HTTP 200 on `/health` AND alive AND before the deadline), warm up, run the measured
//! client, and stop everything — on success, error, timeout and cancellation.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runner_core::backend::JobEnvs;
use runner_core::plan::StepPlan;
use runner_core::{BackendError, Failure, RunContext, StepOutput};
use tokio::process::Command;

use crate::NAME;
use crate::config::LocalConfig;
use crate::process::{Spawned, WaitOutcome, free_port, tail_lines};
use crate::step::{self, HOST, Subst};
use crate::venv::{self, Installer};

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// The earlier of `now + secs` and the attempt's deadline.
fn phase_deadline(secs: u64, cx: &RunContext) -> Instant {
    let now = Instant::now();
    // A huge configured timeout means "no phase limit", never an overflow.
    let phase = now
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(now + Duration::from_secs(10 * 365 * 86_400));
    cx.deadline.map_or(phase, |d| d.min(phase))
}

/// Run one step (see the module docs).
pub async fn execute(
    cfg: &LocalConfig,
    installer: &Installer,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let art = &cx.artifact_dir;
    let results = art.join("results");
    std::fs::create_dir_all(&results).map_err(|e| {
        err(
            Failure::EnvironmentBroken,
            format!("{}: {e}", results.display()),
        )
    })?;
    for ds in &step.datasets {
        let p = cx.data_dir.join(&ds.name);
        if !p.is_file() {
            return Err(err(
                Failure::DatasetMissing,
                format!("{} ({} {}) is missing", p.display(), ds.flag, ds.original),
            ));
        }
    }
    let serving = step.server.is_some();
    let client_env = if serving { &envs.client } else { &envs.engine };
    for env in [&envs.engine, client_env] {
        if !venv::python(Path::new(&env.handle)).exists() {
            return Err(err(
                Failure::EnvironmentBroken,
                format!(
                    "the environment {} ({}) has no python",
                    env.identity, env.handle
                ),
            ));
        }
    }
    step::snapshots(cfg, installer, envs, serving, cx).await;
    if cx.cancel.is_cancelled() {
        return Err(err(Failure::Cancelled, "cancelled before the step started"));
    }

    let mut server: Option<Spawned> = None;
    let outcome = phases(cfg, envs, step, cx, &mut server).await;
    if let Some(mut s) = server.take() {
        cx.progress.event("server", "stopping the server");
        s.stop(cfg.stop_grace()).await;
    }
    outcome
}

async fn phases(
    cfg: &LocalConfig,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
    server: &mut Option<Spawned>,
) -> Result<StepOutput, BackendError> {
    let art = &cx.artifact_dir;
    let server_log = art.join("server.log");
    let mut port = None;
    if let Some(plan) = &step.server {
        let (sp, p) = start_server(cfg, envs, step, &plan.argv, &server_log, cx).await?;
        *server = Some(sp);
        port = Some(p);
    }
    let client_env = if server.is_some() {
        &envs.client
    } else {
        &envs.engine
    };
    let subst = Subst::new(client_env, port, cx);
    let mut env = step::child_env(step, Path::new(&client_env.handle), &cx.lease);
    env.extend(crate::gc::run_label(cx));

    if let Some(w) = &step.warmup {
        let argv = subst.fill(&w.argv)?;
        step::record_command(art, "warmup", &argv, &env);
        cx.progress.event("warmup", "warming up");
        let (out, errf) = (art.join("warmup.stdout"), art.join("warmup.stderr"));
        let deadline = phase_deadline(step.timeouts.benchmark_s, cx);
        let (status, _) =
            run_client(cfg, &argv, &env, &out, &errf, deadline, cx, "warm-up").await?;
        if !status.success() {
            tracing::warn!(%status, "the warm-up failed; the measured client is not run");
            cx.progress
                .event("warmup", &format!("the warm-up failed ({status})"));
            let mut o = output(cx, status.code(), out, errf, server.is_some(), 0.0);
            // The measured client never ran: nothing in results/ is this attempt's result.
            o.result_files.clear();
            return Ok(o);
        }
    }

    let argv = subst.fill(&step.client.argv)?;
    step::record_command(art, "client", &argv, &env);
    cx.progress
        .event("benchmark", "running the benchmark client");
    let (out, errf) = (art.join("client.stdout"), art.join("client.stderr"));
    let deadline = phase_deadline(step.timeouts.benchmark_s, cx);
    let (status, secs) =
        run_client(cfg, &argv, &env, &out, &errf, deadline, cx, "benchmark").await?;
    cx.progress.event(
        "benchmark",
        &format!("client exited: {status} after {secs:.1} s"),
    );
    Ok(output(cx, status.code(), out, errf, server.is_some(), secs))
}

fn output(
    cx: &RunContext,
    exit_code: Option<i32>,
    client_stdout: PathBuf,
    client_stderr: PathBuf,
    serving: bool,
    benchmark_seconds: f64,
) -> StepOutput {
    StepOutput {
        exit_code,
        client_stdout,
        client_stderr,
        server_log: serving.then(|| cx.artifact_dir.join("server.log")),
        result_files: step::list_files(&cx.artifact_dir.join("results")),
        host: step::hostname(),
        gpu_names: cx.lease.devices.iter().map(|d| d.name.clone()).collect(),
        benchmark_seconds,
        // Local GPUs are the user's own: no charge is known.
        cost_usd: None,
    }
}

/// Run a client (or the warm-up) to completion in its own group, output to files.
#[allow(clippy::too_many_arguments)]
async fn run_client(
    cfg: &LocalConfig,
    argv: &[String],
    env: &[(String, String)],
    stdout: &Path,
    stderr: &Path,
    deadline: Instant,
    cx: &RunContext,
    what: &str,
) -> Result<(std::process::ExitStatus, f64), BackendError> {
    let mut cmd = command(argv, env);
    cmd.stdout(create(stdout)?).stderr(create(stderr)?);
    let started = Instant::now();
    let mut sp = Spawned::spawn(&mut cmd).map_err(|e| {
        err(
            Failure::EnvironmentBroken,
            format!("cannot start the {what} ({}): {e}", argv[0]),
        )
    })?;
    let outcome = sp.wait(&cx.cancel, Some(deadline)).await;
    let secs = started.elapsed().as_secs_f64();
    // Whatever the client left behind in its group goes with it.
    sp.stop(cfg.stop_grace().min(Duration::from_secs(2))).await;
    match outcome {
        WaitOutcome::Exited(status) => Ok((status, secs)),
        WaitOutcome::Cancelled => Err(err(
            Failure::Cancelled,
            format!("cancelled during the {what}"),
        )),
        WaitOutcome::TimedOut => Err(err(
            Failure::Timeout,
            format!("the {what} ran past its deadline ({secs:.0} s); stopped"),
        )),
    }
}

fn command(argv: &[String], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    cmd
}

fn create(path: &Path) -> Result<File, BackendError> {
    File::create(path).map_err(|e| {
        err(
            Failure::EnvironmentBroken,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Start the server on a free port and wait until it is ready; a port taken between choosing
/// and binding is retried with a fresh one.
async fn start_server(
    cfg: &LocalConfig,
    envs: &JobEnvs,
    step: &StepPlan,
    argv: &[String],
    log: &Path,
    cx: &RunContext,
) -> Result<(Spawned, u16), BackendError> {
    let mut env = step::child_env(step, Path::new(&envs.engine.handle), &cx.lease);
    env.extend(crate::gc::run_label(cx));
    let deadline = phase_deadline(step.timeouts.server_ready_s, cx);
    let attempts = cfg.port_attempts.max(1);
    for attempt in 1..=attempts {
        let port =
            free_port().map_err(|e| err(Failure::InfraTransient, format!("no free port: {e}")))?;
        let filled = Subst::new(&envs.engine, Some(port), cx).fill(argv)?;
        step::record_command(&cx.artifact_dir, "server", &filled, &env);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| {
                err(
                    Failure::EnvironmentBroken,
                    format!("{}: {e}", log.display()),
                )
            })?;
        let file2 = file.try_clone().map_err(|e| {
            err(
                Failure::EnvironmentBroken,
                format!("{}: {e}", log.display()),
            )
        })?;
        let mut cmd = command(&filled, &env);
        cmd.stdout(file).stderr(file2);
        let mut sp = Spawned::spawn(&mut cmd).map_err(|e| {
            err(
                Failure::EnvironmentBroken,
                format!("cannot start the server ({}): {e}", filled[0]),
            )
        })?;
        cx.progress.event(
            "server",
            &format!("started on {HOST}:{port}; waiting for /health"),
        );
        match wait_ready(cfg, &mut sp, port, deadline, cx).await {
            Ready::Yes => {
                cx.progress.event("server", "ready");
                return Ok((sp, port));
            }
            Ready::Exited(status) => {
                sp.stop(Duration::from_secs(2)).await;
                let tail = tail_lines(log, cfg.log_tail_lines);
                let lower = tail.to_ascii_lowercase();
                if attempt < attempts
                    && (lower.contains("address already in use") || lower.contains("errno 98"))
                {
                    tracing::warn!(port, "port taken meanwhile; retrying on a fresh port");
                    continue;
                }
                return Err(err(
                    Failure::ServerFailed,
                    format!(
                        "the server exited ({status}) before it was ready; last lines of server.log:\n{tail}"
                    ),
                ));
            }
            Ready::TimedOut => {
                sp.stop(cfg.stop_grace()).await;
                let tail = tail_lines(log, cfg.log_tail_lines);
                return Err(err(
                    Failure::Timeout,
                    format!(
                        "the server was not ready within {} s; last lines of server.log:\n{tail}",
                        step.timeouts.server_ready_s
                    ),
                ));
            }
            Ready::Cancelled => {
                sp.stop(cfg.stop_grace()).await;
                return Err(err(
                    Failure::Cancelled,
                    "cancelled while the server was starting",
                ));
            }
        }
    }
    Err(err(Failure::InfraTransient, "no port could be bound"))
}

enum Ready {
    Yes,
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
}

/// Readiness = HTTP 200 on `/health` AND the server alive AND before the deadline.
async fn wait_ready(
    cfg: &LocalConfig,
    sp: &mut Spawned,
    port: u16,
    deadline: Instant,
    cx: &RunContext,
) -> Ready {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("HTTP client: {e}");
            return Ready::TimedOut;
        }
    };
    let url = format!("http://{HOST}:{port}/health");
    let poll = Duration::from_millis(cfg.health_poll_ms.max(10));
    loop {
        if let Ok(Some(status)) = sp.child.try_wait() {
            return Ready::Exited(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ready::TimedOut;
        }
        let probe_timeout = (deadline - now).min(Duration::from_secs(2));
        let probe = client.get(&url).timeout(probe_timeout).send();
        tokio::select! {
            r = probe => {
                if r.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                    // Alive too? A 200 from a dying process (or someone else's) is not ready.
                    if let Ok(Some(status)) = sp.child.try_wait() {
                        return Ready::Exited(status);
                    }
                    return Ready::Yes;
                }
            }
            _ = cx.cancel.cancelled() => return Ready::Cancelled,
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = cx.cancel.cancelled() => return Ready::Cancelled,
        }
    }
}
