//! Benchmark scripts (`benchmarks/*.py`) at a build's commit, for versions that predate
//! `vllm bench`: extracted from a local git clone or fetched from an HTTP template, cached per
//! commit under `<cache>/scripts/<commit>/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runner_core::RunContext;
use tokio::process::Command;

use crate::config::{LocalConfig, safe_name};
use crate::process::run_captured;

/// The scripts dir of `commit` (it holds `benchmarks/`), made on first use. `Ok(None)` when no
/// source is configured; `Err` says why the configured source gave nothing.
pub async fn ensure(
    cfg: &LocalConfig,
    commit: &str,
    cx: &RunContext,
) -> Result<Option<PathBuf>, String> {
    let Some(source) = cfg.vllm_source.as_deref() else {
        return Ok(None);
    };
    let root = cfg.cache_root().join("scripts");
    let dir = root.join(safe_name(commit));
    if dir.join("benchmarks").is_dir() {
        return Ok(Some(dir));
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".scripts-")
        .tempdir_in(&root)
        .map_err(|e| format!("{}: {e}", root.display()))?;
    cx.progress.event(
        "prepare",
        &format!("benchmark scripts at {commit} from {source}"),
    );
    if source.starts_with("http://") || source.starts_with("https://") {
        fetch_http(cfg, source, commit, tmp.path()).await?;
    } else {
        extract_git(Path::new(source), commit, tmp.path(), cx).await?;
    }
    let staged = tmp.keep();
    if let Err(e) = std::fs::rename(&staged, &dir) {
        // Another prepare may have won the race; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staged);
        if !dir.join("benchmarks").is_dir() {
            return Err(format!("{}: {e}", dir.display()));
        }
    }
    Ok(Some(dir))
}

async fn extract_git(
    repo: &Path,
    commit: &str,
    into: &Path,
    cx: &RunContext,
) -> Result<(), String> {
    if commit.starts_with('-') {
        return Err(format!(
            "refusing a commit that looks like an option: {commit}"
        ));
    }
    let tar = into.join("benchmarks.tar");
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(["archive", "--format=tar", "-o"])
        .arg(&tar)
        .arg(commit)
        .arg("benchmarks");
    let out = run_captured(cmd, &cx.cancel, cx.deadline)
        .await
        .map_err(|e| format!("git archive: {e:?}"))?;
    if !out.status.success() {
        return Err(format!(
            "git archive {commit} benchmarks in {}: {}",
            repo.display(),
            out.stderr.trim()
        ));
    }
    let mut cmd = Command::new("tar");
    cmd.arg("-xf").arg(&tar).arg("-C").arg(into);
    let out = run_captured(cmd, &cx.cancel, cx.deadline)
        .await
        .map_err(|e| format!("tar: {e:?}"))?;
    let _ = std::fs::remove_file(&tar);
    if !out.status.success() {
        return Err(format!("tar -x: {}", out.stderr.trim()));
    }
    Ok(())
}

/// The URL of `path` at `commit` from a template with `{commit}` and `{path}` (a template
/// without `{path}` is a base URL the path is appended to).
pub fn url_for(template: &str, commit: &str, path: &str) -> String {
    let t = template.replace("{commit}", commit);
    if t.contains("{path}") {
        t.replace("{path}", path)
    } else {
        format!("{}/{path}", t.trim_end_matches('/'))
    }
}

async fn fetch_http(
    cfg: &LocalConfig,
    template: &str,
    commit: &str,
    into: &Path,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut fetched = 0;
    let mut errors = Vec::new();
    for path in &cfg.script_files {
        if path.split('/').any(|c| c == ".." || c.is_empty()) {
            errors.push(format!("{path}: not a plain relative path"));
            continue;
        }
        let url = url_for(template, commit, path);
        let resp = match client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{url}: {}", crate::wheel::chain(&e)));
                continue;
            }
        };
        if !resp.status().is_success() {
            tracing::debug!(%url, status = %resp.status(), "script not fetched");
            errors.push(format!("{url}: {}", resp.status()));
            continue;
        }
        let bytes = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        let dest = into.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&dest, &bytes).map_err(|e| format!("{}: {e}", dest.display()))?;
        fetched += 1;
    }
    if fetched == 0 {
        return Err(format!(
            "no benchmark script could be fetched: {}",
            errors.join("; ")
        ));
    }
    std::fs::create_dir_all(into.join("benchmarks")).map_err(|e| e.to_string())?;
    Ok(())
}

/// Copy a directory tree (small: benchmark scripts).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_from_templates() {
        let t = "https://raw.githubusercontent.com/vllm-project/vllm/{commit}/{path}";
        assert_eq!(
            url_for(t, "abc", "benchmarks/backend_request_func.py"),
            "https://raw.githubusercontent.com/vllm-project/vllm/abc/benchmarks/backend_request_func.py"
        );
        assert_eq!(
            url_for("http://h/src/{commit}/", "abc", "b/x.py"),
            "http://h/src/abc/b/x.py"
        );
    }
}
