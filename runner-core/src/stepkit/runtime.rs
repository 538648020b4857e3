//! The primitives a backend gives the step lifecycle: start a process ([`StepRuntime::spawn`])
//! and watch or stop one ([`Running`]). Processes are whatever the backend runs — process
//! groups on this host, containers, … — the lifecycle only sees these calls.

use std::time::Duration;

use async_trait::async_trait;

use super::layout::Output;
use super::placeholders::Values;
use crate::backend::{BackendError, PreparedEnv};

/// What a process does in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The inference server (serving modes).
    Server,
    /// The warm-up run of the client, before anything is measured.
    Warmup,
    /// The measured client (or the offline script).
    Client,
}

impl Role {
    /// Its stable name (`server`, `warmup`, `client`): labels, file names, progress phases.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Warmup => "warmup",
            Role::Client => "client",
        }
    }

    /// How people call it in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Warmup => "warm-up",
            Role::Client => "client",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the runner reaches a server (for its readiness probe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code, when it has one.
    pub code: Option<i32>,
    /// The signal that ended it, when one did (and the backend can tell).
    pub signal: Option<i32>,
}

impl Exit {
    /// An exit with a code.
    pub fn code(code: i32) -> Exit {
        Exit {
            code: Some(code),
            signal: None,
        }
    }

    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "with code {c}"),
            (None, Some(s)) => write!(f, "by signal {s}"),
            (None, None) => f.write_str("without an exit code"),
        }
    }
}

/// One process the lifecycle asks a backend to start.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// What it does.
    pub role: Role,
    /// The build whose environment runs it (venv, image …).
    pub env: &'a PreparedEnv,
    /// Its argv, placeholders filled.
    pub argv: Vec<String>,
    /// Where its output goes (files of the attempt's layout).
    pub output: Output,
    /// Whether it uses the step's GPUs (the server; the client of an offline step).
    pub gpus: bool,
    /// The server's port (the one it listens on; clients connect to it).
    pub port: Option<u16>,
}

/// A backend's primitives for one step.
#[async_trait]
pub trait StepRuntime: Send + Sync {
    /// The backend's name, for errors.
    fn backend(&self) -> &'static str;

    /// The placeholder values of a process of `role` running in `env`'s build, with the
    /// server on `port` (`None`: the step has no server).
    fn values(&self, role: Role, env: &PreparedEnv, port: Option<u16>) -> Values;

    /// A port for the server to listen on; asked again for every start (a fresh one where
    /// ports can be taken meanwhile).
    fn server_port(&self) -> Result<u16, BackendError>;

    /// Environment variables worth writing next to a process's command in the attempt's
    /// commands file (e.g. `CUDA_VISIBLE_DEVICES`). Default: none.
    fn shown_env(&self, role: Role) -> Vec<(String, String)> {
        let _ = role;
        Vec::new()
    }

    /// Start a process, its output going to `launch.output`. Whatever it starts must also go
    /// when the returned [`Running`] is dropped without being stopped (a dropped attempt).
    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError>;

    /// The host the step runs on, for the record.
    fn host(&self) -> Option<String>;
}

/// A started process.
#[async_trait]
pub trait Running: Send {
    /// Where the runner reaches it, if it serves (`None` until known, e.g. a port the engine
    /// has not published yet).
    async fn endpoint(&mut self) -> Option<Endpoint>;

    /// Whether it has ended, without waiting. An error is an infrastructure failure (the
    /// backend lost track of it).
    async fn try_wait(&mut self) -> Result<Option<Exit>, BackendError>;

    /// Wait until it ends. Cancel safe: dropping the future and calling again is fine.
    async fn wait(&mut self) -> Result<Exit, BackendError>;

    /// Stop it and everything it started: ask it to end, `grace` for it to go, then kill.
    /// Returns once it is gone and its output files are complete. Safe to call again.
    async fn stop(&mut self, grace: Duration);
}
