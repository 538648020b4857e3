//! `execute`: one sandbox per job. The shim's events become artifacts — `server.log`,
//! `client.stdout`/`.stderr`, `warmup.*`, `results/*`, `shim.stderr`, `modal.json`,
//! `cost.json` — and the granted GPUs are checked against the request (a mismatch stops the
//! sandbox at once).
//!
//! The step's lifecycle (server, readiness, warm-up, client) still runs inside the shim, in the
//! sandbox: it is not yet the step kit's `run_step` (a later piece of work). Its placeholders
//! and its artifact files are the step kit's already, and it follows the same warm-up rule.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine as _;
use runner_core::stepkit::{AttemptFiles, Role};
use runner_core::{BackendError, Failure, RunContext, StepOutput};
use serde_json::json;

use crate::NAME;
use crate::classify::classify;
use crate::config::ModalConfig;
use crate::job::gpu_matches;
use crate::protocol::{ErrorEvent, Event};
use crate::shim::{Control, Ending, Outcome};

/// What a run's events left behind.
#[derive(Debug)]
pub struct Collector {
    files: AttemptFiles,
    streams: BTreeMap<String, BufWriter<File>>,
    /// Result files written under `results/`.
    pub result_files: Vec<PathBuf>,
    /// GPU names the container reported.
    pub gpu_names: Vec<String>,
    /// The engine version in the container.
    pub engine_version: Option<String>,
    /// The last exit event: code, phase, seconds.
    pub exit: Option<(Option<i32>, String, f64)>,
    /// The error event, if any.
    pub error: Option<ErrorEvent>,
    /// The sandbox id.
    pub sandbox_id: Option<String>,
    sandbox_started: Option<Instant>,
    sandbox_seconds: Option<f64>,
    modal_type: String,
    count: u32,
    pinned: bool,
    progress: std::sync::Arc<dyn runner_core::backend::ProgressSink>,
}

/// The file of one of the shim's output streams, in the attempt's layout.
fn stream_file(files: &AttemptFiles, stream: &str) -> PathBuf {
    match stream {
        "server" => files.server_log(),
        "client_stdout" => files.client_stdout(),
        "client_stderr" => files.client_stderr(),
        "warmup_stdout" => files.warmup_stdout(),
        "warmup_stderr" => files.warmup_stderr(),
        other => {
            let safe: String = other
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .take(40)
                .collect();
            files.backend_file(&format!(
                "{}.log",
                if safe.is_empty() { "other" } else { &safe }
            ))
        }
    }
}

impl Collector {
    /// A collector writing into `cx.artifact_dir`, expecting `count` GPUs of `modal_type`.
    pub fn new(
        cx: &RunContext,
        modal_type: &str,
        count: u32,
        pinned: bool,
        serving: bool,
    ) -> Result<Self, BackendError> {
        let files = AttemptFiles::of(cx);
        files.create().map_err(|e| {
            BackendError::new(
                NAME,
                Failure::EnvironmentBroken,
                format!("{}: {e}", files.dir().display()),
            )
        })?;
        let mut c = Collector {
            files,
            streams: BTreeMap::new(),
            result_files: Vec::new(),
            gpu_names: Vec::new(),
            engine_version: None,
            exit: None,
            error: None,
            sandbox_id: None,
            sandbox_started: None,
            sandbox_seconds: None,
            modal_type: modal_type.to_string(),
            count: count.max(1),
            pinned,
            progress: cx.progress.clone(),
        };
        // The client's files exist even when it printed nothing.
        c.stream("client_stdout");
        c.stream("client_stderr");
        if serving {
            c.stream("server");
        }
        Ok(c)
    }

    fn stream(&mut self, name: &str) -> Option<&mut BufWriter<File>> {
        if !self.streams.contains_key(name) {
            let f = File::create(stream_file(&self.files, name)).ok()?;
            self.streams.insert(name.to_string(), BufWriter::new(f));
        }
        self.streams.get_mut(name)
    }

    /// Handle one event.
    pub fn on_event(&mut self, ev: Event) -> Control {
        match ev {
            Event::Log { stream, line } => {
                if let Some(f) = self.stream(&stream) {
                    let _ = writeln!(f, "{line}");
                }
            }
            Event::Stage {
                stage,
                detail,
                sandbox_id,
            } => {
                if let Some(id) = sandbox_id {
                    self.sandbox_id = Some(id);
                    self.sandbox_started = Some(Instant::now());
                }
                self.progress.event(&stage, &detail);
            }
            Event::Gpu { names } => {
                self.gpu_names = names;
                if !gpu_matches(&self.modal_type, self.count, &self.gpu_names) {
                    return Control::Stop(self.gpu_mismatch());
                }
                self.progress.event("gpu", &self.gpu_names.join(", "));
            }
            Event::Version { engine_version } => self.engine_version = engine_version,
            Event::Exit {
                code,
                phase,
                seconds,
            } => self.exit = Some((code, phase, seconds)),
            Event::ResultFile { name, content_b64 } => self.result_file(&name, &content_b64),
            Event::Terminated { seconds, .. } => self.sandbox_seconds = seconds,
            Event::Error(e) => self.error = Some(e),
            Event::Hello { .. }
            | Event::Image { .. }
            | Event::Plan { .. }
            | Event::Check { .. }
            | Event::Cancelled
            | Event::Other => {}
        }
        Control::Continue
    }

    /// The GPU check's decision: with a pinned SKU a different GPU means Modal broke the pin
    /// (`infra_transient`: another container may be right); unpinned, the configuration let
    /// Modal swap it (`bad_config`: set `pin_sku`). Either way no number from it is kept.
    fn gpu_mismatch(&self) -> BackendError {
        let (kind, why) = if self.pinned {
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
        BackendError::new(
            NAME,
            kind,
            format!(
                "asked for {} × {}, the container has [{}]: {why}; the sandbox was stopped",
                self.count,
                self.modal_type,
                self.gpu_names.join(", ")
            ),
        )
    }

    fn result_file(&mut self, name: &str, content_b64: &str) {
        let Some(base) = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            tracing::warn!(name, "a result file without a usable name; skipped");
            return;
        };
        let bytes = match base64::engine::general_purpose::STANDARD.decode(content_b64) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(name, "a result file that is not base64 ({e}); skipped");
                return;
            }
        };
        let path = self.files.results_dir().join(&base);
        match std::fs::write(&path, bytes) {
            Ok(()) => self.result_files.push(path),
            Err(e) => tracing::warn!("{}: {e}", path.display()),
        }
    }

    /// Flush the logs, write `modal.json` and `cost.json`, and turn the shim's end into the
    /// step's output or error.
    pub fn finish(
        mut self,
        cfg: &ModalConfig,
        gpu: &str,
        outcome: Outcome,
    ) -> Result<StepOutput, BackendError> {
        for f in self.streams.values_mut() {
            let _ = f.flush();
        }
        let seconds = self
            .sandbox_seconds
            .or_else(|| self.sandbox_started.map(|t| t.elapsed().as_secs_f64()));
        let cost = seconds.and_then(|s| cfg.cost_usd(&self.modal_type, self.count, s));
        if let Some(s) = seconds {
            let c = json!({
                "gpu_kind": self.modal_type, "gpu_count": self.count, "gpu": gpu,
                "sandbox_seconds": s,
                "usd_per_gpu_hour": cfg.price_per_gpu_hour(&self.modal_type),
                "cost_usd": cost,
            });
            let _ = std::fs::write(self.files.backend_file("cost.json"), format!("{c:#}\n"));
        }
        let meta = json!({
            "sandbox_id": self.sandbox_id, "gpu": gpu, "gpu_names": self.gpu_names,
            "engine_version": self.engine_version, "shim_exit": outcome.exit,
            "sandbox_seconds": seconds, "cost_usd": cost,
        });
        let _ = std::fs::write(self.files.backend_file("modal.json"), format!("{meta:#}\n"));
        let fail = |kind: Failure, m: String| Err(BackendError::new(NAME, kind, m));
        match outcome.ending {
            Ending::Cancelled => {
                return fail(
                    Failure::Cancelled,
                    "cancelled; the sandbox was terminated".into(),
                );
            }
            Ending::TimedOut => {
                return fail(
                    Failure::Timeout,
                    "the attempt's deadline passed; the sandbox was terminated".into(),
                );
            }
            Ending::Stopped(e) => return Err(e),
            Ending::Finished => {}
        }
        if let Some(e) = &self.error {
            let (kind, rule) = classify(e, None);
            let mut msg = format!(
                "{}: {}{}: {} ({rule})",
                e.phase.as_deref().unwrap_or("shim"),
                e.class,
                e.grpc_status
                    .as_deref()
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default(),
                e.message
            );
            if kind == Failure::ServerFailed || kind == Failure::Timeout {
                let log = self.files.server_log();
                let tail = AttemptFiles::tail(&log, 30);
                if !tail.is_empty() {
                    msg.push_str(&format!("; last lines of {}:\n{tail}", log.display()));
                }
            }
            return fail(kind, msg);
        }
        let Some((code, phase, secs)) = self.exit.clone() else {
            return fail(
                Failure::Unknown,
                format!(
                    "the shim exited ({:?}) without a result; its stderr ends with:\n{}",
                    outcome.exit, outcome.stderr_tail
                ),
            );
        };
        // The shim stops after a failed warm-up (its lifecycle is still its own, for now): the
        // output is then the warm-up's, as the step kit's lifecycle gives it.
        let role = if phase == "warmup" {
            Role::Warmup
        } else {
            Role::Client
        };
        Ok(StepOutput {
            exit_code: code,
            client_stdout: self.files.stdout(role),
            client_stderr: self.files.stderr(role),
            server_log: self
                .streams
                .contains_key("server")
                .then(|| self.files.server_log()),
            result_files: self.result_files,
            host: self.sandbox_id.map(|id| format!("modal:{id}")),
            gpu_names: self.gpu_names,
            benchmark_seconds: if phase == "warmup" { 0.0 } else { secs },
            cost_usd: cost,
        })
    }
}
