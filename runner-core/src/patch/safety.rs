//! An agent patch is untrusted text: before any backend applies it, every path it names must
//! stay inside the tree it patches, and it may not create symbolic links (a link is how a later
//! step would read or write outside that tree).
//!
//! This is the first gate of the analysis ([`super::decide`] runs it before anything else); the
//! paths it reads back from quoted headers are checked again with [`check_path`].

/// Why a patch is refused: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent patch refused at line {line}: {reason}; fix: {fix}")]
pub struct UnsafePatch {
    /// 1-based line of the patch.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// What to do instead.
    pub fix: &'static str,
}

pub(super) const FIX_PATH: &str = "make every path in the patch relative to the repository root, without \
                        '..' components (as `git diff` writes them)";
const FIX_LINK: &str = "leave symbolic links out of the patch";

/// Check every header line of a unified or git diff.
pub fn check(text: &str) -> Result<(), UnsafePatch> {
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: String, fix| UnsafePatch {
            line: i + 1,
            reason,
            fix,
        };
        for (prefix, strip) in [
            ("--- ", true),
            ("+++ ", true),
            ("rename from ", false),
            ("rename to ", false),
            ("copy from ", false),
            ("copy to ", false),
        ] {
            if let Some(rest) = line.strip_prefix(prefix) {
                // `--- a/x\t2024-01-01 …`: the path ends at a tab.
                let path = rest.split('\t').next().unwrap_or("").trim_end();
                if let Err(why) = check_path(path, strip) {
                    return Err(bad(format!("'{}' {why}", path.escape_default()), FIX_PATH));
                }
            }
        }
        if let Some(rest) = line.strip_prefix("diff --git ") {
            for path in rest.split_whitespace() {
                if let Err(why) = check_path(path, true) {
                    return Err(bad(format!("'{}' {why}", path.escape_default()), FIX_PATH));
                }
            }
        }
        let mode = line
            .strip_prefix("new file mode ")
            .or_else(|| line.strip_prefix("new mode "))
            .or_else(|| line.strip_prefix("deleted file mode "));
        if mode.is_some_and(|m| m.trim().starts_with("120")) {
            return Err(bad("the patch creates a symbolic link".into(), FIX_LINK));
        }
    }
    Ok(())
}

/// A path of a diff header: `/dev/null`, or relative without `..`, optionally after `a/`/`b/`.
pub(super) fn check_path(path: &str, strip_prefix: bool) -> Result<(), &'static str> {
    if path == "/dev/null" {
        return Ok(());
    }
    let path = if strip_prefix {
        path.strip_prefix("a/")
            .or_else(|| path.strip_prefix("b/"))
            .unwrap_or(path)
    } else {
        path
    };
    if path.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    if path.starts_with('/') || path.starts_with('~') {
        return Err("is absolute");
    }
    if path.split('/').any(|c| c == "..") {
        return Err("climbs out of the tree with '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n\
                      @@ -1 +1 @@\n-a\n+b\n";

    #[test]
    fn ordinary_patches_pass() {
        check(OK).unwrap();
        // -p0 style, new and deleted files, timestamps after a tab.
        check("--- vllm/x.py\t2024-01-01\n+++ vllm/x.py\t2024-01-02\n@@ -1 +1 @@\n-a\n+b\n")
            .unwrap();
        check("diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n")
            .unwrap();
        // A hunk body may contain anything.
        check("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-../../etc\n+/etc/passwd\n").unwrap();
    }

    #[test]
    fn paths_out_of_the_tree_and_links_are_refused_with_their_line() {
        let cases = [
            (
                "--- a/vllm/../../../etc/passwd\n+++ b/vllm/x.py\n",
                1,
                "'..'",
            ),
            ("--- a/x.py\n+++ /etc/cron.d/evil\n", 2, "absolute"),
            ("diff --git a/x b/../x\n", 1, "'..'"),
            (
                "diff --git a/x b/x\nrename from x\nrename to ../../x\n",
                3,
                "'..'",
            ),
            (
                "diff --git a/l b/l\nnew file mode 120000\n",
                2,
                "symbolic link",
            ),
            (
                "diff --git a/l b/l\nold mode 100644\nnew mode 120000\n",
                3,
                "symbolic link",
            ),
            ("--- a/x\u{1b}[2J\n", 1, "control"),
        ];
        for (patch, line, what) in cases {
            let e = check(patch).unwrap_err();
            assert_eq!(e.line, line, "{patch:?}: {e}");
            assert!(e.to_string().contains(what), "{patch:?}: {e}");
            assert!(!e.to_string().contains('\u{1b}'));
        }
    }
}
