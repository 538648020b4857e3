//! Unified diffs: parsing into per-file sections, deciding where each file goes (the installed
//! `vllm/` tree, the `benchmarks/` scripts, native code, or nothing that runs), and applying a
//! subset all-or-nothing with `patch` (or `git apply` where `patch` is missing).

#[path = "patch_apply.rs"]
mod apply;
pub use apply::apply;

/// One hunk of a file section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// First line of the hunk in the old file.
    pub old_start: u64,
    /// The hunk's text, header included.
    pub text: String,
}

/// One file's section of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Old path, prefix stripped (`None` for a new file).
    pub old_path: Option<String>,
    /// New path, prefix stripped (`None` for a deleted file).
    pub new_path: Option<String>,
    /// The section's raw text (headers and hunks), as in the patch.
    pub text: String,
    /// Its hunks.
    pub hunks: Vec<Hunk>,
    /// Whether it is a binary patch (which cannot be applied here).
    pub binary: bool,
}

impl FilePatch {
    /// The path the file has after the patch (or before, for a deletion).
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }

    /// Where this file belongs.
    pub fn target(&self) -> Target {
        let paths = [self.old_path.as_deref(), self.new_path.as_deref()];
        let targets: Vec<Target> = paths.iter().flatten().map(|p| classify(p)).collect();
        for t in [Target::Native, Target::Engine, Target::Benchmarks] {
            if targets.contains(&t) {
                return t;
            }
        }
        Target::Ignored
    }
}

/// Where a patched file belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Python package code under `vllm/`: applied to the installed tree.
    Engine,
    /// `benchmarks/`: applied to the benchmark scripts.
    Benchmarks,
    /// C++/CUDA/build files: needs a source build.
    Native,
    /// Tests, docs, CI …: nothing that a benchmark runs.
    Ignored,
}

/// Where a repository path belongs.
pub fn classify(path: &str) -> Target {
    let file = path.rsplit('/').next().unwrap_or(path);
    let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let native_ext = ["cu", "cuh", "cpp", "cc", "cxx", "c", "h", "hpp", "cmake"];
    if path.starts_with("csrc/")
        || path.starts_with("cmake/")
        || native_ext.contains(&ext)
        || file == "CMakeLists.txt"
        || path == "setup.py"
    {
        Target::Native
    } else if path.starts_with("vllm/") {
        Target::Engine
    } else if path.starts_with("benchmarks/") {
        Target::Benchmarks
    } else {
        Target::Ignored
    }
}

/// A parsed patch: its file sections and the `-p` level its paths need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// File sections in order.
    pub files: Vec<FilePatch>,
    /// 1 for `a/…` `b/…` paths, else 0.
    pub strip: u8,
}

impl Parsed {
    /// The text of the sections going to `target`, as a patch of its own.
    pub fn subset(&self, target: Target) -> String {
        self.files
            .iter()
            .filter(|f| f.target() == target)
            .map(|f| f.text.as_str())
            .collect()
    }

    /// The paths going to `target`.
    pub fn paths(&self, target: Target) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.target() == target)
            .map(|f| f.path().to_string())
            .collect()
    }
}

/// Parse a unified diff (git or plain). Errors when no file section is found.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut files: Vec<FilePatch> = Vec::new();
    let mut cur: Option<FilePatch> = None;
    let mut raw_paths: Vec<String> = Vec::new();
    let (mut old_left, mut new_left) = (0u64, 0u64);
    let mut header_seen = false;
    let new_section = |cur: &mut Option<FilePatch>, files: &mut Vec<FilePatch>| {
        files.extend(cur.take());
        *cur = Some(FilePatch {
            old_path: None,
            new_path: None,
            text: String::new(),
            hunks: Vec::new(),
            binary: false,
        });
    };
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        if old_left > 0 || new_left > 0 {
            match body.chars().next() {
                Some('+') => new_left = new_left.saturating_sub(1),
                Some('-') => old_left = old_left.saturating_sub(1),
                Some('\\') => {}
                _ => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
            }
            if let Some(f) = cur.as_mut() {
                f.text.push_str(line);
                if let Some(h) = f.hunks.last_mut() {
                    h.text.push_str(line);
                }
            }
            continue;
        }
        let next_is_new = lines.get(i + 1).is_some_and(|l| l.starts_with("+++ "));
        if body.starts_with("diff --git ") {
            new_section(&mut cur, &mut files);
            header_seen = false;
        } else if let Some(p) = body.strip_prefix("--- ").filter(|_| next_is_new) {
            let starts_new =
                header_seen || cur.as_ref().is_none_or(|f| !f.hunks.is_empty() || f.binary);
            if starts_new {
                new_section(&mut cur, &mut files);
            }
            header_seen = true;
            raw_paths.push(header_path(p));
        } else if let Some(p) = body.strip_prefix("+++ ") {
            raw_paths.push(header_path(p));
        }
        let Some(f) = cur.as_mut() else {
            continue; // preamble (commit message …)
        };
        f.text.push_str(line);
        if let Some(p) = body.strip_prefix("--- ").filter(|_| next_is_new) {
            f.old_path = Some(header_path(p));
        } else if let Some(p) = body.strip_prefix("+++ ") {
            f.new_path = Some(header_path(p));
        } else if body.starts_with("@@ ") {
            let (start, old, new) =
                hunk_header(body).ok_or_else(|| format!("malformed hunk header: {body}"))?;
            old_left = old;
            new_left = new;
            f.hunks.push(Hunk {
                old_start: start,
                text: line.to_string(),
            });
        } else if body.starts_with("GIT binary patch") || body.starts_with("Binary files ") {
            f.binary = true;
        } else if let Some(rest) = body.strip_prefix("diff --git ") {
            // Paths for sections without ---/+++ (renames, mode changes, binaries).
            if let Some((a, b)) = rest.rsplit_once(" b/") {
                f.old_path = Some(a.to_string());
                f.new_path = Some(format!("b/{b}"));
                raw_paths.push(a.to_string());
            }
        }
    }
    files.extend(cur.take());
    files.retain(|f| f.old_path.is_some() || f.new_path.is_some());
    if files.is_empty() {
        return Err("no file changes found (not a unified diff?)".into());
    }
    let strip = u8::from(
        raw_paths
            .iter()
            .any(|p| p.starts_with("a/") || p.starts_with("b/")),
    );
    for f in &mut files {
        for p in [&mut f.old_path, &mut f.new_path] {
            if p.as_deref() == Some("/dev/null") {
                *p = None;
            } else if strip == 1 {
                if let Some(s) = p.as_mut() {
                    if let Some(rest) = s.strip_prefix("a/").or_else(|| s.strip_prefix("b/")) {
                        *s = rest.to_string();
                    }
                }
            }
        }
    }
    Ok(Parsed { files, strip })
}

fn header_path(s: &str) -> String {
    let p = s.split('\t').next().unwrap_or(s).trim_end();
    p.trim_matches('"').to_string()
}

/// `@@ -a[,b] +c[,d] @@` → (a, b, d).
fn hunk_header(line: &str) -> Option<(u64, u64, u64)> {
    let mut parts = line.split_whitespace().skip(1);
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let range = |r: &str| -> Option<(u64, u64)> {
        match r.split_once(',') {
            Some((s, n)) => Some((s.parse().ok()?, n.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (start, old_n) = range(old)?;
    let (_, new_n) = range(new)?;
    Some((start, old_n, new_n))
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
