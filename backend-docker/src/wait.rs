//! Waiting on the Engine: container starts and exits.

use bollard::Docker;
use bollard::query_parameters::WaitContainerOptionsBuilder;
use futures::StreamExt;
use runner_core::{BackendError, Failure};

use crate::error::{Subject, fail, wrap};

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
