//! The decision: per file where it goes, and for the patch whether it can apply at all.

use std::fmt;

use super::classify::{Target, classify};
use super::parse::{Hunk, Section};
use super::strip::{Strip, strip_one};
use super::{PatchError, UnsafePatch, safety};
use crate::backend::BackendError;
use crate::failure::Failure;

/// What a file section does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Changes an existing file (its content or mode).
    Modified,
    /// Creates a file.
    Added,
    /// Deletes a file.
    Deleted,
    /// Renames a file (git `rename from`/`rename to`), perhaps changing it too.
    Renamed,
    /// Copies a file (git `copy from`/`copy to`), perhaps changing the copy.
    Copied,
}

/// One file of a patch, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// 1-based line where its section starts.
    pub line: usize,
    /// Repository path before the patch (prefix stripped; `None` for a new file).
    pub old_path: Option<String>,
    /// Repository path after the patch (prefix stripped; `None` for a deleted file).
    pub new_path: Option<String>,
    /// What it does.
    pub change: Change,
    /// A mode change (old, new), like `100644` → `100755`.
    pub mode: Option<(String, String)>,
    /// A binary change (`GIT binary patch`, `Binary files … differ`): no applier takes it.
    pub binary: bool,
    /// Its hunks.
    pub hunks: Vec<Hunk>,
    /// Where it belongs.
    pub target: Target,
    text: String,
}

impl FilePatch {
    /// The path the file has after the patch (before it, for a deletion).
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }
}

/// Why a patch cannot be applied (`patch_failed`), for any backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A binary change to a file that would be applied.
    Binary {
        /// The file.
        path: String,
    },
    /// A rename or copy between trees that are applied separately (`vllm/` → `tests/`), or a
    /// plain diff whose old and new names lie in different trees.
    CrossTree {
        /// The old path.
        from: String,
        /// The new path.
        to: String,
    },
    /// A section of a file that would be applied, with no hunk, mode change or rename.
    Empty {
        /// The file.
        path: String,
    },
    /// Only `benchmarks/` files would apply, and the backend has no benchmark scripts for the
    /// build.
    NoBenchmarkScripts {
        /// The `benchmarks/` files.
        paths: Vec<String>,
    },
    /// Nothing in the patch is part of what runs: every file is left out.
    NothingRuns {
        /// The files left out.
        left_out: Vec<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Binary { path } => write!(
                f,
                "{path} is a binary change, which patch and git apply cannot take here"
            ),
            Problem::CrossTree { from, to } => write!(
                f,
                "{from} → {to} moves a file between trees that are patched separately \
                 (installed package, benchmark scripts, left out)"
            ),
            Problem::Empty { path } => write!(f, "the section of {path} changes nothing"),
            Problem::NoBenchmarkScripts { paths } => write!(
                f,
                "it changes only benchmark scripts ({}) and this build has none (configure \
                 vllm_source)",
                paths.join(", ")
            ),
            Problem::NothingRuns { left_out } => write!(
                f,
                "it changes nothing a benchmark runs (only {})",
                left_out.join(", ")
            ),
        }
    }
}

/// Why a backend does not apply a patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The patch cannot apply anywhere.
    #[error("the agent patch cannot be applied: {}", join(.0))]
    PatchFailed(Vec<Problem>),
    /// It changes native code and the backend has no source build.
    #[error(
        "the agent patch changes native code ({}), which only a source build takes",
        .files.join(", ")
    )]
    NeedsCompile {
        /// The native files.
        files: Vec<String>,
    },
}

fn join(problems: &[Problem]) -> String {
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    all.join("; ")
}

impl Refusal {
    /// `patch_failed` or `needs_compile`.
    pub fn failure(&self) -> Failure {
        match self {
            Refusal::PatchFailed(_) => Failure::PatchFailed,
            Refusal::NeedsCompile { .. } => Failure::NeedsCompile,
        }
    }

    /// This refusal as `backend`'s error.
    pub fn backend_error(&self, backend: &'static str) -> BackendError {
        BackendError::new(backend, self.failure(), self.to_string())
    }
}

/// The analysis of one patch: the same for every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// sha256 (hex) of the patch as given.
    pub sha256: String,
    /// The `-p` level every applier must use.
    pub strip: Strip,
    /// Its files, in patch order.
    pub files: Vec<FilePatch>,
    /// A native file is changed: only a source build takes the patch.
    pub needs_compile: bool,
    /// Why it cannot apply at all (empty: it can).
    pub patch_failed: Vec<Problem>,
}

impl Decision {
    pub(super) fn new(sha256: String, strip: Strip, files: Vec<FilePatch>) -> Decision {
        let mut patch_failed = Vec::new();
        for f in &files {
            if let (Some(from), Some(to)) = (&f.old_path, &f.new_path) {
                let (a, b) = (classify(from), classify(to));
                if a != b && a != Target::Native && b != Target::Native {
                    patch_failed.push(Problem::CrossTree {
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            }
            if f.target == Target::Ignored {
                continue;
            }
            if f.binary {
                patch_failed.push(Problem::Binary {
                    path: f.path().to_string(),
                });
            } else if f.hunks.is_empty() && f.change == Change::Modified && f.mode.is_none() {
                patch_failed.push(Problem::Empty {
                    path: f.path().to_string(),
                });
            }
        }
        if files.iter().all(|f| f.target == Target::Ignored) {
            patch_failed.push(Problem::NothingRuns {
                left_out: files.iter().map(|f| f.path().to_string()).collect(),
            });
        }
        Decision {
            sha256,
            strip,
            needs_compile: files.iter().any(|f| f.target == Target::Native),
            patch_failed,
            files,
        }
    }

    /// Whether a backend applies it: `patch_failed` first (no build helps), then
    /// `needs_compile` unless the backend can build from source.
    pub fn check(&self, source_build: bool) -> Result<(), Refusal> {
        if !self.patch_failed.is_empty() {
            return Err(Refusal::PatchFailed(self.patch_failed.clone()));
        }
        if self.needs_compile && !source_build {
            return Err(Refusal::NeedsCompile {
                files: self.paths(Target::Native),
            });
        }
        Ok(())
    }

    /// For a backend that has no benchmark scripts for the build: the `benchmarks/` paths it
    /// leaves out, or `patch_failed` when that leaves nothing to apply.
    pub fn without_benchmarks(&self) -> Result<Vec<String>, Refusal> {
        let paths = self.paths(Target::Benchmarks);
        let rest = self
            .files
            .iter()
            .any(|f| matches!(f.target, Target::Engine | Target::Native));
        if !paths.is_empty() && !rest {
            return Err(Refusal::PatchFailed(vec![Problem::NoBenchmarkScripts {
                paths,
            }]));
        }
        Ok(paths)
    }

    /// The files going to `target`.
    pub fn files_for(&self, target: Target) -> impl Iterator<Item = &FilePatch> {
        self.files.iter().filter(move |f| f.target == target)
    }

    /// The paths going to `target`.
    pub fn paths(&self, target: Target) -> Vec<String> {
        self.files_for(target)
            .map(|f| f.path().to_string())
            .collect()
    }

    /// The paths left out (nothing a benchmark runs).
    pub fn left_out(&self) -> Vec<String> {
        self.paths(Target::Ignored)
    }

    /// The sections going to any of `targets`, as a patch of their own (in patch order, each
    /// ending with a newline), to apply with [`Strip::arg`]; empty when none goes there.
    pub fn text(&self, targets: &[Target]) -> String {
        let mut out = String::new();
        for f in self.files.iter().filter(|f| targets.contains(&f.target)) {
            out.push_str(&f.text);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// Every section that is applied somewhere (all but the left-out ones): what a source
    /// build applies to its checkout.
    pub fn applied_text(&self) -> String {
        self.text(&[Target::Engine, Target::Benchmarks, Target::Native])
    }

    /// The file whose path (after or before the patch) is `path`.
    pub fn file(&self, path: &str) -> Option<&FilePatch> {
        self.files
            .iter()
            .find(|f| f.new_path.as_deref() == Some(path) || f.old_path.as_deref() == Some(path))
    }
}

/// A section decided: paths stripped and checked, change and target.
pub(super) fn file(s: Section, strip: Strip) -> Result<FilePatch, PatchError> {
    let line = s.line;
    let stripped = |p: &str| -> Result<String, PatchError> {
        let out = if strip.level == 0 {
            Some(p)
        } else {
            strip_one(p)
        };
        let out = out.ok_or(PatchError::Malformed {
            line,
            reason: format!(
                "'{}' has no directory to strip at -p{}",
                p.escape_default(),
                strip.level
            ),
        })?;
        safety::check_path(out, false).map_err(|why| UnsafePatch {
            line,
            reason: format!("'{}' {why}", out.escape_default()),
            fix: safety::FIX_PATH,
        })?;
        Ok(out.to_string())
    };
    // Header names: `---`/`+++`, else the `diff --git` names (mode-only, binary, pure renames).
    let old_raw = match (&s.old, &s.git) {
        (Some(p), _) => p.path().map(str::to_string),
        (None, Some((a, _))) if !s.new_file => Some(a.clone()),
        _ => None,
    };
    let new_raw = match (&s.new, &s.git) {
        (Some(p), _) => p.path().map(str::to_string),
        (None, Some((_, b))) if !s.deleted_file => Some(b.clone()),
        _ => None,
    };
    let mut old_path = old_raw.as_deref().map(stripped).transpose()?;
    let mut new_path = new_raw.as_deref().map(stripped).transpose()?;
    // Rename and copy lines are never prefixed.
    let moved = (
        s.rename_from.as_ref().or(s.copy_from.as_ref()),
        s.rename_to.as_ref().or(s.copy_to.as_ref()),
    );
    for (slot, name) in [(&mut old_path, moved.0), (&mut new_path, moved.1)] {
        if let Some(n) = name {
            safety::check_path(n, false).map_err(|why| UnsafePatch {
                line,
                reason: format!("'{}' {why}", n.escape_default()),
                fix: safety::FIX_PATH,
            })?;
            *slot = Some(n.clone());
        }
    }
    if old_path.is_none() && new_path.is_none() {
        return Err(PatchError::Malformed {
            line,
            reason: "a file section without a path".into(),
        });
    }
    let change = if s.rename_from.is_some() {
        Change::Renamed
    } else if s.copy_from.is_some() {
        Change::Copied
    } else if old_path.is_none() {
        Change::Added
    } else if new_path.is_none() {
        Change::Deleted
    } else {
        Change::Modified
    };
    let mode = match (s.old_mode, s.new_mode) {
        (Some(a), Some(b)) if !s.new_file => Some((a, b)),
        _ => None,
    };
    let targets: Vec<Target> = [&old_path, &new_path]
        .into_iter()
        .flatten()
        .map(|p| classify(p))
        .collect();
    let target = if targets.contains(&Target::Native) {
        Target::Native
    } else {
        // A cross-tree move is a problem of the decision; it goes where its new path does.
        targets.last().copied().unwrap_or(Target::Ignored)
    };
    Ok(FilePatch {
        line,
        old_path,
        new_path,
        change,
        mode,
        binary: s.binary,
        hunks: s.hunks,
        target,
        text: s.text,
    })
}
