//! The server's part of the lifecycle: starting it on a port, readiness, and the tail of its
//! log that errors quote.

use std::time::{Duration, Instant};

use super::layout::AttemptFiles;
use super::lifecycle::{Life, Limit};
use super::probe;
use super::runtime::{Exit, Role, Running};
use crate::backend::BackendError;
use crate::failure::Failure;
use crate::plan::ProcessPlan;

/// How long one readiness probe may take at most.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Lines of the server's log that the text of a `server_failed` holds at most.
const MAX_TAIL: usize = 400;

/// How waiting for readiness ended (timeouts and cancellation are errors).
enum Ready {
    /// Ready.
    Yes,
    /// It exited first.
    Exited(Exit),
}

impl Life<'_> {
    /// "last lines of <server log>:" and those lines, for error texts.
    pub(super) fn server_log_tail(&self) -> String {
        let n = self.policy.log_tail_lines.min(MAX_TAIL);
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            AttemptFiles::tail(&self.log, n)
        )
    }

    /// Start the server and wait until it is ready; returns its port. The server is in
    /// `slot` from its start on, so that it is stopped however this ends.
    pub(super) async fn start_server(
        &self,
        plan: &ProcessPlan,
        first_port: Option<u16>,
        slot: &mut Option<Box<dyn Running>>,
    ) -> Result<u16, BackendError> {
        let limit = Limit::phase(self.step.timeouts.server_ready_s, "server_ready_s", self.cx);
        let attempts = self.policy.port_attempts.max(1);
        let mut next = first_port;
        for attempt in 1..=attempts {
            let port = match next.take() {
                Some(p) => p,
                None => self.rt.server_port()?,
            };
            let argv = self.fill(Role::Server, &self.envs.engine, plan, Some(port))?;
            let started = Instant::now();
            let s = slot.insert(
                self.spawn(Role::Server, &self.envs.engine, argv, Some(port))
                    .await?,
            );
            self.cx.progress.event(
                "server",
                &format!("started (port {port}); waiting for /health"),
            );
            match self.wait_ready(s.as_mut(), &limit).await? {
                Ready::Yes => {
                    self.cx.progress.event(
                        "server",
                        &format!("ready after {:.1} s", started.elapsed().as_secs_f64()),
                    );
                    return Ok(port);
                }
                Ready::Exited(exit) => {
                    // Its log is complete once it is stopped (with whatever it left behind).
                    s.stop(self.policy.stop_grace).await;
                    *slot = None;
                    let tail = self.server_log_tail();
                    let lower = tail.to_ascii_lowercase();
                    if attempt < attempts
                        && (lower.contains("address already in use") || lower.contains("errno 98"))
                    {
                        tracing::warn!(port, "the port was taken meanwhile; a fresh one");
                        continue;
                    }
                    return Err(self.err(
                        Failure::ServerFailed,
                        format!("the server exited {exit} before it was ready; {tail}"),
                    ));
                }
            }
        }
        Err(self.err(Failure::InfraTransient, "no port could be bound"))
    }

    /// Ready = `GET /health` answers 200 AND the server is alive AND `limit` has not passed.
    async fn wait_ready(&self, s: &mut dyn Running, limit: &Limit) -> Result<Ready, BackendError> {
        let cancel = &self.cx.cancel;
        let starting = "while the server was starting";
        let mut endpoint = None;
        loop {
            if cancel.is_cancelled() {
                return Err(self.cancelled(starting));
            }
            if let Some(exit) = s.try_wait().await? {
                return Ok(Ready::Exited(exit));
            }
            let now = Instant::now();
            if now >= limit.at {
                return Err(self.err(
                    Failure::Timeout,
                    format!(
                        "the server was not ready within {}; {}",
                        limit.what,
                        self.server_log_tail()
                    ),
                ));
            }
            if endpoint.is_none() {
                endpoint = s.endpoint().await;
            }
            if let Some(ep) = &endpoint {
                let within = (limit.at - now).min(PROBE_TIMEOUT);
                let healthy = tokio::select! {
                    ok = probe::health_ok(ep, within) => ok,
                    _ = cancel.cancelled() => return Err(self.cancelled(starting)),
                };
                if healthy {
                    // Alive too? A 200 from a dying process (or another's) is not ready.
                    if let Some(exit) = s.try_wait().await? {
                        return Ok(Ready::Exited(exit));
                    }
                    return Ok(Ready::Yes);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.policy.health_poll) => {}
                _ = tokio::time::sleep_until(limit.at.into()) => {}
                _ = cancel.cancelled() => return Err(self.cancelled(starting)),
            }
        }
    }
}
