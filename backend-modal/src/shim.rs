//! Running the shim: the embedded Python file written content-addressed to a cache dir, one
//! process per request (or per attempt's sandbox, see `sandbox`) in its own process
//! group, events read line by line, and a stop that always ends the process:
//! `{"cmd":"cancel"}` and stdin closed, then after a grace SIGTERM to the group (the shim
//! terminates its sandbox on it too), then SIGKILL.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use runner_core::{BackendError, Failure};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::config::ModalConfig;
use crate::lines::BoundedLines;
use crate::protocol::{Event, Request};

/// The shim's files (name, source), embedded in the binary; the first is the entry point.
pub const SHIM_FILES: [(&str, &str); 3] = [
    ("modal_shim.py", include_str!("../shim/modal_shim.py")),
    ("modal_sdk.py", include_str!("../shim/modal_sdk.py")),
    ("modal_streams.py", include_str!("../shim/modal_streams.py")),
];

/// Lines of the shim's stderr kept for error messages.
const STDERR_TAIL: usize = 40;
/// The longest event line of a one-request run (a dry run's plan is the largest).
const REQUEST_LINE_MAX: usize = 16 * 1024 * 1024;
/// The longest stderr line kept whole (the SDK's build logs go there).
const STDERR_LINE_MAX: usize = 64 * 1024;

/// What the event handler wants next.
#[derive(Debug)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop the shim (it terminates its sandbox) and end with this error.
    Stop(BackendError),
}

/// How the shim's run ended.
#[derive(Debug)]
pub enum Ending {
    /// It exited by itself.
    Finished,
    /// The cancellation token fired.
    Cancelled,
    /// The deadline passed.
    TimedOut,
    /// The handler stopped it.
    Stopped(BackendError),
}

/// The end of one shim process.
#[derive(Debug)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// Its exit code (`None` = killed by a signal).
    pub exit: Option<i32>,
    /// The last lines it wrote to stderr.
    pub stderr_tail: String,
}

/// The shim file to run: the override, or the embedded files written under
/// `<shim_dir>/<sha256 prefix of their contents>/` (each written once, atomically).
pub fn shim_path(cfg: &ModalConfig) -> Result<PathBuf, BackendError> {
    if let Some(p) = &cfg.shim_override {
        return Ok(p.clone());
    }
    let mut all = Vec::new();
    for (name, src) in SHIM_FILES {
        all.extend_from_slice(name.as_bytes());
        all.push(0);
        all.extend_from_slice(src.as_bytes());
    }
    let digest = crate::patch::sha256_hex(&all);
    let dir = cfg.shim_dir().join(&digest[..16]);
    let broken = |e: std::io::Error| {
        BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!("cannot write the shim to {}: {e}", dir.display()),
        )
    };
    for (name, src) in SHIM_FILES {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|b| b == src.as_bytes()) {
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(broken)?;
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, src).map_err(broken)?;
        std::fs::rename(&tmp, &path).map_err(broken)?;
    }
    Ok(dir.join(SHIM_FILES[0].0))
}

/// Sends SIGTERM to the shim's group when dropped while armed.
pub(crate) struct GroupGuard(pub(crate) Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGTERM);
    }
}

pub(crate) fn signal_group(pgid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
        // SAFETY: kill(2) with a negative pid signals exactly the process group we created.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

/// Start the shim in its own process group, its stdin, stdout and stderr piped.
pub(crate) fn spawn(cfg: &ModalConfig) -> Result<Child, BackendError> {
    let path = shim_path(cfg)?;
    let mut cmd = Command::new(&cfg.python);
    cmd.arg("-u")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd.spawn().map_err(|e| {
        BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!(
                "cannot start {} {}: {e}",
                cfg.python.display(),
                path.display()
            ),
        )
    })
}

/// Run one request through the shim, handing every event to `on_event`.
pub async fn run(
    cfg: &ModalConfig,
    request: &Request,
    cancel: &CancellationToken,
    deadline: Option<Instant>,
    stderr_log: Option<&Path>,
    mut on_event: impl FnMut(Event) -> Control,
) -> Result<Outcome, BackendError> {
    let line = serde_json::to_string(request).map_err(|e| {
        BackendError::new(
            NAME,
            Failure::Unknown,
            format!("cannot encode the request: {e}"),
        )
    })?;
    let mut child = spawn(cfg)?;
    let pgid = child.id();
    // Dropped before the end (the caller's future was dropped): SIGTERM lets the shim terminate
    // its sandbox and exit by itself.
    let mut guard = GroupGuard(pgid);
    let mut stdin = child.stdin.take();
    if let Some(s) = stdin.as_mut() {
        // A shim that died at once shows up as an early EOF below.
        let _ = s.write_all(format!("{line}\n").as_bytes()).await;
        let _ = s.flush().await;
    }
    let stderr_task = child.stderr.take().map(|e| {
        let log = stderr_log.map(Path::to_path_buf);
        tokio::spawn(read_stderr(e, log))
    });
    let Some(stdout) = child.stdout.take() else {
        return Err(BackendError::new(
            NAME,
            Failure::Unknown,
            "the shim has no stdout",
        ));
    };
    let mut lines = BoundedLines::new(BufReader::new(stdout), REQUEST_LINE_MAX);
    let mut ending = None;
    let mut escalation: Option<(Instant, libc::c_int)> = None;
    let far = Instant::now() + std::time::Duration::from_secs(86_400 * 365);
    loop {
        let stop_at = deadline.unwrap_or(far);
        let escalate_at = escalation.map_or(far, |(t, _)| t);
        tokio::select! {
            l = lines.next_line() => match l {
                Ok(Some(l)) => {
                    if l.is_cut() {
                        tracing::warn!(dropped = l.dropped, "the shim wrote an event line over {REQUEST_LINE_MAX} bytes; dropped");
                        continue;
                    }
                    let Ok(ev) = serde_json::from_slice::<Event>(&l.bytes) else {
                        let l = String::from_utf8_lossy(&l.bytes[..l.bytes.len().min(500)]);
                        tracing::debug!(line = %l, "shim: not an event");
                        continue;
                    };
                    if let Control::Stop(e) = on_event(ev) {
                        if ending.is_none() {
                            ending = Some(Ending::Stopped(e));
                            escalation = Some(begin_stop(cfg, &mut stdin).await);
                        }
                    }
                }
                Ok(None) | Err(_) => break,
            },
            _ = cancel.cancelled(), if ending.is_none() => {
                ending = Some(Ending::Cancelled);
                escalation = Some(begin_stop(cfg, &mut stdin).await);
            }
            _ = tokio::time::sleep_until(stop_at.into()), if ending.is_none() && deadline.is_some() => {
                ending = Some(Ending::TimedOut);
                escalation = Some(begin_stop(cfg, &mut stdin).await);
            }
            _ = tokio::time::sleep_until(escalate_at.into()), if escalation.is_some() => {
                if let Some((_, sig)) = escalation {
                    tracing::warn!(signal = sig, "the shim is still running; signalling its group");
                    signal_group(pgid, sig);
                    escalation = (sig == libc::SIGTERM)
                        .then(|| (Instant::now() + cfg.kill_grace(), libc::SIGKILL));
                }
            }
        }
    }
    drop(stdin);
    let exit = reap(cfg, &mut child, pgid, escalation.is_some()).await;
    guard.0 = None;
    let stderr_tail = match stderr_task {
        Some(t) => t.await.unwrap_or_default(),
        None => String::new(),
    };
    Ok(Outcome {
        ending: ending.unwrap_or(Ending::Finished),
        exit,
        stderr_tail,
    })
}

/// Ask the shim to stop; returns when to escalate to SIGTERM.
async fn begin_stop(
    cfg: &ModalConfig,
    stdin: &mut Option<tokio::process::ChildStdin>,
) -> (Instant, libc::c_int) {
    if let Some(mut s) = stdin.take() {
        let _ = s.write_all(b"{\"cmd\":\"cancel\"}\n").await;
        let _ = s.flush().await;
        // Dropping closes stdin: EOF means cancel too.
    }
    (Instant::now() + cfg.cancel_grace(), libc::SIGTERM)
}

/// Wait for the shim to exit (signalling it when it lingers), then clear its group.
pub(crate) async fn reap(
    cfg: &ModalConfig,
    child: &mut Child,
    pgid: Option<u32>,
    stopping: bool,
) -> Option<i32> {
    let grace = if stopping {
        cfg.kill_grace()
    } else {
        cfg.cancel_grace()
    };
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            signal_group(pgid, libc::SIGTERM);
            match tokio::time::timeout(cfg.kill_grace(), child.wait()).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    signal_group(pgid, libc::SIGKILL);
                    child.wait().await.ok()
                }
            }
        }
    };
    // Anything the shim left in its group goes with it.
    signal_group(pgid, libc::SIGKILL);
    status.and_then(|s| s.code())
}

pub(crate) async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    log: Option<PathBuf>,
) -> String {
    let mut file = match log {
        Some(p) => tokio::fs::File::create(&p).await.ok(),
        None => None,
    };
    let mut tail = VecDeque::new();
    let mut lines = BoundedLines::new(BufReader::new(stderr), STDERR_LINE_MAX);
    while let Ok(Some(line)) = lines.next_line().await {
        let mut l = String::from_utf8_lossy(&line.bytes).into_owned();
        if line.is_cut() {
            l.push_str(&format!(" [{} more bytes dropped]", line.dropped));
        }
        tracing::debug!(target: "backend_modal::shim", "{l}");
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(format!("{l}\n").as_bytes()).await;
        }
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(l);
    }
    if let Some(f) = file.as_mut() {
        let _ = f.flush().await;
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}
