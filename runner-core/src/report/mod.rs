//! Reports of a run: per task and metric, medians per variant with bootstrap CIs, ratios with
//! CIs and verdicts against a noise floor (A/A-measured where the run has A/A repeats), the
//! validity gate (a commit whose human speedup does not reproduce leaves its agent unscored),
//! failures with codes and evidence, skipped tasks, and GPU-time accounting.
//!
//! [`build`] reads a run from the [`Store`] into a [`Report`] (plain data, serialisable as the
//! JSON report); [`markdown`], [`html`] and [`vllm_results`] render it. Every bootstrap is
//! seeded, so the same store and options give byte-identical reports.

mod agent_plot;
mod collect;
mod details;
mod html;
mod markdown;
mod rounds;
pub mod servers;
mod svg;
pub mod table;
mod vllm;

use serde::{Deserialize, Serialize};

pub use collect::build;
pub use html::html;
pub use markdown::markdown;
pub use vllm::{VllmResultFile, vllm_result, vllm_results, write_vllm_results};

use crate::provenance::Program;
use crate::spec::Mode;
use crate::stats::{Comparison, DEFAULT_RESAMPLES, DEFAULT_SEED, NoiseFloor, Summary, Verdict};
use crate::store::StoreError;
use crate::task::Variant;

/// The JSON schema version of reports.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Errors of reporting.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed or has no such run.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// How a report is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportOptions {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// The configured relative noise floor, used where no A/A measurement exists.
    pub configured_floor: f64,
    /// Use the A/A-measured floor of a task when the run has A/A repeats for it.
    pub aa_floor: bool,
    /// The smallest floor an A/A measurement may give.
    pub aa_floor_minimum: f64,
    /// The metric the tables and verdicts use instead of each task's primary one (`--metric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
            configured_floor: 0.02,
            aa_floor: true,
            aa_floor_minimum: 0.01,
            metric: None,
        }
    }
}

/// A whole run's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run.
    pub run: RunInfo,
    /// The options the report was computed with.
    pub options: ReportOptions,
    /// Tasks in dataset order.
    pub tasks: Vec<TaskReport>,
    /// Cost of the whole run.
    pub cost: Cost,
    /// Which perf-runner ran the run and which wrote this report.
    #[serde(default)]
    pub provenance: RunProvenance,
}

/// Which perf-runner ran a run and which computed its report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunProvenance {
    /// The program that ran the run, as the run recorded it (`None` for runs recorded before
    /// perf-runner recorded itself).
    pub run_by: Option<Program>,
    /// The program that computed this report.
    pub report_by: Option<Program>,
}

/// What a variant's attempts ran on and with: every distinct value its attempts recorded, so
/// a variant that ran on two engine builds or two GPU kinds shows both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantProvenance {
    /// Engine versions installed (`0.6.4.post1`).
    pub engine_versions: Vec<String>,
    /// Build identities (wheel URL, image reference or source commit + patch).
    pub build_identities: Vec<String>,
    /// Build digests: wheel sha256 or image digest.
    pub build_digests: Vec<String>,
    /// GPU names.
    pub gpu_names: Vec<String>,
    /// Hosts.
    pub hosts: Vec<String>,
    /// Backends.
    pub backends: Vec<String>,
    /// sha256 of each client argv as run ([`crate::provenance::argv_sha256`]).
    pub client_argv_sha256: Vec<String>,
    /// sha256 of each server argv as run (serving).
    pub server_argv_sha256: Vec<String>,
}

/// One latency family's P50 and P99 for a variant: the median over its successful repeats
/// of each repeat's own percentile (each repeat's percentile is over its requests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LatencyPercentiles {
    /// `ttft`, `tpot`, `itl` or `e2el`.
    pub family: String,
    /// Median over repeats of the per-repeat P50 (`{family}_p50_ms`, else `_median_ms`), ms.
    pub p50_ms: Option<f64>,
    /// Median over repeats of the per-repeat P99 (`{family}_p99_ms`), ms.
    pub p99_ms: Option<f64>,
    /// Repeats that reported the family.
    pub n: u32,
}

/// The run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Where the run stands.
    pub status: crate::record::RunStatus,
    /// Backend name (`auto`: each task's own is in [`TaskReport::backends`]).
    pub backend: String,
    /// The configuration profile the run was started with, if one applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Dataset origin.
    pub origin: String,
}

impl RunInfo {
    /// The backend, with the profile where one applied (`auto · profile lab`).
    pub fn backend_text(&self) -> String {
        match &self.profile {
            Some(p) => format!("{} · profile {p}", self.backend),
            None => self.backend.clone(),
        }
    }
}

/// One task's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskReport {
    /// Full commit hash.
    pub commit: String,
    /// Dataset line.
    pub line: usize,
    /// Commit subject.
    pub subject: Option<String>,
    /// Planned, skipped or failed (planning failed).
    pub status: crate::record::TaskStatus,
    /// Why it was skipped or could not be planned.
    pub reason: Option<String>,
    /// Benchmark mode, when planned.
    pub mode: Option<Mode>,
    /// The metric the task is judged by.
    pub primary_metric: Option<String>,
    /// Why that metric decides (from the benchmark's mode and load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_why: Option<String>,
    /// Per variant (A/A baseline last): jobs, samples of the primary metric, summary.
    pub variants: Vec<VariantReport>,
    /// The floor the comparisons were judged against.
    pub noise_floor: NoiseFloor,
    /// Baseline A/A vs baseline on the primary metric, when the run has A/A repeats.
    pub aa: Option<Comparison>,
    /// Comparisons per metric: the primary first, then TTFT/TPOT for serving.
    pub metrics: Vec<MetricReport>,
    /// Whether the human speedup reproduced here.
    pub validity: Validity,
    /// Jobs that ended without metrics.
    pub failures: Vec<FailureReport>,
    /// Cost of the task.
    pub cost: Cost,
    /// The backends its attempts ran on, as they recorded them (one, unless it is an old run of
    /// several); empty when nothing ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    /// How its servers ran (serving): sleep mode or restarts, starts, allotted capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<servers::ServersReport>,
    /// Every try at preparing its builds, failed ones included (from the store), in order.
    #[serde(default)]
    pub prepare: Vec<crate::store::PrepareTry>,
    /// How steady the rounds were on the primary metric (every variant's runs over its
    /// median, per round), when at least 3 rounds ran 2 runs or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<crate::stats::RoundLevels>,
}

impl TaskReport {
    /// The primary metric's human/baseline comparison.
    pub fn human_vs_baseline(&self) -> Option<&Comparison> {
        self.metrics
            .first()
            .and_then(|m| m.comparison(Pair::HumanVsBaseline))
    }

    /// A variant's report (`aa` selects the A/A baseline).
    pub fn variant(&self, variant: Variant, aa: bool) -> Option<&VariantReport> {
        self.variants
            .iter()
            .find(|v| v.variant == variant && v.aa == aa)
    }
}

/// One variant of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantReport {
    /// The variant.
    pub variant: Variant,
    /// Whether this is the A/A repeat of the baseline.
    pub aa: bool,
    /// Jobs scheduled.
    pub jobs: u32,
    /// Jobs that produced metrics.
    pub succeeded: u32,
    /// Jobs that ended failed.
    pub failed: u32,
    /// The primary metric per successful repeat.
    pub samples: Vec<Sample>,
    /// Median and CI of the samples.
    pub summary: Option<Summary>,
    /// The repeat whose primary metric is the median (the lower middle for even counts).
    pub median_run: Option<MedianRun>,
    /// P50 and P99 of the latency families its repeats reported (serving).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyPercentiles>,
    /// What its attempts ran on and with.
    #[serde(default)]
    pub provenance: VariantProvenance,
}

impl VariantReport {
    /// `baseline`, `human`, `agent` or `baseline-aa`.
    pub fn label(&self) -> String {
        label(self.variant, self.aa)
    }
}

/// The display label of a variant.
pub fn label(variant: Variant, aa: bool) -> String {
    if aa {
        format!("{variant}-aa")
    } else {
        variant.to_string()
    }
}

/// One repeat's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// 0-based repeat.
    pub repeat: u32,
    /// The value.
    pub value: f64,
}

/// The median repeat of a variant, with every metric it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MedianRun {
    /// Repeat index.
    pub repeat: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Engine version installed.
    pub engine_version: Option<String>,
    /// The client argv as run.
    pub client_argv: Vec<String>,
    /// Every metric of that attempt.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// Which two variants a comparison is between (`other / base`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pair {
    /// Human over baseline: the commit's claim.
    HumanVsBaseline,
    /// Agent over human.
    AgentVsHuman,
    /// Agent over baseline.
    AgentVsBaseline,
}

impl Pair {
    /// Every pair, in report order.
    pub const ALL: [Pair; 3] = [
        Pair::HumanVsBaseline,
        Pair::AgentVsHuman,
        Pair::AgentVsBaseline,
    ];

    /// `(base, other)`.
    pub fn sides(self) -> (Variant, Variant) {
        match self {
            Pair::HumanVsBaseline => (Variant::Baseline, Variant::Human),
            Pair::AgentVsHuman => (Variant::Human, Variant::Agent),
            Pair::AgentVsBaseline => (Variant::Baseline, Variant::Agent),
        }
    }

    /// `human/baseline` …
    pub fn label(self) -> String {
        let (b, o) = self.sides();
        format!("{o}/{b}")
    }
}

/// One metric of a task across variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricReport {
    /// Metric key.
    pub metric: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// Comparisons that both sides had samples for.
    pub comparisons: Vec<PairComparison>,
}

impl MetricReport {
    /// The comparison of a pair.
    pub fn comparison(&self, pair: Pair) -> Option<&Comparison> {
        self.comparisons
            .iter()
            .find(|c| c.pair == pair)
            .map(|c| &c.comparison)
    }
}

/// A comparison of a pair of variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PairComparison {
    /// The pair.
    pub pair: Pair,
    /// Summaries, ratio, verdict, rank test.
    pub comparison: Comparison,
    /// Whether it counts: agent comparisons count only where the human speedup reproduced.
    pub scored: bool,
}

/// Whether a commit's human speedup reproduced on this hardware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Validity {
    /// Human vs baseline on the primary metric is `improved`.
    Reproduced,
    /// Human vs baseline on the primary metric is not `improved`.
    NotReproduced {
        /// The verdict it got.
        verdict: Verdict,
    },
    /// No human vs baseline comparison exists.
    NotMeasured {
        /// Why.
        reason: String,
    },
}

impl Validity {
    /// One line for tables.
    pub fn text(&self) -> String {
        match self {
            Validity::Reproduced => "human speedup reproduced".into(),
            Validity::NotReproduced { verdict } => {
                format!("human speedup not reproduced: {}", verdict_name(*verdict))
            }
            Validity::NotMeasured { reason } => format!("not measured: {reason}"),
        }
    }
}

/// The snake_case name of a verdict.
pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Improved => "improved",
        Verdict::Regressed => "regressed",
        Verdict::NoChange => "no_change",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// A job that ended without metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailureReport {
    /// The variant.
    pub variant: Variant,
    /// Whether it was an A/A job.
    pub aa: bool,
    /// Repeat index.
    pub repeat: u32,
    /// The failure code of its last attempt.
    pub code: String,
    /// Attempts made.
    pub attempts: u32,
    /// The failure's message.
    pub detail: Option<String>,
    /// Evidence lines.
    pub evidence: Vec<String>,
}

/// GPU time, wall time and attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cost {
    /// Sum of the attempts' GPU·seconds.
    pub gpu_seconds: f64,
    /// First start to last finish, seconds.
    pub wall_s: Option<f64>,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts beyond the first of each job.
    pub retries: u32,
    /// The share of the GPU·seconds spent inside measured windows (the clients' benchmark
    /// durations), where the results say.
    #[serde(default)]
    pub measured_share: Option<f64>,
}
