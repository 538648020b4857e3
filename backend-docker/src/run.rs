//! `execute`: the step kit's lifecycle ([`runner_core::stepkit::run_step`]) over containers.
//! This file gives it the Docker primitives: one container per process from the process's
//! build's image — the server on the bridge with its port published on the probe host (or on
//! the host's network), the warm-up and the client in the server's network namespace — with
//! the step's mounts, environment and GPUs, every one labelled with the run and removed when
//! the step ends (unless `keep_containers`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::Mount;
use runner_core::backend::{JobEnvs, PreparedEnv};
use runner_core::plan::StepPlan;
use runner_core::stepkit::{
    self, AttemptFiles, Launch, Role, Running, StepPolicy, StepRuntime, Values, WarmKit,
};
use runner_core::{BackendError, Failure, RunContext, StepOutput};

use crate::DockerBackend;
use crate::config::NetworkMode;
use crate::containers::{self, Guard, Spec, container_labels, container_name};
use crate::error::fail;
use crate::layout::{self, Net};
use crate::wait::start;

mod container;

use container::{Container, Probe};

/// Between SIGTERM and SIGKILL when a container is stopped (Docker's own default).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Server starts on a fresh port, on the host's network, when the port was taken meanwhile.
const HOST_PORT_ATTEMPTS: u32 = 3;

/// Run one step; containers are removed however it ends (unless `keep_containers`).
pub(crate) async fn execute(
    b: &DockerBackend,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let d = b.docker().await?;
    let guard = Arc::new(Guard::new(d.clone(), b.config.keep_containers));
    let rt = containers_of(b, d, guard.clone(), step, cx, false).await;
    let r = stepkit::run_step(&rt, envs, step, cx, &policy(b)).await;
    guard.cleanup().await;
    r
}

/// The primitives for warm servers: a server container is owned by its handle (removed when it
/// is stopped or dropped, not with the kit), and the clients of later jobs join the network
/// namespace of their variant's server.
pub(crate) async fn warm_kit<'a>(
    b: &'a DockerBackend,
    d: Docker,
    step: &'a StepPlan,
    cx: &'a RunContext,
) -> WarmKit<'a> {
    let guard = Arc::new(Guard::new(d.clone(), b.config.keep_containers));
    let rt = containers_of(b, d, guard.clone(), step, cx, true).await;
    WarmKit {
        runtime: Box::new(Redacted(rt)),
        policy: policy(b),
        // The job's client containers go before the next job's are made (their names are
        // the job's), not in the background when the kit is dropped.
        cleanup: Some(Box::new(move || {
            Box::pin(async move { guard.cleanup().await })
        })),
    }
}

async fn containers_of<'a>(
    b: &'a DockerBackend,
    d: Docker,
    guard: Arc<Guard>,
    step: &'a StepPlan,
    cx: &'a RunContext,
    warm: bool,
) -> Containers<'a> {
    let facts = b.facts(&d).await;
    let results = AttemptFiles::of(cx).results_dir();
    Containers {
        host: facts.host,
        mounts: layout::mounts(&b.config, cx, &results),
        env: layout::environment(&step.env, &b.config, &b.secrets.0),
        server: Mutex::new(None),
        b,
        d,
        guard,
        cx,
        warm,
    }
}

fn policy(b: &DockerBackend) -> StepPolicy {
    StepPolicy {
        stop_grace: STOP_GRACE,
        health_poll: Duration::from_millis(500),
        port_attempts: match b.config.network {
            NetworkMode::Bridge => 1,
            NetworkMode::Host => HOST_PORT_ATTEMPTS,
        },
        log_tail_lines: 40,
    }
}

/// The key of a task variant's warm server in the backend's registry.
fn warm_key(labels: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    format!("{}/{}/{}", get("run-id"), get("task"), get("variant"))
}

/// A warm kit's runtime, whose errors are redacted as `execute`'s are.
struct Redacted<'a>(Containers<'a>);

#[async_trait]
impl StepRuntime for Redacted<'_> {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    fn values(&self, role: Role, env: &PreparedEnv, port: Option<u16>) -> Values {
        self.0.values(role, env, port)
    }
    fn server_port(&self) -> Result<u16, BackendError> {
        self.0.server_port().map_err(|e| self.0.b.redactor.error(e))
    }
    fn shown_env(&self, role: Role) -> Vec<(String, String)> {
        self.0.shown_env(role)
    }
    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError> {
        self.0
            .spawn(launch)
            .await
            .map_err(|e| self.0.b.redactor.error(e))
    }
    fn host(&self) -> Option<String> {
        self.0.host()
    }
}

/// The Docker primitives of one step.
struct Containers<'a> {
    b: &'a DockerBackend,
    d: Docker,
    guard: Arc<Guard>,
    cx: &'a RunContext,
    /// Warm servers: a server container is owned by its handle, and clients find their
    /// variant's server in the backend's registry.
    warm: bool,
    mounts: Vec<Mount>,
    env: Vec<String>,
    /// The engine's host name.
    host: Option<String>,
    /// The server container's id, whose network namespace the clients join.
    server: Mutex<Option<String>>,
}

fn container_role(role: Role) -> containers::Role {
    match role {
        Role::Server => containers::Role::Server,
        Role::Warmup => containers::Role::Warmup,
        Role::Client => containers::Role::Client,
    }
}

#[async_trait]
impl StepRuntime for Containers<'_> {
    fn backend(&self) -> &'static str {
        crate::NAME
    }

    fn values(&self, role: Role, env: &PreparedEnv, port: Option<u16>) -> Values {
        layout::values(&self.b.config, role, env.scripts_dir.as_deref(), port)
    }

    fn server_port(&self) -> Result<u16, BackendError> {
        layout::server_port(&self.b.config).map_err(|e| {
            fail(
                Failure::InfraTransient,
                format!("no free port for the server: {e}"),
            )
        })
    }

    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError> {
        let cfg = &self.b.config;
        let role = container_role(launch.role);
        let server = self.server.lock().ok().and_then(|s| s.clone()).or_else(|| {
            self.warm
                .then(|| {
                    self.b
                        .warm_servers
                        .lock()
                        .ok()?
                        .get(&warm_key(&self.cx.labels))
                        .cloned()
                })
                .flatten()
        });
        let port = launch.port.unwrap_or(cfg.server_port);
        let (net, probe) = match (launch.role, cfg.network) {
            (Role::Server, NetworkMode::Bridge) => {
                (Net::BridgePublish(port), Probe::Published(port))
            }
            (Role::Server, NetworkMode::Host) => (Net::Host, Probe::Direct(port)),
            (_, NetworkMode::Host) => (Net::Host, Probe::None),
            (_, NetworkMode::Bridge) => match server {
                Some(id) => (Net::JoinContainer(id), Probe::None),
                None => (Net::Bridge, Probe::None),
            },
        };
        let mut spec = Spec {
            name: container_name(&self.cx.labels, role),
            image: launch.env.handle.clone(),
            argv: launch.argv,
            env: self.env.clone(),
            labels: container_labels(&self.cx.labels, role),
            host: layout::host_config(cfg, self.mounts.clone(), &net),
            exposed: match net {
                Net::BridgePublish(p) => Some(format!("{p}/tcp")),
                _ => None,
            },
        };
        // Only the process that uses the step's GPUs gets the lease's devices.
        if launch.gpus {
            layout::give_gpus(&mut spec, cfg, &self.cx.lease);
        }
        self.cx.progress.event(
            role.as_str(),
            &format!("starting {} from {}", spec.name, spec.image),
        );
        // Registered before it exists, so that it is removed even when creation's answer is
        // lost: with the step, or — a warm server — with its own handle.
        let owner = (self.warm && launch.role == Role::Server).then(|| {
            let g = Guard::new(self.d.clone(), cfg.keep_containers);
            g.add(&spec.name);
            g
        });
        if owner.is_none() {
            self.guard.add(&spec.name);
        }
        let id = containers::create(&self.d, &spec).await?;
        start(&self.d, &spec.name).await?;
        if launch.role == Role::Server {
            if let Ok(mut s) = self.server.lock() {
                *s = Some(id.clone());
            }
            if self.warm {
                if let Ok(mut w) = self.b.warm_servers.lock() {
                    w.insert(warm_key(&self.cx.labels), id);
                }
            }
        }
        Ok(Box::new(Container::follow(
            self.d.clone(),
            spec.name,
            probe,
            cfg.probe_host.clone(),
            launch.output,
            self.b.redactor.clone(),
            owner,
        )))
    }

    fn host(&self) -> Option<String> {
        self.host.clone()
    }
}
