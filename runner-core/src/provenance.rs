//! Who produced a record: the perf-runner program's version and git commit, and the sha256
//! digest of an argv.
//!
//! The commit is embedded at build time by the binary (its build script reads
//! `git rev-parse HEAD`, else `unknown`) and registered once at start-up with
//! [`set_program`]; a library used on its own reports its own version and `unknown`.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The commit text when it is not known (a build outside a git checkout).
pub const UNKNOWN_COMMIT: &str = "unknown";

/// The perf-runner program's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Program {
    /// Its version (`0.1.0`).
    pub version: String,
    /// The git commit it was built from (40 hex digits), or `unknown`.
    pub commit: String,
}

impl Program {
    /// `0.1.0 (abcdef012345)`: the version and the commit's first 12 digits.
    pub fn text(&self) -> String {
        let short: String = self.commit.chars().take(12).collect();
        format!("{} ({short})", self.version)
    }
}

static PROGRAM: OnceLock<Program> = OnceLock::new();

/// Register the running program's identity (the first call wins). A commit that is not
/// 7 to 64 hex digits is recorded as `unknown`.
pub fn set_program(version: &str, commit: &str) {
    let commit = commit.trim();
    let hex = (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    let _ = PROGRAM.set(Program {
        version: version.to_string(),
        commit: if hex {
            commit.to_ascii_lowercase()
        } else {
            UNKNOWN_COMMIT.to_string()
        },
    });
}

/// The running program's identity: as registered, else this library's version and an
/// unknown commit.
pub fn program() -> Program {
    PROGRAM.get().cloned().unwrap_or_else(|| Program {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: UNKNOWN_COMMIT.to_string(),
    })
}

/// sha256 (hex) of an argv: of its JSON array text (`["vllm","serve","m"]`), so no two
/// different argvs share one text (joining with spaces would merge `["a b"]` and `["a","b"]`).
pub fn argv_sha256(argv: &[String]) -> String {
    let text = serde_json::to_string(argv).unwrap_or_default();
    crate::digest::sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_digests_tell_splits_apart() {
        let a = argv_sha256(&["a b".into()]);
        let b = argv_sha256(&["a".into(), "b".into()]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(a, argv_sha256(&["a b".into()]));
    }

    #[test]
    fn program_text_is_short() {
        let p = Program {
            version: "1.2.3".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
        };
        assert_eq!(p.text(), "1.2.3 (0123456789ab)");
    }
}
