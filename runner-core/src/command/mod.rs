//! Parsing a dataset's `perf_command` into a [`BenchmarkSpec`]. No shell ever runs it.

use crate::spec::BenchmarkSpec;

/// Why a `perf_command` was rejected; always a `bad_config` (or `no_perf_command`) detail that
/// names the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command is empty or only whitespace.
    #[error("the perf command is empty")]
    Empty,
    /// Anything else, with the offending token.
    #[error("{message} (token '{token}')")]
    Invalid {
        /// What is wrong and what would be right.
        message: String,
        /// The offending token.
        token: String,
    },
}

/// Parse a `perf_command`.
pub fn parse_perf_command(raw: &str) -> Result<BenchmarkSpec, CommandError> {
    if raw.trim().is_empty() {
        return Err(CommandError::Empty);
    }
    Err(CommandError::Invalid {
        message: "perf command parsing is not implemented yet".into(),
        token: raw.split_whitespace().next().unwrap_or_default().into(),
    })
}
