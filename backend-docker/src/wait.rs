//! Waiting on the Engine and the server: container exits, starts, `/health`, result files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::WaitContainerOptionsBuilder;
use futures::StreamExt;
use runner_core::{BackendError, Failure};

use crate::error::{Subject, fail, wrap};

/// The files a client left in the results directory, sorted.
pub(crate) fn result_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Wait for a container to stop; the engine reports a non-zero exit as an error, which here is
/// just the exit code.
pub(crate) async fn wait_exit(d: &Docker, name: &str) -> Result<i64, BackendError> {
    let opts = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    let mut s = d.wait_container(name, Some(opts));
    match s.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(wrap(
            format_args!("wait for container '{name}'"),
            e,
            Subject::Container,
        )),
        None => Err(fail(
            Failure::InfraTransient,
            format!("the engine ended the wait for container '{name}' without an exit code"),
        )),
    }
}

/// Start a created container.
pub(crate) async fn start(d: &Docker, name: &str) -> Result<(), BackendError> {
    d.start_container(name, None).await.map_err(|e| {
        wrap(
            format_args!("start container '{name}'"),
            e,
            Subject::Container,
        )
    })
}

/// `GET /health` over plain HTTP/1.1 answers 200.
pub(crate) async fn health_ok(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let req =
            format!("GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let k = s.read(&mut buf[n..]).await.ok()?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        Some(head.starts_with("HTTP/1.") && head.get(9..12) == Some("200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}
