//! One running container of a step: its exit, its readiness endpoint, and stopping it.

use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::StopContainerOptionsBuilder;
use runner_core::BackendError;
use runner_core::stepkit::{Endpoint, Exit, Output, Running};
use tokio::task::JoinHandle;

use crate::containers;
use crate::error::{Redactor, Subject, is_not_found, wrap};
use crate::logs;
use crate::wait::wait_exit;

/// Where the runner probes a server container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// Not a server.
    None,
    /// The host port the engine published for this container port (bridge).
    Published(u16),
    /// This port on the probe host (host network).
    Direct(u16),
}

/// A started container whose output is followed into the step's files.
pub(super) struct Container {
    d: Docker,
    name: String,
    probe: Probe,
    probe_host: String,
    log: Option<JoinHandle<()>>,
    /// A warm server's own guard: the container goes when it is stopped (or dropped).
    owner: Option<containers::Guard>,
}

impl Container {
    /// Start following `name`'s output into `to`.
    pub(super) fn follow(
        d: Docker,
        name: String,
        probe: Probe,
        probe_host: String,
        to: Output,
        redactor: Redactor,
        owner: Option<containers::Guard>,
    ) -> Container {
        let log = logs::follow(d.clone(), name.clone(), to, redactor);
        Container {
            d,
            name,
            probe,
            probe_host,
            log: Some(log),
            owner,
        }
    }

    /// The published host port of `port/tcp`, preferring a binding on the probe host.
    async fn published(&self, port: u16) -> Option<u16> {
        // quiet: the answer holds the container's environment.
        let i = containers::quiet(self.d.inspect_container(&self.name, None))
            .await
            .ok()?;
        let ports = i.network_settings?.ports?;
        let bindings = ports.get(&format!("{port}/tcp"))?.clone()?;
        bindings
            .iter()
            .filter(|b| b.host_ip.as_deref() == Some(self.probe_host.as_str()))
            .chain(bindings.iter())
            .find_map(|b| b.host_port.as_deref()?.parse().ok())
    }
}

fn exit_code(code: i64) -> Exit {
    Exit::code(i32::try_from(code).unwrap_or(i32::MAX))
}

#[async_trait]
impl Running for Container {
    async fn endpoint(&mut self) -> Option<Endpoint> {
        let port = match self.probe {
            Probe::None => return None,
            Probe::Direct(p) => p,
            Probe::Published(p) => self.published(p).await?,
        };
        Some(Endpoint {
            host: self.probe_host.clone(),
            port,
        })
    }

    async fn try_wait(&mut self) -> Result<Option<Exit>, BackendError> {
        // quiet: the answer holds the container's environment.
        match containers::quiet(self.d.inspect_container(&self.name, None)).await {
            Ok(i) => {
                let state = i.state.unwrap_or_default();
                Ok(match state.running {
                    Some(true) => None,
                    _ => Some(state.exit_code.map(exit_code).unwrap_or_default()),
                })
            }
            // Removed behind our back: it is gone, with no code to tell.
            Err(e) if is_not_found(&e) => Ok(Some(Exit::default())),
            Err(e) => Err(wrap(
                format_args!("inspect container '{}'", self.name),
                e,
                Subject::Container,
            )),
        }
    }

    async fn wait(&mut self) -> Result<Exit, BackendError> {
        wait_exit(&self.d, &self.name).await.map(exit_code)
    }

    async fn stop(&mut self, grace: Duration) {
        if self.log.is_none() {
            return;
        }
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::new().t(secs).build();
        // A container that already ended answers "not modified"; one removed, "not found".
        if let Err(e) = self.d.stop_container(&self.name, Some(opts)).await {
            tracing::debug!(container = %self.name, "stopping: {e}");
        }
        // Its log is complete once the follower has drained.
        logs::drain(self.log.take()).await;
        if let Some(g) = self.owner.take() {
            g.cleanup().await;
        }
    }
}
