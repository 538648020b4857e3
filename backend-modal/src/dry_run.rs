//! The dry run, and the pieces of a build that need no network: its candidates and its agent
//! patch layer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runner_core::plan::StepPlan;
use runner_core::{BackendError, BuildSpec, Failure, RunContext};
use tokio_util::sync::CancellationToken;

use crate::classify::{BuildArtifact, classify};
use crate::job::{RunInputs, Side, sandbox_plan};
use crate::patch;
use crate::protocol::{
    ErrorEvent, Event, ImageBase, ImageOp, ImageRecipe, PrepareRequest, Request,
};
use crate::recipe::{self, Candidate};
use crate::shim::{self, Control, Ending};
use crate::{ModalBackend, NAME};

pub(crate) fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

pub(crate) fn ending_error(ending: &Ending) -> Option<BackendError> {
    match ending {
        Ending::Cancelled => Some(err(Failure::Cancelled, "cancelled")),
        Ending::TimedOut => Some(err(Failure::Timeout, "the deadline passed")),
        Ending::Stopped(e) => Some(err(e.kind, e.message.clone())),
        Ending::Finished => None,
    }
}

pub(crate) fn shim_error(e: &ErrorEvent, artifact: Option<BuildArtifact>) -> BackendError {
    let (kind, rule) = classify(e, artifact);
    let status = e
        .grpc_status
        .as_deref()
        .map(|s| format!(" [{s}]"))
        .unwrap_or_default();
    err(
        kind,
        format!(
            "{}: {}{status}: {} ({rule})",
            e.phase.as_deref().unwrap_or("shim"),
            e.class,
            e.message
        ),
    )
}

/// Tags Modal accepts: short, plain characters.
pub(crate) fn tag(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

impl ModalBackend {
    /// The agent patch layer of a build (`Ok(None)` without a patch).
    pub(crate) fn patch_layer(
        &self,
        build: &BuildSpec,
        cx_progress: Option<&RunContext>,
    ) -> Result<Option<Vec<ImageOp>>, BackendError> {
        let Some(spec) = &build.patch else {
            return Ok(None);
        };
        let layer = patch::patch_layer(self.config(), spec, &patch::parts_dir(self.config()))?;
        if !layer.left_out.is_empty() {
            let msg = format!(
                "the agent patch's changes to {} are not part of what runs here; not applied",
                layer.left_out.join(", ")
            );
            tracing::warn!("{msg}");
            if let Some(cx) = cx_progress {
                cx.progress.event("prepare", &msg);
            }
        }
        Ok(Some(layer.ops))
    }

    pub(crate) fn candidates(&self, build: &BuildSpec) -> Result<Vec<Candidate>, BackendError> {
        let c = recipe::candidates(self.config(), build);
        if c.is_empty() {
            return Err(err(
                Failure::NoWheel,
                format!(
                    "{}: no wheel or image to run on Modal (source builds are not supported)",
                    build.identity
                ),
            ));
        }
        Ok(c)
    }

    /// The SDK objects a run of `step` on `build` would create — image layers, GPU, volumes,
    /// secrets, timeouts, the sandbox definition — built by the real `modal` SDK in the shim
    /// without contacting Modal (for `plan --backend modal` and `run --dry-run`).
    pub async fn dry_run(
        &self,
        build: &BuildSpec,
        step: &StepPlan,
    ) -> Result<serde_json::Value, BackendError> {
        let cfg = self.config();
        let candidates = self.candidates(build)?;
        let first = &candidates[0];
        let prepare = PrepareRequest {
            app: cfg.app_name.clone(),
            image: recipe::engine_recipe(cfg, &first.install, &build.commit),
            patch: self.patch_layer(build, None)?,
        };
        let side = Side {
            python: cfg.container_python.clone(),
            scripts: recipe::scripts_dir(cfg),
        };
        let inputs = RunInputs {
            image: ImageRecipe {
                base: ImageBase::FromId {
                    image_id: "<prepared image>".into(),
                },
                ops: Vec::new(),
            },
            engine: side.clone(),
            client: side,
            data_dir: None,
            labels: BTreeMap::new(),
            remaining: None,
        };
        let sandbox = sandbox_plan(cfg, step, &inputs)?;
        let processes = sandbox
            .processes
            .iter()
            .map(|(role, argv)| (role.clone(), serde_json::json!({ "argv": argv })))
            .collect();
        let request = Request::DryRun {
            prepare,
            run: Box::new(sandbox.create),
            processes,
            builder_version: cfg.image_builder_version.clone(),
        };
        let deadline = Some(Instant::now() + Duration::from_secs(120));
        let mut plan = None;
        let mut error = None;
        let outcome = shim::run(
            cfg,
            &request,
            &CancellationToken::new(),
            deadline,
            None,
            |ev| {
                match ev {
                    Event::Plan { plan: p } => plan = Some(p),
                    Event::Error(e) => error = Some(e),
                    _ => {}
                }
                Control::Continue
            },
        )
        .await?;
        if let Some(e) = ending_error(&outcome.ending) {
            return Err(e);
        }
        if let Some(e) = error {
            return Err(shim_error(&e, None));
        }
        let mut plan = plan.ok_or_else(|| {
            err(
                Failure::Unknown,
                format!(
                    "the shim gave no plan; its stderr ends with:\n{}",
                    outcome.stderr_tail
                ),
            )
        })?;
        if let Some(obj) = plan.as_object_mut() {
            obj.insert(
                "candidates".into(),
                candidates.iter().map(|c| c.label.clone()).collect(),
            );
            obj.insert("pinned".into(), cfg.pin_sku.into());
            let kind = cfg
                .modal_gpu_type(step.gpu.kind.as_deref())
                .unwrap_or_default();
            let hourly = cfg.cost_usd(&kind, step.gpu.count, 3600.0);
            obj.insert("usd_per_hour".into(), hourly.into());
        }
        Ok(plan)
    }
}
