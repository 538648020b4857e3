//! Embeds the git commit the binary is built from as `PERF_RUNNER_GIT_COMMIT`: the
//! `PERF_RUNNER_GIT_COMMIT` environment variable when set (builds from a source archive), else
//! `git rev-parse HEAD`, else `unknown`. Only the commit is embedded, never a path.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PERF_RUNNER_GIT_COMMIT");
    let commit = std::env::var("PERF_RUNNER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PERF_RUNNER_GIT_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself, the branch it names, and packed refs.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]) {
            let path = PathBuf::from(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // Without the lines above cargo would rerun on any file change; keep it to this script.
    println!("cargo:rerun-if-changed=build.rs");
}
