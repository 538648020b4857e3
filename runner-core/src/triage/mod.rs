//! Triage: before any GPU is rented, say whether each task can be verified, and why not.
//!
//! Each check is a small module with one entry point; this module runs them in a fixed order
//! and folds their findings into a [`TaskTriage`] per task:
//!
//! | check | module | offline | what it can report |
//! |---|---|---|---|
//! | the benchmark command | [`command`] | yes | `no_perf_command`, `bad_config`, `dataset_missing`, needs attention for unknown scripts |
//! | a parent commit to build the baseline from | this module | yes | `bad_config` (needs attention) |
//! | ROCm-only changes | [`rocm`] | yes | `rocm_specific` |
//! | model size vs GPU memory | [`size`] (table: [`models`]) | yes | `model_too_large`, `bad_config` |
//! | engine version at the parent | [`engine`] ([`version`], [`source`]) | estimate | `vllm_version`, `model_unsupported` |
//! | per-commit wheels and images | [`artifacts`] | by date | `no_wheel`, `no_image` (warning) |
//! | can the benchmark exercise the change | [`relevance`] | yes | warnings only |
//!
//! Entry points: [`triage_dataset`] (async; probes a vLLM source and, with
//! [`TriageOptions::online`], the artifact servers) and [`triage_offline`] (sync, no I/O). Both
//! return a [`TriageReport`] that renders as markdown ([`TriageReport::to_markdown`]), JSON
//! ([`TriageReport::to_json`]) and a skip list ([`TriageReport::skip_list`]). Input never makes
//! triage panic: whatever cannot be decided is listed under `not_checked`.

pub mod artifacts;
pub mod command;
pub mod engine;
mod http;
mod markdown;
pub mod models;
pub mod relevance;
pub mod report;
pub mod rocm;
pub mod size;
pub mod source;
pub mod version;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::build::ArtifactSources;
use crate::failure::Failure;
use crate::gpu::GpuSpec;
use crate::task::Task;

pub use models::{FamilyEntry, ModelEntry, ModelTable};
pub use report::{
    SCHEMA_VERSION, SummaryJson, TaskJson as TriageTaskJson, TriageJson, TriageReport,
    TriageSummary, parse_skip_line,
};
pub use source::VllmSource;

/// Whether a task can be verified.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing known stops a reproduction.
    Verifiable,
    /// A person must look first (fix the command, provide a source build …).
    NeedsAttention,
    /// It cannot be verified as given; it belongs on the skip list.
    NotVerifiable,
}

impl Verdict {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verifiable => "verifiable",
            Verdict::NeedsAttention => "needs_attention",
            Verdict::NotVerifiable => "not_verifiable",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a task is not (plainly) verifiable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reason {
    /// The failure code.
    pub code: Failure,
    /// The verdict this reason alone implies (`needs_attention` or `not_verifiable`).
    pub severity: Verdict,
    /// What is wrong, in one line.
    pub detail: String,
    /// What shows it: probes (`path@commit: …`), URLs with statuses, table entries, estimates.
    pub evidence: Vec<String>,
    /// What would make the task verifiable.
    pub fix: String,
}

impl Reason {
    /// A reason that makes the task not verifiable.
    pub fn blocking(code: Failure, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Reason {
            code,
            severity: Verdict::NotVerifiable,
            detail: detail.into(),
            evidence: Vec::new(),
            fix: fix.into(),
        }
    }

    /// A reason that needs a person's attention.
    pub fn attention(code: Failure, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Reason {
            severity: Verdict::NeedsAttention,
            ..Reason::blocking(code, detail, fix)
        }
    }

    /// The same reason with evidence added.
    pub fn with_evidence(mut self, evidence: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(evidence);
        self
    }
}

/// What the checks found for one task (the accumulator every check writes to).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Reasons, in check order.
    pub reasons: Vec<Reason>,
    /// Things worth knowing that do not change the verdict.
    pub warnings: Vec<String>,
    /// What could not be checked, and why.
    pub not_checked: Vec<String>,
}

/// The triage of one task.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TaskTriage {
    /// The human commit.
    pub commit: String,
    /// The parent (baseline) commit, when the dataset gives it.
    pub parent: Option<String>,
    /// The task's GPU config (`H100:2`), or `unspecified`.
    pub gpu_config: String,
    /// The model the benchmark runs, when known.
    pub model: Option<String>,
    /// The verdict: the worst severity among the reasons.
    pub verdict: Verdict,
    /// Reasons, worst first (stable within a severity); the first is the primary one.
    pub reasons: Vec<Reason>,
    /// Warnings that do not change the verdict.
    pub warnings: Vec<String>,
    /// What was not checked, and why.
    pub not_checked: Vec<String>,
}

impl TaskTriage {
    /// Fold findings into a triage.
    pub fn from_findings(task: &Task, mut f: Findings) -> Self {
        f.reasons.sort_by_key(|r| std::cmp::Reverse(r.severity));
        dedup(&mut f.warnings);
        dedup(&mut f.not_checked);
        TaskTriage {
            commit: task.commit.clone(),
            parent: task.parent.clone(),
            gpu_config: task
                .gpu
                .as_ref()
                .map(GpuSpec::to_string)
                .unwrap_or_else(|| "unspecified".into()),
            model: task.model().map(str::to_string),
            verdict: f
                .reasons
                .iter()
                .map(|r| r.severity)
                .max()
                .unwrap_or(Verdict::Verifiable),
            reasons: f.reasons,
            warnings: f.warnings,
            not_checked: f.not_checked,
        }
    }

    /// The primary reason: the first of the worst severity.
    pub fn primary(&self) -> Option<&Reason> {
        self.reasons.first()
    }
}

/// The first `n` characters of `s` (a commit hash for display); never splits a character.
pub(crate) fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

/// How model sizes are weighed against GPU memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryPolicy {
    /// Assumed when a task has no `gpu_config` (the largest single node), with a warning.
    pub default_gpu: GpuSpec,
    /// `--gpu-memory-utilization` when the command does not give one (vLLM's default).
    pub default_utilization: f64,
    /// GiB per GPU taken by the CUDA context, activations and graphs, beyond the weights.
    pub overhead_gib_per_gpu: f64,
    /// GiB per GPU that must remain for the KV cache.
    pub min_kv_gib_per_gpu: f64,
}

impl Default for MemoryPolicy {
    fn default() -> Self {
        MemoryPolicy {
            default_gpu: GpuSpec::new("H100", 8),
            default_utilization: 0.9,
            overhead_gib_per_gpu: 1.0,
            min_kv_gib_per_gpu: 2.0,
        }
    }
}

/// What triage may consult, and how.
///
/// The CLI maps `perf-runner triage DATASET [--online] [--vllm-source PATH|URL]` onto
/// `TriageOptions { online, vllm_source: source.map(|s| VllmSource::parse(&s)),
/// ..TriageOptions::from_sources(settings.artifacts.clone()) }`.
#[derive(Debug, Clone)]
pub struct TriageOptions {
    /// Query the wheel index, legacy wheel and image registry over HTTP.
    pub online: bool,
    /// A vLLM source (local clone or raw-file URL template) to probe at the parent commit.
    pub vllm_source: Option<VllmSource>,
    /// Wheel index and legacy wheel URL templates (`{commit}` is replaced).
    pub sources: ArtifactSources,
    /// Registry manifest URL template for the per-commit image (`{commit}` is replaced).
    pub image_manifest_url: String,
    /// Extra model entries; they take precedence over the built-in table.
    pub extra_models: Vec<ModelEntry>,
    /// Extra model families; they take precedence over the built-in ones.
    pub extra_families: Vec<FamilyEntry>,
    /// vLLM versions the dataset gives, by commit (full hash, lower case).
    pub dataset_versions: BTreeMap<String, String>,
    /// Model size policy.
    pub memory: MemoryPolicy,
    /// Whether the backends can build vLLM from source: then a missing wheel is a warning,
    /// otherwise it needs attention.
    pub source_builds: bool,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
    /// Retries of a transient HTTP failure (5xx, 429, connect, timeout) after the first try.
    pub retries: u32,
    /// Backoff before the first retry; doubled (with jitter) for each further one.
    pub retry_backoff: Duration,
    /// Concurrent HTTP requests.
    pub concurrency: usize,
    /// The dataset catalogue's mirror: catalogued files it holds are provisioned, not missing.
    pub datasets: crate::catalogue::DatasetSettings,
}

/// The per-commit image manifest on the public ECR mirror of vLLM's post-merge CI images.
pub const DEFAULT_IMAGE_MANIFEST_URL: &str =
    "https://public.ecr.aws/v2/q9t5s3a7/vllm-ci-postmerge-repo/manifests/{commit}";

impl Default for TriageOptions {
    fn default() -> Self {
        TriageOptions {
            online: false,
            vllm_source: None,
            sources: ArtifactSources::default(),
            image_manifest_url: DEFAULT_IMAGE_MANIFEST_URL.into(),
            extra_models: Vec::new(),
            extra_families: Vec::new(),
            dataset_versions: BTreeMap::new(),
            memory: MemoryPolicy::default(),
            source_builds: false,
            http_timeout: Duration::from_secs(10),
            retries: 3,
            retry_backoff: Duration::from_millis(500),
            concurrency: 8,
            datasets: crate::catalogue::DatasetSettings::default(),
        }
    }
}

impl TriageOptions {
    /// Options whose wheel templates come from `sources` and whose image-manifest URL is derived
    /// from `sources.commit_image` (see [`manifest_url_for_image`]); everything else default.
    pub fn from_sources(sources: ArtifactSources) -> Self {
        TriageOptions {
            image_manifest_url: manifest_url_for_image(&sources.commit_image)
                .unwrap_or_else(|| DEFAULT_IMAGE_MANIFEST_URL.into()),
            sources,
            ..TriageOptions::default()
        }
    }
}

/// The registry manifest URL of an image reference template:
/// `public.ecr.aws/q9t5s3a7/vllm-ci-postmerge-repo:{commit}` →
/// `https://public.ecr.aws/v2/q9t5s3a7/vllm-ci-postmerge-repo/manifests/{commit}`.
/// `None` when the reference names no registry host or no tag.
pub fn manifest_url_for_image(reference: &str) -> Option<String> {
    let (host, rest) = reference.trim().split_once('/')?;
    if !(host.contains('.') || host.contains(':')) {
        return None;
    }
    let (repo, tag) = rest.rsplit_once(':')?;
    (!repo.is_empty() && !tag.is_empty())
        .then(|| format!("https://{host}/v2/{repo}/manifests/{tag}"))
}

/// Shared, prepared state of one triage run.
pub(crate) struct Context<'a> {
    pub opts: &'a TriageOptions,
    pub models: ModelTable,
    pub facts: &'static version::VllmFacts,
}

impl<'a> Context<'a> {
    fn new(opts: &'a TriageOptions, notes: &mut Vec<String>) -> Self {
        let models =
            ModelTable::builtin().with_extra(&opts.extra_models, &opts.extra_families, notes);
        Context {
            opts,
            models,
            facts: version::VllmFacts::builtin(),
        }
    }
}

/// The checks that need no I/O, in report order (engine and artifacts come later).
fn offline_findings(task: &Task, cx: &Context<'_>) -> Findings {
    let mut f = Findings::default();
    command::check(task, &cx.opts.datasets, &mut f);
    check_parent(task, &mut f);
    rocm::check(task, &mut f);
    size::check(task, cx, &mut f);
    f
}

/// The baseline is the parent commit: a task without one cannot be planned, so triage never
/// calls it verifiable (the same `bad_config` as `plan` gives it).
fn check_parent(task: &Task, f: &mut Findings) {
    if task.parent.is_none() {
        f.reasons.push(Reason::attention(
            Failure::BadConfig,
            "the task has no parent commit, so its baseline cannot be planned",
            PARENT_FIX,
        ));
    }
}

/// How to give a task its parent (the same words `plan` uses).
pub const PARENT_FIX: &str = "add parent_commit (or base_commit) to the row, or pass \
     --vllm-source PATH (a local vLLM clone) to resolve it as COMMIT^";

/// Triage without any I/O: the date estimates stand in for the source and the servers.
pub fn triage_offline(tasks: &[Task], opts: &TriageOptions) -> TriageReport {
    let mut notes = Vec::new();
    let cx = Context::new(opts, &mut notes);
    let triaged = tasks
        .iter()
        .map(|task| {
            let mut f = offline_findings(task, &cx);
            let needs = engine::Needs::of(task, &cx);
            engine::check_estimate(task, &needs, &cx, None, &mut f);
            artifacts::check_by_date(task, &cx, &mut f);
            relevance::check(task, &cx, &mut f);
            TaskTriage::from_findings(task, f)
        })
        .collect();
    TriageReport::new(triaged, notes, opts)
}

/// Triage every task: offline checks, then the vLLM source (if any) at each parent commit,
/// then (with `online`) the artifact servers. Transient failures that persist are reported
/// under `not_checked`, never as a verdict.
pub async fn triage_dataset(tasks: &[Task], opts: &TriageOptions) -> TriageReport {
    let mut notes = Vec::new();
    let cx = Context::new(opts, &mut notes);
    let http = match http::Http::new(opts) {
        Ok(h) => Some(h),
        Err(e) => {
            notes.push(format!("HTTP client unavailable: {e}"));
            None
        }
    };
    let online = match (&http, opts.online) {
        (Some(h), true) => match artifacts::reachable(tasks, opts, h).await {
            Err(why) => {
                notes.push(format!(
                    "online probes skipped: the artifact servers do not answer ({}); artifacts judged by date",
                    crate::text::escape(&why)
                ));
                None
            }
            Ok(()) => {
                let r = artifacts::probe_all(tasks, opts, h).await;
                match r.answered() {
                    (asked, 0) if asked > 0 => {
                        notes.push(format!(
                            "online probes: none of {asked} URL(s) answered; artifacts judged by date"
                        ));
                        None
                    }
                    _ => Some(r),
                }
            }
        },
        _ => None,
    };
    let needs: Vec<engine::Needs> = tasks.iter().map(|t| engine::Needs::of(t, &cx)).collect();
    if let Some(src) = &opts.vllm_source {
        let pairs: Vec<(&Task, &engine::Needs)> = tasks.iter().zip(&needs).collect();
        engine::prefetch(&pairs, src, http.as_ref(), opts.concurrency).await;
    }
    let mut triaged = Vec::with_capacity(tasks.len());
    for (task, needs) in tasks.iter().zip(&needs) {
        let mut f = offline_findings(task, &cx);
        let mut by_source = false;
        if let Some(src) = &opts.vllm_source {
            match engine::check_source(task, needs, src, http.as_ref(), &mut f).await {
                Ok(()) => by_source = true,
                Err(why) => f
                    .not_checked
                    .push(format!("vLLM source {}: {why}", src.describe())),
            }
        }
        if !by_source {
            engine::check_estimate(task, needs, &cx, online.as_ref(), &mut f);
        }
        match &online {
            Some(results) => artifacts::check_online(task, &cx, results, &mut f),
            None => artifacts::check_by_date(task, &cx, &mut f),
        }
        relevance::check(task, &cx, &mut f);
        triaged.push(TaskTriage::from_findings(task, f));
    }
    // The report says "online" only where the probes answered.
    let shown = TriageOptions {
        online: online.is_some(),
        ..opts.clone()
    };
    TriageReport::new(triaged, notes, &shown)
}
