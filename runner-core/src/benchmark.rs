//! The `Benchmark` trait: per mode, how to ask the tool for machine-readable results and how
//! to turn a run's output into [`Metrics`] or a classified [`Failure`].
//!
//! Parsing is pure CPU work over text already collected, so the trait is synchronous; it is
//! object safe and used as `&dyn Benchmark` / `Arc<dyn Benchmark>`.

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::spec::{EntryPoint, Mode};

/// What kind of output a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The benchmark client's stdout.
    Stdout,
    /// The benchmark client's stderr.
    Stderr,
    /// The inference server's log (never a source of metrics).
    ServerLog,
    /// A JSON result file the tool wrote.
    ResultJson,
    /// A captured log mixing several of the above (as in collected samples).
    Combined,
}

/// One piece of a run's output, in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSource {
    /// File name or stream name, used in provenance.
    pub name: String,
    /// What it holds.
    pub kind: SourceKind,
    /// The content.
    pub text: String,
}

/// A run's outputs, as handed to [`Benchmark::parse`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// Sources in the order they should be consulted (JSON results first is customary).
    pub sources: Vec<OutputSource>,
    /// The client's exit code, when known.
    pub exit_code: Option<i32>,
}

/// A classified failure with the log lines that prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Classified {
    /// The failure code.
    pub code: Failure,
    /// The matched lines (or last error-looking lines for `no_metrics`).
    pub evidence: Vec<String>,
    /// The name of the signature that matched, if any.
    pub signature: Option<String>,
}

/// What parsing one run gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParseOutcome {
    /// The mode that parsed it.
    pub mode: Option<Mode>,
    /// The output layout recognised (e.g. `serving_json`, `serving_text`, `latency_avg_seconds`).
    pub format: Option<String>,
    /// Metrics read, with provenance.
    pub metrics: Metrics,
    /// Set when the run did not produce the mode's metrics.
    pub failure: Option<Classified>,
    /// Metrics the mode expects that were not found (e.g. a truncated block).
    pub missing: Vec<String>,
}

/// One benchmark mode.
pub trait Benchmark: std::fmt::Debug + Send + Sync {
    /// The mode this implementation handles.
    fn mode(&self) -> Mode;

    /// Extra client argv asking the tool to write its JSON result to `result_path`, for the
    /// given entry point; empty when the tool cannot write JSON.
    fn result_args(&self, entry: &EntryPoint, result_path: &str) -> Vec<String>;

    /// Turn a run's output into metrics or a classified failure.
    fn parse(&self, output: &RunOutput) -> ParseOutcome;
}
