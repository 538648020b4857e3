//! Containers: names, labels, creation (with the leftover-name retry), removal, the cleanup
//! guard and `gc` by label.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use runner_core::BackendError;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use crate::error::{Subject, is_conflict, is_not_found, wrap};
use crate::{LABEL_ATTEMPT, LABEL_ROLE, LABEL_RUN_ID, LABEL_TASK, LABEL_VARIANT};

/// Where the attempt's results directory is mounted (`{RESULT_DIR}`).
pub(crate) const RESULTS_MOUNT: &str = "/perf-runner/results";
/// Where the datasets directory is mounted, read-only (`{DATA_DIR}`).
pub(crate) const DATA_MOUNT: &str = "/perf-runner/data";
/// Where the Hugging Face cache is mounted.
pub(crate) const HF_MOUNT: &str = "/root/.cache/huggingface";

/// What a container does in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The inference server.
    Server,
    /// The warm-up run of the client.
    Warmup,
    /// The measured client (or offline script).
    Client,
    /// A short look into an image (its vLLM version).
    Probe,
}

impl Role {
    /// The label value and name suffix.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Warmup => "warmup",
            Role::Client => "client",
            Role::Probe => "probe",
        }
    }
}

/// `s` reduced to the characters Docker allows in names, at most `max` of them.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    if out.is_empty() { "x".into() } else { out }
}

/// A label of the run context, or a placeholder.
fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str, default: &'a str) -> &'a str {
    labels
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
}

/// `pr-<run>-<task>-<variant>-<attempt>-<role>`, with the task's whole commit: two tasks of
/// a run whose commits share a prefix never share a name (the leftover-name retry would
/// otherwise remove the other task's container).
pub(crate) fn container_name(labels: &BTreeMap<String, String>, role: Role) -> String {
    // The job within its task (`r2-aa`), where the engine says it: a task's jobs share
    // variant and attempt numbers, and a warm server's jobs may overlap their cleanup.
    let attempt = match labels.get("job") {
        Some(job) => format!("{job}-{}", label(labels, "attempt", "0")),
        None => label(labels, "attempt", "0").to_string(),
    };
    format!(
        "pr-{}-{}-{}-{}-{}",
        sanitize(label(labels, "run-id", "norun"), 40),
        sanitize(label(labels, "task", "notask"), 64),
        sanitize(label(labels, "variant", "any"), 16),
        sanitize(&attempt, 32),
        role.as_str()
    )
}

/// The container labels for a run context and role.
pub(crate) fn container_labels(
    labels: &BTreeMap<String, String>,
    role: Role,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    out.insert(LABEL_RUN_ID.into(), label(labels, "run-id", "norun").into());
    out.insert(LABEL_TASK.into(), label(labels, "task", "notask").into());
    out.insert(LABEL_VARIANT.into(), label(labels, "variant", "any").into());
    out.insert(LABEL_ATTEMPT.into(), label(labels, "attempt", "0").into());
    out.insert(LABEL_ROLE.into(), role.as_str().into());
    out
}

/// Everything needed to create one container.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Unique name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Program and arguments (the program replaces the image's entrypoint).
    pub argv: Vec<String>,
    /// `KEY=VALUE` environment (may hold secrets: never log it).
    pub env: Vec<String>,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// Resources, mounts, network.
    pub host: HostConfig,
    /// A port to expose (`8000/tcp`).
    pub exposed: Option<String>,
}

impl Spec {
    fn body(&self) -> ContainerCreateBody {
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(self.argv.iter().take(1).cloned().collect()),
            cmd: Some(self.argv.iter().skip(1).cloned().collect()),
            env: Some(self.env.clone()),
            labels: Some(self.labels.clone()),
            host_config: Some(self.host.clone()),
            exposed_ports: self.exposed.clone().map(|p| vec![p]),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        }
    }
}

/// Run an Engine call with tracing switched off: bollard logs request and response bodies at
/// debug level, and container bodies hold the environment (secrets).
pub(crate) async fn quiet<F: std::future::Future>(f: F) -> F::Output {
    f.with_subscriber(NoSubscriber::default()).await
}

/// Create a container. A leftover of the same name (409) is removed and creation retried once.
/// The call is [`quiet`]: its body holds the environment.
pub(crate) async fn create(d: &Docker, spec: &Spec) -> Result<String, BackendError> {
    let what = || {
        format!(
            "create container '{}' from image '{}'",
            spec.name, spec.image
        )
    };
    let opts = CreateContainerOptionsBuilder::new()
        .name(&spec.name)
        .build();
    let first = quiet(d.create_container(Some(opts.clone()), spec.body())).await;
    let created = match first {
        Err(e) if is_conflict(&e) => {
            tracing::warn!(container = %spec.name, "removing a leftover container of the same name");
            remove(d, &spec.name).await.map_err(|e| {
                wrap(
                    format!("remove leftover container '{}'", spec.name),
                    e,
                    Subject::Container,
                )
            })?;
            quiet(d.create_container(Some(opts), spec.body())).await
        }
        other => other,
    };
    let created = created.map_err(|e| wrap(what(), e, Subject::Image))?;
    for w in created.warnings.iter().filter(|w| !w.is_empty()) {
        tracing::warn!(container = %spec.name, "engine warning: {w}");
    }
    Ok(created.id)
}

/// Remove a container and its anonymous volumes, running or not; a missing one is fine.
pub(crate) async fn remove(d: &Docker, name: &str) -> Result<(), bollard::errors::Error> {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match d.remove_container(name, Some(opts)).await {
        Err(e) if is_not_found(&e) => Ok(()),
        // 409 "removal already in progress"
        Err(e) if is_conflict(&e) => Ok(()),
        r => r,
    }
}

/// Removes the containers of a step when it ends: explicitly through [`Guard::cleanup`], or,
/// when the step's future is dropped first, from `Drop` on the current runtime.
#[derive(Debug)]
pub(crate) struct Guard {
    docker: Docker,
    names: Mutex<Vec<String>>,
    keep: bool,
}

impl Guard {
    /// A guard; `keep` leaves containers in place (debugging).
    pub(crate) fn new(docker: Docker, keep: bool) -> Self {
        Guard {
            docker,
            names: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// Register a name before the container is created, so that it is removed even when the
    /// creation's answer is lost.
    pub(crate) fn add(&self, name: &str) {
        if let Ok(mut n) = self.names.lock() {
            n.push(name.to_string());
        }
    }

    fn take(&self) -> Vec<String> {
        self.names
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// Remove every registered container now (unless kept).
    pub(crate) async fn cleanup(&self) {
        if self.keep {
            let names = self.take();
            if !names.is_empty() {
                tracing::info!(containers = ?names, "keeping containers (keep_containers)");
            }
            return;
        }
        for name in self.take().iter().rev() {
            if let Err(e) = remove(&self.docker, name).await {
                tracing::warn!(container = %name, "failed to remove container: {e}");
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let names = self.take();
        if names.is_empty() || self.keep {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(containers = ?names, "no runtime to remove containers; run gc");
            return;
        };
        let d = self.docker.clone();
        rt.spawn(async move {
            for name in names.iter().rev() {
                if let Err(e) = remove(&d, name).await {
                    tracing::warn!(container = %name, "failed to remove container: {e}");
                }
            }
        });
    }
}

/// Remove perf-runner containers by label: one run's, or all of them.
pub(crate) async fn gc(d: &Docker, run_id: Option<&str>) -> Result<usize, BackendError> {
    let filter = match run_id {
        Some(id) => format!("{LABEL_RUN_ID}={id}"),
        None => LABEL_RUN_ID.to_string(),
    };
    let mut filters = HashMap::new();
    filters.insert("label", vec![filter.as_str()]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let list = d.list_containers(Some(opts)).await.map_err(|e| {
        wrap(
            format_args!("list containers labelled {filter}"),
            e,
            Subject::Container,
        )
    })?;
    let mut removed = 0;
    for c in list {
        let Some(id) = c.id else { continue };
        let shown = c
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_else(|| id.clone());
        remove(d, &id).await.map_err(|e| {
            wrap(
                format_args!("remove container {shown}"),
                e,
                Subject::Container,
            )
        })?;
        tracing::info!(container = %shown, "removed leftover container");
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_attempt_and_role_and_docker_safe() {
        let mut l = BTreeMap::new();
        l.insert("run-id".to_string(), "2024/run 1".to_string());
        l.insert("task".to_string(), "0123456789abcdef".to_string());
        l.insert("variant".to_string(), "human".to_string());
        l.insert("attempt".to_string(), "2".to_string());
        assert_eq!(
            container_name(&l, Role::Server),
            "pr-2024-run-1-0123456789abcdef-human-2-server"
        );
        // Commits sharing 20 leading digits: distinct names.
        let mut other = l.clone();
        l.insert(
            "task".into(),
            "e3580537a41a46b0f3cd750b86b633c1857a8c90".into(),
        );
        other.insert(
            "task".into(),
            "e3580537a41a46b0f3cd0000000000000000ffff".into(),
        );
        assert_ne!(
            container_name(&l, Role::Server),
            container_name(&other, Role::Server)
        );
        assert_eq!(
            container_name(&BTreeMap::new(), Role::Client),
            "pr-norun-notask-any-0-client"
        );
        let labels = container_labels(&l, Role::Client);
        assert_eq!(labels[LABEL_RUN_ID], "2024/run 1");
        assert_eq!(labels[LABEL_ROLE], "client");
    }
}
