//! Loading the dataset a command names, or the embedded example.

use std::path::Path;

use anyhow::Result;
use runner_core::dataset::Dataset;
use runner_core::settings::Limits;

/// The embedded example dataset: a handful of real vLLM perf commits with their public facts.
pub const EMBEDDED: &str = include_str!("../../examples/vllm-perf-commits.jsonl");

/// The origin name of the embedded dataset.
pub const EMBEDDED_ORIGIN: &str = "embedded:examples/vllm-perf-commits.jsonl";

/// Load `path` (at most `limits.max_dataset_bytes`), or the embedded example when `None`.
/// Rejected rows are logged to stderr, each with its line and field; the caller decides the
/// exit code.
pub fn load(path: Option<&Path>, limits: &Limits) -> Result<Dataset> {
    let ds = match path {
        // One message: the error's own text already carries its cause.
        Some(p) => Dataset::load_capped(p, limits.dataset()).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Dataset::from_str(EMBEDDED, EMBEDDED_ORIGIN, Path::new("examples")),
    };
    for e in &ds.errors {
        eprintln!("{}: rejected row: {e}", ds.origin);
    }
    Ok(ds)
}
