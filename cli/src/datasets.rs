//! Loading the dataset a command names, or the embedded example.

use std::path::Path;

use anyhow::Result;
use runner_core::dataset::Dataset;
use runner_core::settings::Settings;
use runner_core::text::escape;

/// The embedded example dataset: a handful of real vLLM perf commits with their public facts.
pub const EMBEDDED: &str = include_str!("../../examples/vllm-perf-commits.jsonl");

/// The origin name of the embedded dataset.
pub const EMBEDDED_ORIGIN: &str = "embedded:examples/vllm-perf-commits.jsonl";

/// Load `path` (at most `limits.max_dataset_bytes`), or the embedded example when `None`,
/// checking every command against the input policy (`inputs`). Rejected rows are logged to
/// stderr, each with its line and field (their messages quote the row: shown escaped); the
/// caller decides the exit code.
pub fn load(path: Option<&Path>, settings: &Settings) -> Result<Dataset> {
    let inputs = &settings.inputs;
    let ds = match path {
        // One message: the error's own text already carries its cause.
        Some(p) => Dataset::load_with(p, inputs, settings.limits.dataset())
            .map_err(|e| crate::errors::coded(runner_core::exit::INPUT, e.to_string()))?,
        None => Dataset::from_str_with(EMBEDDED, EMBEDDED_ORIGIN, Path::new("examples"), inputs),
    };
    for e in &ds.errors {
        eprintln!(
            "{}: rejected row: {}",
            escape(&ds.origin),
            escape(&e.to_string())
        );
    }
    Ok(ds)
}
