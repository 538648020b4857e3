//! The vLLM version installed in an image, asked once per image id with a short container run
//! (`import vllm; print(vllm.__version__)`, in a container without network).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::HostConfig;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use runner_core::{BackendError, RunContext};

use crate::DockerBackend;
use crate::containers::{self, Guard, Role, Spec, container_labels, sanitize};
use crate::images::{Resolved, image_label};
use crate::wait::{start, wait_exit};

/// The label a derived image may carry with its version.
pub(crate) const VERSION_LABEL: &str = "perf-runner.vllm-version";

const SCRIPT: &str = "import vllm; print(vllm.__version__)";

static PROBES: AtomicU64 = AtomicU64::new(0);

impl DockerBackend {
    /// The image's vLLM version: its label, a cached answer, or a probe (`None` when unknown).
    pub(crate) async fn engine_version(
        &self,
        d: &Docker,
        r: &Resolved,
        cx: &RunContext,
    ) -> Option<String> {
        if let Some(v) = image_label(&r.inspect, VERSION_LABEL) {
            return Some(v.to_string());
        }
        if !self.config.probe_version {
            return None;
        }
        let id = r.inspect.id.clone()?;
        if let Some(v) = self.versions.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return v;
        }
        let v = match self.probe(d, &r.reference, cx).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(image = %r.reference, "cannot read the vLLM version: {}", e.message);
                return None;
            }
        };
        if let Ok(mut m) = self.versions.lock() {
            m.insert(id, v.clone());
        }
        v
    }

    async fn probe(
        &self,
        d: &Docker,
        image: &str,
        cx: &RunContext,
    ) -> Result<Option<String>, BackendError> {
        let run = cx
            .labels
            .get("run-id")
            .map(String::as_str)
            .unwrap_or("norun");
        let name = format!(
            "pr-{}-probe-{}-{}",
            sanitize(run, 40),
            std::process::id(),
            PROBES.fetch_add(1, Ordering::Relaxed)
        );
        let guard = Guard::new(d.clone(), false);
        guard.add(&name);
        let spec = Spec {
            name: name.clone(),
            image: image.to_string(),
            argv: vec![self.config.python.clone(), "-c".into(), SCRIPT.into()],
            env: Vec::new(),
            labels: container_labels(&cx.labels, Role::Probe),
            host: HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            },
            exposed: None,
        };
        let r = async {
            containers::create(d, &spec).await?;
            start(d, &name).await?;
            let code =
                match tokio::time::timeout(Duration::from_secs(120), wait_exit(d, &name)).await {
                    Ok(c) => c?,
                    Err(_) => return Ok(None),
                };
            if code != 0 {
                return Ok(None);
            }
            let opts = LogsOptionsBuilder::new().stdout(true).stderr(false).build();
            let mut out = String::new();
            let mut logs = d.logs(&name, Some(opts));
            while let Some(Ok(item)) = logs.next().await {
                if let LogOutput::StdOut { message } = item {
                    out.push_str(&String::from_utf8_lossy(&message));
                }
            }
            Ok(out
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(str::to_string))
        }
        .await;
        guard.cleanup().await;
        r
    }
}
