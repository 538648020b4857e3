//! One attempt's sandbox shim: a long-lived shim process that speaks the sandbox commands of
//! [`crate::protocol`]. Commands go to its stdin through one writer task; one reader task
//! takes its events: replies complete the calls waiting for them, output lines go straight into
//! the attempt's files (or a capture buffer), and exits are kept per process, so that "has it
//! ended?" and "wait for it" need no round trip.
//!
//! Dropping the [`Shim`] without [`Shim::close`] sends SIGTERM to the shim's process group: the
//! shim terminates its sandbox and exits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner_core::backend::ProgressSink;
use runner_core::stepkit::Exit;
use runner_core::{BackendError, Failure};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::config::ModalConfig;
use crate::dry_run::shim_error;
use crate::lines::BoundedLines;
use crate::protocol::{Command, Envelope, ErrorEvent, Event};
use crate::shim::{self, GroupGuard};
pub(crate) use crate::sink::Sink;
use crate::sink::Writer;

mod events;

/// How a process ended, or why that is not known.
pub(crate) type Ended = Result<Exit, ErrorEvent>;

/// Why a command got no answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The shim raised this.
    Raised(ErrorEvent),
    /// The shim is gone.
    Gone,
    /// The attempt was cancelled meanwhile.
    Cancelled,
    /// No answer in time.
    TimedOut(Duration),
}

impl CallError {
    /// As the step's error; `what` names the command for people.
    pub(crate) fn into_backend(self, what: &str) -> BackendError {
        match self {
            CallError::Raised(e) => shim_error(&e, None),
            CallError::Gone => BackendError::new(
                NAME,
                Failure::Unknown,
                format!("{what}: the shim exited (its stderr is in shim.stderr)"),
            ),
            CallError::Cancelled => {
                BackendError::new(NAME, Failure::Cancelled, format!("cancelled during {what}"))
            }
            CallError::TimedOut(d) => BackendError::new(
                NAME,
                Failure::InfraTransient,
                format!("{what}: no answer from the shim within {d:?}"),
            ),
        }
    }
}

struct Proc {
    out: Writer,
    ended: watch::Sender<Option<Ended>>,
}

/// What the shim said about its sandbox.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// The sandbox's id.
    pub sandbox_id: Option<String>,
    /// Its lifetime, once terminated.
    pub seconds: Option<f64>,
    /// An error the shim reported outside any command.
    pub error: Option<ErrorEvent>,
}

/// The shared side of a sandbox shim: commands, processes, facts.
pub(crate) struct Link {
    tx: Mutex<Option<mpsc::UnboundedSender<String>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, ErrorEvent>>>>,
    procs: Mutex<HashMap<String, Proc>>,
    seq: AtomicU64,
    gone: CancellationToken,
    facts: Mutex<Facts>,
    /// Why no command can be answered (a shim of another protocol).
    refused: Mutex<Option<ErrorEvent>>,
    progress: Arc<dyn ProgressSink>,
}
fn lost(message: &str) -> ErrorEvent {
    ErrorEvent {
        class: "perf_runner.ShimGone".into(),
        classes: vec!["perf_runner.ShimGone".into()],
        message: message.into(),
        phase: Some("shim".into()),
        ..ErrorEvent::default()
    }
}

impl Link {
    fn refused(&self) -> Option<ErrorEvent> {
        self.refused.lock().ok().and_then(|r| r.clone())
    }

    /// Send a command without waiting for its answer.
    pub(crate) fn send(&self, command: Command) -> Option<u64> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let line = serde_json::to_string(&Envelope { seq, command }).ok()?;
        let tx = self.tx.lock().ok()?;
        tx.as_ref()?.send(line).ok()?;
        Some(seq)
    }

    /// Send a command and wait for its answer (bounded by `within`, ended by `cancel`).
    pub(crate) async fn call(
        &self,
        command: Command,
        cancel: &CancellationToken,
        within: Option<Duration>,
    ) -> Result<Value, CallError> {
        let (tx, rx) = oneshot::channel();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut m) = self.pending.lock() {
            m.insert(seq, tx);
        }
        let forget = || {
            if let Ok(mut m) = self.pending.lock() {
                m.remove(&seq);
            }
        };
        if let Some(e) = self.refused() {
            forget();
            return Err(CallError::Raised(e));
        }
        let sent = serde_json::to_string(&Envelope { seq, command })
            .ok()
            .and_then(|line| {
                let g = self.tx.lock().ok()?;
                g.as_ref()?.send(line).ok()
            });
        if sent.is_none() || self.gone.is_cancelled() {
            forget();
            return Err(CallError::Gone);
        }
        let limit = async {
            match within {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let r = tokio::select! {
            r = rx => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(CallError::Raised(e)),
                Err(_) => Err(CallError::Gone),
            },
            _ = self.gone.cancelled() => Err(CallError::Gone),
            _ = cancel.cancelled() => Err(CallError::Cancelled),
            _ = limit => Err(CallError::TimedOut(within.unwrap_or_default())),
        };
        forget();
        r
    }

    /// Start a process; its output goes to `sink`.
    pub(crate) async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        workdir: Option<String>,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> Result<(), BackendError> {
        let out = Writer::open(sink).map_err(|e| {
            BackendError::new(
                NAME,
                Failure::EnvironmentBroken,
                format!("cannot open the output files of {id}: {e}"),
            )
        })?;
        let (ended, _) = watch::channel(None);
        if let Ok(mut m) = self.procs.lock() {
            m.insert(id.to_string(), Proc { out, ended });
        }
        let cmd = Command::Exec {
            id: id.to_string(),
            argv,
            workdir,
        };
        match self.call(cmd, cancel, None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // It may have started all the same (a cancel that raced the answer).
                if !matches!(e, CallError::Raised(_)) {
                    let _ = self.send(Command::Stop {
                        id: id.to_string(),
                        grace_s: 0.0,
                    });
                }
                Err(e.into_backend(&format!("starting {id}")))
            }
        }
    }

    /// How the process `id` ended, if it has.
    pub(crate) fn ended(&self, id: &str) -> Option<Ended> {
        let m = self.procs.lock().ok()?;
        m.get(id)?.ended.borrow().clone()
    }

    /// Wait until the process `id` ends (cancel safe).
    pub(crate) async fn wait(&self, id: &str) -> Ended {
        let rx = self
            .procs
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|p| p.ended.subscribe()));
        let Some(mut rx) = rx else {
            return Err(lost(&format!("no process {id}")));
        };
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or_else(|| Err(lost("no exit"))),
            Err(_) => Err(lost("the shim exited while it ran")),
        }
    }

    /// Write out what a process's files hold so far (its exit does this too).
    pub(crate) fn flush(&self, id: &str) {
        if let Some(p) = self.procs.lock().ok().as_mut().and_then(|m| m.get_mut(id)) {
            p.out.flush();
        }
    }

    /// What a [`Sink::Capture`] process printed: stdout, stderr.
    pub(crate) fn captured(&self, id: &str) -> (String, String) {
        self.procs
            .lock()
            .ok()
            .as_ref()
            .and_then(|m| m.get(id).and_then(|p| p.out.captured()))
            .unwrap_or_default()
    }

    /// What the shim said about its sandbox.
    pub(crate) fn facts(&self) -> Facts {
        self.facts.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// A running sandbox shim (see the module docs).
pub(crate) struct Shim {
    link: Arc<Link>,
    child: Child,
    pgid: Option<u32>,
    guard: GroupGuard,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl Shim {
    /// Start a shim; its stderr goes to `stderr_log`. An event line over `line_max` bytes is
    /// not read (a reply among them fails its call).
    pub(crate) fn open(
        cfg: &ModalConfig,
        progress: Arc<dyn ProgressSink>,
        stderr_log: &Path,
        line_max: usize,
    ) -> Result<Shim, BackendError> {
        let mut child = shim::spawn(cfg)?;
        let pgid = child.id();
        let guard = GroupGuard(pgid);
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let link = Arc::new(Link {
            tx: Mutex::new(Some(tx)),
            pending: Mutex::new(HashMap::new()),
            procs: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            gone: CancellationToken::new(),
            facts: Mutex::new(Facts::default()),
            refused: Mutex::new(None),
            progress,
        });
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    let ok = stdin.write_all(line.as_bytes()).await.is_ok()
                        && stdin.write_all(b"\n").await.is_ok()
                        && stdin.flush().await.is_ok();
                    if !ok {
                        break;
                    }
                }
                // Dropping stdin closes it: the shim terminates its sandbox and exits.
            });
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BackendError::new(NAME, Failure::Unknown, "the shim has no stdout"))?;
        let reader = link.clone();
        tokio::spawn(async move {
            let mut lines = BoundedLines::new(BufReader::new(stdout), line_max);
            while let Ok(Some(l)) = lines.next_line().await {
                if l.is_cut() {
                    reader.overlong(&l);
                    continue;
                }
                match serde_json::from_slice::<Event>(&l.bytes) {
                    Ok(ev) => reader.on_event(ev),
                    Err(_) => {
                        let l = String::from_utf8_lossy(&l.bytes[..l.bytes.len().min(500)]);
                        tracing::debug!(line = %l, "shim: not an event")
                    }
                }
            }
            reader.end();
        });
        let stderr = child
            .stderr
            .take()
            .map(|e| tokio::spawn(shim::read_stderr(e, Some(stderr_log.to_path_buf()))));
        Ok(Shim {
            link,
            child,
            pgid,
            guard,
            stderr,
        })
    }

    /// The shared side, for the step's processes.
    pub(crate) fn link(&self) -> Arc<Link> {
        self.link.clone()
    }

    /// Close stdin (the shim terminates whatever is left and exits), wait for it — SIGTERM and
    /// SIGKILL when it lingers — and return its exit code and the end of its stderr.
    pub(crate) async fn close(mut self, cfg: &ModalConfig) -> (Option<i32>, String) {
        if let Ok(mut tx) = self.link.tx.lock() {
            tx.take();
        }
        let exit = shim::reap(cfg, &mut self.child, self.pgid, false).await;
        self.guard.0 = None;
        let tail = match self.stderr.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => String::new(),
        };
        (exit, tail)
    }
}
