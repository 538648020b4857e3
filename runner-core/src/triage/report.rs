//! The triage report: markdown for people, JSON for tools, and the skip list.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::failure::Failure;

use super::{TaskTriage, TriageOptions, Verdict};

/// The JSON schema version of [`TriageReport::to_json`].
pub const SCHEMA_VERSION: u32 = 1;

/// Counts for a set of tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// All tasks.
    pub total: usize,
    /// Verifiable.
    pub verifiable: usize,
    /// Needing attention.
    pub needs_attention: usize,
    /// Not verifiable.
    pub not_verifiable: usize,
}

impl Counts {
    fn add(&mut self, v: Verdict) {
        self.total += 1;
        match v {
            Verdict::Verifiable => self.verifiable += 1,
            Verdict::NeedsAttention => self.needs_attention += 1,
            Verdict::NotVerifiable => self.not_verifiable += 1,
        }
    }

    /// The verifiable share in percent (0 for no tasks).
    pub fn verifiable_percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.verifiable as f64 / self.total as f64
        }
    }
}

/// The summary of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TriageSummary {
    /// Over all tasks.
    pub overall: Counts,
    /// Per GPU config (`unspecified` for tasks without one).
    pub by_gpu_config: BTreeMap<String, Counts>,
    /// Primary reasons of the tasks that are not verifiable or need attention, by code.
    pub root_causes: BTreeMap<String, usize>,
    /// How many tasks each code appears in at all (primary or not).
    pub affected: BTreeMap<String, usize>,
}

/// `triage --format json`: the report as tools read it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TriageJson {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Whether the online checks ran.
    pub online: bool,
    /// The vLLM source consulted, if any.
    pub vllm_source: Option<String>,
    /// One entry per task, in dataset order.
    pub tasks: Vec<TaskJson>,
    /// Verdicts and root causes, counted.
    pub summary: SummaryJson,
    /// Run-level notes.
    pub notes: Vec<String>,
}

/// One task of [`TriageJson`]: its triage and the code of the reason that decides it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TaskJson {
    /// The task's triage.
    #[serde(flatten)]
    pub task: TaskTriage,
    /// The code of the reason that decides the verdict, if any.
    pub primary_reason: Option<Failure>,
}

/// The summary of [`TriageJson`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SummaryJson {
    /// All tasks.
    pub total: usize,
    /// Verifiable.
    pub verifiable: usize,
    /// Needing attention.
    pub needs_attention: usize,
    /// Not verifiable.
    pub not_verifiable: usize,
    /// The verifiable share in percent, one decimal.
    pub verifiable_percent: f64,
    /// Per GPU config.
    pub by_gpu_config: BTreeMap<String, Counts>,
    /// Primary reasons of the tasks that are not verifiable or need attention, by code.
    pub root_causes: BTreeMap<String, usize>,
    /// How many tasks each code appears in at all.
    pub affected: BTreeMap<String, usize>,
}

/// The outcome of triaging a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriageReport {
    /// One entry per task, in dataset order.
    pub tasks: Vec<TaskTriage>,
    /// Run-level notes (ignored extra model entries, HTTP client problems …).
    pub notes: Vec<String>,
    /// Whether the online checks ran.
    pub online: bool,
    /// The vLLM source consulted, if any.
    pub vllm_source: Option<String>,
}

impl TriageReport {
    pub(crate) fn new(tasks: Vec<TaskTriage>, notes: Vec<String>, opts: &TriageOptions) -> Self {
        TriageReport {
            tasks,
            notes,
            online: opts.online,
            vllm_source: opts.vllm_source.as_ref().map(|s| s.describe()),
        }
    }

    /// Count verdicts and root causes.
    pub fn summary(&self) -> TriageSummary {
        let mut s = TriageSummary::default();
        for t in &self.tasks {
            s.overall.add(t.verdict);
            s.by_gpu_config
                .entry(t.gpu_config.clone())
                .or_default()
                .add(t.verdict);
            if let Some(p) = t.primary() {
                *s.root_causes.entry(p.code.code().to_string()).or_default() += 1;
            }
            let mut codes: Vec<&str> = t.reasons.iter().map(|r| r.code.code()).collect();
            codes.dedup();
            codes.sort_unstable();
            codes.dedup();
            for c in codes {
                *s.affected.entry(c.to_string()).or_default() += 1;
            }
        }
        s
    }

    /// The report as JSON ([`TriageJson`]): `{"schema_version":1, "tasks":[…],
    /// "summary":{…}, "notes":[…]}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json()).unwrap_or(Value::Null)
    }

    /// The report's JSON document, typed (its schema is derived from it).
    pub fn json(&self) -> TriageJson {
        let s = self.summary();
        TriageJson {
            schema_version: SCHEMA_VERSION,
            online: self.online,
            vllm_source: self.vllm_source.clone(),
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskJson {
                    task: t.clone(),
                    primary_reason: t.primary().map(|r| r.code),
                })
                .collect(),
            summary: SummaryJson {
                total: s.overall.total,
                verifiable: s.overall.verifiable,
                needs_attention: s.overall.needs_attention,
                not_verifiable: s.overall.not_verifiable,
                verifiable_percent: (s.overall.verifiable_percent() * 10.0).round() / 10.0,
                by_gpu_config: s.by_gpu_config,
                root_causes: s.root_causes,
                affected: s.affected,
            },
            notes: self.notes.clone(),
        }
    }

    /// The skip list: one line per not-verifiable task, in dataset order,
    ///
    /// ```text
    /// <commit> <code> <detail>
    /// ```
    ///
    /// where `<commit>` is the full hash, `<code>` the primary reason's [`Failure`] code, and
    /// `<detail>` its detail on one line (the rest of the line; whitespace collapsed). No header,
    /// no comments; every line ends with `\n`. Read a line back with [`parse_skip_line`].
    pub fn skip_list(&self) -> String {
        let mut out = String::new();
        for t in self
            .tasks
            .iter()
            .filter(|t| t.verdict == Verdict::NotVerifiable)
        {
            if let Some(r) = t.primary() {
                // One line per task, and safe to `cat`: the detail may quote dataset text.
                let detail = crate::text::cell(&r.detail);
                out.push_str(&format!("{} {} {detail}\n", t.commit, r.code));
            }
        }
        out
    }

    /// The report as markdown, like a hand-written triage.
    pub fn to_markdown(&self) -> String {
        super::markdown::render(self, &self.summary())
    }
}

/// Parse one skip-list line into `(commit, code, detail)`; `None` for blank lines, lines
/// starting with `#`, and malformed lines.
pub fn parse_skip_line(line: &str) -> Option<(String, Failure, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut parts = line.splitn(3, ' ');
    let commit = parts.next()?.to_string();
    let code = parts.next()?.parse::<Failure>().ok()?;
    Some((commit, code, parts.next().unwrap_or_default().to_string()))
}
