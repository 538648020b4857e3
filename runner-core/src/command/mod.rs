//! Parsing a dataset's `perf_command` into a [`BenchmarkSpec`]. No shell ever runs it.
//!
//! The command is split into words like a POSIX shell would (quotes, backslashes), but nothing
//! is expanded: shell operators and unfilled placeholders are errors that name the offending
//! token. Leading `VAR=value` assignments become the spec's `env`; the entry point decides the
//! [`Mode`](crate::spec::Mode); every flag is kept, normalised (`--max_model_len` →
//! `--max-model-len`, `-tp` → `--tensor-parallel-size`) and, in serving mode, assigned to the
//! server, the client or both, so that no server flag is ever dropped.

mod args;
mod entry;
pub mod flags;
pub mod native;
mod placeholder;
pub mod policy;
mod tokenize;

#[cfg(test)]
mod tests;

pub use args::is_flag_like;
pub use entry::ACCEPTED_ENTRY_POINTS;
pub use placeholder::{REAL_CAPS_VALUES, is_placeholder};
pub use tokenize::{Word, tokenize};

use crate::failure::Failure;
use crate::spec::BenchmarkSpec;

/// The longest `perf_command` accepted, in bytes. Real commands are under 4 KB; anything far
/// longer is refused before it is tokenized.
pub const MAX_PERF_COMMAND_BYTES: usize = 64 * 1024;

/// Why a `perf_command` was rejected; always a `bad_config` (or `no_perf_command`) detail that
/// names the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command is empty or only whitespace.
    #[error("the perf command is empty")]
    Empty,
    /// The command is longer than [`MAX_PERF_COMMAND_BYTES`].
    #[error(
        "the perf command is {len} bytes long, over the {cap}-byte limit; a benchmark \
         invocation is a few hundred bytes: give the command itself, not a script or data"
    )]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        cap: usize,
    },
    /// Anything else, with the offending token.
    #[error("{message} (token '{token}')")]
    Invalid {
        /// What is wrong and what would be right.
        message: String,
        /// The offending token.
        token: String,
    },
    /// An unquoted shell operator: the command must be one benchmark invocation.
    #[error(
        "shell operator '{operator}' in the perf command: it must be a single benchmark \
         invocation (optionally after VAR=value assignments) without chains, pipes, \
         redirections, substitutions or background jobs; quote the character if it belongs to \
         a value"
    )]
    ShellOperator {
        /// The operator as written (`&&`, `|`, `2>&1`, `$(`, `newline` …).
        operator: String,
    },
    /// A placeholder that was never filled in.
    #[error(
        "placeholder '{token}' in the perf command: replace it with a real value (a model id \
         such as meta-llama/Llama-3.1-8B-Instruct, a number, a path), or drop optional \
         [--flag] usage syntax"
    )]
    Placeholder {
        /// The placeholder as written (`MODEL`, `<model>`, `${BS}`, `[--enforce-eager]` …).
        token: String,
    },
    /// A flag that needs a value has none.
    #[error(
        "flag '{flag}' needs a value but {}: write '{flag} VALUE' or '{flag}=VALUE'",
        describe_next(.next)
    )]
    MissingValue {
        /// The flag as written.
        flag: String,
        /// The word after it, if any (another flag).
        next: Option<String>,
    },
    /// The program is not a benchmark entry point this tool can run.
    #[error(
        "unsupported entry point '{token}': expected {}",
        entry::ACCEPTED_ENTRY_POINTS
    )]
    UnknownEntryPoint {
        /// The program (and sub-command) as written.
        token: String,
    },
    /// Valid shell, but a shape the spec cannot carry without changing the argv.
    #[error("{reason} (token '{token}')")]
    Unsupported {
        /// The offending token.
        token: String,
        /// What cannot be carried and how to write it instead.
        reason: String,
    },
}

fn describe_next(next: &Option<String>) -> String {
    match next {
        Some(n) => format!("is followed by '{n}'"),
        None => "has none".to_string(),
    }
}

impl CommandError {
    /// The offending token, if there is one.
    pub fn token(&self) -> Option<&str> {
        match self {
            CommandError::Empty | CommandError::TooLong { .. } => None,
            CommandError::Invalid { token, .. }
            | CommandError::Placeholder { token }
            | CommandError::UnknownEntryPoint { token }
            | CommandError::Unsupported { token, .. } => Some(token),
            CommandError::ShellOperator { operator } => Some(operator),
            CommandError::MissingValue { flag, .. } => Some(flag),
        }
    }

    /// The failure code a task with this command gets: `no_perf_command` when it is empty,
    /// `bad_config` otherwise.
    pub fn failure(&self) -> Failure {
        match self {
            CommandError::Empty => Failure::NoPerfCommand,
            _ => Failure::BadConfig,
        }
    }
}

/// Parse a `perf_command` into its env, entry point, mode, flags (with sides) and positionals.
///
/// Never runs a shell and never panics; every rejection names the offending token. A command
/// over [`MAX_PERF_COMMAND_BYTES`] is refused before any work is done on it.
pub fn parse_perf_command(raw: &str) -> Result<BenchmarkSpec, CommandError> {
    if raw.len() > MAX_PERF_COMMAND_BYTES {
        return Err(CommandError::TooLong {
            len: raw.len(),
            cap: MAX_PERF_COMMAND_BYTES,
        });
    }
    if raw.trim().is_empty() {
        return Err(CommandError::Empty);
    }
    let words = tokenize(raw)?;
    if words.is_empty() {
        return Err(CommandError::Empty);
    }
    let (env, start) = entry::split_env(&words)?;
    let found = entry::detect(&words, start)?;
    let rest = words.get(found.args_start..).unwrap_or_default();
    let parsed = args::parse_args(rest, found.mode)?;
    Ok(BenchmarkSpec {
        raw: raw.to_string(),
        env,
        entry: found.entry,
        mode: found.mode,
        flags: parsed.flags,
        positionals: parsed.positionals,
        replaced_endpoint_flags: parsed.replaced,
    })
}
