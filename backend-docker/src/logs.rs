//! Container logs streamed into the attempt's artifact files.

use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use runner_core::stepkit::Output;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::error::Redactor;

/// Open one of `to`'s files as the step kit says (the server's log appended to).
async fn open(to: &Output, path: &Path) -> Option<tokio::fs::File> {
    match tokio::fs::OpenOptions::from(to.open_options())
        .open(path)
        .await
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot write container log: {e}");
            None
        }
    }
}

/// Follow a container's output into the step's files until the container stops (or the
/// engine goes).
pub(crate) fn follow(d: Docker, name: String, to: Output, redactor: Redactor) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (mut out, mut err) = match &to {
            Output::Merged(p) => (open(&to, p).await, None),
            Output::Split { stdout, stderr } => (open(&to, stdout).await, open(&to, stderr).await),
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
