//! Child processes, each in its own process group: spawning, signalling the group, stopping it
//! with a grace period, and a guard that kills the group when dropped. Nothing is ever killed by
//! name.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// A running child and its process group (the child leads it). Dropping it SIGKILLs the group
/// unless the group is known to be gone.
#[derive(Debug)]
pub struct Spawned {
    /// The child (the group leader).
    pub child: Child,
    /// The group's id (= the child's pid).
    pub pgid: i32,
    armed: bool,
}

/// How waiting for a child ended.
#[derive(Debug)]
pub enum WaitOutcome {
    /// It exited.
    Exited(ExitStatus),
    /// The cancellation token fired first.
    Cancelled,
    /// The deadline passed first.
    TimedOut,
}

impl Spawned {
    /// Spawn `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> io::Result<Spawned> {
        cmd.process_group(0).kill_on_drop(true);
        let child = cmd.spawn()?;
        let pgid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| io::Error::other("the child has no pid"))?;
        Ok(Spawned {
            child,
            pgid,
            armed: true,
        })
    }

    /// Send `sig` to every process of the group.
    pub fn signal(&self, sig: i32) {
        if self.pgid > 1 {
            // SAFETY: killpg has no memory-safety preconditions; the pgid is our child's.
            unsafe {
                libc::killpg(self.pgid, sig);
            }
        }
    }

    /// Whether the leader is still running (reaps it if it exited).
    pub fn leader_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Whether any process of the group is still running (zombies do not count).
    pub fn group_alive(&mut self) -> bool {
        let _ = self.child.try_wait();
        group_alive(self.pgid)
    }

    /// Wait for the leader to exit, the token to fire or the deadline to pass.
    pub async fn wait(
        &mut self,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
    ) -> WaitOutcome {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = self.child.wait() => match status {
                Ok(s) => WaitOutcome::Exited(s),
                // wait() fails only if the child was already reaped; treat as exited.
                Err(_) => WaitOutcome::Exited(std::os::unix::process::ExitStatusExt::from_raw(0)),
            },
            _ = cancel.cancelled() => WaitOutcome::Cancelled,
            _ = sleep => WaitOutcome::TimedOut,
        }
    }

    /// Stop the whole group: SIGTERM, up to `grace` for it to go, then SIGKILL. Returns once no
    /// process of the group is left (or after a bounded wait following SIGKILL).
    pub async fn stop(&mut self, grace: Duration) {
        if !self.group_alive() {
            self.armed = false;
            return;
        }
        tracing::debug!(pgid = self.pgid, "SIGTERM to process group");
        self.signal(libc::SIGTERM);
        if self.wait_group_gone(grace).await {
            return;
        }
        tracing::warn!(
            pgid = self.pgid,
            "process group still alive after {grace:?}; SIGKILL"
        );
        self.signal(libc::SIGKILL);
        if !self.wait_group_gone(Duration::from_secs(5)).await {
            tracing::warn!(pgid = self.pgid, "process group survived SIGKILL for 5 s");
        }
    }

    async fn wait_group_gone(&mut self, within: Duration) -> bool {
        let now = Instant::now();
        let end = now
            .checked_add(within)
            .unwrap_or(now + Duration::from_secs(86_400));
        loop {
            if !self.group_alive() {
                self.armed = false;
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.armed && group_alive(self.pgid) {
            tracing::debug!(pgid = self.pgid, "guard: SIGKILL to process group");
            self.signal(libc::SIGKILL);
        }
    }
}

/// Whether a process group has a live (non-zombie) member. Reads `/proc`; where that is not
/// available, asks the kernel with signal 0.
pub fn group_alive(pgid: i32) -> bool {
    match std::fs::read_dir("/proc") {
        Ok(entries) => entries.flatten().any(|e| {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            else {
                return false;
            };
            match proc_stat(pid) {
                Some((state, pgrp)) => pgrp == pgid && state != 'Z' && state != 'X',
                None => false,
            }
        }),
        // SAFETY: signal 0 only checks for existence.
        Err(_) => unsafe { libc::killpg(pgid, 0) == 0 },
    }
}

/// State letter and process group of a pid, from `/proc/<pid>/stat`.
pub fn proc_stat(pid: &str) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, let it go).
pub fn free_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The output of a short helper command.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
    pub stderr: String,
}

impl Captured {
    /// stdout and stderr together, for messages and classification.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Why a helper command produced no [`Captured`].
#[derive(Debug)]
pub enum RunError {
    /// It could not start (not found, not executable …).
    Spawn(io::Error),
    /// The token fired; the group was stopped.
    Cancelled,
    /// The deadline passed; the group was stopped.
    TimedOut,
}

/// Run a helper command in its own process group, capturing its output; cancellation and the
/// deadline stop the group.
pub async fn run_captured(
    mut cmd: Command,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<Captured, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut sp = Spawned::spawn(&mut cmd).map_err(RunError::Spawn)?;
    let out = sp.child.stdout.take().map(|s| tokio::spawn(read_all(s)));
    let err = sp.child.stderr.take().map(|s| tokio::spawn(read_all(s)));
    let outcome = sp.wait(cancel, deadline).await;
    // Whatever the outcome, nothing of the group outlives the call.
    sp.stop(Duration::from_secs(2)).await;
    let status = match outcome {
        WaitOutcome::Exited(s) => s,
        WaitOutcome::Cancelled => return Err(RunError::Cancelled),
        WaitOutcome::TimedOut => return Err(RunError::TimedOut),
    };
    Ok(Captured {
        status,
        stdout: join_reader(out).await,
        stderr: join_reader(err).await,
    })
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    buf
}

async fn join_reader(h: Option<tokio::task::JoinHandle<Vec<u8>>>) -> String {
    let Some(h) = h else {
        return String::new();
    };
    match tokio::time::timeout(Duration::from_secs(5), h).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port() {
        assert!(free_port().unwrap() > 0);
    }

    #[tokio::test]
    async fn captured_output_and_group_stop() {
        let cancel = CancellationToken::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let c = run_captured(cmd, &cancel, None).await.unwrap();
        assert_eq!(c.status.code(), Some(3));
        assert_eq!(c.stdout.trim(), "out");
        assert_eq!(c.stderr.trim(), "err");

        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        let deadline = Some(Instant::now() + Duration::from_millis(200));
        let t = Instant::now();
        assert!(matches!(
            run_captured(cmd, &cancel, deadline).await,
            Err(RunError::TimedOut)
        ));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
