//! The agent patch, analysed once for every backend.
//!
//! [`load`] reads a [`PatchSpec`]'s file (capped, a regular file, unchanged since planning) and
//! [`decide`]s: the patch is split into per-file sections (git or plain unified diffs, with or
//! without `a/`/`b/` prefixes), its `-p` level is detected once from the headers
//! ([`Strip`]), every file is given a [`Target`] by one rule ([`classify`]), and the result is
//! a [`Decision`]: which files apply where, which are left out and why, whether a source build
//! is needed, why it cannot apply at all, and the text each applier gets.
//!
//! Backends keep only their primitive: applying [`Decision::text`] with
//! `patch`/`git apply` and [`Strip::arg`] in a folder, an image build or a sandbox. The cases
//! every backend's conformance test feeds through its own use of the decision are in
//! [`conformance`].

mod classify;
pub mod conformance;
mod decision;
mod parse;
pub mod safety;
mod strip;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::digest::sha256_hex;

pub use classify::{NATIVE_DIRS, NATIVE_EXTENSIONS, Target, classify};
pub use decision::{Change, Decision, FilePatch, Problem, Refusal};
pub use parse::Hunk;
pub use safety::{UnsafePatch, check as check_safety};
pub use strip::{Evidence, Strip};

use crate::backend::BackendError;
use crate::build::PatchSpec;
use crate::failure::Failure;
use crate::input::InputError;

/// Why a patch cannot be analysed at all.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The file cannot be read (missing, too large, not a regular file).
    #[error("cannot read the agent patch {path}: {source}")]
    Read {
        /// The patch's path.
        path: String,
        /// Why.
        #[source]
        source: InputError,
    },
    /// The file is not what was planned.
    #[error(
        "the agent patch {path} changed since planning: sha256 {sha256}, planned {planned}; \
         fix: plan again"
    )]
    Changed {
        /// The patch's path.
        path: String,
        /// sha256 of its bytes now.
        sha256: String,
        /// sha256 recorded at planning.
        planned: String,
    },
    /// Not UTF-8 text: its bytes could not be applied as written.
    #[error("the agent patch is not UTF-8 text (line {line}); fix: write the patch as UTF-8")]
    NotUtf8 {
        /// 1-based line of the first invalid byte.
        line: usize,
    },
    /// A path leaves the tree, or the patch makes a symbolic link.
    #[error(transparent)]
    Unsafe(#[from] UnsafePatch),
    /// No file section was found.
    #[error(
        "the agent patch holds no file change (no `diff --git` or `---`/`+++` headers); fix: \
         give a unified diff (`git diff`, `diff -u`)"
    )]
    NotADiff,
    /// A header or hunk that no tool can read.
    #[error("the agent patch is malformed at line {line}: {reason}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Sections that need different `-p` levels: no single `patch -pN` applies it.
    #[error(
        "the agent patch mixes -p levels: the file at line {first_line} needs -p{first_level}, \
         the one at line {line} -p{level}; fix: write every file header the same way \
         (`git diff` writes a/… b/…)"
    )]
    MixedStrip {
        /// Line of the section that disagrees.
        line: usize,
        /// Its level.
        level: u8,
        /// Line of the first section that showed a level.
        first_line: usize,
        /// That level.
        first_level: u8,
    },
}

impl PatchError {
    /// The failure class: an unreadable or changed file is the configuration's fault
    /// (`bad_config`); a patch that cannot be read as a diff is `patch_failed`.
    pub fn failure(&self) -> Failure {
        match self {
            PatchError::Read { .. } | PatchError::Changed { .. } => Failure::BadConfig,
            _ => Failure::PatchFailed,
        }
    }

    /// This error as `backend`'s error.
    pub fn backend_error(&self, backend: &'static str) -> BackendError {
        BackendError::new(backend, self.failure(), self.to_string())
    }
}

/// Read the patch of `spec` (a regular file within `limits.max_patch_bytes`), check it is the
/// one planned (when its sha256 was recorded), and [`decide`].
pub fn load(spec: &PatchSpec) -> Result<Decision, PatchError> {
    let cap = crate::settings::Limits::patch_ceiling();
    let bytes = crate::input::read_capped(Path::new(&spec.path), cap).map_err(|source| {
        PatchError::Read {
            path: spec.path.clone(),
            source,
        }
    })?;
    let sha256 = sha256_hex(&bytes);
    if let Some(planned) = &spec.sha256 {
        if !planned.eq_ignore_ascii_case(&sha256) {
            return Err(PatchError::Changed {
                path: spec.path.clone(),
                sha256,
                planned: planned.clone(),
            });
        }
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count();
        PatchError::NotUtf8 { line }
    })?;
    decide_hashed(&text, sha256)
}

/// Analyse a patch's text: its safety ([`check_safety`]), sections, strip level, targets and
/// problems.
pub fn decide(text: &str) -> Result<Decision, PatchError> {
    decide_hashed(text, sha256_hex(text.as_bytes()))
}

/// [`decide`] for a text whose sha256 is already known (as [`load`] computed it).
fn decide_hashed(text: &str, sha256: String) -> Result<Decision, PatchError> {
    check_safety(text)?;
    let sections = parse::sections(text)?;
    if sections.is_empty() {
        return Err(PatchError::NotADiff);
    }
    let strip = strip::detect(&sections)?;
    let files = sections
        .into_iter()
        .map(|s| decision::file(s, strip))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decision::new(sha256, strip, files))
}
