//! The step kit's lifecycle over real processes: a small runtime of process groups on this
//! host, the stand-in engine as the server (real HTTP, real `/health`, real faults) and `sh -c`
//! clients. What is asserted is the lifecycle's behaviour: what runs, what is stopped, what
//! fails with which code.

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
    run_step,
};
use runner_core::{BackendError, Failure, RunContext};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The process groups this runtime started: role, group, whether it was given the GPUs.
type Started = Arc<Mutex<Vec<(Role, i32, bool)>>>;

/// Process groups on this host. The server runs the engine build's "python" (the stand-in);
/// clients get the server's pid as `SERVER_PID` (so a test client can kill it).
struct Groups {
    started: Started,
    server_env: Vec<(String, String)>,
    dir: PathBuf,
}

struct Group {
    child: Child,
    pgid: i32,
    port: Option<u16>,
}

fn alive(pgid: i32) -> bool {
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
struct Scratch {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    started: Started,
    fault: Option<&'static str>,
}

impl Scratch {
    fn new(fault: Option<&'static str>) -> Scratch {
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

    fn runtime(&self) -> Groups {
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

    fn cx(&self) -> RunContext {
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

    fn files(&self) -> AttemptFiles {
        AttemptFiles::new(&self.dir)
    }

    fn pgids(&self, role: Role) -> Vec<i32> {
        let s = self.started.lock().unwrap();
        s.iter()
            .filter(|(r, ..)| *r == role)
            .map(|(_, p, _)| *p)
            .collect()
    }

    /// Every group started is gone.
    fn nothing_left(&self) {
        for (role, pgid, _) in self.started.lock().unwrap().iter() {
            assert!(!alive(*pgid), "the {role} group {pgid} is still running");
        }
    }

    /// Wait until `name` exists in the attempt folder.
    async fn appears(&self, name: &str) {
        let p = self.dir.join(name);
        let end = Instant::now() + Duration::from_secs(20);
        while !p.exists() {
            assert!(Instant::now() < end, "{name} never appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn argv(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn sh(script: &str) -> ProcessPlan {
    ProcessPlan {
        argv: argv(&["sh", "-c", script]),
    }
}

fn env(handle: &Path) -> PreparedEnv {
    PreparedEnv {
        identity: "standin".into(),
        handle: handle.display().to_string(),
        engine_version: None,
        digest: None,
        reused: false,
        scripts_dir: None,
    }
}

fn envs() -> JobEnvs {
    let e = env(&standin_binary());
    JobEnvs {
        engine: e.clone(),
        client: e,
    }
}

/// A serving step: the stand-in server, an `sh` warm-up and an `sh` client.
fn step(warmup: Option<&str>, client: &str) -> StepPlan {
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

fn policy() -> StepPolicy {
    StepPolicy {
        stop_grace: Duration::from_secs(2),
        health_poll: Duration::from_millis(50),
        port_attempts: 1,
        log_tail_lines: 40,
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test]
async fn a_step_runs_server_warmup_and_client_and_stops_the_server() {
    let s = Scratch::new(None);
    let client = "echo measured; echo '{}' > {RESULT_DIR}/result.json";
    let step = step(Some("echo warm; kill -0 $SERVER_PID"), client);
    let out = run_step(&s.runtime(), &envs(), &step, &s.cx(), &policy())
        .await
        .unwrap();
    let f = s.files();
    assert_eq!(out.exit_code, Some(0), "{}", read(&out.client_stderr));
    assert_eq!(out.client_stdout, f.client_stdout());
    assert_eq!(read(&out.client_stdout), "measured\n");
    assert_eq!(read(&f.warmup_stdout()), "warm\n");
    assert_eq!(out.result_files, [f.results_dir().join("result.json")]);
    assert_eq!(out.server_log, Some(f.server_log()));
    assert!(read(&f.server_log()).contains("Uvicorn running"));
    assert!(
        read(&f.server_log()).contains("GET /health"),
        "probed over HTTP"
    );
    assert_eq!(out.host.as_deref(), Some("this-host"));
    let commands = read(&f.commands());
    let roles: Vec<&str> = commands
        .lines()
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(roles, ["server", "warmup", "client"], "{commands}");
    assert!(!commands.contains("{PORT}") && !commands.contains("{PYTHON}"));
    // Only the server uses the GPUs of a serving step.
    let gpus: Vec<(Role, bool)> = s
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _, g)| (*r, *g))
        .collect();
    assert_eq!(
        gpus,
        [
            (Role::Server, true),
            (Role::Warmup, false),
            (Role::Client, false)
        ]
    );
    s.nothing_left();
}

#[tokio::test]
async fn a_failed_warmup_stops_the_step_before_the_measured_client() {
    let s = Scratch::new(None);
    let step = step(
        Some("echo 'warm-up broke' >&2; exit 3"),
        "touch {RESULT_DIR}/../client-ran; echo '{}' > {RESULT_DIR}/result.json",
    );
    let out = run_step(&s.runtime(), &envs(), &step, &s.cx(), &policy())
        .await
        .unwrap();
    let f = s.files();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.client_stdout, f.warmup_stdout());
    assert!(AttemptFiles::is_warmup_stdout(&out.client_stdout));
    assert_eq!(read(&out.client_stderr), "warm-up broke\n");
    assert!(out.result_files.is_empty());
    assert!(
        !s.dir.join("client-ran").exists(),
        "the measured client ran"
    );
    assert!(s.pgids(Role::Client).is_empty());
    assert!(!read(&f.commands()).contains("client:"));
    s.nothing_left();
}

#[tokio::test]
async fn a_server_that_dies_before_ready_is_server_failed_at_once() {
    let s = Scratch::new(Some("crash_at_start"));
    let step = step(Some("true"), "true");
    let (rt, job) = (s.runtime(), envs());
    let t = Instant::now();
    let e = run_step(&rt, &job, &step, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::ServerFailed, "{e}");
    assert!(e.message.contains("before it was ready"), "{e}");
    assert!(
        e.message.contains("Engine core initialization failed"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "liveness, not the deadline"
    );
    assert!(s.pgids(Role::Warmup).is_empty() && s.pgids(Role::Client).is_empty());
    s.nothing_left();
}

#[tokio::test]
async fn a_server_that_dies_during_the_client_is_server_failed_whatever_the_client_says() {
    // The client kills the server and waits, or kills it and exits 0 at once: either way
    // nothing it measured counts.
    for client in [
        "kill -9 $SERVER_PID; sleep 30",
        "kill -9 $SERVER_PID; sleep 0.3; exit 0",
    ] {
        let s = Scratch::new(None);
        let mut step = step(None, client);
        step.warmup = None;
        let (rt, job) = (s.runtime(), envs());
        let t = Instant::now();
        let e = run_step(&rt, &job, &step, &s.cx(), &policy())
            .await
            .unwrap_err();
        assert_eq!(e.kind, Failure::ServerFailed, "{client}: {e}");
        assert!(
            e.message.contains("by signal 9 while the client ran"),
            "{e}"
        );
        assert!(e.message.contains("Uvicorn running"), "the log's tail: {e}");
        assert!(t.elapsed() < Duration::from_secs(15));
        s.nothing_left();
    }
}

#[tokio::test]
async fn phases_past_their_limit_time_out_and_are_stopped() {
    // A server that never gets ready.
    let s = Scratch::new(Some("hang"));
    let mut st = step(None, "true");
    st.timeouts.server_ready_s = 1;
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(
        e.message.contains("not ready within server_ready_s = 1 s"),
        "{e}"
    );
    s.nothing_left();

    // A client past benchmark_s, with a child of its own.
    let s = Scratch::new(None);
    let mut st = step(None, "sleep 30 & sleep 30");
    st.timeouts.benchmark_s = 1;
    let (rt, job) = (s.runtime(), envs());
    let t = Instant::now();
    let e = run_step(&rt, &job, &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(
        e.message.contains("client ran past benchmark_s = 1 s"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    s.nothing_left();

    // The attempt's deadline comes first.
    let s = Scratch::new(None);
    let st = step(Some("sleep 30"), "true");
    let mut cx = s.cx();
    cx.deadline = Some(Instant::now() + Duration::from_secs(3));
    let e = run_step(&s.runtime(), &envs(), &st, &cx, &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(
        e.message
            .contains("warm-up ran past the attempt's deadline"),
        "{e}"
    );
    s.nothing_left();
}

#[tokio::test]
async fn cancellation_ends_any_phase_and_leaves_nothing_running() {
    // While the client runs (its background child included).
    let s = Scratch::new(None);
    let mut st = step(None, "sleep 30 & touch {RESULT_DIR}/../started; wait");
    st.warmup = None;
    let cx = s.cx();
    let cancel = cx.cancel.clone();
    let (rt, job, pol) = (s.runtime(), envs(), policy());
    let e = tokio::join!(run_step(&rt, &job, &st, &cx, &pol), async {
        s.appears("started").await;
        cancel.cancel();
    })
    .0
    .unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(e.message.contains("during the client"), "{e}");
    s.nothing_left();

    // While the server starts.
    let s = Scratch::new(Some("hang"));
    let cx = s.cx();
    let cancel = cx.cancel.clone();
    let (rt, job, pol) = (s.runtime(), envs(), policy());
    let st = step(Some("true"), "true");
    let e = tokio::join!(run_step(&rt, &job, &st, &cx, &pol), async {
        s.appears("commands.txt").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    })
    .0
    .unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert_eq!(s.pgids(Role::Server).len(), 1);
    s.nothing_left();

    // Before anything started.
    let s = Scratch::new(None);
    let cx = s.cx();
    cx.cancel.cancel();
    let e = run_step(&s.runtime(), &envs(), &step(None, "true"), &cx, &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled);
    assert!(s.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_step_that_cannot_be_filled_starts_nothing() {
    let s = Scratch::new(None);
    // {VLLM_SOURCE} without a source tree: vllm_version, before the server loads anything.
    let st = step(
        None,
        "{PYTHON} {VLLM_SOURCE}/benchmarks/benchmark_serving.py",
    );
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::VllmVersion, "{e}");
    assert!(s.started.lock().unwrap().is_empty());

    // {PORT} without a server: bad_config.
    let mut st = step(None, "echo {PORT}");
    st.server = None;
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");

    // A dataset the step names and the data dir lacks.
    let mut st = step(None, "true");
    st.datasets.push(runner_core::plan::DatasetFile {
        flag: "--dataset-path".into(),
        original: "/data/sharegpt.json".into(),
        name: "sharegpt.json".into(),
    });
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::DatasetMissing, "{e}");
    assert!(s.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_offline_step_runs_its_script_with_the_gpus_and_no_server() {
    let s = Scratch::new(None);
    let mut st = step(None, "echo offline; echo '{}' > {RESULT_DIR}/r.json");
    st.server = None;
    st.mode = Mode::Throughput;
    let out = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.server_log, None);
    assert_eq!(out.result_files.len(), 1);
    assert!(!s.files().server_log().exists());
    let gpus: Vec<(Role, bool)> = s
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _, g)| (*r, *g))
        .collect();
    assert_eq!(
        gpus,
        [(Role::Client, true)],
        "the offline script uses the GPUs"
    );
    // A failing script is output, not an error.
    let mut st = st.clone();
    st.client = sh("exit 2");
    let out = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(2));
    s.nothing_left();
}
