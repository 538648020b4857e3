//! The pieces of a step that are plain data: filling argv placeholders, the child environment,
//! listing result files, and best-effort snapshots of the host.

use std::path::{Path, PathBuf};

use runner_core::backend::{GpuLease, JobEnvs, PreparedEnv};
use runner_core::plan::{self, StepPlan};
use runner_core::{BackendError, Failure, RunContext};

use crate::NAME;
use crate::config::LocalConfig;
use crate::lease::cuda_visible_devices;
use crate::venv::{self, Installer};

/// The loopback address every server listens on and every client connects to.
pub const HOST: &str = "127.0.0.1";

/// The values of the placeholders for one process.
#[derive(Debug, Clone)]
pub struct Subst {
    /// The venv the process runs in.
    pub venv: PathBuf,
    /// The port of this run's server, if it has one.
    pub port: Option<u16>,
    /// `<artifact_dir>/results`.
    pub result_dir: PathBuf,
    /// The benchmark scripts of the process's build.
    pub vllm_source: Option<String>,
    /// The dataset dir.
    pub data_dir: PathBuf,
}

impl Subst {
    /// The values for a process of `env` in the context `cx`.
    pub fn new(env: &PreparedEnv, port: Option<u16>, cx: &RunContext) -> Subst {
        Subst {
            venv: PathBuf::from(&env.handle),
            port,
            result_dir: cx.artifact_dir.join("results"),
            vllm_source: env.scripts_dir.clone(),
            data_dir: cx.data_dir.clone(),
        }
    }

    /// Fill every placeholder of `argv`. A placeholder with no value is an error: `{VLLM_SOURCE}`
    /// without scripts is `vllm_version`, `{PORT}` without a server is `bad_config`; a script
    /// that the build's source lacks is `vllm_version`.
    pub fn fill(&self, argv: &[String]) -> Result<Vec<String>, BackendError> {
        if argv.is_empty() {
            return Err(BackendError::new(NAME, Failure::BadConfig, "an empty argv"));
        }
        let python = venv::python(&self.venv).display().to_string();
        let mut out = Vec::with_capacity(argv.len());
        for token in argv {
            let mut t = token
                .replace(plan::PYTHON, &python)
                .replace(plan::HOST, HOST)
                .replace(plan::RESULT_DIR, &self.result_dir.display().to_string())
                .replace(plan::DATA_DIR, &self.data_dir.display().to_string());
            if t.contains(plan::PORT) {
                let port = self.port.ok_or_else(|| {
                    BackendError::new(
                        NAME,
                        Failure::BadConfig,
                        format!("{token}: no server, so no {{PORT}}"),
                    )
                })?;
                t = t.replace(plan::PORT, &port.to_string());
            }
            if t.contains(plan::VLLM_SOURCE) {
                let src = self.vllm_source.as_deref().ok_or_else(|| {
                    BackendError::new(
                        NAME,
                        Failure::VllmVersion,
                        format!(
                            "{token} needs a vLLM source tree at the build's commit (benchmark \
                             scripts predating `vllm bench`), and this build has none: configure \
                             vllm_source (a git clone or a raw-file URL template)"
                        ),
                    )
                })?;
                t = t.replace(plan::VLLM_SOURCE, src);
                if token.starts_with(plan::VLLM_SOURCE)
                    && token.ends_with(".py")
                    && !Path::new(&t).is_file()
                {
                    return Err(BackendError::new(
                        NAME,
                        Failure::VllmVersion,
                        format!("{t} does not exist: the build's vLLM source has no such script"),
                    ));
                }
                // Checked at plan time (no '..'); again now that the files exist: a link must
                // not lead out of the source tree.
                if token.starts_with(plan::VLLM_SOURCE)
                    && !runner_core::command::policy::resolves_inside(Path::new(&t), Path::new(src))
                {
                    return Err(BackendError::new(
                        NAME,
                        Failure::BadConfig,
                        format!(
                            "{t} resolves outside the build's vLLM source tree (a link out of \
                             it?); refusing to run it"
                        ),
                    ));
                }
            }
            out.push(t);
        }
        Ok(out)
    }
}

/// The environment variables added to a child: the step's, the venv's, and the lease's
/// `CUDA_VISIBLE_DEVICES` (which wins over the step's).
pub fn child_env(step: &StepPlan, venv_dir: &Path, lease: &GpuLease) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = step
        .env
        .iter()
        .filter(|(k, _)| k != "CUDA_VISIBLE_DEVICES" || lease.devices.is_empty())
        .cloned()
        .collect();
    if let Some(v) = cuda_visible_devices(lease) {
        env.push(("CUDA_VISIBLE_DEVICES".into(), v));
    }
    let bin = venv_dir.join("bin").display().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    env.push((
        "PATH".into(),
        if path.is_empty() {
            bin
        } else {
            format!("{bin}:{path}")
        },
    ));
    env.push(("VIRTUAL_ENV".into(), venv_dir.display().to_string()));
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    env
}

/// Every file under `dir`, sorted.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// This host's name.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// Best effort: `nvidia-smi.txt`, `pip-freeze.txt` (and `pip-freeze-client.txt` when the client
/// runs in another build) in the artifact dir.
pub async fn snapshots(
    cfg: &LocalConfig,
    installer: &Installer,
    envs: &JobEnvs,
    serving: bool,
    cx: &RunContext,
) {
    let dir = &cx.artifact_dir;
    if let Ok(report) = crate::gpu::report(&cfg.nvidia_smi).await {
        let _ = std::fs::write(dir.join("nvidia-smi.txt"), report);
    }
    if let Some(f) = venv::freeze(cfg, installer, Path::new(&envs.engine.handle), cx).await {
        let _ = std::fs::write(dir.join("pip-freeze.txt"), f);
    }
    if serving && envs.client.handle != envs.engine.handle {
        if let Some(f) = venv::freeze(cfg, installer, Path::new(&envs.client.handle), cx).await {
            let _ = std::fs::write(dir.join("pip-freeze-client.txt"), f);
        }
    }
}

/// Append a resolved command to `commands.txt` (what really ran).
pub fn record_command(dir: &Path, role: &str, argv: &[String], env: &[(String, String)]) {
    use std::io::Write;
    let visible = env
        .iter()
        .filter(|(k, _)| k == "CUDA_VISIBLE_DEVICES")
        .map(|(k, v)| format!("{k}={v} "))
        .collect::<String>();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("commands.txt"))
    {
        let _ = writeln!(f, "{role}: {visible}{}", argv.join(" "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subst(src: Option<&str>) -> Subst {
        Subst {
            venv: "/v".into(),
            port: Some(8123),
            result_dir: "/a/results".into(),
            vllm_source: src.map(String::from),
            data_dir: "/d".into(),
        }
    }

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fills_placeholders() {
        let a = argv(&[
            "{PYTHON}",
            "-m",
            "x",
            "--host",
            "{HOST}",
            "--port",
            "{PORT}",
            "--result-dir",
            "{RESULT_DIR}",
            "--dataset-path",
            "{DATA_DIR}/sharegpt.json",
        ]);
        let f = subst(None).fill(&a).unwrap();
        assert_eq!(f[0], "/v/bin/python");
        assert_eq!(f[4], "127.0.0.1");
        assert_eq!(f[6], "8123");
        assert_eq!(f[8], "/a/results");
        assert_eq!(f[10], "/d/sharegpt.json");
    }

    #[test]
    fn missing_values_are_errors() {
        let a = argv(&["{PYTHON}", "{VLLM_SOURCE}/benchmarks/benchmark_serving.py"]);
        assert_eq!(subst(None).fill(&a).unwrap_err().kind, Failure::VllmVersion);
        let e = subst(Some("/nonexistent-src")).fill(&a).unwrap_err();
        assert_eq!(e.kind, Failure::VllmVersion);
        assert!(e.message.contains("benchmark_serving.py"));
        let mut s = subst(None);
        s.port = None;
        assert_eq!(
            s.fill(&argv(&["{PYTHON}", "{PORT}"])).unwrap_err().kind,
            Failure::BadConfig
        );
        assert_eq!(s.fill(&[]).unwrap_err().kind, Failure::BadConfig);
    }

    #[test]
    fn a_script_linked_out_of_the_source_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("benchmarks")).unwrap();
        std::fs::write(src.join("benchmarks/ok.py"), "print(1)").unwrap();
        let outside = dir.path().join("evil.py");
        std::fs::write(&outside, "print('evil')").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("benchmarks/benchmark_serving.py")).unwrap();
        let s = subst(Some(&src.display().to_string()));
        let ok = argv(&["{PYTHON}", "{VLLM_SOURCE}/benchmarks/ok.py"]);
        assert!(s.fill(&ok).is_ok());
        let evil = argv(&["{PYTHON}", "{VLLM_SOURCE}/benchmarks/benchmark_serving.py"]);
        let e = s.fill(&evil).unwrap_err();
        assert_eq!(e.kind, Failure::BadConfig);
        assert!(
            e.message.contains("outside the build's vLLM source"),
            "{e:?}"
        );
    }
}
