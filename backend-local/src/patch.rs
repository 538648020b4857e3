//! The local primitive of the agent patch: applying a part of it in a folder, all or nothing,
//! with `patch` (or `git apply` where `patch` is missing) — a dry run first, then for real,
//! then a reverse dry run to verify; rejected hunks are quoted. What goes where and the `-p`
//! level are the [`Decision`]'s (`runner_core::patch`).

use std::path::Path;

use runner_core::patch::{Decision, Hunk};
use runner_core::{BackendError, Failure, RunContext};
use tokio::process::Command;

use crate::process::{Captured, RunError, run_captured};

const NAME: &str = crate::NAME;

/// Apply `patch_file` (holding exactly the sections of `decision` that go to `dir`) in `dir`:
/// a dry run first, then for real, then a reverse dry run to verify the files now carry it.
/// Any rejected hunk is `patch_failed`, quoting the hunk.
pub async fn apply(
    patch_file: &Path,
    dir: &Path,
    decision: &Decision,
    cx: &RunContext,
) -> Result<(), BackendError> {
    apply_with("patch", patch_file, dir, decision, cx).await
}

/// [`apply`] with another `patch` program; one that does not exist falls back to `git apply`.
pub(crate) async fn apply_with(
    program: &str,
    patch_file: &Path,
    dir: &Path,
    decision: &Decision,
    cx: &RunContext,
) -> Result<(), BackendError> {
    let strip = decision.strip.arg();
    for (step, extra) in [
        ("check", vec!["--dry-run"]),
        ("apply", vec![]),
        ("verify", vec!["--dry-run", "--reverse"]),
    ] {
        let mut cmd = Command::new(program);
        cmd.args([
            &strip,
            "--forward",
            "--batch",
            "--fuzz=0",
            "--no-backup-if-mismatch",
            "-r",
            "-",
        ])
        .args(&extra)
        .arg("-d")
        .arg(dir)
        .arg("-i")
        .arg(patch_file);
        let out = match run_captured(cmd, &cx.cancel, cx.deadline).await {
            Err(RunError::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return git_apply(patch_file, dir, decision, cx).await;
            }
            other => captured(other, "patch")?,
        };
        step_done(step, dir, &out, decision, rejected_hunks_patch)?;
    }
    Ok(())
}

async fn git_apply(
    patch_file: &Path,
    dir: &Path,
    decision: &Decision,
    cx: &RunContext,
) -> Result<(), BackendError> {
    let strip = decision.strip.arg();
    let ceiling = dir.parent().unwrap_or(dir).to_path_buf();
    for (step, extra) in [
        ("check", vec!["--check"]),
        ("apply", vec![]),
        ("verify", vec!["--check", "--reverse"]),
    ] {
        let mut cmd = Command::new("git");
        cmd.arg("apply")
            .arg(&strip)
            .args(&extra)
            .arg(patch_file)
            .current_dir(dir)
            .env("GIT_CEILING_DIRECTORIES", &ceiling)
            .env_remove("GIT_DIR");
        let out = captured(
            run_captured(cmd, &cx.cancel, cx.deadline).await,
            "git apply",
        )?;
        step_done(step, dir, &out, decision, rejected_hunks_git)?;
    }
    Ok(())
}

/// A check/apply/verify step's outcome: a failure quotes the hunks `rejected` finds named in
/// the tool's output.
fn step_done(
    step: &str,
    dir: &Path,
    out: &Captured,
    decision: &Decision,
    rejected: fn(&str, &Decision) -> String,
) -> Result<(), BackendError> {
    if out.status.success() {
        return Ok(());
    }
    let text = out.combined();
    let what = if step == "verify" {
        "after applying, the files do not carry the patch"
    } else {
        "the patch does not apply"
    };
    Err(failed(what, dir, &rejected(&text, decision), &text))
}

fn captured(r: Result<Captured, RunError>, tool: &str) -> Result<Captured, BackendError> {
    r.map_err(|e| match e {
        RunError::Spawn(e) => BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!("cannot run {tool} to apply the patch: {e}"),
        ),
        RunError::Cancelled => {
            BackendError::new(NAME, Failure::Cancelled, "cancelled while patching")
        }
        RunError::TimedOut => {
            BackendError::new(NAME, Failure::Timeout, "deadline passed while patching")
        }
    })
}

fn failed(what: &str, dir: &Path, evidence: &str, output: &str) -> BackendError {
    let out: String = output.trim().chars().take(4000).collect();
    BackendError::new(
        NAME,
        Failure::PatchFailed,
        format!(
            "{what} in {}:\n{evidence}\n--- tool output ---\n{out}",
            dir.display()
        ),
    )
}

/// The rejected hunks named in GNU patch's output (`checking file X` … `Hunk #N FAILED`).
pub(crate) fn rejected_hunks_patch(output: &str, decision: &Decision) -> String {
    let mut file = String::new();
    let mut out = Vec::new();
    for line in output.lines() {
        if let Some(f) = line
            .strip_prefix("checking file ")
            .or_else(|| line.strip_prefix("patching file "))
        {
            file = f.trim().trim_matches(['\'', '"']).to_string();
        } else if let Some(rest) = line.strip_prefix("Hunk #") {
            if rest.contains("FAILED") {
                let n: usize = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                out.push(quote_hunk(decision, &file, |i, _| i + 1 == n));
            }
        } else if line.contains("can't find file to patch") || line.contains("No file to patch") {
            out.push(format!("a file to patch is missing: {line}"));
        }
    }
    if out.is_empty() {
        "(no hunk named in the output)".into()
    } else {
        out.join("\n")
    }
}

/// The rejected hunks named by `git apply` (`error: patch failed: X:LINE`).
pub(crate) fn rejected_hunks_git(output: &str, decision: &Decision) -> String {
    let mut out = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("error: patch failed: ") {
            if let Some((file, l)) = rest.rsplit_once(':') {
                let l: u64 = l.trim().parse().unwrap_or(0);
                out.push(quote_hunk(decision, file, |_, h| h.old_start == l));
            }
        } else if line.starts_with("error: ") {
            out.push(line.to_string());
        }
    }
    out.join("\n")
}

fn quote_hunk(decision: &Decision, file: &str, pick: impl Fn(usize, &Hunk) -> bool) -> String {
    let f = decision.file(file);
    let hunk = f.and_then(|f| f.hunks.iter().enumerate().find(|(i, h)| pick(*i, h)));
    match hunk {
        Some((i, h)) => {
            let text: Vec<&str> = h.text.lines().take(60).collect();
            format!("rejected hunk #{} of {file}:\n{}", i + 1, text.join("\n"))
        }
        None => format!("a hunk of {file} was rejected"),
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
