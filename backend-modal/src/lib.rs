#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod classify;
pub mod config;
pub mod execute;
pub mod job;
pub mod patch;
pub mod protocol;
pub mod recipe;
pub mod shim;

mod backend;
mod dry_run;
mod runtime;
mod sandbox;
mod sink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use config::{DEFAULT_TOML, ModalConfig, VolumeMount, cost_usd};

/// The backend's stable name.
pub(crate) const NAME: &str = "modal";

/// A build this backend prepared: how it was installed and the image Modal built for it.
#[derive(Debug, Clone)]
pub(crate) struct PreparedBuild {
    pub install: recipe::Install,
    pub commit: String,
}

/// The Modal backend: one sandbox per attempt, created and terminated by a shim that drives
/// the official `modal` SDK; the step runs in it through the step kit's `run_step`. GPUs are leased per sandbox (`acquire` holds no device).
#[derive(Debug, Clone)]
pub struct ModalBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ModalConfig,
    builds: Mutex<HashMap<String, PreparedBuild>>,
}

impl Default for ModalBackend {
    fn default() -> Self {
        ModalBackend::new(ModalConfig::default())
    }
}

impl ModalBackend {
    /// The backend's stable name.
    pub const NAME: &'static str = NAME;

    /// A backend with this configuration.
    pub fn new(config: ModalConfig) -> Self {
        ModalBackend {
            inner: Arc::new(Inner {
                config,
                builds: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ModalConfig {
        &self.inner.config
    }

    /// What `count` GPUs of `gpu_kind` cost for `seconds` by this backend's price table.
    pub fn cost_usd(&self, gpu_kind: &str, count: u32, seconds: f64) -> Option<f64> {
        self.inner.config.cost_usd(gpu_kind, count, seconds)
    }

    pub(crate) fn remember(&self, identity: &str, build: PreparedBuild) {
        if let Ok(mut m) = self.inner.builds.lock() {
            m.insert(identity.to_string(), build);
        }
    }

    pub(crate) fn recall(&self, identity: &str) -> Option<PreparedBuild> {
        self.inner
            .builds
            .lock()
            .ok()
            .and_then(|m| m.get(identity).cloned())
    }
}

#[cfg(test)]
mod tests {
    use runner_core::Variant;
    use runner_core::build::ArtifactSources;

    use super::*;

    const A: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
    /// Shares its first 20 hex digits with `A`.
    const B: &str = "e3580537a41a46b0f3cd0000000000000000ffff";

    #[test]
    fn builds_of_commits_sharing_a_prefix_are_kept_apart() {
        let backend = ModalBackend::default();
        let sources = ArtifactSources::default();
        for c in [A, B, &A[..12]] {
            let b = sources.build_for(Variant::Human, c, c, None);
            let install = recipe::Install::Wheel {
                packages: vec![format!("vllm=={c}")],
                extra_index_url: None,
                local: None,
            };
            backend.remember(
                &b.identity,
                PreparedBuild {
                    install,
                    commit: c.to_string(),
                },
            );
        }
        for c in [A, B, &A[..12]] {
            let b = sources.build_for(Variant::Human, c, c, None);
            let got = backend.recall(&b.identity).map(|p| p.commit);
            assert_eq!(got.as_deref(), Some(c), "the build of {c}");
        }
    }

    #[test]
    fn sandbox_tags_keep_whole_commits() {
        assert_eq!(dry_run::tag(A), A);
        assert_ne!(dry_run::tag(A), dry_run::tag(B));
    }
}
