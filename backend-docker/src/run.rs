//! `execute`: server container, readiness, warm-up, measured client, outputs, cleanup.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::Mount;
use bollard::query_parameters::KillContainerOptionsBuilder;
use runner_core::backend::JobEnvs;
use runner_core::plan::{ProcessPlan, StepPlan};
use runner_core::{BackendError, Failure, RunContext, StepOutput};
use tokio::sync::watch;

use crate::DockerBackend;
use crate::containers::{self, Guard, Role, Spec, container_labels, container_name};
use crate::error::fail;
use crate::layout::{self, Endpoints, Net};
use crate::logs::{self, Sink};
use crate::wait::{result_files, start, wait_exit};

mod server;

/// How the server container ended, as its monitor saw it.
type ServerExit = Option<Result<i64, (Failure, String)>>;

/// Lines of a log quoted in errors.
const TAIL: usize = 40;

/// Run one step; containers are removed however it ends (unless `keep_containers`).
pub(crate) async fn execute(
    b: &DockerBackend,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let d = b.docker().await?;
    let guard = Guard::new(d.clone(), b.config.keep_containers);
    let r = {
        let work = run(b, &d, &guard, envs, step, cx);
        let deadline = cx.deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            r = work => r,
            _ = cx.cancel.cancelled() => Err(fail(Failure::Cancelled, "cancelled while running the step")),
            _ = async { match deadline { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                Err(fail(Failure::Timeout, "the attempt ran past its deadline"))
            }
        }
    };
    guard.cleanup().await;
    r
}

/// What every container of the step shares.
struct Ctx<'a> {
    b: &'a DockerBackend,
    d: &'a Docker,
    guard: &'a Guard,
    step: &'a StepPlan,
    cx: &'a RunContext,
    mounts: Vec<Mount>,
    env: Vec<String>,
    ends: Endpoints,
}

/// The running server.
struct Server {
    name: String,
    id: String,
    exit: watch::Receiver<ServerExit>,
    log: Option<tokio::task::JoinHandle<()>>,
    log_path: PathBuf,
}

async fn run(
    b: &DockerBackend,
    d: &Docker,
    guard: &Guard,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let dir = &cx.artifact_dir;
    let results = dir.join("results");
    std::fs::create_dir_all(&results).map_err(|e| {
        fail(
            Failure::Unknown,
            format!("cannot create {}: {e}", results.display()),
        )
    })?;
    let ends = layout::endpoints(&b.config).map_err(|e| {
        fail(
            Failure::InfraTransient,
            format!("no free port for the server: {e}"),
        )
    })?;
    let facts = b.facts(d).await;
    let c = Ctx {
        b,
        d,
        guard,
        step,
        cx,
        mounts: layout::mounts(&b.config, cx, &results),
        env: layout::environment(&step.env, &b.config, &b.secrets.0),
        ends,
    };
    let mut out = StepOutput {
        client_stdout: dir.join("client.stdout"),
        client_stderr: dir.join("client.stderr"),
        host: facts.host.clone(),
        gpu_names: cx.lease.devices.iter().map(|g| g.name.clone()).collect(),
        ..StepOutput::default()
    };
    let mut server = None;
    if let Some(plan) = &step.server {
        let s = c.start_server(plan, envs).await?;
        out.server_log = Some(s.log_path.clone());
        let s = server.insert(s);
        c.wait_ready(s).await?;
        if let Some(w) = &step.warmup {
            let sink = Sink::Split {
                stdout: dir.join("warmup.stdout"),
                stderr: dir.join("warmup.stderr"),
            };
            let (code, _) = c
                .run_client(Role::Warmup, w, envs, Some(s), sink, false)
                .await?;
            if code != 0 {
                tracing::warn!(code, "the warm-up client exited non-zero; measuring anyway");
                cx.progress
                    .event("warmup", &format!("warm-up exited with code {code}"));
            }
        }
    }
    let sink = Sink::Split {
        stdout: out.client_stdout.clone(),
        stderr: out.client_stderr.clone(),
    };
    let gpu = server.is_none();
    let (code, secs) = c
        .run_client(Role::Client, &step.client, envs, server.as_mut(), sink, gpu)
        .await?;
    out.exit_code = Some(i32::try_from(code).unwrap_or(i32::MAX));
    out.benchmark_seconds = secs;
    if let Some(s) = server.as_mut() {
        // Stop the server so that its log ends, and is complete when we return.
        let opts = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        if let Err(e) = d.kill_container(&s.name, Some(opts)).await {
            tracing::debug!(container = %s.name, "stopping the server: {e}");
        }
        logs::drain(s.log.take()).await;
    }
    out.result_files = result_files(&results);
    Ok(out)
}

impl Ctx<'_> {
    /// A plan's argv with its placeholders filled for a container of `env`'s image, reaching
    /// the server at `host`.
    fn argv(&self, plan: &ProcessPlan, env: &runner_core::PreparedEnv, host: &str) -> Vec<String> {
        let source = env
            .scripts_dir
            .as_deref()
            .unwrap_or(&self.b.config.vllm_source);
        layout::fill(&plan.argv, &self.b.config, host, self.ends.port, source)
    }

    /// A container spec; `gpu` says whether this process uses the step's GPUs (the lease's).
    fn spec(&self, role: Role, image: &str, argv: Vec<String>, net: &Net, gpu: bool) -> Spec {
        let mut spec = Spec {
            name: container_name(&self.cx.labels, role),
            image: image.to_string(),
            argv,
            env: self.env.clone(),
            labels: container_labels(&self.cx.labels, role),
            host: layout::host_config(&self.b.config, self.mounts.clone(), net),
            exposed: match net {
                Net::BridgePublish(p) => Some(format!("{p}/tcp")),
                _ => None,
            },
        };
        if gpu {
            layout::give_gpus(&mut spec, &self.b.config, &self.cx.lease);
        }
        spec
    }

    async fn create_and_start(&self, spec: &Spec) -> Result<String, BackendError> {
        self.guard.add(&spec.name);
        let id = containers::create(self.d, spec).await?;
        start(self.d, &spec.name).await?;
        Ok(id)
    }

    /// Run a client container to its end; returns its exit code and wall time. A server that
    /// ends meanwhile is `server_failed`; `benchmark_s` bounds it.
    async fn run_client(
        &self,
        role: Role,
        plan: &ProcessPlan,
        envs: &JobEnvs,
        server: Option<&mut Server>,
        sink: Sink,
        gpu: bool,
    ) -> Result<(i64, f64), BackendError> {
        let argv = self.argv(plan, &envs.client, &self.ends.client_host);
        let net = match (&server, self.b.config.network) {
            (_, crate::NetworkMode::Host) => Net::Host,
            (Some(s), _) => Net::JoinContainer(s.id.clone()),
            (None, _) => Net::Bridge,
        };
        let spec = self.spec(role, &envs.client.handle, argv, &net, gpu);
        self.cx.progress.event(
            role.as_str(),
            &format!("starting {} from {}", spec.name, spec.image),
        );
        let started = Instant::now();
        self.create_and_start(&spec).await?;
        let log = logs::follow(
            self.d.clone(),
            spec.name.clone(),
            sink,
            self.b.redactor.clone(),
        );
        let limit = Duration::from_secs(self.step.timeouts.benchmark_s);
        let mut server = server;
        let server_gone = async {
            match server.as_deref_mut() {
                Some(s) => {
                    let _ = s.exit.wait_for(Option::is_some).await;
                }
                None => std::future::pending().await,
            }
        };
        let r = tokio::select! {
            biased;
            r = wait_exit(self.d, &spec.name) => r.map(Some),
            _ = server_gone => Ok(None),
            _ = tokio::time::sleep(limit) => Err(fail(
                Failure::Timeout,
                format!("the {} container '{}' ran past benchmark_s = {} s", role.as_str(), spec.name, limit.as_secs()),
            )),
        };
        let secs = started.elapsed().as_secs_f64();
        match r {
            Ok(Some(code)) => {
                logs::drain(Some(log)).await;
                // A client that ends because the server died (even with exit code 0, as vLLM's
                // client does after failed requests) measured nothing.
                if let Some(s) = server {
                    if !self.server_running(s).await {
                        let what = format!("while the {} ran", role.as_str());
                        return Err(self.server_ended(s, &what).await);
                    }
                }
                Ok((code, secs))
            }
            Ok(None) => {
                log.abort();
                let what = format!("while the {} ran", role.as_str());
                match server {
                    Some(s) => Err(self.server_ended(s, &what).await),
                    None => Err(fail(Failure::ServerFailed, what)),
                }
            }
            Err(e) => {
                log.abort();
                Err(e)
            }
        }
    }
}
