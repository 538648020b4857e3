//! A [`StepPlan`] made concrete for one Modal sandbox: the placeholder values of the
//! container (one [`values`] for the plan here and for the step kit's `run_step`), the pinned
//! GPU string, volumes, secrets, dataset uploads, the server's encrypted port and the sandbox's
//! lifetime. Also how a granted GPU is checked against the one asked for.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runner_core::plan::StepPlan;
use runner_core::stepkit::{Role, ScriptCheck, SourceTree, Values};
use runner_core::{BackendError, Failure};
use sha2::{Digest, Sha256};

use crate::NAME;
use crate::config::ModalConfig;
use crate::protocol::{CreateRequest, ImageRecipe, SandboxSpec, Upload};

/// The address the server listens on inside the container: every address, so that Modal's
/// tunnel reaches it.
pub const SERVER_HOST: &str = "0.0.0.0";
/// The address the clients connect to, inside the container.
pub const CLIENT_HOST: &str = "127.0.0.1";

/// The per-build values placeholders take in the container.
#[derive(Debug, Clone)]
pub struct Side {
    /// `{PYTHON}`.
    pub python: String,
    /// `{VLLM_SOURCE}`, when the image has the build's scripts.
    pub scripts: Option<String>,
}

/// The container's directories of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `{RESULT_DIR}`.
    pub result_dir: String,
    /// `{DATA_DIR}`.
    pub data_dir: String,
}

/// What a run needs besides the step.
#[derive(Debug, Clone)]
pub struct RunInputs {
    /// The image of the job.
    pub image: ImageRecipe,
    /// The engine build's side (server, or the offline script).
    pub engine: Side,
    /// The serving client's side.
    pub client: Side,
    /// Local dataset dir; `None` in a dry run (nothing is read or uploaded).
    pub data_dir: Option<PathBuf>,
    /// Tags for the sandbox.
    pub labels: BTreeMap<String, String>,
    /// Time left to the attempt's deadline.
    pub remaining: Option<Duration>,
}

/// One step's sandbox: what `create` gets and what is checked in it before the step runs.
#[derive(Debug, Clone)]
pub struct SandboxPlan {
    /// The `create` command.
    pub create: CreateRequest,
    /// The container's directories.
    pub paths: Paths,
    /// Benchmark scripts the argv need in the image; missing = `vllm_version`.
    pub required: Vec<String>,
    /// Every process's argv as the step kit will fill it, by role (for the record).
    pub processes: BTreeMap<String, Vec<String>>,
    /// Prints one GPU name per line.
    pub gpu_query: Vec<String>,
    /// Prints the engine version.
    pub version_query: Vec<String>,
    /// The Modal GPU type asked for.
    pub modal_type: String,
}

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// The placeholder values of a process of `role` running on `side` (the step kit fills every
/// argv with these, through `StepRuntime::values`).
pub fn values(role: Role, side: &Side, port: Option<u16>, paths: &Paths) -> Values {
    Values {
        python: Some(side.python.clone()),
        host: Some(
            match role {
                Role::Server => SERVER_HOST,
                Role::Warmup | Role::Client => CLIENT_HOST,
            }
            .to_string(),
        ),
        port,
        result_dir: Some(paths.result_dir.clone()),
        vllm_source: side.scripts.clone().map(|path| SourceTree {
            path,
            check: ScriptCheck::InImage,
        }),
        data_dir: Some(paths.data_dir.clone()),
        // The sandbox's image has no perf-runner: plans for Modal keep the engine's client.
        perf_runner: None,
    }
}

/// The sandbox of `step` (see the module docs). Every argv is filled here as the step kit will
/// fill it, so that a step that cannot run fails before a sandbox (and its GPUs) is asked for.
pub fn sandbox_plan(
    cfg: &ModalConfig,
    step: &StepPlan,
    inputs: &RunInputs,
) -> Result<SandboxPlan, BackendError> {
    let modal_type = cfg
        .modal_gpu_type(step.gpu.kind.as_deref())
        .map_err(|e| err(Failure::BadConfig, e))?;
    let max = cfg
        .gpu_max
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&modal_type))
        .map_or(0, |(_, v)| *v);
    if step.gpu.count > max {
        return Err(err(
            Failure::BadConfig,
            format!(
                "{} × {modal_type} asked; Modal gives at most {max} per container",
                step.gpu.count
            ),
        ));
    }
    let (data_dir, uploads) = datasets(cfg, step, inputs.data_dir.as_deref())?;
    let paths = Paths {
        result_dir: format!("{}/results", cfg.workdir.trim_end_matches('/')),
        data_dir,
    };
    let serving = step.server.is_some();
    let port = serving.then_some(cfg.port);
    let client_side = if serving {
        &inputs.client
    } else {
        &inputs.engine
    };
    let mut required = Vec::new();
    let mut processes = BTreeMap::new();
    let mut fill = |role: Role, argv: &[String], side: &Side| -> Result<(), BackendError> {
        let filled = values(role, side, port, &paths)
            .fill(argv)
            .map_err(|e| e.into_backend(NAME))?;
        for r in filled.required {
            if !required.contains(&r) {
                required.push(r);
            }
        }
        processes.insert(role.as_str().to_string(), filled.argv);
        Ok(())
    };
    if let Some(p) = &step.server {
        fill(Role::Server, &p.argv, &inputs.engine)?;
    }
    if let Some(w) = &step.warmup {
        fill(Role::Warmup, &w.argv, client_side)?;
    }
    fill(Role::Client, &step.client.argv, client_side)?;

    let bench_s = cap(step.timeouts.benchmark_s, inputs.remaining);
    let mut lifetime = cfg.sandbox_slack_s + bench_s;
    if serving {
        lifetime += cap(step.timeouts.server_ready_s, inputs.remaining);
    }
    if step.warmup.is_some() {
        lifetime += bench_s;
    }
    let timeout_s = lifetime.min(cfg.max_sandbox_s).max(60);

    let mut env: BTreeMap<String, String> = step.env.iter().cloned().collect();
    env.insert("HF_HOME".into(), cfg.hf_cache.path.clone());
    env.insert("PYTHONUNBUFFERED".into(), "1".into());
    let mut volumes = BTreeMap::new();
    volumes.insert(cfg.hf_cache.path.clone(), cfg.hf_cache.name.clone());
    if !step.datasets.is_empty() {
        volumes.insert(cfg.datasets.path.clone(), cfg.datasets.name.clone());
    }
    let py = &inputs.engine.python;
    Ok(SandboxPlan {
        create: CreateRequest {
            app: cfg.app_name.clone(),
            image: inputs.image.clone(),
            sandbox: SandboxSpec {
                gpu: cfg.gpu_string(&modal_type, step.gpu.count.max(1)),
                timeout_s,
                volumes,
                secrets: cfg.secrets.clone(),
                env,
                workdir: cfg.workdir.clone(),
                cpu: cfg.cpu,
                memory_mib: cfg.memory_mib,
                tags: inputs.labels.clone(),
                encrypted_ports: port.into_iter().collect(),
            },
            uploads,
        },
        paths,
        required,
        processes,
        gpu_query: vec![
            "nvidia-smi".into(),
            "--query-gpu=name".into(),
            "--format=csv,noheader".into(),
        ],
        version_query: vec![
            py.clone(),
            "-c".into(),
            "import importlib.metadata as m;print(m.version('vllm'))".into(),
        ],
        modal_type,
    })
}

fn cap(secs: u64, remaining: Option<Duration>) -> u64 {
    remaining.map_or(secs, |r| secs.min(r.as_secs().max(1)))
}

/// `{DATA_DIR}` in the container and the uploads that put the step's files there: one
/// directory per content digest, so equal files are uploaded once and never overwritten.
fn datasets(
    cfg: &ModalConfig,
    step: &StepPlan,
    data_dir: Option<&Path>,
) -> Result<(String, Vec<Upload>), BackendError> {
    let mount = cfg.datasets.path.trim_end_matches('/');
    if step.datasets.is_empty() {
        return Ok((format!("{mount}/none"), Vec::new()));
    }
    let Some(dir) = data_dir else {
        return Ok((format!("{mount}/sets/<sha256 of the files>"), Vec::new()));
    };
    let mut set = Sha256::new();
    let mut files = Vec::new();
    for ds in &step.datasets {
        let p = dir.join(&ds.name);
        let digest = file_sha256(&p).map_err(|e| {
            err(
                Failure::DatasetMissing,
                format!("{} ({} {}): {e}", p.display(), ds.flag, ds.original),
            )
        })?;
        set.update(ds.name.as_bytes());
        set.update([0]);
        set.update(digest.as_bytes());
        files.push((ds.name.clone(), p));
    }
    let digest = hex::encode(set.finalize());
    let rel = format!("sets/{}", &digest[..32]);
    let uploads = files
        .into_iter()
        .map(|(name, p)| Upload {
            volume: cfg.datasets.name.clone(),
            local_path: p.display().to_string(),
            remote_path: format!("/{rel}/{name}"),
        })
        .collect();
    Ok((format!("{mount}/{rel}"), uploads))
}

fn file_sha256(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Whether the GPUs the container reports are what was asked: `count` GPUs whose driver
/// names carry every token of the Modal type (`A100` alone means the 40 GB card).
pub fn gpu_matches(modal_type: &str, count: u32, names: &[String]) -> bool {
    let mut want: Vec<String> = modal_type
        .to_ascii_uppercase()
        .split('-')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if want == ["A100"] {
        want.push("40GB".into());
    }
    names.len() == count.max(1) as usize
        && names.iter().all(|n| {
            let tokens: Vec<String> = n
                .to_ascii_uppercase()
                .split(|c: char| c.is_whitespace() || c == '-')
                .map(String::from)
                .collect();
            want.iter().all(|w| tokens.contains(w))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_the_step_kit_s_with_the_container_s_paths() {
        let a = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let side = Side {
            python: "python3".into(),
            scripts: Some("/scripts".into()),
        };
        let paths = Paths {
            result_dir: "/r".into(),
            data_dir: "/d".into(),
        };
        let argv = a(&[
            "{PYTHON}",
            "{VLLM_SOURCE}/benchmarks/b.py",
            "--host",
            "{HOST}",
            "--port",
            "{PORT}",
        ]);
        let out = values(Role::Server, &side, Some(8000), &paths)
            .fill(&argv)
            .unwrap();
        assert_eq!(
            out.argv,
            a(&[
                "python3",
                "/scripts/benchmarks/b.py",
                "--host",
                SERVER_HOST,
                "--port",
                "8000"
            ])
        );
        assert_eq!(
            out.required,
            ["/scripts/benchmarks/b.py"],
            "checked in the sandbox"
        );
        let client = values(Role::Client, &side, Some(8000), &paths)
            .fill(&argv)
            .unwrap();
        assert_eq!(client.argv[3], CLIENT_HOST);
        // The one error rule: {PORT} without a server, {VLLM_SOURCE} without scripts.
        let e = values(Role::Client, &side, None, &paths)
            .fill(&argv)
            .unwrap_err()
            .into_backend(NAME);
        assert_eq!((e.backend, e.kind), (NAME, Failure::BadConfig));
        let none = Side {
            python: "python3".into(),
            scripts: None,
        };
        let e = values(Role::Server, &none, Some(1), &paths)
            .fill(&argv)
            .unwrap_err();
        assert_eq!(e.failure(), Failure::VllmVersion);
    }

    #[test]
    fn gpu_names_match_by_token() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(gpu_matches(
            "H100",
            2,
            &n(&["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"])
        ));
        assert!(!gpu_matches("H100", 2, &n(&["NVIDIA H100 80GB HBM3"])));
        assert!(!gpu_matches("H100", 1, &n(&["NVIDIA H200"])));
        assert!(!gpu_matches("L4", 1, &n(&["NVIDIA L40S"])));
        assert!(gpu_matches("L40S", 1, &n(&["NVIDIA L40S"])));
        assert!(gpu_matches("A100-80GB", 1, &n(&["NVIDIA A100-SXM4-80GB"])));
        assert!(!gpu_matches("A100", 1, &n(&["NVIDIA A100-SXM4-80GB"])));
        assert!(gpu_matches("A100", 1, &n(&["NVIDIA A100-SXM4-40GB"])));
        assert!(gpu_matches("T4", 1, &n(&["Tesla T4"])));
    }
}
