//! The agent patch, read before any image is built: which files it touches, whether it needs a
//! native build, and the part of it that applies to the installed `vllm` package.
//!
//! An image holds vLLM as an installed package (`…/site-packages/vllm`), not a checkout, so
//! only the patch's files under `vllm/` can be applied to it. Changes to native sources
//! (`csrc/`, CUDA/C++ files, CMake) would need a source build: the build fails with
//! `needs_compile` before anything runs. Files outside the package (tests, docs, benchmarks)
//! are left out and reported; the package part must apply completely or the build fails with
//! `patch_failed`. [`apply_script`] is what runs inside the image's build.

use runner_core::{BackendError, Failure};
use sha2::{Digest, Sha256};

use crate::error::fail;

/// What a patch does, and the text that is applied to the installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchPlan {
    /// The sections of the patch that touch `vllm/…`, in their original order.
    pub package: String,
    /// The package files it changes.
    pub files: Vec<String>,
    /// Files outside the package that are not applied.
    pub skipped: Vec<String>,
    /// sha256 (hex) of the whole patch as given.
    pub sha256: String,
}

/// File extensions and directories of native code.
const NATIVE_EXT: [&str; 11] = [
    ".cu", ".cuh", ".cpp", ".cc", ".cxx", ".c", ".h", ".hpp", ".hip", ".cmake", ".s",
];

/// Whether a repository path is native code that needs a compiler.
pub(crate) fn is_native(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.starts_with("csrc/")
        || lower.starts_with("cmake/")
        || lower.rsplit('/').next() == Some("cmakelists.txt")
        || NATIVE_EXT.iter().any(|e| lower.ends_with(e))
}

/// The repository path a diff header names (`a/x`, `b/x` → `x`); `None` for `/dev/null`.
fn header_path(raw: &str) -> Option<String> {
    let p = raw.split('\t').next().unwrap_or(raw).trim();
    if p == "/dev/null" || p.is_empty() {
        return None;
    }
    let p = p.trim_matches('"');
    let p = p
        .strip_prefix("a/")
        .or_else(|| p.strip_prefix("b/"))
        .unwrap_or(p);
    Some(p.to_string())
}

/// One file's section of a patch.
struct Section {
    text: String,
    paths: Vec<String>,
}

/// The old and new line counts of a hunk header `@@ -a,b +c,d @@` (a missing count is 1).
fn hunk_counts(line: &str) -> Option<(u64, u64)> {
    let mut parts = line.strip_prefix("@@ ")?.split_whitespace();
    let count = |r: &str| -> Option<u64> {
        match r.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => Some(1),
        }
    };
    let old = count(parts.next()?.strip_prefix('-')?)?;
    let new = count(parts.next()?.strip_prefix('+')?)?;
    Some((old, new))
}

/// Split a unified diff into per-file sections. Hunk bodies are consumed by their line counts,
/// so a removed line that starts with `-- ` is never taken for a file header.
fn sections(text: &str) -> Vec<Section> {
    let git = text.lines().any(|l| l.starts_with("diff --git "));
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out: Vec<Section> = Vec::new();
    let (mut old, mut new) = (0u64, 0u64);
    for (i, line) in lines.iter().enumerate() {
        let in_hunk = old > 0 || new > 0;
        if in_hunk {
            match line.as_bytes().first() {
                Some(b' ') => {
                    old = old.saturating_sub(1);
                    new = new.saturating_sub(1);
                }
                Some(b'-') => old = old.saturating_sub(1),
                Some(b'+') => new = new.saturating_sub(1),
                Some(b'\\') => {}
                // A blank line some tools leave for an empty context line.
                _ if line.trim().is_empty() => {
                    old = old.saturating_sub(1);
                    new = new.saturating_sub(1);
                }
                _ => (old, new) = (0, 0),
            }
            if let Some(cur) = out.last_mut() {
                cur.text.push_str(line);
            }
            continue;
        }
        let starts = if git {
            line.starts_with("diff --git ")
        } else {
            line.starts_with("--- ") && lines.get(i + 1).is_some_and(|n| n.starts_with("+++ "))
        };
        if starts {
            out.push(Section {
                text: String::new(),
                paths: Vec::new(),
            });
        }
        let Some(cur) = out.last_mut() else {
            continue; // a preamble (mail headers, description) before the first file
        };
        cur.text.push_str(line);
        let l = line.trim_end_matches(['\n', '\r']);
        if let Some((o, n)) = hunk_counts(l) {
            (old, new) = (o, n);
            continue;
        }
        let named = l
            .strip_prefix("+++ ")
            .or_else(|| l.strip_prefix("--- "))
            .or_else(|| l.strip_prefix("rename from "))
            .or_else(|| l.strip_prefix("rename to "));
        if let Some(p) = named.and_then(header_path) {
            if !cur.paths.contains(&p) {
                cur.paths.push(p);
            }
        } else if let Some(rest) = l.strip_prefix("diff --git ") {
            if let Some(b) = rest.split(" b/").last().filter(|_| cur.paths.is_empty()) {
                cur.paths.push(b.to_string());
            }
        }
    }
    out
}

/// Read a patch: refuse native changes, keep the package part.
pub(crate) fn analyze(text: &str) -> Result<PatchPlan, BackendError> {
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    let secs = sections(text);
    if secs.is_empty() {
        return Err(fail(
            Failure::PatchFailed,
            "the agent patch is not a unified diff (no file headers found)",
        ));
    }
    let native: Vec<&String> = secs
        .iter()
        .flat_map(|s| s.paths.iter())
        .filter(|p| is_native(p))
        .collect();
    if !native.is_empty() {
        let list: Vec<&str> = native.iter().map(|s| s.as_str()).collect();
        return Err(fail(
            Failure::NeedsCompile,
            format!(
                "the agent patch changes native code, which an installed package cannot take \
                 without a source build: {}",
                list.join(", ")
            ),
        ));
    }
    let mut plan = PatchPlan {
        package: String::new(),
        files: Vec::new(),
        skipped: Vec::new(),
        sha256,
    };
    for s in secs {
        if s.paths.iter().any(|p| p.starts_with("vllm/")) {
            plan.package.push_str(&s.text);
            if !plan.package.ends_with('\n') {
                plan.package.push('\n');
            }
            plan.files.extend(s.paths);
        } else {
            plan.skipped.extend(s.paths);
        }
    }
    plan.files.dedup();
    if plan.files.is_empty() {
        return Err(fail(
            Failure::PatchFailed,
            format!(
                "the agent patch changes no file of the vllm package (only: {})",
                plan.skipped.join(", ")
            ),
        ));
    }
    Ok(plan)
}

/// Where the patch is copied in the agent image's build.
pub(crate) const PATCH_IN_IMAGE: &str = "/tmp/perf-runner/agent.patch";

/// Where images usually install Python packages; searched when Python cannot say.
const SITE_DIRS: &str = "/usr/local/lib/python3*/dist-packages /usr/local/lib/python3*/site-packages \
/usr/lib/python3/dist-packages /usr/lib/python3*/site-packages /opt/*/lib/python3*/site-packages \
/root/.local/lib/python3*/site-packages";

/// The shell script that applies the patch inside the image: find the directory holding the
/// installed `vllm` package (asking Python, else looking in the usual site-packages folders),
/// check that every hunk applies, then apply (GNU patch, else git).
pub(crate) fn apply_script(python: &str) -> String {
    format!(
        r#"set -e
site=$({python} -c 'import importlib.util, os; s = importlib.util.find_spec("vllm"); print(os.path.dirname(os.path.dirname(s.origin)))' 2>/dev/null) || site=""
if [ -z "$site" ] || [ ! -d "$site/vllm" ]; then
  site=""
  for d in {dirs}; do
    if [ -d "$d/vllm" ]; then site="$d"; break; fi
  done
fi
if [ -z "$site" ]; then
  echo "perf-runner: cannot find the installed vllm package" >&2
  exit 4
fi
echo "perf-runner: applying the agent patch in $site"
cd "$site"
if command -v patch >/dev/null 2>&1; then
  patch -p1 --batch --forward --no-backup-if-mismatch --dry-run -i {p}
  patch -p1 --batch --forward --no-backup-if-mismatch -i {p}
elif command -v git >/dev/null 2>&1; then
  git apply --check -p1 {p}
  git apply -p1 {p}
else
  echo "perf-runner: the image has neither patch nor git to apply the agent patch" >&2
  exit 3
fi
rm -f {p}
"#,
        p = PATCH_IN_IMAGE,
        dirs = SITE_DIRS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT: &str = "From abc Mon Sep 17 00:00:00 2001\nSubject: speed\n\n---\n\
diff --git a/vllm/build.txt b/vllm/build.txt\nindex 1..2 100644\n--- a/vllm/build.txt\n+++ b/vllm/build.txt\n\
@@ -1 +1 @@\n-baseline\n+agent\n\
diff --git a/tests/test_x.py b/tests/test_x.py\n--- a/tests/test_x.py\n+++ b/tests/test_x.py\n@@ -1 +1 @@\n-a\n+b\n\
diff --git a/vllm/new.py b/vllm/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/vllm/new.py\n@@ -0,0 +1 @@\n+x = 1\n";

    #[test]
    fn package_part_is_kept_and_the_rest_reported() {
        let p = analyze(GIT).unwrap();
        assert_eq!(p.files, vec!["vllm/build.txt", "vllm/new.py"]);
        assert_eq!(p.skipped, vec!["tests/test_x.py"]);
        assert!(p.package.starts_with("diff --git a/vllm/build.txt"));
        assert!(p.package.contains("+x = 1\n") && !p.package.contains("test_x"));
        assert_eq!(p.sha256.len(), 64);
    }

    #[test]
    fn plain_unified_diffs_split_per_file() {
        let t = "--- a/vllm/a.py\n+++ b/vllm/a.py\n@@ -1,2 +1,2 @@\n--- not a header\n+++ nor this\n ctx\n--- a/docs/b.md\n+++ b/docs/b.md\n@@ -1 +1 @@\n-a\n+b\n";
        let p = analyze(t).unwrap();
        assert_eq!(p.files, vec!["vllm/a.py"]);
        assert!(p.package.contains("+++ nor this\n ctx\n") && !p.package.contains("docs"));
        assert_eq!(p.skipped, vec!["docs/b.md"]);
    }

    #[test]
    fn native_changes_need_compile() {
        let t = "diff --git a/csrc/attn.cu b/csrc/attn.cu\n--- a/csrc/attn.cu\n+++ b/csrc/attn.cu\n@@ -1 +1 @@\n-a\n+b\n";
        let e = analyze(&format!("{GIT}{t}")).unwrap_err();
        assert_eq!(e.kind, Failure::NeedsCompile);
        assert!(e.message.contains("csrc/attn.cu"));
        assert!(is_native("CMakeLists.txt") && is_native("vllm/x/kernel.cuh"));
        assert!(!is_native("vllm/model_executor/layers/linear.py"));
    }

    #[test]
    fn no_package_file_or_no_diff_is_patch_failed() {
        let docs = "--- a/docs/x.md\n+++ b/docs/x.md\n@@ -1 +1 @@\n-a\n+b\n";
        assert_eq!(analyze(docs).unwrap_err().kind, Failure::PatchFailed);
        assert_eq!(analyze("hello\n").unwrap_err().kind, Failure::PatchFailed);
        assert_eq!(analyze("").unwrap_err().kind, Failure::PatchFailed);
    }
}
