//! The `-p` level of a patch, decided once for the whole patch from its headers: git's `a/`
//! and `b/` prefixes, the unprefixed names of git's rename and copy lines, or which level
//! names paths that look like the repository's (`vllm/…`, `csrc/…`). Two sections that show
//! different levels make the patch unusable with any single `-pN`: it is refused, never
//! guessed.

use super::PatchError;
use super::parse::Section;

/// The `-p` level the appliers must use, and what showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strip {
    /// 0 (`--- vllm/x.py`) or 1 (`--- a/vllm/x.py`).
    pub level: u8,
    /// What showed it.
    pub evidence: Evidence,
}

impl Strip {
    /// The option of `patch` and `git apply`: `-p0` or `-p1`.
    pub fn arg(&self) -> String {
        format!("-p{}", self.level)
    }
}

/// What showed a patch's strip level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Old paths start with `a/` and new ones with `b/`.
    GitPrefixes,
    /// The `diff --git` names equal the (never prefixed) `rename from`/`copy from` name at
    /// this level.
    RenameLines,
    /// At this level every path starts with a directory of the repository (`vllm/`, `csrc/` …).
    RepoPaths,
    /// The old and new paths differ only in their first directory (`orig/x` → `new/x`).
    DifferingRoots,
    /// A path has no directory to strip.
    NoDirectory,
    /// Nothing showed a level: `-p0`, the paths as written.
    Default,
}

/// Top-level directories of a vLLM checkout.
const REPO_DIRS: [&str; 13] = [
    "vllm",
    "benchmarks",
    "csrc",
    "cmake",
    "tests",
    "docs",
    "examples",
    "tools",
    "requirements",
    "docker",
    "scripts",
    ".github",
    ".buildkite",
];

/// Whether a path starts with a top-level directory of a vLLM checkout.
fn repo_like(path: &str) -> bool {
    path.split_once('/')
        .is_some_and(|(first, _)| REPO_DIRS.contains(&first))
}

/// `a/x/y` → `x/y`; `None` when there is no directory to strip.
pub(super) fn strip_one(path: &str) -> Option<&str> {
    path.split_once('/')
        .map(|(_, rest)| rest)
        .filter(|r| !r.is_empty())
}

/// The level one section shows, if any.
fn vote(s: &Section) -> Option<Strip> {
    let strip = |level, evidence| Some(Strip { level, evidence });
    let mut olds: Vec<&str> = s.old.as_ref().and_then(|p| p.path()).into_iter().collect();
    let mut news: Vec<&str> = s.new.as_ref().and_then(|p| p.path()).into_iter().collect();
    if let Some((a, b)) = &s.git {
        olds.push(a);
        news.push(b);
    }
    let all: Vec<&str> = olds.iter().chain(&news).copied().collect();
    if all.is_empty() {
        return None;
    }
    let from = s.rename_from.as_deref().or(s.copy_from.as_deref());
    if let (Some((a, _)), Some(from)) = (&s.git, from) {
        if a == from {
            return strip(0, Evidence::RenameLines);
        }
        if strip_one(a) == Some(from) {
            return strip(1, Evidence::RenameLines);
        }
    }
    if all.iter().any(|p| strip_one(p).is_none()) {
        return strip(0, Evidence::NoDirectory);
    }
    if olds.iter().all(|p| p.starts_with("a/")) && news.iter().all(|p| p.starts_with("b/")) {
        return strip(1, Evidence::GitPrefixes);
    }
    if all.iter().all(|p| repo_like(p)) {
        return strip(0, Evidence::RepoPaths);
    }
    if all.iter().all(|p| strip_one(p).is_some_and(repo_like)) {
        return strip(1, Evidence::RepoPaths);
    }
    let root = |p: &str| p.split_once('/').map(|(r, _)| r.to_string());
    let differ = olds.iter().any(|o| {
        news.iter()
            .any(|n| root(o) != root(n) && strip_one(o) == strip_one(n))
    });
    if differ {
        return strip(1, Evidence::DifferingRoots);
    }
    None
}

/// The level of the whole patch; sections that show different levels are refused.
pub(super) fn detect(sections: &[Section]) -> Result<Strip, PatchError> {
    let mut first: Option<(usize, Strip)> = None;
    for s in sections {
        let Some(v) = vote(s) else { continue };
        match first {
            None => first = Some((s.line, v)),
            Some((line, f)) if f.level != v.level => {
                return Err(PatchError::MixedStrip {
                    line: s.line,
                    level: v.level,
                    first_line: line,
                    first_level: f.level,
                });
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|(_, s)| s).unwrap_or(Strip {
        level: 0,
        evidence: Evidence::Default,
    }))
}
