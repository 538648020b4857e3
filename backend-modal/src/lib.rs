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
mod lines;
mod results;
mod runtime;
mod sandbox;
mod sink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use config::{DEFAULT_TOML, ModalConfig, VolumeMount, cost_usd};

/// The backend's stable name.
pub(crate) const NAME: &str = "modal";

/// The most a result file fetched from a sandbox may be, and the most all of an attempt's
/// result files together may be, unless [`ModalBackend::with_max_result_bytes`] says otherwise:
/// 64 MiB. The engine's `limits.max_result_bytes` does not reach a backend (neither its
/// configuration section nor the run context carries it), so this is the default.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 64 * 1024 * 1024;

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
    max_result_bytes: u64,
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
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }

    /// Cap the result files fetched from a sandbox (each, and all together) at `bytes` (at
    /// least 1), e.g. the engine's `limits.max_result_bytes`. A file over it is not read in the
    /// sandbox; `modal.json` lists it with its size and the reason.
    pub fn with_max_result_bytes(mut self, bytes: u64) -> Self {
        self.max_result_bytes = bytes.max(1);
        self
    }

    /// The cap on fetched result files.
    pub fn max_result_bytes(&self) -> u64 {
        self.max_result_bytes
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
