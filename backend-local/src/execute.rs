//! `execute`: the step kit's lifecycle ([`runner_core::stepkit::run_step`]) over processes of
//! this host. This file gives it the local primitives: every process in its own process group
//! (venv interpreter, the lease's `CUDA_VISIBLE_DEVICES`, the run's label), a free port per
//! server start, and stopping a whole group (SIGTERM, grace, SIGKILL).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use runner_core::backend::{JobEnvs, PreparedEnv};
use runner_core::plan::StepPlan;
use runner_core::stepkit::{
    AttemptFiles, Endpoint, Exit, Launch, Output, Role, Running, ScriptCheck, SourceTree,
    StepPolicy, StepRuntime, Values, WarmKit, run_step,
};
use runner_core::{BackendError, Failure, RunContext, StepOutput};
use tokio::process::Command;

use crate::NAME;
use crate::config::LocalConfig;
use crate::process::{Spawned, free_port};
use crate::step::{self, HOST};
use crate::venv::{self, Installer};

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// Run one step (see the module docs).
pub async fn execute(
    cfg: &LocalConfig,
    installer: &Installer,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let serving = step.server.is_some();
    venv::check_envs(NAME, envs, serving)?;
    let _ = std::fs::create_dir_all(&cx.artifact_dir);
    step::snapshots(cfg, installer, envs, serving, cx).await;
    run_step(&Processes { step, cx }, envs, step, cx, &policy(cfg)).await
}

fn policy(cfg: &LocalConfig) -> StepPolicy {
    StepPolicy {
        stop_grace: cfg.stop_grace(),
        health_poll: Duration::from_millis(cfg.health_poll_ms.max(10)),
        port_attempts: cfg.port_attempts.max(1),
        log_tail_lines: cfg.log_tail_lines,
    }
}

/// The local primitives for warm servers: the same process groups, kept across jobs.
pub fn warm_kit<'a>(cfg: &LocalConfig, step: &'a StepPlan, cx: &'a RunContext) -> WarmKit<'a> {
    WarmKit {
        runtime: Box::new(Processes { step, cx }),
        policy: policy(cfg),
        // Every process is stopped by its own handle.
        cleanup: None,
    }
}

/// The local primitives of one step.
struct Processes<'a> {
    step: &'a StepPlan,
    cx: &'a RunContext,
}

#[async_trait]
impl StepRuntime for Processes<'_> {
    fn backend(&self) -> &'static str {
        NAME
    }

    fn values(&self, _role: Role, env: &PreparedEnv, port: Option<u16>) -> Values {
        Values {
            python: Some(venv::python(Path::new(&env.handle)).display().to_string()),
            host: Some(HOST.to_string()),
            port,
            result_dir: Some(
                AttemptFiles::of(self.cx)
                    .results_dir()
                    .display()
                    .to_string(),
            ),
            vllm_source: env.scripts_dir.clone().map(|path| SourceTree {
                path,
                check: ScriptCheck::OnHost,
            }),
            data_dir: Some(self.cx.data_dir.display().to_string()),
            // The native serving client is this program, run on this host next to the server.
            perf_runner: std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string()),
        }
    }

    fn server_port(&self) -> Result<u16, BackendError> {
        free_port().map_err(|e| err(Failure::InfraTransient, format!("no free port: {e}")))
    }

    fn shown_env(&self, _role: Role) -> Vec<(String, String)> {
        step::visible_devices(self.step, &self.cx.lease)
            .map(|v| vec![("CUDA_VISIBLE_DEVICES".to_string(), v)])
            .unwrap_or_default()
    }

    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError> {
        let what = launch.role.describe();
        let Some((program, args)) = launch.argv.split_first() else {
            return Err(err(
                Failure::BadConfig,
                format!("the {what} has an empty argv"),
            ));
        };
        let mut env = step::child_env(self.step, Path::new(&launch.env.handle), &self.cx.lease);
        env.extend(crate::gc::run_label(self.cx));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        // The step kit says how: the server's log appended to, clients' files afresh.
        let opts = launch.output.open_options();
        let open = |p: &Path| opts.open(p).map_err(|e| broken(p, e));
        match &launch.output {
            Output::Merged(log) => {
                let file = open(log)?;
                let copy = file.try_clone().map_err(|e| broken(log, e))?;
                cmd.stdout(file).stderr(copy);
            }
            Output::Split { stdout, stderr } => {
                cmd.stdout(open(stdout)?).stderr(open(stderr)?);
            }
        }
        let sp = Spawned::spawn(&mut cmd).map_err(|e| {
            err(
                Failure::EnvironmentBroken,
                format!("cannot start the {what} ({program}): {e}"),
            )
        })?;
        let port = launch.port.filter(|_| launch.role == Role::Server);
        Ok(Box::new(Group { sp, port }))
    }

    fn host(&self) -> Option<String> {
        // The name the run lock and the host-CPU check use too.
        Some(runner_core::store::hostname())
    }
}

fn broken(path: &Path, e: std::io::Error) -> BackendError {
    err(
        Failure::EnvironmentBroken,
        format!("{}: {e}", path.display()),
    )
}

/// A running process group.
struct Group {
    sp: Spawned,
    /// The port it serves on (servers).
    port: Option<u16>,
}

#[async_trait]
impl Running for Group {
    async fn endpoint(&mut self) -> Option<Endpoint> {
        self.port.map(|port| Endpoint {
            host: HOST.to_string(),
            port,
        })
    }

    async fn try_wait(&mut self) -> Result<Option<Exit>, BackendError> {
        Ok(self.sp.child.try_wait().ok().flatten().map(Exit::from))
    }

    async fn wait(&mut self) -> Result<Exit, BackendError> {
        // wait() fails only when the status is lost: no exit code, never a success.
        Ok(self
            .sp
            .child
            .wait()
            .await
            .map(Exit::from)
            .unwrap_or_default())
    }

    async fn stop(&mut self, grace: Duration) {
        self.sp.stop(grace).await;
    }
}
