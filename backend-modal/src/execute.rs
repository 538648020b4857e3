//! `execute`: one sandbox per attempt, and the step kit's lifecycle
//! ([`runner_core::stepkit::run_step`]) in it.
//!
//! 1. The sandbox is planned ([`crate::job::sandbox_plan`]): every argv is filled first, so a
//!    step that cannot run fails before GPUs are asked for.
//! 2. One shim per attempt (`sandbox`) creates it, with the server's port as an
//!    encrypted port. Creating is bounded by the attempt's deadline and ended by cancellation.
//! 3. The granted GPUs are checked against the request (a mismatch terminates the sandbox at
//!    once), the engine version is read, the benchmark scripts the argv need must exist.
//! 4. `run_step` runs the step through `runtime::SandboxRuntime`: readiness
//!    (`GET /health` through the sandbox's tunnel), the warm-up rule, phase timeouts,
//!    cancellation and failure codes are the step kit's, as for every backend.
//! 5. The client's result files are fetched into `results/` (within the result cap; what is
//!    left out is listed in `modal.json`), the sandbox is terminated (however the step ended),
//!    and `modal.json` and `cost.json` are written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runner_core::backend::JobEnvs;
use runner_core::plan::StepPlan;
use runner_core::stepkit::{self, AttemptFiles, StepPolicy};
use runner_core::{BackendError, Failure, RunContext, StepOutput};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::config::ModalConfig;
use crate::job::{SandboxPlan, Side, gpu_matches};
use crate::protocol::{Command, Created, TerminateReply};
use crate::results::{self, Skipped};
use crate::runtime::SandboxRuntime;
use crate::sandbox::{Link, Shim, Sink};

/// How long a query process in the sandbox (GPU names, version, scripts) may take.
const QUERY_WAIT: Duration = Duration::from_secs(180);
/// How long terminating the sandbox may take.
const FINISH_WAIT: Duration = Duration::from_secs(300);

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// What is known of the attempt's sandbox, for `modal.json` and `cost.json`.
#[derive(Debug, Default)]
struct Record {
    gpu_names: Vec<String>,
    engine_version: Option<String>,
    created_at: Option<Instant>,
    /// Result files left out of the fetch, and why.
    skipped: Vec<Skipped>,
}

/// The sides of a job and its sandbox plan, ready to run.
pub(crate) struct Job {
    pub plan: SandboxPlan,
    pub engine: Side,
    pub client: Side,
    /// The cap on each result file, and on all of them together.
    pub max_result_bytes: u64,
}

/// Run one attempt of `step` (see the module docs).
pub(crate) async fn execute(
    cfg: &ModalConfig,
    job: Job,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let files = AttemptFiles::of(cx);
    files.create().map_err(|e| {
        err(
            Failure::EnvironmentBroken,
            format!("{}: {e}", files.dir().display()),
        )
    })?;
    let _ = std::fs::write(
        files.backend_file("modal-request.json"),
        serde_json::to_vec_pretty(&json!({
            "create": job.plan.create, "processes": job.plan.processes,
            "required": job.plan.required,
        }))
        .unwrap_or_default(),
    );
    let gpu = job.plan.create.sandbox.gpu.clone();
    cx.progress
        .event("modal", &format!("one sandbox with {gpu}"));
    let shim = Shim::open(
        cfg,
        cx.progress.clone(),
        &files.backend_file("shim.stderr"),
        results::reply_line_max(job.max_result_bytes),
    )?;
    let link = shim.link();
    let mut rec = Record::default();
    let r = run(cfg, &job, envs, step, cx, &link, &mut rec).await;
    // However it ended: the result files of a measured client, then the sandbox goes.
    let r = match r {
        Ok(out) if !AttemptFiles::is_warmup_stdout(&out.client_stdout) => {
            let dir = &job.plan.paths.result_dir;
            results::fetch(&link, dir, &files, job.max_result_bytes)
                .await
                .and_then(|skipped| {
                    for s in &skipped {
                        cx.progress.event("results", &s.to_string());
                    }
                    let said: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                    rec.skipped = skipped;
                    let result_files = files.result_files();
                    if result_files.is_empty() && !said.is_empty() {
                        // The client wrote its result, but none of it came back: say why in
                        // the attempt's failure rather than as a bare `no_metrics`.
                        return Err(BackendError::new(
                            NAME,
                            Failure::NoMetrics,
                            format!(
                                "no result file was fetched from the sandbox: {} (raise limits.max_result_bytes)",
                                said.join("; ")
                            ),
                        ));
                    }
                    Ok(StepOutput {
                        result_files,
                        ..out
                    })
                })
        }
        other => other,
    };
    let never = CancellationToken::new();
    let terminated = link
        .call(Command::Terminate, &never, Some(FINISH_WAIT))
        .await
        .ok()
        .and_then(|v| serde_json::from_value::<TerminateReply>(v).ok());
    let (shim_exit, stderr_tail) = shim.close(cfg).await;
    let facts = link.facts();
    let seconds = terminated
        .and_then(|t| t.seconds)
        .or(facts.seconds)
        .or_else(|| rec.created_at.map(|t| t.elapsed().as_secs_f64()));
    let modal_type = &job.plan.modal_type;
    let count = step.gpu.count.max(1);
    let cost = seconds.and_then(|s| cfg.cost_usd(modal_type, count, s));
    if let Some(s) = seconds {
        let c = json!({
            "gpu_kind": modal_type, "gpu_count": count, "gpu": gpu,
            "sandbox_seconds": s,
            "usd_per_gpu_hour": cfg.price_per_gpu_hour(modal_type),
            "cost_usd": cost,
        });
        let _ = std::fs::write(files.backend_file("cost.json"), format!("{c:#}\n"));
    }
    let meta = json!({
        "sandbox_id": facts.sandbox_id, "gpu": gpu, "gpu_names": rec.gpu_names,
        "engine_version": rec.engine_version, "shim_exit": shim_exit,
        "sandbox_seconds": seconds, "cost_usd": cost,
        "results_skipped": rec.skipped,
    });
    let _ = std::fs::write(files.backend_file("modal.json"), format!("{meta:#}\n"));
    match r {
        Ok(out) => Ok(StepOutput {
            host: facts.sandbox_id.map(|id| format!("modal:{id}")),
            gpu_names: rec.gpu_names,
            cost_usd: cost,
            ..out
        }),
        Err(mut e) => {
            if e.kind == Failure::Unknown && !stderr_tail.is_empty() {
                e.message
                    .push_str(&format!("; the shim's stderr ends with:\n{stderr_tail}"));
            }
            Err(e)
        }
    }
}

/// Create the sandbox, check it, and run the step in it.
async fn run(
    cfg: &ModalConfig,
    job: &Job,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
    link: &Arc<Link>,
    rec: &mut Record,
) -> Result<StepOutput, BackendError> {
    let within = cx.remaining();
    let created = link
        .call(
            Command::Create(Box::new(job.plan.create.clone())),
            &cx.cancel,
            within,
        )
        .await;
    // A create that was cancelled or timed out may still have made a sandbox: the caller
    // terminates it however this ends.
    let created = match created {
        Ok(v) => serde_json::from_value::<Created>(v)
            .map_err(|e| err(Failure::Unknown, format!("a create reply: {e}")))?,
        Err(crate::sandbox::CallError::TimedOut(_)) => {
            return Err(err(
                Failure::Timeout,
                "the attempt's deadline passed while the sandbox was created",
            ));
        }
        Err(e) => return Err(e.into_backend("creating the sandbox")),
    };
    rec.created_at = Some(Instant::now());
    tracing::info!(sandbox = %created.sandbox_id, "sandbox created");

    // The GPUs: a container with other GPUs than asked measures nothing.
    let (out, _) = query(link, "gpu-query", &job.plan.gpu_query, cx).await?;
    rec.gpu_names = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if !gpu_matches(&job.plan.modal_type, step.gpu.count, &rec.gpu_names) {
        return Err(gpu_mismatch(
            cfg,
            &job.plan.modal_type,
            step.gpu.count,
            &rec.gpu_names,
        ));
    }
    cx.progress.event("gpu", &rec.gpu_names.join(", "));
    let (version, _) = query(link, "version-query", &job.plan.version_query, cx).await?;
    rec.engine_version = Some(version.trim().to_string()).filter(|v| !v.is_empty());
    // The result folder, and the benchmark scripts the argv name.
    let mut check = vec![
        "sh".to_string(),
        "-c".into(),
        r#"mkdir -p "$1" || exit 1; shift; for f; do [ -f "$f" ] || echo "$f"; done"#.into(),
        "sh".into(),
        job.plan.paths.result_dir.clone(),
    ];
    check.extend(job.plan.required.iter().cloned());
    let (missing, _) = query(link, "prelude", &check, cx).await?;
    if let Some(path) = missing.lines().map(str::trim).find(|l| !l.is_empty()) {
        return Err(err(
            Failure::VllmVersion,
            format!("{path} does not exist: the build's source has no such script"),
        ));
    }

    let rt = SandboxRuntime::new(
        link.clone(),
        job.engine.clone(),
        job.client.clone(),
        job.plan.paths.clone(),
        step.server.is_some(),
        cfg.port,
        cfg.workdir.clone(),
        cx,
    );
    let policy = StepPolicy {
        stop_grace: cfg.stop_grace(),
        health_poll: Duration::from_secs_f64(cfg.health_poll_s.clamp(0.05, 60.0)),
        port_attempts: 1,
        log_tail_lines: 40,
    };
    stepkit::run_step(&rt, envs, step, cx, &policy).await
}

/// Run a small process in the sandbox to its end; its stdout and stderr. A failing query is
/// an error with its stderr.
async fn query(
    link: &Link,
    id: &str,
    argv: &[String],
    cx: &RunContext,
) -> Result<(String, String), BackendError> {
    link.exec(id, argv.to_vec(), None, &Sink::Capture, &cx.cancel)
        .await?;
    let ended = tokio::select! {
        r = link.wait(id) => r,
        _ = cx.cancel.cancelled() => return Err(err(Failure::Cancelled, format!("cancelled during {id}"))),
        _ = tokio::time::sleep(QUERY_WAIT) => return Err(err(Failure::InfraTransient, format!("{id}: no exit within {QUERY_WAIT:?}"))),
    };
    let exit = ended.map_err(|e| crate::dry_run::shim_error(&e, None))?;
    let (out, errs) = link.captured(id);
    if id != "version-query" && !exit.success() {
        let tail: String = errs.lines().rev().take(10).collect::<Vec<_>>().join(" | ");
        return Err(err(
            Failure::EnvironmentBroken,
            format!("{} exited {exit} in the sandbox: {tail}", argv[0]),
        ));
    }
    Ok((out, errs))
}

/// The GPU check's decision: with a pinned SKU a different GPU means Modal broke the pin
/// (`infra_transient`: another container may be right); unpinned, the configuration let Modal
/// swap it (`bad_config`: set `pin_sku`). Either way no number from it is kept.
fn gpu_mismatch(cfg: &ModalConfig, modal_type: &str, count: u32, names: &[String]) -> BackendError {
    let (kind, why) = if cfg.pin_sku {
        (
            Failure::InfraTransient,
            "the SKU was pinned, so Modal broke the pin; a new container may be right",
        )
    } else {
        (
            Failure::BadConfig,
            "pin_sku is off, so Modal may swap SKUs; turn it on",
        )
    };
    err(
        kind,
        format!(
            "asked for {} × {modal_type}, the container has [{}]: {why}; the sandbox was stopped",
            count.max(1),
            names.join(", ")
        ),
    )
}
