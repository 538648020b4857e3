#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use async_trait::async_trait;
use runner_core::backend::{HealthCheck, JobEnvs};
use runner_core::plan::StepPlan;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
};

/// The local backend.
#[derive(Debug, Default, Clone)]
pub struct LocalBackend;

impl LocalBackend {
    /// The backend's stable name.
    pub const NAME: &'static str = "local";
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_network: false,
            ..Capabilities::default()
        }
    }

    async fn check(&self) -> Result<Health, BackendError> {
        Ok(Health {
            usable: false,
            checks: vec![HealthCheck {
                name: "local".into(),
                ok: false,
                detail: "the local backend is not implemented yet".into(),
            }],
        })
    }

    async fn prepare(
        &self,
        _build: &BuildSpec,
        _cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        Err(BackendError::not_implemented(Self::NAME, "prepare"))
    }

    async fn execute(
        &self,
        _envs: &JobEnvs,
        _step: &StepPlan,
        _cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        Err(BackendError::not_implemented(Self::NAME, "execute"))
    }
}
