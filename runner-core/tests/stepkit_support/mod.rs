//! The in-test runtime of the step kit's lifecycle tests: process groups on this host, the
//! stand-in engine as the server, and each test's scratch folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use perf_runner_tests::standin::{CONFIG_ENV, FAULT_ENV, StandinConfig, standin_binary};
use runner_core::backend::{GpuLease, JobEnvs, NoProgress, PreparedEnv};
use runner_core::plan::{ClientBuild, GpuRequest, ProcessPlan, StepPlan};
use runner_core::settings::Timeouts;
use runner_core::spec::{EntryPoint, Mode};
use runner_core::stepkit::{
    AttemptFiles, Endpoint, Exit, Launch, Output, Role, Running, StepPolicy, StepRuntime, Values,
};
use runner_core::{BackendError, Failure, RunContext};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The process groups this runtime started: role, group, whether it was given the GPUs.
pub type Started = Arc<Mutex<Vec<(Role, i32, bool)>>>;

/// Process groups on this host. The server runs the engine build's "python" (the stand-in);
/// clients get the server's pid as `SERVER_PID` (so a test client can kill it).
pub struct Groups {
    started: Started,
    server_env: Vec<(String, String)>,
    dir: PathBuf,
}

struct Group {
    child: Child,
    pgid: i32,
    port: Option<u16>,
}

pub fn alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // SAFETY: signal 0 only checks for existence.
        return unsafe { libc::killpg(pgid, 0) == 0 };
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X"
    })
}

fn signal(pgid: i32, sig: i32) {
    // SAFETY: killpg has no memory-safety preconditions; the group is one we started.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

#[async_trait]
impl Running for Group {
    async fn endpoint(&mut self) -> Option<Endpoint> {
        self.port.map(|port| Endpoint {
            host: "127.0.0.1".into(),
            port,
        })
    }

    async fn try_wait(&mut self) -> Result<Option<Exit>, BackendError> {
        Ok(self.child.try_wait().ok().flatten().map(Exit::from))
    }

    async fn wait(&mut self) -> Result<Exit, BackendError> {
        Ok(self.child.wait().await.map(Exit::from).unwrap_or_default())
    }

    async fn stop(&mut self, grace: Duration) {
        let _ = self.child.try_wait();
        if !alive(self.pgid) {
            return;
        }
        signal(self.pgid, libc::SIGTERM);
        let end = Instant::now() + grace;
        while alive(self.pgid) && Instant::now() < end {
            let _ = self.child.try_wait();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        signal(self.pgid, libc::SIGKILL);
        let _ = self.child.wait().await;
    }
}

#[async_trait]
impl StepRuntime for Groups {
    fn backend(&self) -> &'static str {
        "test"
    }

    fn values(&self, _role: Role, env: &PreparedEnv, port: Option<u16>) -> Values {
        Values {
            python: Some(env.handle.clone()),
            host: Some("127.0.0.1".into()),
            port,
            result_dir: Some(self.dir.join("results").display().to_string()),
            vllm_source: env
                .scripts_dir
                .clone()
                .map(|path| runner_core::stepkit::SourceTree {
                    path,
                    check: runner_core::stepkit::ScriptCheck::OnHost,
                }),
            data_dir: Some(self.dir.join("data").display().to_string()),
            perf_runner: None,
        }
    }

    fn server_port(&self) -> Result<u16, BackendError> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Ok(l.local_addr().unwrap().port())
    }

    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError> {
        let mut cmd = Command::new(&launch.argv[0]);
        cmd.args(&launch.argv[1..])
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if launch.role == Role::Server {
            cmd.envs(self.server_env.iter().cloned());
        } else if let Some((_, pid)) = self
            .started
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.0 == Role::Server)
            .map(|s| (s.0, s.1))
        {
            cmd.env("SERVER_PID", pid.to_string());
        }
        match launch.output {
            Output::Merged(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap();
                cmd.stdout(f.try_clone().unwrap()).stderr(f);
            }
            Output::Split { stdout, stderr } => {
                cmd.stdout(std::fs::File::create(stdout).unwrap())
                    .stderr(std::fs::File::create(stderr).unwrap());
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| BackendError::new("test", Failure::EnvironmentBroken, e.to_string()))?;
        let pgid = child.id().unwrap() as i32;
        self.started
            .lock()
            .unwrap()
            .push((launch.role, pgid, launch.gpus));
        Ok(Box::new(Group {
            child,
            pgid,
            port: launch.port.filter(|_| launch.role == Role::Server),
        }))
    }

    fn host(&self) -> Option<String> {
        Some("this-host".into())
    }
}

/// One test's scratch: a stand-in config, an attempt folder and the runtime.
pub struct Scratch {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub started: Started,
    fault: Option<&'static str>,
}

impl Scratch {
    pub fn new(fault: Option<&'static str>) -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        Scratch {
            _tmp: tmp,
            dir,
            started: Started::default(),
            fault,
        }
    }

    pub fn runtime(&self) -> Groups {
        let config = StandinConfig {
            startup_ms: 200,
            state_dir: Some(self.dir.clone()),
            ..StandinConfig::default()
        };
        let path = self.dir.join("standin.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let mut server_env = vec![(CONFIG_ENV.to_string(), path.display().to_string())];
        server_env.push((FAULT_ENV.into(), self.fault.unwrap_or("none").into()));
        Groups {
            started: self.started.clone(),
            server_env,
            dir: self.dir.clone(),
        }
    }

    pub fn cx(&self) -> RunContext {
        RunContext {
            cancel: CancellationToken::new(),
            deadline: None,
            artifact_dir: self.dir.clone(),
            data_dir: self.dir.join("data"),
            lease: GpuLease::default(),
            labels: BTreeMap::new(),
            progress: Arc::new(NoProgress),
        }
    }

    pub fn files(&self) -> AttemptFiles {
        AttemptFiles::new(&self.dir)
    }

    pub fn pgids(&self, role: Role) -> Vec<i32> {
        let s = self.started.lock().unwrap();
        s.iter()
            .filter(|(r, ..)| *r == role)
            .map(|(_, p, _)| *p)
            .collect()
    }

    /// Every group started is gone.
    pub fn nothing_left(&self) {
        for (role, pgid, _) in self.started.lock().unwrap().iter() {
            assert!(!alive(*pgid), "the {role} group {pgid} is still running");
        }
    }

    /// Wait until `name` exists in the attempt folder.
    pub async fn appears(&self, name: &str) {
        let p = self.dir.join(name);
        let end = Instant::now() + Duration::from_secs(20);
        while !p.exists() {
            assert!(Instant::now() < end, "{name} never appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

pub fn sh(script: &str) -> ProcessPlan {
    ProcessPlan {
        argv: argv(&["sh", "-c", script]),
    }
}

pub fn env(handle: &Path) -> PreparedEnv {
    PreparedEnv {
        identity: "standin".into(),
        handle: handle.display().to_string(),
        engine_version: None,
        digest: None,
        reused: false,
        scripts_dir: None,
    }
}

pub fn envs() -> JobEnvs {
    let e = env(&standin_binary());
    JobEnvs {
        engine: e.clone(),
        client: e,
    }
}

/// A serving step: the stand-in server, an `sh` warm-up and an `sh` client.
pub fn step(warmup: Option<&str>, client: &str) -> StepPlan {
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
                "standin/model",
            ]),
        }),
        client: sh(client),
        warmup: warmup.map(sh),
        client_build: ClientBuild::Fixed(runner_core::Variant::Human),
        env: Vec::new(),
        datasets: Vec::new(),
        gpu: GpuRequest {
            kind: None,
            count: 1,
        },
        timeouts: Timeouts {
            prepare_s: 60,
            server_ready_s: 30,
            benchmark_s: 30,
        },
        result_file: None,
        unclassified_flags: Vec::new(),
        replaced_flags: Vec::new(),
    }
}

pub fn policy() -> StepPolicy {
    StepPolicy {
        stop_grace: Duration::from_secs(2),
        health_poll: Duration::from_millis(50),
        port_attempts: 1,
        log_tail_lines: 40,
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
