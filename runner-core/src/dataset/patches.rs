//! Patches named by dataset rows: a path relative to the dataset's folder, or an inline diff
//! text written once to a content-addressed file.
//!
//! Datasets differ in what a `patch` field holds. This project's own rows name the agent patch
//! file there; ISO-Bench's canonical rows and SWE-bench-style rows carry the commit's own
//! change (the human patch) as diff text. A value is read as a diff when it starts with
//! `diff --git` or `--- `, or holds a line break; otherwise it is a path. Errors quote at most
//! a short, escaped excerpt of a value, never a whole diff.

use std::path::{Component, Path, PathBuf};

use crate::command::policy;

/// The most characters of an untrusted value quoted in an error.
const EXCERPT_CHARS: usize = 60;

/// Whether a patch value is diff text rather than a path.
pub fn is_diff(value: &str) -> bool {
    let v = value.trim_start_matches('\u{feff}');
    v.starts_with("diff --git") || v.starts_with("--- ") || v.contains('\n') || v.contains('\r')
}

/// A bounded, escaped excerpt of an untrusted value for an error: at most
/// [`EXCERPT_CHARS`] characters, then `… (N bytes)`.
pub fn excerpt(value: &str) -> String {
    let mut chars = value.char_indices();
    let cut = chars.nth(EXCERPT_CHARS).map(|(i, _)| i);
    match cut {
        Some(i) => format!(
            "{}… ({} bytes)",
            crate::text::escape(&value[..i]),
            value.len()
        ),
        None => crate::text::escape(value).into_owned(),
    }
}

/// An agent patch path: relative to the dataset's folder and inside it.
pub fn patch_path(p: &str, base_dir: &Path) -> Result<PathBuf, String> {
    let rel = Path::new(p);
    let plain = !p.starts_with('~') && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if p.is_empty() || !plain || p.chars().any(char::is_control) {
        return Err(format!(
            "'{}' is not a plain relative path: an agent patch is named relative to the \
             dataset's folder and stays inside it (no absolute path, '..', '~' or control \
             characters); move the patch next to the dataset",
            excerpt(p)
        ));
    }
    let path = base_dir.join(rel);
    if path.exists() && !policy::resolves_inside(&path, base_dir) {
        return Err(format!(
            "'{}' resolves outside the dataset's folder (a symbolic link?); an agent patch \
             must be a file inside it",
            excerpt(p)
        ));
    }
    Ok(path)
}

/// Write diff text to `dir/<sha256>.diff` (once: an existing file of that name is the same
/// text) and return the path. The file is written under a temporary name and renamed, so a
/// reader never sees half a patch.
pub fn write_inline(text: &str, dir: &Path) -> Result<PathBuf, String> {
    let sha = crate::digest::sha256_hex(text.as_bytes());
    let target = dir.join(format!("{sha}.diff"));
    if std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
        return Ok(target);
    }
    let tmp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, text.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, &target))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!(
                "cannot write the inline patch to {}: {e}",
                crate::text::escape(&target.display().to_string())
            )
        })?;
    Ok(target)
}

/// The files a diff changes, in order, de-duplicated (`diff --git a/X b/Y` gives `Y`). Paths that climb (`..`) or are absolute are left out.
pub fn files_of_diff(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        let p = p.trim();
        let ok = !p.is_empty()
            && p != "/dev/null"
            && Path::new(p)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if ok && !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    };
    // A git diff names each file in its `diff --git` header; a plain unified diff in the
    // `+++` line right after a `---` line.
    let git = text.lines().any(|l| l.starts_with("diff --git "));
    let mut after_minus = false;
    for line in text.lines() {
        if git {
            if let Some(rest) = line.strip_prefix("diff --git ") {
                if let Some(i) = rest.find(" b/") {
                    push(&rest[i + 3..]);
                }
            }
        } else if let Some(rest) = line.strip_prefix("+++ ").filter(|_| after_minus) {
            let p = rest.split('\t').next().unwrap_or(rest);
            push(p.strip_prefix("b/").unwrap_or(p));
        }
        after_minus = line.starts_with("--- ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_diffs_from_paths() {
        assert!(is_diff("diff --git a/x b/x\n"));
        assert!(is_diff("--- a/x\n+++ b/x"));
        assert!(is_diff("anything\nwith a newline"));
        assert!(!is_diff("patches/agent.diff"));
        assert!(!is_diff("--dangerous"));
    }

    #[test]
    fn excerpts_are_bounded_and_escaped() {
        let long = format!("\u{1b}[2J{}", "x".repeat(10_000));
        let e = excerpt(&long);
        assert!(e.len() < 120, "{e}");
        assert!(e.contains("\\x1b") && e.contains("10004 bytes"), "{e}");
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn writes_content_addressed_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_inline("diff --git a/x b/x\n", dir.path()).unwrap();
        let b = write_inline("diff --git a/x b/x\n", dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(a.file_name().unwrap().to_str().unwrap().ends_with(".diff"));
    }

    #[test]
    fn lists_the_files_a_diff_changes() {
        let diff = "diff --git a/vllm/a.py b/vllm/a.py\nindex 1..2 100644\n--- a/vllm/a.py\n\
                    +++ b/vllm/a.py\n@@ -1 +1 @@\n-x\n+y\n\
                    diff --git a/csrc/k.cu b/csrc/k.cu\n--- a/csrc/k.cu\n+++ b/csrc/k.cu\n@@ -1 +1 @@\n\
                    --- old\n+++ new\n";
        assert_eq!(files_of_diff(diff), vec!["vllm/a.py", "csrc/k.cu"]);
        let plain = "--- a/x.py\t2024\n+++ b/x.py\t2024\n@@ -1 +1 @@\n";
        assert_eq!(files_of_diff(plain), vec!["x.py"]);
        assert!(files_of_diff("+++ b/../../etc/passwd\n").is_empty());
    }
}
