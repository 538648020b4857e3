//! The agent variant: the baseline's engine plus the patch. `vllm/…` files are patched in the
//! venv's site-packages, `benchmarks/…` files in a copy of the build's benchmark scripts.

use std::path::Path;

use runner_core::patch::Target;
use runner_core::{BackendError, Failure, RunContext};

use crate::config::{LocalConfig, safe_name};
use crate::prepare::AgentPatch;
use crate::venv::{self, Marker};
use crate::{NAME, patch, scripts};

/// The patch file kept in a patched venv (for provenance).
pub const PATCH_FILE: &str = "perf-runner-agent.patch";

/// Apply the patch's `vllm/` sections to the venv's site-packages and record the sha256 of
/// every file it wrote.
pub(crate) async fn apply_engine(
    p: &AgentPatch,
    venv_dir: &Path,
    marker: &mut Marker,
    cx: &RunContext,
) -> Result<(), BackendError> {
    let text = p.decision.text(&[Target::Engine]);
    if text.is_empty() {
        cx.progress.event("prepare", "patch: no vllm/ file changes");
        return Ok(());
    }
    let sp = venv::site_packages(venv_dir).ok_or_else(|| {
        BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!("no site-packages in {}", venv_dir.display()),
        )
    })?;
    let file = venv_dir.join(PATCH_FILE);
    std::fs::write(&file, &text).map_err(|e| {
        BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!("{}: {e}", file.display()),
        )
    })?;
    let paths = p.decision.paths(Target::Engine);
    cx.progress.event(
        "prepare",
        &format!("patch: applying {} to the installed vllm", paths.join(", ")),
    );
    patch::apply(&file, &sp, &p.decision, cx).await?;
    // A patched module must not be imported from bytecode compiled before the patch (a pyc
    // whose recorded mtime and size still match, within a second, would be reused).
    for path in &paths {
        drop_bytecode(&sp, path);
    }
    for f in p.decision.files_for(Target::Engine) {
        let Some(path) = &f.new_path else { continue };
        let sha = crate::wheel::sha256_file(&sp.join(path)).map_err(|e| {
            BackendError::new(
                NAME,
                Failure::PatchFailed,
                format!("the patched file {path} is not readable after applying: {e}"),
            )
        })?;
        marker.patched_files.insert(path.clone(), sha);
    }
    Ok(())
}

/// Apply the patch's `benchmarks/` sections to a copy of the scripts (`base`); returns the
/// scripts dir the agent build uses.
pub(crate) async fn apply_benchmarks(
    cfg: &LocalConfig,
    p: &AgentPatch,
    identity: &str,
    base: Option<String>,
    cx: &RunContext,
) -> Result<Option<String>, BackendError> {
    let text = p.decision.text(&[Target::Benchmarks]);
    if text.is_empty() {
        return Ok(base);
    }
    let paths = p.decision.paths(Target::Benchmarks);
    let Some(base) = base else {
        p.decision
            .without_benchmarks()
            .map_err(|e| e.backend_error(NAME))?;
        tracing::warn!("the patch changes {paths:?} but no vLLM source is configured");
        cx.progress.event(
            "prepare",
            &format!(
                "patch: {} not applied: no benchmark scripts (configure vllm_source)",
                paths.join(", ")
            ),
        );
        return Ok(None);
    };
    let io = |e: std::io::Error| BackendError::new(NAME, Failure::EnvironmentBroken, e.to_string());
    let dir = cfg.cache_root().join("scripts").join(safe_name(identity));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io)?;
    }
    scripts::copy_tree(Path::new(&base), &dir).map_err(io)?;
    let file = dir.join(PATCH_FILE);
    std::fs::write(&file, &text).map_err(io)?;
    cx.progress.event(
        "prepare",
        &format!(
            "patch: applying {} to the benchmark scripts",
            paths.join(", ")
        ),
    );
    if let Err(e) = patch::apply(&file, &dir, &p.decision, cx).await {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(Some(dir.display().to_string()))
}

/// Remove the cached bytecode of `rel` (a `.py` path under `root`):
/// `__pycache__/<stem>.*.pyc` beside it, and a legacy `<file>c`.
fn drop_bytecode(root: &std::path::Path, rel: &str) {
    let file = root.join(rel);
    let (Some(dir), Some(stem)) = (file.parent(), file.file_stem()) else {
        return;
    };
    if file.extension().is_none_or(|e| e != "py") {
        return;
    }
    let prefix = format!("{}.", stem.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(dir.join("__pycache__")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".pyc") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_file(file.with_extension("pyc"));
}

#[cfg(test)]
mod bytecode_tests {
    use super::drop_bytecode;

    #[test]
    fn a_patched_modules_bytecode_goes_and_its_neighbours_stay() {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("vllm/core");
        std::fs::create_dir_all(pkg.join("__pycache__")).unwrap();
        for f in ["sched.py", "other.py"] {
            std::fs::write(pkg.join(f), "x = 1\n").unwrap();
        }
        for f in [
            "sched.cpython-311.pyc",
            "sched.cpython-312.opt-1.pyc",
            "other.cpython-311.pyc",
            "scheduler.cpython-311.pyc",
        ] {
            std::fs::write(pkg.join("__pycache__").join(f), b"pyc").unwrap();
        }
        drop_bytecode(d.path(), "vllm/core/sched.py");
        let mut left: Vec<String> = std::fs::read_dir(pkg.join("__pycache__"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["other.cpython-311.pyc", "scheduler.cpython-311.pyc"]);
        // Paths that are not modules, or do not exist, are left alone.
        drop_bytecode(d.path(), "vllm/core/missing.py");
        drop_bytecode(d.path(), "README.md");
    }
}
