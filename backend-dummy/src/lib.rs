//! A test-only backend of perf-runner, and the proof that a backend is a crate of its own: it
//! implements runner-core's [`Backend`] trait and nothing in runner-core names it.
//!
//! It runs no engine. Its GPUs are fictional (a pool of `gpus` devices, leased and released
//! like real ones: a task waits while they are busy, a request it can never satisfy is
//! refused). `prepare` makes an environment folder per build that records which variant it
//! is; `execute` fills the step's placeholders, checks the step's dataset files are there,
//! and writes what vLLM's tools print and save (see [`outputs`]) for a build of the
//! configured speed, so the engine parses, judges and stores it like any other result.

#![warn(missing_docs)]

mod lease;
pub mod outputs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use runner_core::backend::{GpuLease, HealthCheck, JobEnvs};
use runner_core::plan::{GpuRequest, StepPlan};
use runner_core::stepkit::{AttemptFiles, ScriptCheck, SourceTree, Values};
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Failure, Health, PreparedEnv, RunContext,
    StepOutput, Variant,
};
use serde::{Deserialize, Serialize};

/// The backend's stable name.
pub const NAME: &str = "dummy";

/// The `[dummy]` section of the embedded defaults (every key is optional).
pub const DEFAULT_TOML: &str = r#"[dummy]
# A test-only backend: fictional GPUs, no engine; it writes the vLLM-format results it computes.
# gpus = 1                       # fictional GPUs it leases
# gpu_name = "NVIDIA H100 80GB HBM3 (dummy)"
# base_latency_s = 1.0           # what a build of speed 1 measures
# speed = { human = 1.25 }       # relative speed per variant (default 1)
# wobble = { human = [1.0, 1.3] } # per variant, its n-th run's speed is also × the n-th factor (cycled)
# oom = ["agent"]                # variants whose client runs out of memory
"#;

/// The dummy's settings: the `[dummy]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DummyConfig {
    /// How many fictional GPUs it leases.
    pub gpus: u32,
    /// Their product name (a task's GPU kind must appear in it, case-insensitively).
    pub gpu_name: String,
    /// The engine version every build reports.
    pub engine_version: String,
    /// The latency, in seconds, that a build of speed 1 measures; other figures follow.
    pub base_latency_s: f64,
    /// Relative speed per variant; unlisted variants have speed 1.
    pub speed: BTreeMap<Variant, f64>,
    /// Per variant, factors its successive runs' speeds are multiplied by (cycled): a round
    /// effect that does not cancel, for tests of inconclusive verdicts.
    pub wobble: BTreeMap<Variant, Vec<f64>>,
    /// Variants whose client fails with CUDA's out-of-memory error (exit 1).
    pub oom: Vec<Variant>,
    /// How long each step takes, ms (cancellation ends it early).
    pub step_ms: u64,
}

impl Default for DummyConfig {
    fn default() -> Self {
        DummyConfig {
            gpus: 1,
            gpu_name: "NVIDIA H100 80GB HBM3 (dummy)".into(),
            engine_version: "0.0.0+dummy".into(),
            base_latency_s: 1.0,
            speed: BTreeMap::new(),
            wobble: BTreeMap::new(),
            oom: Vec::new(),
            step_ms: 0,
        }
    }
}

impl DummyConfig {
    /// Each `speed` or `wobble` entry that is not a finite number above 0, named by its key
    /// (`dummy.wobble.human[2] = 0`).
    pub fn bad_speeds(&self) -> Vec<String> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        let speeds = self
            .speed
            .iter()
            .filter(|(_, x)| !ok(**x))
            .map(|(v, x)| format!("dummy.speed.{v} = {x}"));
        let wobbles = self.wobble.iter().flat_map(|(v, f)| {
            f.iter()
                .enumerate()
                .filter(|(_, x)| !ok(**x))
                .map(move |(i, x)| format!("dummy.wobble.{v}[{i}] = {x}"))
        });
        speeds.chain(wobbles).collect()
    }
}

/// What `prepare` records in a build's environment folder, and `execute` reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BuildRecord {
    identity: String,
    commit: String,
    variant: Variant,
    patched: bool,
}

/// The environment folder's record file.
const BUILD_FILE: &str = "dummy-build.json";

/// The dummy backend.
#[derive(Debug)]
pub struct DummyBackend {
    config: DummyConfig,
    pool: lease::Pool,
    /// Runs measured so far per variant (the index into its wobble).
    runs: std::sync::Mutex<BTreeMap<Variant, usize>>,
}

impl DummyBackend {
    /// The wobble factor of `variant`'s next run (1 without a wobble).
    fn wobble(&self, variant: Variant) -> f64 {
        let Some(f) = self.config.wobble.get(&variant).filter(|f| !f.is_empty()) else {
            return 1.0;
        };
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let n = runs.entry(variant).or_default();
        let x = f[*n % f.len()];
        *n += 1;
        x
    }

    /// A backend with this configuration.
    pub fn new(config: DummyConfig) -> Self {
        let pool = lease::Pool::new(config.gpus, &config.gpu_name);
        DummyBackend {
            config,
            pool,
            runs: std::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> BackendError {
    err(
        Failure::EnvironmentBroken,
        format!("{what} {}: {e}", path.display()),
    )
}

fn write(path: &Path, text: &str) -> Result<(), BackendError> {
    std::fs::write(path, text).map_err(|e| io_err("cannot write", path, e))
}

#[async_trait]
impl Backend for DummyBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            gpus: [(self.config.gpu_name.clone(), self.config.gpus)].into(),
            source_builds: false,
            needs_network: false,
            // Results are computed, no client runs: plans stay as they were.
            native_client: false,
        }
    }

    async fn check(&self) -> Result<Health, BackendError> {
        let bad = self.config.bad_speeds();
        let mut checks = vec![HealthCheck {
            name: "gpus".into(),
            ok: true,
            detail: format!(
                "{} fictional × {} (test only)",
                self.config.gpus, self.config.gpu_name
            ),
        }];
        if !bad.is_empty() {
            checks.push(HealthCheck {
                name: "speeds".into(),
                ok: false,
                detail: format!(
                    "{}: every speed and wobble factor must be a finite number above 0",
                    bad.join(", ")
                ),
            });
        }
        Ok(Health {
            usable: bad.is_empty(),
            checks,
        })
    }

    async fn acquire(&self, gpu: &GpuRequest, cx: &RunContext) -> Result<GpuLease, BackendError> {
        self.pool.acquire(gpu, cx).await
    }

    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        self.pool.release(&lease);
        Ok(())
    }

    async fn prepare(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        let dir = cx.artifact_dir.join("env");
        std::fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let record = BuildRecord {
            identity: build.identity.clone(),
            commit: build.commit.clone(),
            variant: build.variant,
            patched: build.patch.is_some(),
        };
        let json = serde_json::to_string_pretty(&record).unwrap_or_default();
        write(&dir.join(BUILD_FILE), &json)?;
        Ok(PreparedEnv {
            identity: build.identity.clone(),
            handle: dir.display().to_string(),
            engine_version: Some(self.config.engine_version.clone()),
            digest: None,
            reused: false,
            scripts_dir: Some(dir.display().to_string()),
        })
    }

    async fn execute(
        &self,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        let started = Instant::now();
        if (cx.lease.devices.len() as u64) < u64::from(step.gpu.count) {
            return Err(err(
                Failure::BadConfig,
                format!(
                    "the step needs {} GPU(s) but its lease holds {}",
                    step.gpu.count,
                    cx.lease.devices.len()
                ),
            ));
        }
        let env_dir = PathBuf::from(&envs.engine.handle);
        let path = env_dir.join(BUILD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| io_err("cannot read", &path, e))?;
        let build: BuildRecord = serde_json::from_str(&text).map_err(|e| {
            err(
                Failure::EnvironmentBroken,
                format!("{}: {e}", path.display()),
            )
        })?;
        for d in &step.datasets {
            let file = cx.data_dir.join(&d.name);
            if !file.is_file() {
                return Err(err(
                    Failure::DatasetMissing,
                    format!("{} {}: {} is not there", d.flag, d.original, file.display()),
                ));
            }
        }
        let files = AttemptFiles::of(cx);
        let results = files.results_dir();
        std::fs::create_dir_all(&results).map_err(|e| io_err("cannot create", &results, e))?;
        // What the client would have run: the plan's argv filled by the step kit, as every
        // backend fills it (a server's port only when the step has a server).
        let values = Values {
            python: Some("python3".into()),
            host: Some("127.0.0.1".into()),
            port: step.server.as_ref().map(|_| 8000),
            result_dir: Some(results.display().to_string()),
            vllm_source: Some(SourceTree {
                path: envs.client.handle.clone(),
                check: ScriptCheck::InImage,
            }),
            data_dir: Some(cx.data_dir.display().to_string()),
            perf_runner: None,
        };
        let filled = values
            .fill(&step.client.argv)
            .map_err(|e| e.into_backend(NAME))?
            .argv;
        write(
            &cx.artifact_dir.join("client.argv.json"),
            &serde_json::to_string_pretty(&filled).unwrap_or_default(),
        )?;
        let step_time = Duration::from_millis(self.config.step_ms);
        tokio::select! {
            _ = tokio::time::sleep(step_time) => {}
            _ = cx.cancel.cancelled() => return Err(err(Failure::Cancelled, "cancelled while running")),
        }
        let stdout = files.client_stdout();
        let stderr = files.client_stderr();
        let mut out = StepOutput {
            client_stdout: stdout.clone(),
            client_stderr: stderr.clone(),
            host: Some("dummy".into()),
            gpu_names: cx.lease.devices.iter().map(|d| d.name.clone()).collect(),
            ..StepOutput::default()
        };
        if self.config.oom.contains(&build.variant) {
            write(&stdout, "")?;
            write(&stderr, outputs::OOM_STDERR)?;
            out.exit_code = Some(1);
        } else {
            let speed = self
                .config
                .speed
                .get(&build.variant)
                .copied()
                .unwrap_or(1.0)
                * self.wobble(build.variant);
            let Some(m) = outputs::measure(step.mode, self.config.base_latency_s, speed) else {
                return Err(err(
                    Failure::BadConfig,
                    format!(
                        "the dummy backend does not simulate {} benchmarks",
                        step.mode
                    ),
                ));
            };
            write(&stdout, &m.stdout)?;
            write(&stderr, "")?;
            if let Some(name) = &step.result_file {
                let file = results.join(name);
                write(&file, &m.json.to_string())?;
                out.result_files.push(file);
            }
            out.exit_code = Some(0);
        }
        out.benchmark_seconds = started.elapsed().as_secs_f64();
        tracing::debug!(variant = %build.variant, identity = %build.identity, "dummy step done");
        Ok(out)
    }
}
