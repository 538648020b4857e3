//! The router as a [`Backend`]: every call of a task goes to the backend chosen for it.

use async_trait::async_trait;
use runner_core::backend::{GpuLease, HealthCheck, JobEnvs};
use runner_core::plan::{GpuRequest, StepPlan};
use runner_core::settings::AUTO_BACKEND;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Failure, Health, PreparedEnv, RunContext,
    StepOutput,
};

use super::{Router, lock};

#[async_trait]
impl Backend for Router {
    fn name(&self) -> &'static str {
        AUTO_BACKEND
    }

    /// The GPUs of every backend it may choose (the most of each kind); the native client only
    /// where every one of them runs it (plans are made per task for the backend chosen).
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities {
            native_client: true,
            ..Capabilities::default()
        };
        for b in self
            .candidates
            .iter()
            .filter_map(|c| c.backend.as_ref().ok())
        {
            let c = b.capabilities();
            for (k, n) in c.gpus {
                let e = caps.gpus.entry(k).or_insert(0);
                *e = (*e).max(n);
            }
            caps.source_builds |= c.source_builds;
            caps.needs_network |= c.needs_network;
            caps.native_client &= c.native_client;
        }
        caps
    }

    /// Usable when any of its backends is; one check per backend.
    async fn check(&self) -> Result<Health, BackendError> {
        let none = GpuRequest {
            kind: None,
            count: 0,
        };
        let mut health = Health::default();
        for (i, c) in self.candidates.iter().enumerate() {
            let outcome = self.verdict(i, &none).await;
            health.usable |= outcome.is_ok();
            health.checks.push(HealthCheck {
                name: c.name.to_string(),
                ok: outcome.is_ok(),
                detail: outcome.err().unwrap_or_else(|| "usable".into()),
            });
        }
        Ok(health)
    }

    fn backend_of(&self, task: &str) -> &'static str {
        match lock(&self.routes).get(task) {
            Some(&i) => self.candidates[i].name,
            None => AUTO_BACKEND,
        }
    }

    /// The lease of the task's backend, routing the task first if no plan did.
    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError> {
        let task = cx.labels.get("task").cloned().unwrap_or_default();
        if self.chosen(&task).is_none() {
            let route = self.route(gpu, false).await;
            if route.chosen.is_none() {
                let all = self.route(gpu, true).await;
                return Err(BackendError::new(
                    AUTO_BACKEND,
                    Failure::BadConfig,
                    all.why_none(),
                ));
            }
            self.assign(&task, &route);
        }
        let Some((i, backend)) = self.chosen(&task) else {
            return Err(BackendError::new(
                AUTO_BACKEND,
                Failure::BadConfig,
                format!("task {task} has no backend"),
            ));
        };
        let lease = backend.acquire(gpu, cx).await?;
        lock(&self.leases).push((lease.clone(), i));
        Ok(lease)
    }

    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        let held = {
            let mut leases = lock(&self.leases);
            let at = leases.iter().position(|(l, _)| *l == lease);
            at.map(|at| leases.remove(at).1)
        };
        let Some(i) = held else {
            tracing::warn!(lease = %lease.id, "auto: released a lease it does not hold");
            return Ok(());
        };
        match &self.candidates[i].backend {
            Ok(b) => b.release(lease).await,
            Err(_) => Ok(()),
        }
    }

    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        self.of(cx)?.prepare(build, cx).await
    }

    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        self.of(cx)?.execute(envs, step, cx).await
    }

    async fn warm_kit<'a>(
        &'a self,
        step: &'a StepPlan,
        cx: &'a RunContext,
    ) -> Option<runner_core::stepkit::WarmKit<'a>> {
        self.of(cx).ok()?.warm_kit(step, cx).await
    }
}
