//! From an error to the documented exit code ([`runner_core::exit`]) and to one line of text.
//!
//! An error says its class by its type, found anywhere in its chain: [`Coded`] (a command that
//! knows, e.g. an unusable backend); the store's errors (a missing run is an input error, a
//! broken store an internal one); unreadable input files and datasets (input); backend errors
//! (a bad configuration is usage, anything else an unusable backend). Anything else is a usage
//! error: the commands' own refusals are about their arguments.

use runner_core::exit;
use runner_core::failure::Failure;
use runner_core::store::StoreError;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Coded {
    /// The exit code ([`runner_core::exit`]).
    pub code: i32,
    /// What to print.
    pub message: String,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An error that ends the process with `code`.
pub fn coded(code: i32, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code,
        message: message.into(),
    })
}

/// The exit code of an error (see the module docs).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for c in e.chain() {
        if let Some(c) = c.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(s) = c.downcast_ref::<StoreError>() {
            return match s {
                StoreError::NoSuchRun(_) => exit::INPUT,
                _ => exit::INTERNAL,
            };
        }
        if c.downcast_ref::<runner_core::input::InputError>().is_some()
            || c.downcast_ref::<runner_core::dataset::DatasetError>()
                .is_some()
        {
            return exit::INPUT;
        }
        if let Some(b) = c.downcast_ref::<runner_core::BackendError>() {
            return match b.kind {
                Failure::BadConfig => exit::USAGE,
                _ => exit::BACKEND_UNAVAILABLE,
            };
        }
    }
    exit::USAGE
}

/// The error's chain on one line, each cause once: a cause whose text its parent already shows
/// (`cannot read F: No such file…` over `No such file…`) is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let t = c.to_string();
        if t.is_empty() || parts.iter().any(|p| p.contains(&t)) {
            continue;
        }
        parts.push(t);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_shown_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(io).context("cannot read x.jsonl: No such file or directory");
        assert_eq!(
            message(&e),
            "cannot read x.jsonl: No such file or directory"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
    }

    #[test]
    fn classes_map_to_their_codes() {
        assert_eq!(exit_code(&coded(exit::BACKEND_UNAVAILABLE, "x")), 5);
        let e = anyhow::Error::new(StoreError::NoSuchRun("r".into()));
        assert_eq!(exit_code(&e), exit::INPUT);
        let e = anyhow::Error::new(StoreError::Corrupt("bad".into())).context("report");
        assert_eq!(exit_code(&e), exit::INTERNAL);
        assert_eq!(exit_code(&anyhow::anyhow!("a bad flag")), exit::USAGE);
    }
}
