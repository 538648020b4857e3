//! `perf-runner bench serve`: a native serving benchmark client that reproduces `vllm bench
//! serve` (same flags, metric definitions, result block and JSON) without the engine's Python,
//! so every variant of a task is measured by the same bytes, whatever the engine's version.
//!
//! - [`args`]: the flags; [`tokenizer`]: the model's `tokenizer.json`; [`dataset`]: prompts of
//!   exact token lengths; [`arrivals`]: Poisson / gamma send times.
//! - [`request`] + [`sse`]: one streamed request, timed as bytes arrive; [`run`]: the schedule,
//!   concurrency and collection; [`metrics`] + [`report`]: vLLM's numbers and layouts.

pub mod args;
pub mod arrivals;
pub mod dataset;
pub mod metrics;
pub mod report;
pub mod request;
mod run;
mod setup;
pub mod sse;
pub mod tokenizer;

use clap::Subcommand;

/// `perf-runner bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Serving benchmark against an OpenAI-compatible server, like `vllm bench serve`: the same
    /// flags, metrics, result block and `--save-result` JSON.
    Serve(Box<args::ServeArgs>),
}

/// Runs a `bench` subcommand; returns the exit code.
pub async fn run(cmd: BenchCmd) -> anyhow::Result<i32> {
    match cmd {
        BenchCmd::Serve(a) => run::serve(*a).await,
    }
}
