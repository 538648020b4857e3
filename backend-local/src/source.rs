//! Source builds (only with `allow_source_build`): a git requirement for `Artifact::Source`,
//! and a checkout + patch + build for agent patches that touch native code.

use std::path::Path;

use runner_core::{Artifact, BackendError, BuildSpec, Failure, RunContext};
use tokio::process::Command;

use crate::config::LocalConfig;
use crate::prepare::AgentPatch;
use crate::venv::{self, Installer};
use crate::{NAME, patch};

/// `vllm @ git+<url>@<commit>` for a repository URL or local path.
pub fn git_requirement(repo: &str, commit: &str) -> String {
    let url = if repo.contains("://") || repo.starts_with("git@") {
        repo.to_string()
    } else {
        let abs = std::path::absolute(repo).unwrap_or_else(|_| repo.into());
        format!("file://{}", abs.display())
    };
    format!("vllm @ git+{url}@{commit}")
}

/// Check out the build's commit from its `Source` artifact into `<venv>/src`, apply the patch
/// (every applied section, native ones included), and build and install it.
pub(crate) async fn install_patched(
    cfg: &LocalConfig,
    installer: &Installer,
    build: &BuildSpec,
    patch: Option<&AgentPatch>,
    dir: &Path,
    cx: &RunContext,
) -> Result<(String, Option<String>), BackendError> {
    let repo = build
        .artifacts
        .iter()
        .find_map(|a| match a {
            Artifact::Source { repo } => Some(repo.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            BackendError::new(
                NAME,
                Failure::NeedsCompile,
                "the patch changes native code and the build names no source repository",
            )
        })?;
    if build.commit.starts_with('-') {
        return Err(BackendError::new(
            NAME,
            Failure::BadConfig,
            "a commit cannot start with '-'",
        ));
    }
    let src = dir.join("src");
    cx.progress
        .event("prepare", &format!("source build: cloning {repo}"));
    let mut clone = Command::new("git");
    clone
        .args(["clone", "--quiet", "--no-checkout", "--"])
        .arg(&repo)
        .arg(&src);
    git(clone, "git clone", cx).await?;
    let mut checkout = Command::new("git");
    checkout
        .arg("-C")
        .arg(&src)
        .args(["checkout", "--quiet"])
        .arg(&build.commit);
    git(checkout, "git checkout", cx).await?;
    if let Some(p) = patch {
        // Every section that is applied somewhere (native ones included); left-out files
        // (tests, docs) are not, as on every other build.
        let file = dir.join(crate::agent::PATCH_FILE);
        std::fs::write(&file, p.decision.applied_text()).map_err(|e| {
            BackendError::new(
                NAME,
                Failure::EnvironmentBroken,
                format!("{}: {e}", file.display()),
            )
        })?;
        patch::apply(&file, &src, &p.decision, cx).await?;
    }
    cx.progress.event(
        "prepare",
        "source build: building and installing (this compiles)",
    );
    let mut cmd = venv::install_command(cfg, installer, dir);
    cmd.arg(&src);
    let out = venv::run(cmd, "building vllm from source", cx).await?;
    if !out.status.success() {
        return Err(venv::install_error(
            "building vllm from source",
            &out.combined(),
            Some(Failure::EnvironmentBroken),
        ));
    }
    Ok((
        format!("source {repo}@{} + patch", build.commit),
        venv::record_digest(dir),
    ))
}

async fn git(cmd: Command, what: &str, cx: &RunContext) -> Result<(), BackendError> {
    let out = venv::run(cmd, what, cx).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(venv::install_error(
        what,
        &out.combined(),
        Some(Failure::EnvironmentBroken),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn git_requirements() {
        assert_eq!(
            super::git_requirement("https://github.com/vllm-project/vllm", "abc"),
            "vllm @ git+https://github.com/vllm-project/vllm@abc"
        );
        assert!(
            super::git_requirement("/src/vllm", "abc").starts_with("vllm @ git+file:///src/vllm@")
        );
    }
}
