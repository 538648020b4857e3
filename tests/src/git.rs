//! Small real git repositories for tests: `git` run in a folder with a fixed identity and no
//! signing or system configuration, and a linear history of a few commits.

use std::path::Path;
use std::process::Command;

/// Run `git -C dir args…` (identity `t`, no commit signing, no system config); its trimmed
/// stdout. Panics with git's stderr when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new repository in `dir` with `n` commits of one file; their hashes, oldest first.
pub fn repo_with_commits(dir: &Path, n: usize) -> Vec<String> {
    git(dir, &["init", "-q"]);
    (0..n)
        .map(|i| {
            std::fs::write(dir.join("f.txt"), format!("{i}\n")).expect("f.txt is written");
            git(dir, &["add", "f.txt"]);
            git(dir, &["commit", "-q", "-m", &format!("c{i}")]);
            git(dir, &["rev-parse", "HEAD"])
        })
        .collect()
}
