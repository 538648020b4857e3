//! The [`Backend`] implementation: `check`, `prepare` (one image build per candidate until one
//! builds) and `execute` (one sandbox per attempt, the step kit's lifecycle in it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use runner_core::backend::{GpuLease, HealthCheck, JobEnvs};
use runner_core::plan::{GpuRequest, StepPlan};
use runner_core::stepkit::AttemptFiles;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Failure, Health, PreparedEnv, RunContext,
    StepOutput,
};
use tokio_util::sync::CancellationToken;

use crate::dry_run::{ending_error, err, shim_error, tag};
use crate::execute::{self, Job};
use crate::job::{RunInputs, Side, sandbox_plan};
use crate::protocol::{Event, ImageBase, ImageOp, ImageRecipe, PrepareRequest, Request};
use crate::recipe::{self, Candidate};
use crate::shim::{self, Control};
use crate::{ModalBackend, NAME, PreparedBuild};

impl ModalBackend {
    async fn prepare_candidate(
        &self,
        c: &Candidate,
        i: usize,
        build: &BuildSpec,
        patch: Option<Vec<ImageOp>>,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        let cfg = self.config();
        let request = Request::Prepare(PrepareRequest {
            app: cfg.app_name.clone(),
            image: recipe::engine_recipe(cfg, &c.install, &build.commit),
            patch,
        });
        let _ = std::fs::create_dir_all(&cx.artifact_dir);
        let log = AttemptFiles::of(cx).backend_file(&format!("shim-prepare-{i}.stderr"));
        let (mut image, mut error) = (None, None);
        let outcome = shim::run(cfg, &request, &cx.cancel, cx.deadline, Some(&log), |ev| {
            match ev {
                Event::Stage { stage, detail, .. } => cx.progress.event(&stage, &detail),
                Event::Image {
                    image_id, reused, ..
                } => image = Some((image_id, reused)),
                Event::Error(e) => error = Some(e),
                _ => {}
            }
            Control::Continue
        })
        .await?;
        if let Some(e) = ending_error(&outcome.ending) {
            return Err(e);
        }
        if let Some(e) = error {
            return Err(shim_error(&e, c.artifact));
        }
        let (image_id, reused) = image.ok_or_else(|| {
            err(
                Failure::Unknown,
                format!(
                    "the shim built no image; its stderr ends with:\n{}",
                    outcome.stderr_tail
                ),
            )
        })?;
        self.remember(
            &build.identity,
            PreparedBuild {
                install: c.install.clone(),
                commit: build.commit.clone(),
            },
        );
        Ok(PreparedEnv {
            identity: build.identity.clone(),
            handle: image_id,
            engine_version: None,
            digest: None,
            reused,
            scripts_dir: recipe::scripts_dir(cfg),
        })
    }
}

#[async_trait]
impl Backend for ModalBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            gpus: self.config().gpu_max.clone(),
            source_builds: false,
            needs_network: true,
            // The sandbox runs the engine's image, which has no perf-runner.
            native_client: false,
        }
    }

    async fn check(&self) -> Result<Health, BackendError> {
        let cfg = self.config();
        let mut checks = Vec::new();
        let deadline = Some(Instant::now() + Duration::from_secs(60));
        let mut found = None;
        let mut failure = None;
        let r = shim::run(
            cfg,
            &Request::Check,
            &CancellationToken::new(),
            deadline,
            None,
            |ev| {
                match ev {
                    Event::Check {
                        python,
                        modal_version,
                    } => found = Some((python, modal_version)),
                    Event::Error(e) => failure = Some(format!("{}: {}", e.class, e.message)),
                    _ => {}
                }
                Control::Continue
            },
        )
        .await;
        let python = cfg.python.display().to_string();
        match (&r, found) {
            (Ok(_), Some((py, modal))) => {
                checks.push(HealthCheck {
                    name: "python".into(),
                    ok: true,
                    detail: format!("{python} ({py})"),
                });
                checks.push(HealthCheck {
                    name: "modal".into(),
                    ok: true,
                    detail: modal,
                });
            }
            (Err(e), _) => checks.push(HealthCheck {
                name: "python".into(),
                ok: false,
                detail: e.message.clone(),
            }),
            (Ok(o), None) => checks.push(HealthCheck {
                name: "modal".into(),
                ok: false,
                detail: failure
                    .unwrap_or_else(|| format!("the shim answered nothing: {}", o.stderr_tail)),
            }),
        }
        checks.push(token_check());
        Ok(Health {
            usable: checks.iter().all(|c| c.ok),
            checks,
        })
    }

    /// Modal leases GPUs per job: each sandbox is created with its GPUs (`H100!:2`) and ends
    /// with the job, so a task holds no device here. The request is checked when the sandbox is
    /// asked for (SKU known to Modal, count within `gpu_max`).
    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError> {
        let _ = (gpu, cx);
        Ok(GpuLease {
            id: String::new(),
            devices: Vec::new(),
        })
    }

    /// Nothing to give back: each sandbox's GPUs went with it.
    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        let _ = lease;
        Ok(())
    }

    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        let candidates = self.candidates(build)?;
        let patch = self.patch_layer(build, Some(cx))?;
        let mut failures = Vec::new();
        let mut last = None;
        for (i, c) in candidates.iter().enumerate() {
            cx.progress
                .event("prepare", &format!("{}: {}", build.identity, c.label));
            match self.prepare_candidate(c, i, build, patch.clone(), cx).await {
                Ok(env) => return Ok(env),
                Err(e) if matches!(e.kind, Failure::NoWheel | Failure::NoImage) => {
                    tracing::info!(candidate = %c.label, error = %e, "candidate did not build; trying the next");
                    failures.push(format!("{}: {}", c.label, e.message));
                    last = Some(e.kind);
                }
                Err(e) => return Err(e),
            }
        }
        Err(err(
            last.unwrap_or(Failure::NoWheel),
            format!(
                "no candidate of {} built:\n{}",
                build.identity,
                failures.join("\n")
            ),
        ))
    }

    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        let cfg = self.config().clone();
        if !envs.engine.handle.starts_with("im-") {
            return Err(err(
                Failure::BadConfig,
                format!(
                    "{} was not prepared by the modal backend (handle {})",
                    envs.engine.identity, envs.engine.handle
                ),
            ));
        }
        let engine = Side {
            python: cfg.container_python.clone(),
            scripts: envs.engine.scripts_dir.clone(),
        };
        let mut ops = Vec::new();
        let client = if step.server.is_some() && envs.client.identity != envs.engine.identity {
            let b = self.recall(&envs.client.identity).ok_or_else(|| {
                err(
                    Failure::BadConfig,
                    format!(
                        "the client build {} was not prepared by this modal backend",
                        envs.client.identity
                    ),
                )
            })?;
            ops = recipe::client_ops(&cfg, &b.install, &b.commit)
                .map_err(|m| err(Failure::BadConfig, m))?;
            Side {
                python: format!("{}/bin/python", recipe::CLIENT_VENV),
                scripts: recipe::scripts_dir(&cfg).map(|_| recipe::CLIENT_SCRIPTS_DIR.to_string()),
            }
        } else {
            engine.clone()
        };
        let inputs = RunInputs {
            image: ImageRecipe {
                base: ImageBase::FromId {
                    image_id: envs.engine.handle.clone(),
                },
                ops,
            },
            engine: engine.clone(),
            client: client.clone(),
            data_dir: Some(cx.data_dir.clone()),
            labels: cx.labels.iter().map(|(k, v)| (tag(k), tag(v))).collect(),
            remaining: cx.remaining(),
        };
        // Hashing the dataset files reads them whole: off the async threads.
        let (cfg2, step2) = (cfg.clone(), step.clone());
        let plan = tokio::task::spawn_blocking(move || sandbox_plan(&cfg2, &step2, &inputs))
            .await
            .map_err(|e| err(Failure::Unknown, format!("planning the run: {e}")))??;
        let job = Job {
            plan,
            engine,
            client,
            max_result_bytes: self.max_result_bytes(),
        };
        execute::execute(&cfg, job, envs, step, cx).await
    }
}

/// Whether a Modal token is configured (env or config file); the values are never read out.
fn token_check() -> HealthCheck {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("MODAL_TOKEN_ID") && set("MODAL_TOKEN_SECRET") {
        return HealthCheck {
            name: "token".into(),
            ok: true,
            detail: "from MODAL_TOKEN_ID / MODAL_TOKEN_SECRET".into(),
        };
    }
    let path = std::env::var_os("MODAL_CONFIG_PATH")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".modal.toml")));
    match path {
        Some(p) if p.is_file() => HealthCheck { name: "token".into(), ok: true, detail: format!("configured in {}", p.display()) },
        _ => HealthCheck {
            name: "token".into(),
            ok: false,
            detail: "no Modal token: run `modal token new`, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET".into(),
        },
    }
}
