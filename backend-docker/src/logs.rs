//! Container logs streamed into the attempt's artifact files, and their tails for errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::error::Redactor;

/// Where a container's output goes.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    /// stdout and stderr interleaved in one file (the server log).
    Merged(PathBuf),
    /// stdout and stderr in their own files (clients).
    Split {
        /// stdout file.
        stdout: PathBuf,
        /// stderr file.
        stderr: PathBuf,
    },
}

async fn open(path: &Path) -> Option<tokio::fs::File> {
    match tokio::fs::File::create(path).await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot write container log: {e}");
            None
        }
    }
}

/// Follow a container's output into files until the container stops (or the engine goes).
pub(crate) fn follow(d: Docker, name: String, sink: Sink, redactor: Redactor) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (mut out, mut err) = match &sink {
            Sink::Merged(p) => (open(p).await, None),
            Sink::Split { stdout, stderr } => (open(stdout).await, open(stderr).await),
        };
        let opts = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = d.logs(&name, Some(opts));
        while let Some(item) = stream.next().await {
            let (bytes, is_err) = match item {
                Ok(LogOutput::StdErr { message }) => (message, true),
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    (message, false)
                }
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    tracing::debug!(container = %name, "log stream ended: {e}");
                    break;
                }
            };
            let text = String::from_utf8_lossy(&bytes);
            let text = redactor.text(&text);
            let file = if is_err && err.is_some() {
                err.as_mut()
            } else {
                out.as_mut()
            };
            if let Some(f) = file {
                if let Err(e) = f.write_all(text.as_bytes()).await {
                    tracing::warn!(container = %name, "cannot write container log: {e}");
                }
            }
        }
        for f in [out.as_mut(), err.as_mut()].into_iter().flatten() {
            let _ = f.flush().await;
        }
    })
}

/// Wait a little for a log follower to drain after its container stopped.
pub(crate) async fn drain(task: Option<JoinHandle<()>>) {
    if let Some(t) = task {
        let abort = t.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// The last `n` lines of a text file (empty when unreadable).
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&p, 2), "b\nc");
        assert_eq!(tail(&p, 10), "a\nb\nc");
        assert_eq!(tail(&dir.path().join("missing"), 3), "");
    }
}
