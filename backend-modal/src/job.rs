//! A [`StepPlan`] made concrete for one Modal sandbox: placeholders filled for the container,
//! the pinned GPU string, volumes, secrets, dataset uploads and deadlines. Also how a granted
//! GPU is checked against the one asked for.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runner_core::plan::StepPlan;
use runner_core::stepkit::{ScriptCheck, SourceTree, Values};
use runner_core::{BackendError, Failure};
use sha2::{Digest, Sha256};

use crate::NAME;
use crate::config::ModalConfig;
use crate::protocol::{ImageRecipe, ProcessSpec, RunRequest, SandboxSpec, ServerSpec, Upload};

/// The address the server listens on and the client connects to, inside the container.
pub const HOST: &str = "127.0.0.1";

/// The per-build values placeholders take in the container.
#[derive(Debug, Clone)]
pub struct Side {
    /// `{PYTHON}`.
    pub python: String,
    /// `{VLLM_SOURCE}`, when the image has the build's scripts.
    pub scripts: Option<String>,
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

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// The run request of `step` (see the module docs).
pub fn run_request(
    cfg: &ModalConfig,
    step: &StepPlan,
    inputs: &RunInputs,
) -> Result<RunRequest, BackendError> {
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
    let result_dir = format!("{}/results", cfg.workdir.trim_end_matches('/'));
    let (data_dir, uploads) = datasets(cfg, step, inputs.data_dir.as_deref())?;
    let fill = |argv: &[String], side: &Side, required: &mut Vec<String>| {
        fill_argv(
            cfg,
            argv,
            side,
            &result_dir,
            &data_dir,
            step.server.is_some(),
            required,
        )
    };
    let mut required = Vec::new();
    let server_side = &inputs.engine;
    let client_side = if step.server.is_some() {
        &inputs.client
    } else {
        &inputs.engine
    };
    let server = match &step.server {
        Some(p) => Some(ServerSpec {
            argv: fill(&p.argv, server_side, &mut required)?,
            probe_argv: vec![
                server_side.python.clone(),
                "-c".into(),
                format!(
                    "import urllib.request;urllib.request.urlopen('http://{HOST}:{}/health',timeout=2)",
                    cfg.port
                ),
            ],
            ready_timeout_s: cap(step.timeouts.server_ready_s, inputs.remaining),
            poll_s: cfg.health_poll_s.clamp(0.05, 60.0),
        }),
        None => None,
    };
    let bench_s = cap(step.timeouts.benchmark_s, inputs.remaining);
    let warmup = match &step.warmup {
        Some(w) => Some(ProcessSpec {
            argv: fill(&w.argv, client_side, &mut required)?,
            timeout_s: bench_s,
        }),
        None => None,
    };
    let client = ProcessSpec {
        argv: fill(&step.client.argv, client_side, &mut required)?,
        timeout_s: bench_s,
    };
    let mut lifetime = cfg.sandbox_slack_s + bench_s;
    lifetime += server.as_ref().map_or(0, |s| s.ready_timeout_s);
    lifetime += warmup.as_ref().map_or(0, |w| w.timeout_s);
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
    Ok(RunRequest {
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
        },
        uploads,
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
        require_files: required,
        result_dir,
        server,
        warmup,
        client,
        collect_argv: vec![
            py.clone(),
            "-c".into(),
            "import base64,json,os,sys;d=sys.argv[1];print(json.dumps({n:base64.b64encode(open(os.path.join(d,n),'rb').read()).decode() for n in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d,n))}))".into(),
        ],
    })
}

fn cap(secs: u64, remaining: Option<Duration>) -> u64 {
    remaining.map_or(secs, |r| secs.min(r.as_secs().max(1)))
}

/// Fill a process's argv through the step kit: the container's paths, `{PORT}` only with a
/// server, and `{VLLM_SOURCE}` scripts collected in `required` (checked in the sandbox).
fn fill_argv(
    cfg: &ModalConfig,
    argv: &[String],
    side: &Side,
    result_dir: &str,
    data_dir: &str,
    serving: bool,
    required: &mut Vec<String>,
) -> Result<Vec<String>, BackendError> {
    let values = Values {
        python: Some(side.python.clone()),
        host: Some(HOST.to_string()),
        port: serving.then_some(cfg.port),
        result_dir: Some(result_dir.to_string()),
        vllm_source: side.scripts.clone().map(|path| SourceTree {
            path,
            check: ScriptCheck::InImage,
        }),
        data_dir: Some(data_dir.to_string()),
        // The sandbox's image has no perf-runner: plans for Modal keep the engine's client.
        perf_runner: None,
    };
    let filled = values.fill(argv).map_err(|e| e.into_backend(NAME))?;
    required.extend(filled.required);
    Ok(filled.argv)
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
        let cfg = ModalConfig::default();
        let a = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let side = Side {
            python: "python3".into(),
            scripts: Some("/scripts".into()),
        };
        let mut required = Vec::new();
        let argv = a(&[
            "{PYTHON}",
            "{VLLM_SOURCE}/benchmarks/b.py",
            "--port",
            "{PORT}",
        ]);
        let out = fill_argv(&cfg, &argv, &side, "/r", "/d", true, &mut required).unwrap();
        assert_eq!(
            out,
            a(&[
                "python3",
                "/scripts/benchmarks/b.py",
                "--port",
                &cfg.port.to_string()
            ])
        );
        assert_eq!(
            required,
            ["/scripts/benchmarks/b.py"],
            "checked in the sandbox"
        );
        // The one error rule: {PORT} without a server, {VLLM_SOURCE} without scripts.
        let e = fill_argv(&cfg, &argv, &side, "/r", "/d", false, &mut required).unwrap_err();
        assert_eq!((e.backend, e.kind), (NAME, Failure::BadConfig));
        let none = Side {
            python: "python3".into(),
            scripts: None,
        };
        let e = fill_argv(&cfg, &argv, &none, "/r", "/d", true, &mut required).unwrap_err();
        assert_eq!(e.kind, Failure::VllmVersion);
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
