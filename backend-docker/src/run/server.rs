//! The server container: start, exit monitor, readiness, and the error when it ends.

use std::time::{Duration, Instant};

use runner_core::backend::JobEnvs;
use runner_core::plan::ProcessPlan;
use runner_core::{BackendError, Failure};
use tokio::sync::watch;

use super::{Ctx, Server, TAIL};
use crate::containers::{self, Role};
use crate::error::fail;
use crate::layout::Net;
use crate::logs::{self, Sink};
use crate::wait::{health_ok, wait_exit};

impl Ctx<'_> {
    pub(super) async fn start_server(
        &self,
        plan: &ProcessPlan,
        envs: &JobEnvs,
    ) -> Result<Server, BackendError> {
        let argv = self.argv(plan, &envs.engine, &self.ends.server_host);
        let net = match self.b.config.network {
            crate::NetworkMode::Bridge => Net::BridgePublish(self.ends.port),
            crate::NetworkMode::Host => Net::Host,
        };
        let spec = self.spec(Role::Server, &envs.engine.handle, argv, &net, true);
        self.cx.progress.event(
            "server",
            &format!("starting {} from {}", spec.name, spec.image),
        );
        let id = self.create_and_start(&spec).await?;
        let log_path = self.cx.artifact_dir.join("server.log");
        let log = logs::follow(
            self.d.clone(),
            spec.name.clone(),
            Sink::Merged(log_path.clone()),
            self.b.redactor.clone(),
        );
        let (tx, rx) = watch::channel(None);
        let (d, name) = (self.d.clone(), spec.name.clone());
        tokio::spawn(async move {
            let r = wait_exit(&d, &name).await.map_err(|e| (e.kind, e.message));
            let _ = tx.send(Some(r));
        });
        Ok(Server {
            name: spec.name,
            id,
            exit: rx,
            log: Some(log),
            log_path,
        })
    }

    /// The published host port of the server (bridge), or the chosen port (host network).
    async fn probe_port(&self, s: &Server) -> Option<u16> {
        if self.b.config.network == crate::NetworkMode::Host {
            return Some(self.ends.port);
        }
        // quiet: the answer holds the container's environment.
        let i = containers::quiet(self.d.inspect_container(&s.name, None))
            .await
            .ok()?;
        let ports = i.network_settings?.ports?;
        let bindings = ports.get(&format!("{}/tcp", self.ends.port))?.clone()?;
        bindings
            .iter()
            .filter(|b| b.host_ip.as_deref() == Some(self.b.config.probe_host.as_str()))
            .chain(bindings.iter())
            .find_map(|b| b.host_port.as_deref()?.parse().ok())
    }

    /// Whether the server still runs (its monitor has not seen it end, and the engine says so).
    pub(super) async fn server_running(&self, s: &mut Server) -> bool {
        if s.exit.borrow().is_some() {
            return false;
        }
        let inspect = containers::quiet(self.d.inspect_container(&s.name, None)).await;
        let running = match inspect {
            Ok(i) => i.state.and_then(|st| st.running).unwrap_or(false),
            // The engine did not answer: leave the verdict to the client's exit code.
            Err(_) => true,
        };
        if !running {
            // Give the monitor a moment to record the exit code.
            let _ = tokio::time::timeout(Duration::from_secs(2), s.exit.wait_for(Option::is_some))
                .await;
        }
        running
    }

    /// The error for a server that ended: its code and the last lines of its log.
    pub(super) async fn server_ended(&self, s: &mut Server, when: &str) -> BackendError {
        let exit = s.exit.borrow().clone();
        if let Some(Err((kind, message))) = exit {
            return fail(kind, message);
        }
        logs::drain(s.log.take()).await;
        let code = exit
            .and_then(Result::ok)
            .map(|c| c.to_string())
            .unwrap_or_else(|| "?".into());
        fail(
            Failure::ServerFailed,
            format!(
                "the server container '{}' exited with code {code} {when}; last lines of {}:\n{}",
                s.name,
                s.log_path.display(),
                logs::tail(&s.log_path, TAIL)
            ),
        )
    }

    /// Ready = `GET /health` answers 200, the container runs, and `server_ready_s` has not
    /// passed.
    pub(super) async fn wait_ready(&self, s: &mut Server) -> Result<(), BackendError> {
        let limit = Duration::from_secs(self.step.timeouts.server_ready_s);
        let started = Instant::now();
        let mut port = None;
        self.cx.progress.event("server", "waiting for /health");
        loop {
            if s.exit.borrow().is_some() {
                return Err(self.server_ended(s, "before it was ready").await);
            }
            if port.is_none() {
                port = self.probe_port(s).await;
            }
            if let Some(p) = port {
                if health_ok(&self.b.config.probe_host, p).await && s.exit.borrow().is_none() {
                    self.cx.progress.event(
                        "server",
                        &format!("ready after {:.1} s", started.elapsed().as_secs_f64()),
                    );
                    return Ok(());
                }
            }
            if started.elapsed() >= limit {
                return Err(fail(
                    Failure::Timeout,
                    format!(
                        "the server container '{}' was not ready within server_ready_s = {} s; last lines of {}:\n{}",
                        s.name,
                        limit.as_secs(),
                        s.log_path.display(),
                        logs::tail(&s.log_path, TAIL)
                    ),
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), s.exit.changed()).await;
        }
    }
}
