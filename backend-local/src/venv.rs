//! Python environments: one venv per build identity, made by `uv` (or `python -m venv` + pip),
//! a completion marker written last, the installed engine version and `pip freeze`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use runner_core::{BackendError, Failure, RunContext};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::config::LocalConfig;
use crate::process::{Captured, RunError, run_captured};

const NAME: &str = crate::NAME;

/// The marker's file name inside a venv; it exists only once the venv is complete.
pub const MARKER: &str = "perf-runner-env.json";

/// What a complete venv holds (written last; its presence means "complete").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// The build identity.
    pub identity: String,
    /// `vllm.__version__` as installed.
    pub engine_version: Option<String>,
    /// `sha256:<hex>` of the wheel, or `record-sha256:<hex>` of the installed RECORD when the
    /// wheel came from an index.
    pub digest: Option<String>,
    /// Where the engine came from (wheel path/URL, index URL).
    pub source: String,
    /// sha256 of the agent patch applied, if any.
    pub patch_sha256: Option<String>,
    /// sha256 of every file the patch wrote, by path relative to site-packages.
    pub patched_files: BTreeMap<String, String>,
    /// Patched paths that were not applied because nothing the benchmark runs uses them.
    pub ignored_files: Vec<String>,
    /// The benchmark scripts dir of this build, if any.
    pub scripts_dir: Option<String>,
}

/// Which tool makes venvs and installs into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    /// `uv venv` / `uv pip install`.
    Uv(PathBuf),
    /// `python -m venv`, then pip. With `external`, the venv is made `--without-pip` and the
    /// base interpreter's pip (≥ 22.3) installs into it with `--python` (much faster than
    /// seeding pip into every venv); otherwise the venv's own pip does.
    Pip {
        /// Whether the base interpreter's pip installs into the venv.
        external: bool,
    },
}

impl Installer {
    /// `uv` when it runs, else pip.
    pub async fn detect(cfg: &LocalConfig) -> Installer {
        let ok = Command::new(&cfg.uv)
            .arg("--version")
            .kill_on_drop(true)
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if ok {
            Installer::Uv(cfg.uv.clone())
        } else {
            let external = base_pip_takes_python(cfg).await;
            tracing::info!(uv = %cfg.uv.display(), external, "uv not usable; using python -m venv + pip");
            Installer::Pip { external }
        }
    }
}

/// Whether the base interpreter has a pip that knows `--python` (22.3 and later).
async fn base_pip_takes_python(cfg: &LocalConfig) -> bool {
    let Ok(out) = Command::new(&cfg.python)
        .args(["-m", "pip", "--version"])
        .kill_on_drop(true)
        .output()
        .await
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    out.status.success() && (major, minor) >= (22, 3)
}

/// The interpreter of a venv.
pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The marker of a complete venv, if there is one and its interpreter exists.
pub fn read_marker(venv: &Path) -> Option<Marker> {
    let text = std::fs::read_to_string(venv.join(MARKER)).ok()?;
    let marker = serde_json::from_str(&text).ok()?;
    python(venv).exists().then_some(marker)
}

/// Write the marker atomically (temp file + rename): the last step of making a venv.
pub fn write_marker(venv: &Path, marker: &Marker) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(marker).map_err(std::io::Error::other)?;
    let tmp = venv.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, venv.join(MARKER))
}

/// `<venv>/lib/python3.X/site-packages`.
pub fn site_packages(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
}

/// Create an empty venv at `dir` (which must not exist).
pub async fn create(
    cfg: &LocalConfig,
    installer: &Installer,
    dir: &Path,
    cx: &RunContext,
) -> Result<(), BackendError> {
    let mut cmd = match installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.arg("venv").arg("--python").arg(&cfg.python);
            c.env("UV_PYTHON_DOWNLOADS", "never");
            c
        }
        Installer::Pip { external } => {
            let mut c = Command::new(&cfg.python);
            c.args(["-m", "venv"]);
            if *external {
                c.arg("--without-pip");
            }
            c
        }
    };
    if cfg.system_site_packages {
        cmd.arg("--system-site-packages");
    }
    cmd.arg(dir);
    let out = run(cmd, "creating the venv", cx).await?;
    if !out.status.success() {
        return Err(install_error("creating the venv", &out.combined(), None));
    }
    if cfg.host_site_packages {
        link_host_site_packages(cfg, dir, cx).await?;
    }
    Ok(())
}

/// Make the configured interpreter's own site-packages visible in the venv through a `.pth`
/// file: reuse a host's PyTorch/CUDA stack even where that interpreter is itself a venv (which
/// `--system-site-packages` does not see through).
async fn link_host_site_packages(
    cfg: &LocalConfig,
    dir: &Path,
    cx: &RunContext,
) -> Result<(), BackendError> {
    let mut cmd = Command::new(&cfg.python);
    cmd.args([
        "-c",
        "import site; print('\\n'.join(site.getsitepackages()))",
    ]);
    let out = run(cmd, "listing the host's site-packages", cx).await?;
    if !out.status.success() {
        return Err(install_error(
            "listing the host's site-packages",
            &out.combined(),
            None,
        ));
    }
    let paths: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(site) = site_packages(dir) else {
        return Err(install_error(
            "linking the host's site-packages",
            "the new venv has no site-packages",
            None,
        ));
    };
    std::fs::write(site.join("_perf_runner_host.pth"), paths.join("\n") + "\n")
        .map_err(|e| install_error("linking the host's site-packages", &e.to_string(), None))?;
    tracing::info!(paths = ?paths, "host site-packages linked into the venv");
    Ok(())
}

/// `python -m pip` for the venv at `dir`: the base interpreter's with `--python`, or the venv's.
fn pip(cfg: &LocalConfig, external: bool, dir: &Path) -> Command {
    if external {
        let mut c = Command::new(&cfg.python);
        c.args(["-m", "pip", "--python"]).arg(python(dir));
        c
    } else {
        let mut c = Command::new(python(dir));
        c.args(["-m", "pip"]);
        c
    }
}

/// `pip install` arguments into the venv at `dir`, with the offline flags.
pub fn install_command(cfg: &LocalConfig, installer: &Installer, dir: &Path) -> Command {
    let mut cmd = match installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.args(["pip", "install", "--python"]).arg(python(dir));
            c.env("UV_PYTHON_DOWNLOADS", "never");
            c
        }
        Installer::Pip { external } => {
            let mut c = pip(cfg, *external, dir);
            c.args(["install", "--disable-pip-version-check"]);
            c
        }
    };
    if let Some(links) = &cfg.find_links {
        cmd.arg("--no-index").arg("--find-links").arg(links);
    }
    if cfg.no_deps {
        cmd.arg("--no-deps");
    }
    cmd
}

/// Run a helper command for `what`, mapping cancellation, deadline and spawn errors.
pub async fn run(mut cmd: Command, what: &str, cx: &RunContext) -> Result<Captured, BackendError> {
    // Labelled with the run like every process of a step, so that `gc RUN` finds an installer
    // left behind by a runner that was killed.
    if let Some((k, v)) = crate::gc::run_label(cx) {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let r = run_captured(cmd, &cx.cancel, cx.deadline).await;
    tracing::debug!(what, elapsed = ?started.elapsed(), "helper command finished");
    r.map_err(|e| match e {
        RunError::Spawn(e) => BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!("{what}: cannot start the tool: {e}"),
        )
        .with_source(e),
        RunError::Cancelled => {
            BackendError::new(NAME, Failure::Cancelled, format!("cancelled while {what}"))
        }
        RunError::TimedOut => BackendError::new(
            NAME,
            Failure::Timeout,
            format!("deadline passed while {what}"),
        ),
    })
}

/// An install-time error classified from the tool's output (`disk_full`, `infra_transient`,
/// else `environment_broken`, or `fallback` when given).
pub fn install_error(what: &str, output: &str, fallback: Option<Failure>) -> BackendError {
    use crate::wheel::{InstallFailure, classify_install_output};
    let kind = match classify_install_output(output) {
        InstallFailure::DiskFull => Failure::DiskFull,
        InstallFailure::Transient => Failure::InfraTransient,
        InstallFailure::NotFound => Failure::NoWheel,
        InstallFailure::Other => fallback.unwrap_or(Failure::EnvironmentBroken),
    };
    BackendError::new(
        NAME,
        kind,
        format!("{what} failed:\n{}", last_lines(output, 30)),
    )
}

/// The last `n` non-empty lines of a text.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `vllm.__version__` of the venv.
pub async fn engine_version(venv: &Path, cx: &RunContext) -> Result<String, BackendError> {
    let mut cmd = Command::new(python(venv));
    cmd.args(["-c", "import vllm; print(vllm.__version__)"]);
    let out = run(cmd, "reading the installed vllm version", cx).await?;
    let version = out.stdout.lines().map(str::trim).rfind(|l| !l.is_empty());
    match (out.status.success(), version) {
        (true, Some(v)) => Ok(v.to_string()),
        _ => Err(BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!(
                "`import vllm` fails in {}:\n{}",
                venv.display(),
                last_lines(&out.combined(), 30)
            ),
        )),
    }
}

/// Check a version's `+g<hash>` against the build's commit: the hash must be a prefix of the
/// commit. Versions without such a suffix, and non-hex commits, pass.
pub fn check_commit(version: &str, commit: &str) -> Result<(), String> {
    let Some(idx) = version.find("+g") else {
        return Ok(());
    };
    let hash: String = version[idx + 2..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase();
    let commit = commit.trim().to_ascii_lowercase();
    let commit_is_hash = commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit());
    if hash.len() < 7 || !commit_is_hash {
        return Ok(());
    }
    if commit.starts_with(&hash) || hash.starts_with(&commit) {
        Ok(())
    } else {
        Err(format!(
            "the installed vllm {version} was built from commit {hash}, not the build's commit \
             {commit}"
        ))
    }
}

/// `pip freeze` of a venv (best effort).
pub async fn freeze(
    cfg: &LocalConfig,
    installer: &Installer,
    venv: &Path,
    cx: &RunContext,
) -> Option<String> {
    let cmd = match installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.args(["pip", "freeze", "--python"]).arg(python(venv));
            c
        }
        Installer::Pip { external } => {
            let mut c = pip(cfg, *external, venv);
            c.args(["freeze", "--disable-pip-version-check"]);
            c
        }
    };
    let out = run(cmd, "pip freeze", cx).await.ok()?;
    out.status.success().then_some(out.stdout)
}

/// sha256 of the installed `vllm-*.dist-info/RECORD`: a content identity of an index install.
pub fn record_digest(venv: &Path) -> Option<String> {
    let sp = site_packages(venv)?;
    let record = std::fs::read_dir(&sp)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n.starts_with("vllm-") && n.ends_with(".dist-info")
        })?
        .join("RECORD");
    crate::wheel::sha256_file(&record)
        .ok()
        .map(|h| format!("record-sha256:{h}"))
}

/// Every environment a step runs in has its interpreter: the variant's build, and the client's
/// when the step serves (`backend` names the caller in the error).
pub fn check_envs(
    backend: &'static str,
    envs: &runner_core::backend::JobEnvs,
    serving: bool,
) -> Result<(), runner_core::BackendError> {
    let client_env = if serving { &envs.client } else { &envs.engine };
    for env in [&envs.engine, client_env] {
        if !python(Path::new(&env.handle)).exists() {
            return Err(runner_core::BackendError::new(
                backend,
                runner_core::Failure::EnvironmentBroken,
                format!(
                    "the environment {} ({}) has no python",
                    env.identity, env.handle
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn helper_commands_carry_the_run_label() {
        let mut cx = runner_core::RunContext {
            cancel: tokio_util::sync::CancellationToken::new(),
            deadline: None,
            artifact_dir: std::env::temp_dir(),
            data_dir: std::env::temp_dir(),
            lease: Default::default(),
            labels: Default::default(),
            progress: std::sync::Arc::new(runner_core::backend::NoProgress),
        };
        cx.labels.insert("run-id".into(), "r-label-test".into());
        let mut cmd = super::Command::new("sh");
        cmd.args(["-c", "echo $PERF_RUNNER_RUN_ID"]);
        let out = super::run(cmd, "echo", &cx).await.unwrap();
        assert_eq!(out.stdout.trim(), "r-label-test");
    }

    use super::*;

    #[test]
    fn commit_suffix_checks() {
        let c = "abcdef1234567890abcdef1234567890abcdef12";
        assert!(check_commit("0.6.3.dev123+gabcdef12", c).is_ok());
        assert!(check_commit("0.6.3.dev123+gabcdef12.d20240101", c).is_ok());
        assert!(check_commit("0.6.3", c).is_ok());
        assert!(check_commit("1.0.0.dev", c).is_ok());
        assert!(check_commit("0.6.3+cu124", c).is_ok());
        let e = check_commit("0.6.3.dev5+g1234567", c).unwrap_err();
        assert!(e.contains("1234567") && e.contains(c));
        assert!(check_commit("0.6.3.dev5+g1234567", "main").is_ok());
    }

    #[test]
    fn last_lines_skip_blanks() {
        assert_eq!(last_lines("a\n\nb\n  \nc\n", 2), "b\nc");
    }
}
