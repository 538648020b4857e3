//! Tasks (one perf commit to reproduce) and variants (what is benchmarked for it).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gpu::GpuSpec;
use crate::spec::BenchmarkSpec;

/// Which build of the engine a job runs.
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
pub enum Variant {
    /// The parent commit.
    Baseline,
    /// The commit itself, as its author wrote it.
    Human,
    /// The parent commit plus an agent's patch.
    Agent,
}

impl Variant {
    /// All variants in their canonical (interleaving) order.
    pub const ALL: [Variant; 3] = [Variant::Baseline, Variant::Human, Variant::Agent];

    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Baseline => "baseline",
            Variant::Human => "human",
            Variant::Agent => "agent",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown variant name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant '{0}' (expected baseline, human or agent)")]
pub struct UnknownVariant(pub String);

impl FromStr for Variant {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "baseline" | "base" | "parent" => Ok(Variant::Baseline),
            "human" => Ok(Variant::Human),
            "agent" => Ok(Variant::Agent),
            _ => Err(UnknownVariant(s.to_string())),
        }
    }
}

/// Parse a comma-separated variant list such as `baseline,human,agent`, de-duplicated and in
/// canonical order.
pub fn parse_variant_list(s: &str) -> Result<Vec<Variant>, UnknownVariant> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v: Variant = part.parse()?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out.sort();
    Ok(out)
}

/// One perf commit to reproduce, as loaded from a dataset row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// 1-based line (JSONL) or record index (JSON array) the task came from.
    pub source_line: usize,
    /// Full commit hash (lower-case hex) of the human commit.
    pub commit: String,
    /// Parent (baseline) commit, when the dataset gives it.
    pub parent: Option<String>,
    /// Commit subject line.
    pub subject: Option<String>,
    /// Repository (e.g. `vllm-project/vllm`), when given.
    pub repo: Option<String>,
    /// The benchmark command exactly as the dataset gives it.
    pub perf_command: Option<String>,
    /// The parsed command, when `perf_command` parsed; see `command_error` otherwise.
    pub spec: Option<BenchmarkSpec>,
    /// Why `perf_command` did not parse or was refused (a `bad_config` detail), if so.
    pub command_error: Option<String>,
    /// The input policy's refusal of the command, when that is why it has no spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_violation: Option<crate::command::policy::Violation>,
    /// Models the dataset lists (first is the primary one).
    pub models: Vec<String>,
    /// GPUs the commit needs; `None` when the dataset does not say.
    pub gpu: Option<GpuSpec>,
    /// Files the commit changes.
    pub files_changed: Vec<String>,
    /// Pull-request URL.
    pub pr_url: Option<String>,
    /// Commit or PR date as given (ISO 8601).
    pub date: Option<String>,
    /// The dataset's advisory benchmark mode.
    pub benchmark_mode_hint: Option<String>,
    /// Agent patch file, if the dataset (or a predictions file) gives one.
    pub patch: Option<PathBuf>,
    /// The commit's own change as a diff file, when the dataset carries it as text (ISO-Bench's
    /// and SWE-bench's `patch`, ISO-Bench's `diff_text`); evidence only: the human build is
    /// the commit itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_patch: Option<PathBuf>,
    /// The dataset's own id of the task (`instance_id`), which predictions files refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl Task {
    /// The first 8 hex digits of the commit, for display.
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(8)]
    }

    /// The model the benchmark runs: the command's `--model`, else the dataset's first model.
    pub fn model(&self) -> Option<&str> {
        self.spec
            .as_ref()
            .and_then(|s| s.model())
            .or_else(|| self.models.first().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_lists() {
        assert_eq!(
            parse_variant_list("agent, baseline,human,agent").unwrap(),
            vec![Variant::Baseline, Variant::Human, Variant::Agent]
        );
        let e = parse_variant_list("baseline,humn").unwrap_err().to_string();
        assert!(e.contains("humn") && e.contains("baseline, human or agent"));
    }
}
