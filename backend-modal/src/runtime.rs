//! The step kit's primitives over one sandbox: every process of the step is an `exec` in the
//! attempt's sandbox, in its own process group; the server is reached from this machine
//! through the sandbox's tunnel ([`Running::endpoint`]), the clients reach it at localhost
//! inside the sandbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use runner_core::backend::PreparedEnv;
use runner_core::stepkit::{Endpoint, Exit, Launch, Role, Running, StepRuntime, Values};
use runner_core::{BackendError, RunContext};
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::job::{Paths, Side, values};
use crate::protocol::{Command, TunnelReply};
use crate::sandbox::{Link, Sink};

/// How long one `tunnel` question may take before the readiness loop asks again.
const TUNNEL_WAIT: Duration = Duration::from_secs(5);
/// Beyond a stop's grace, how long the shim gets to confirm it.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// The primitives of one step in one sandbox.
pub(crate) struct SandboxRuntime {
    pub(crate) link: Arc<Link>,
    pub(crate) engine: Side,
    pub(crate) client: Side,
    pub(crate) paths: Paths,
    pub(crate) serving: bool,
    pub(crate) port: u16,
    pub(crate) workdir: String,
    pub(crate) host: Option<String>,
    pub(crate) cancel: CancellationToken,
    next: AtomicU32,
}

impl SandboxRuntime {
    /// The runtime of `cx`'s step in the sandbox behind `link`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        link: Arc<Link>,
        engine: Side,
        client: Side,
        paths: Paths,
        serving: bool,
        port: u16,
        workdir: String,
        cx: &RunContext,
    ) -> SandboxRuntime {
        let host = link.facts().sandbox_id.map(|id| format!("modal:{id}"));
        SandboxRuntime {
            link,
            engine,
            client,
            paths,
            serving,
            port,
            workdir,
            host,
            cancel: cx.cancel.clone(),
            next: AtomicU32::new(0),
        }
    }
}

#[async_trait]
impl StepRuntime for SandboxRuntime {
    fn backend(&self) -> &'static str {
        NAME
    }

    fn values(&self, role: Role, env: &PreparedEnv, port: Option<u16>) -> Values {
        let _ = env;
        let side = match role {
            Role::Server => &self.engine,
            Role::Warmup | Role::Client if self.serving => &self.client,
            Role::Warmup | Role::Client => &self.engine,
        };
        values(role, side, port, &self.paths)
    }

    /// The sandbox has a network of its own: the server's port is the configured one, the
    /// one its tunnel was opened for.
    fn server_port(&self) -> Result<u16, BackendError> {
        Ok(self.port)
    }

    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}-{n}", launch.role);
        let sink = Sink::Files(launch.output);
        self.link
            .exec(
                &id,
                launch.argv,
                Some(self.workdir.clone()),
                &sink,
                &self.cancel,
            )
            .await?;
        Ok(Box::new(SandboxProcess {
            link: self.link.clone(),
            id,
            port: (launch.role == Role::Server)
                .then_some(launch.port)
                .flatten(),
            endpoint: None,
            stopped: false,
        }))
    }

    fn host(&self) -> Option<String> {
        self.host.clone()
    }
}

/// One process in the sandbox.
struct SandboxProcess {
    link: Arc<Link>,
    id: String,
    /// The port it serves on (the server only).
    port: Option<u16>,
    endpoint: Option<Endpoint>,
    stopped: bool,
}

fn ended(r: crate::sandbox::Ended) -> Result<Exit, BackendError> {
    r.map_err(|e| crate::dry_run::shim_error(&e, None))
}

#[async_trait]
impl Running for SandboxProcess {
    async fn endpoint(&mut self) -> Option<Endpoint> {
        if self.endpoint.is_none() {
            let port = self.port?;
            let never = CancellationToken::new();
            match self
                .link
                .call(Command::Tunnel { port }, &never, Some(TUNNEL_WAIT))
                .await
            {
                Ok(v) => match serde_json::from_value::<TunnelReply>(v) {
                    Ok(t) => {
                        tracing::info!(host = %t.host, port = t.port, url = ?t.url, "the server's tunnel");
                        self.endpoint = Some(Endpoint {
                            host: t.host,
                            port: t.port,
                        });
                    }
                    Err(e) => tracing::warn!("a tunnel reply that does not parse: {e}"),
                },
                Err(e) => tracing::debug!("no tunnel yet: {:?}", e),
            }
        }
        self.endpoint.clone()
    }

    async fn try_wait(&mut self) -> Result<Option<Exit>, BackendError> {
        self.link.ended(&self.id).map(ended).transpose()
    }

    async fn wait(&mut self) -> Result<Exit, BackendError> {
        ended(self.link.wait(&self.id).await)
    }

    async fn stop(&mut self, grace: Duration) {
        let never = CancellationToken::new();
        let cmd = Command::Stop {
            id: self.id.clone(),
            grace_s: grace.as_secs_f64(),
        };
        if let Err(e) = self.link.call(cmd, &never, Some(grace + STOP_SLACK)).await {
            tracing::warn!(id = %self.id, "the stop was not confirmed: {e:?}");
        }
        self.link.flush(&self.id);
        self.stopped = true;
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        if !self.stopped {
            // A dropped attempt: the process goes now (the sandbox goes with the shim anyway).
            let _ = self.link.send(Command::Stop {
                id: self.id.clone(),
                grace_s: 0.0,
            });
        }
    }
}
