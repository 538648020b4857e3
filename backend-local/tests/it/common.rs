//! Shared helpers: a real wheel of a fake `vllm`, a fake `nvidia-smi`, a tiny HTTP server,
//! contexts and step plans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use backend_local::LocalConfig;
use runner_core::backend::{GpuDevice, GpuLease, JobEnvs, PreparedEnv, ProgressSink};
use runner_core::plan::{ClientBuild, GpuRequest, ProcessPlan, StepPlan};
use runner_core::settings::Timeouts;
use runner_core::spec::EntryPoint;
use runner_core::{Artifact, BuildSpec, Mode, RunContext, Variant};
use tokio_util::sync::CancellationToken;

/// The commit the default fake wheel claims to be built from.
pub const COMMIT: &str = "abcdef1234567890abcdef1234567890abcdef12";
/// Its version.
pub const VERSION: &str = "0.6.3.dev1+gabcdef12";

const API_SERVER: &str = include_str!("fake/api_server.py");
const CLI_MAIN: &str = include_str!("fake/cli_main.py");
const MAKE_WHEEL: &str = include_str!("fake/make_wheel.py");
/// The module the agent patches in tests.
pub const TARGET_PY: &str =
    "def answer():\n    return 41\n\n\ndef name():\n    return 'baseline'\n";

/// Build a real wheel of the fake engine into `dir`.
pub fn fake_wheel(dir: &Path, version: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let files = serde_json::json!({
        "vllm/__init__.py": format!("__version__ = {version:?}\n"),
        "vllm/target.py": TARGET_PY,
        "vllm/entrypoints/__init__.py": "",
        "vllm/entrypoints/openai/__init__.py": "",
        "vllm/entrypoints/openai/api_server.py": API_SERVER,
        "vllm/entrypoints/cli/__init__.py": "",
        "vllm/entrypoints/cli/main.py": CLI_MAIN,
    });
    let script = dir.join("make_wheel.py");
    std::fs::write(&script, MAKE_WHEEL).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(version)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(files.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A scratch area: cache, wheels, artifacts, data, state files of the fake engine.
pub struct Scratch {
    pub tmp: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let s = Scratch {
            tmp: tempfile::tempdir().unwrap(),
        };
        for d in ["cache", "wheels", "art", "data", "state"] {
            std::fs::create_dir_all(s.path(d)).unwrap();
        }
        s
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    /// An offline config with the cache here.
    pub fn config(&self) -> LocalConfig {
        LocalConfig {
            cache_dir: Some(self.path("cache")),
            find_links: Some(self.path("wheels")),
            nvidia_smi: self.path("no-nvidia-smi"),
            stop_grace_ms: 2_000,
            health_poll_ms: 50,
            ..LocalConfig::default()
        }
    }
    pub fn wheel(&self) -> PathBuf {
        fake_wheel(&self.path("wheels"), VERSION)
    }
    pub fn cx(&self) -> RunContext {
        RunContext {
            cancel: CancellationToken::new(),
            deadline: None,
            artifact_dir: self.path("art"),
            data_dir: self.path("data"),
            lease: GpuLease::default(),
            labels: BTreeMap::new(),
            progress: Arc::new(Lines::default()),
        }
    }
    /// A pid the fake engine wrote to the state dir.
    pub fn pid(&self, name: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.path("state").join(name)).ok()?;
        text.trim().parse().ok()
    }
    /// The environment the fake engine saw.
    pub fn env_of(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("state").join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    }
    /// A fake `nvidia-smi` answering from `gpus.csv` here (tests rewrite it).
    pub fn fake_smi(&self, csv: &str) -> PathBuf {
        perf_runner_tests::fake_gpus::fake_nvidia_smi(self.tmp.path(), csv).unwrap()
    }
}

/// Two H100s as a real `nvidia-smi` prints them, with `used` MiB in use on each.
pub fn two_h100(used: u64) -> String {
    format!(
        "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, {used}\n\
         1, GPU-bbbbbbbb-1111-1111-1111-111111111111, NVIDIA H100 80GB HBM3, 81559, {used}\n"
    )
}

/// A fake GPU lease (for pinning tests without nvidia-smi).
pub fn lease_of(indices: &[u32]) -> GpuLease {
    GpuLease {
        id: "test".into(),
        devices: indices
            .iter()
            .map(|&index| GpuDevice {
                index,
                uuid: format!("GPU-{index}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_mib: 81559,
            })
            .collect(),
    }
}

/// A build of the fake wheel.
pub fn build(variant: Variant, wheel: &Path) -> BuildSpec {
    BuildSpec {
        variant,
        commit: COMMIT.into(),
        artifacts: vec![
            Artifact::Image {
                reference: "registry.invalid/vllm:x".into(),
            },
            Artifact::Wheel {
                location: wheel.display().to_string(),
            },
        ],
        patch: None,
        identity: format!("vllm-{COMMIT}-{}", variant.as_str()),
    }
}

pub fn envs(env: &PreparedEnv) -> JobEnvs {
    JobEnvs {
        engine: env.clone(),
        client: env.clone(),
    }
}

fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// A serving step against the fake engine, with a warm-up; `env` goes to both processes.
pub fn serving_step(scratch: &Scratch, env: &[(&str, &str)]) -> StepPlan {
    let client = |n: &str| {
        argv(&[
            "{PYTHON}",
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "serve",
            "--host",
            "{HOST}",
            "--port",
            "{PORT}",
            "--model",
            "tiny",
            "--num-prompts",
            n,
        ])
    };
    let mut measured = client("10");
    measured.extend(argv(&[
        "--save-result",
        "--result-dir",
        "{RESULT_DIR}",
        "--result-filename",
        "result.json",
    ]));
    StepPlan {
        mode: Mode::Serving,
        entry: EntryPoint::VllmBench {
            subcommand: "serve".into(),
        },
        server: Some(ProcessPlan {
            argv: argv(&[
                "{PYTHON}",
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--host",
                "{HOST}",
                "--port",
                "{PORT}",
                "--model",
                "tiny",
            ]),
        }),
        client: ProcessPlan { argv: measured },
        warmup: Some(ProcessPlan { argv: client("2") }),
        client_build: ClientBuild::Fixed(Variant::Human),
        env: step_env(scratch, env),
        datasets: Vec::new(),
        gpu: GpuRequest {
            kind: None,
            count: 1,
        },
        timeouts: Timeouts {
            prepare_s: 60,
            server_ready_s: 20,
            benchmark_s: 20,
        },
        result_file: Some("result.json".into()),
        unclassified_flags: Vec::new(),
        replaced_flags: Vec::new(),
    }
}

/// An offline throughput step: the script is the engine; no server.
pub fn offline_step(scratch: &Scratch, env: &[(&str, &str)]) -> StepPlan {
    let mut s = serving_step(scratch, env);
    s.mode = Mode::Throughput;
    s.entry = EntryPoint::VllmBench {
        subcommand: "throughput".into(),
    };
    s.server = None;
    s.warmup = None;
    s.client_build = ClientBuild::SameAsVariant;
    s.client.argv = argv(&[
        "{PYTHON}",
        "-m",
        "vllm.entrypoints.cli.main",
        "bench",
        "throughput",
        "--model",
        "tiny",
        "--output-json",
        "{RESULT_DIR}/result.json",
    ]);
    s
}

fn step_env(scratch: &Scratch, env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![(
        "FAKE_VLLM_STATE_DIR".to_string(),
        scratch.path("state").display().to_string(),
    )];
    v.extend(env.iter().map(|(k, val)| (k.to_string(), val.to_string())));
    v
}

/// Whether a process is gone (no such pid, or a zombie awaiting its reaper).
pub fn gone(pid: i32) -> bool {
    match backend_local::process::proc_stat(&pid.to_string()) {
        None => true,
        Some((state, _)) => state == 'Z' || state == 'X',
    }
}

/// A progress sink that keeps the lines (and prints them).
#[derive(Debug, Default)]
pub struct Lines(pub Mutex<Vec<String>>);

impl ProgressSink for Lines {
    fn event(&self, phase: &str, message: &str) {
        println!("[{phase}] {message}");
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("{phase}: {message}"));
        }
    }
}

/// A tiny HTTP server on 127.0.0.1 answering `files` by path and 404 otherwise.
pub async fn http_server(files: BTreeMap<String, Vec<u8>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let files = Arc::new(files);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let files = files.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    port
}
