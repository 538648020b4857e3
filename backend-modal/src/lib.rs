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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use config::{ModalConfig, VolumeMount, cost_usd};

/// The backend's stable name.
pub(crate) const NAME: &str = "modal";

/// A build this backend prepared: how it was installed and the image Modal built for it.
#[derive(Debug, Clone)]
pub(crate) struct PreparedBuild {
    pub install: recipe::Install,
    pub commit: String,
}

/// The Modal backend: one sandbox per job, created and terminated by a shim that drives the
/// official `modal` SDK. GPUs are leased per container (the default empty lease).
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
