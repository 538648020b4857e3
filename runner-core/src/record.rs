//! What a run records: the run, its tasks, its jobs and every attempt, with the provenance that
//! proves the variant was the only thing that changed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::task::Variant;

/// A run id: `YYYYMMDD-HHMMSS-xxxx` (UTC time plus 4 random hex digits).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A fresh id for now.
    pub fn generate() -> RunId {
        let now = chrono::Utc::now();
        let suffix: u16 = rand::random();
        RunId(format!("{}-{suffix:04x}", now.format("%Y%m%d-%H%M%S")))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(RunId(s.to_string()))
        } else {
            Err(format!(
                "'{s}' is not a run id (letters, digits, '-' and '_', e.g. 20261128-031500-ab12)"
            ))
        }
    }
}

/// Identifies one job: a task's variant at one repeat (A/A jobs repeat the baseline).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobKey {
    /// Full commit hash of the task.
    pub commit: String,
    /// The variant.
    pub variant: Variant,
    /// 0-based repeat index.
    pub repeat: u32,
    /// Whether this is the second baseline of an A/A noise measurement.
    pub aa: bool,
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let aa = if self.aa { "-aa" } else { "" };
        let short: String = self.commit.chars().take(8).collect();
        write!(f, "{short}/{}{aa}#{}", self.variant, self.repeat)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Not started yet.
    Pending,
    /// Started; a crash leaves it here, and `--resume` runs it again.
    Running,
    /// Finished with metrics.
    Succeeded,
    /// Failed deterministically: never repeated.
    Failed,
    /// Failed transiently after all retries: `--resume` tries again.
    FailedTransient,
    /// Stopped by Ctrl-C/SIGTERM: `--resume` runs it again.
    Cancelled,
    /// Not run: adaptive repeats had decided the verdict before this repeat.
    NotNeeded,
}

impl JobStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::FailedTransient => "failed_transient",
            JobStatus::Cancelled => "cancelled",
            JobStatus::NotNeeded => "not_needed",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "failed_transient" => JobStatus::FailedTransient,
            "cancelled" => JobStatus::Cancelled,
            "not_needed" => JobStatus::NotNeeded,
            _ => return None,
        })
    }

    /// Whether `--resume` runs a job in this state again.
    pub fn needs_resume(self) -> bool {
        !matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::NotNeeded
        )
    }
}

/// Where a task of a run stands after planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Planned: its jobs are in the run.
    Planned,
    /// Skipped before planning (skip list, triage); the detail says why.
    Skipped,
    /// Could not be planned (a bad command, an unusable patch …); the detail says why.
    Failed,
}

impl TaskStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Planned => "planned",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Failed => "failed",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "planned" => TaskStatus::Planned,
            "skipped" => TaskStatus::Skipped,
            "failed" => TaskStatus::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started (or resumed) and not ended; a crash leaves it here.
    Running,
    /// Every job ran (whatever its outcome).
    Finished,
    /// Stopped by a signal or a budget; `--resume` continues it.
    Interrupted,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "finished" => RunStatus::Finished,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dataset file as it was provided to a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetHash {
    /// File name under `{DATA_DIR}`.
    pub name: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// Everything about one attempt of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The run.
    pub run_id: RunId,
    /// The job.
    pub job: JobKey,
    /// 1-based attempt number within the job.
    pub attempt: u32,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// Backend name.
    pub backend: String,
    /// Host that ran it.
    pub host: Option<String>,
    /// GPU names it ran on.
    pub gpu_names: Vec<String>,
    /// Build identity.
    pub build_identity: String,
    /// Engine version actually installed.
    pub engine_version: Option<String>,
    /// Wheel sha256 or image digest.
    pub build_digest: Option<String>,
    /// Fingerprint of the shared step (equal for every variant of a task).
    pub step_fingerprint: String,
    /// The client argv as run (placeholders filled).
    pub client_argv: Vec<String>,
    /// The server argv as run, for serving.
    pub server_argv: Option<Vec<String>>,
    /// Dataset files provided.
    pub datasets: Vec<DatasetHash>,
    /// Whether a warm-up ran before the measurement.
    pub warmed_up: bool,
    /// The failure, when the attempt failed.
    pub failure: Option<Failure>,
    /// Message and evidence of the failure.
    pub failure_detail: Option<String>,
    /// Evidence lines.
    pub evidence: Vec<String>,
    /// Metrics with provenance.
    pub metrics: Metrics,
    /// Artifact directory of the attempt.
    pub artifact_dir: String,
    /// Wall time of the whole attempt, seconds.
    pub wall_s: f64,
    /// Wall time of the measured benchmark, seconds.
    pub benchmark_s: f64,
    /// GPUs held × wall seconds.
    pub gpu_seconds: f64,
    /// What the backend charged for the attempt (US dollars), where it knows.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// How its server ran (serving steps): sleep mode or a restart, and what the engine
    /// allotted.
    #[serde(default)]
    pub serve: Option<ServeRecord>,
}

/// How the server of a serving attempt was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServeMode {
    /// The variant's warm server, woken for this job and put to sleep after it.
    Sleep,
    /// A server started for this job and stopped after it.
    Restart,
}

impl ServeMode {
    /// Its stable name (`sleep`, `restart`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServeMode::Sleep => "sleep",
            ServeMode::Restart => "restart",
        }
    }
}

/// What the engine allotted to a server, from its log (`GPU KV cache size: N tokens`, or
/// `# GPU blocks: N` in older builds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Capacity {
    /// The amount.
    pub amount: u64,
    /// `tokens` or `blocks`.
    pub unit: String,
    /// The log line it was read from.
    pub line: String,
}

/// The server side of one serving attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServeRecord {
    /// Sleep mode or a restart.
    pub mode: ServeMode,
    /// Why this mode (e.g. why not sleep mode: the setting, the backend, the build).
    #[serde(default)]
    pub why: Option<String>,
    /// Sleep mode: which start of this variant's server served it (1 = the first).
    #[serde(default)]
    pub server_start: u32,
    /// Sleep mode: the seconds a server start made before any job took, charged to this
    /// attempt's GPU·seconds (the first attempt after that start; 0 otherwise).
    #[serde(default)]
    pub setup_charged_s: f64,
    /// Sleep mode: `POST /wake_up` took, ms.
    #[serde(default)]
    pub wake_ms: Option<f64>,
    /// Sleep mode: `POST /sleep` after the job took, ms.
    #[serde(default)]
    pub sleep_ms: Option<f64>,
    /// What the engine allotted (KV cache), when its log says.
    #[serde(default)]
    pub kv_cache: Option<Capacity>,
    /// Serving steps: the jobs of this round in the order this process ran them (variants
    /// rotate across rounds from a seeded start, in sleep and restart mode alike).
    #[serde(default)]
    pub round_order: Vec<String>,
    /// Serving steps: the seed of the rotation.
    #[serde(default)]
    pub order_seed: Option<u64>,
}

impl AttemptRecord {
    /// Whether the attempt produced metrics.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}
