//! Shared helpers of the end-to-end tests: a world of stand-in wheels (a baseline and a
//! "human" build) with a config for the local backend, the `perf-runner` binary run in it, and
//! looks at its store and at the processes it left.
#![allow(dead_code)]

pub mod docker;
pub mod pty;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use perf_runner_tests::standin::{
    Fault, StandinBuild, StandinConfig, build_standin_wheel, standin_binary,
};
use runner_core::record::{AttemptRecord, JobStatus, RunId};
use runner_core::store::Store;

pub const HUMAN: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
pub const PARENT: &str = "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a";
pub const SERVE: &str = "vllm bench serve --model m/tiny --dataset-name random --random-input-len 32 \
                         --random-output-len 24 --num-prompts 12 --ignore-eos --port 8000";

/// A temporary folder with the two builds' wheels and `perf-runner.toml`.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    /// Wheels for the baseline (speed 1.0) and the human build (`human_speed`), and a config
    /// that points the local backend at them.
    pub fn new(human_speed: f64, human_fault: Option<Fault>) -> World {
        World::with_faults(None, human_speed, human_fault)
    }

    /// As [`World::new`], with a fault in the baseline build too.
    pub fn with_faults(
        base_fault: Option<Fault>,
        human_speed: f64,
        human_fault: Option<Fault>,
    ) -> World {
        World::with_configs(|sub, c| {
            if sub == "wb" {
                c.fault = base_fault;
            } else {
                c.speed = human_speed;
                c.fault = human_fault;
            }
        })
    }

    /// Both builds' stand-in configs adjusted by `tweak` (called with `wb` for the baseline,
    /// `wh` for the human build, after the defaults of these tests are set).
    pub fn with_configs(tweak: impl Fn(&str, &mut StandinConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let bin = standin_binary();
        let wheel = |sub: &str, version: &str| -> PathBuf {
            let out = dir.path().join(sub);
            std::fs::create_dir_all(&out).unwrap();
            let mut config = StandinConfig {
                version: version.into(),
                speed: 1.0,
                startup_ms: 150,
                log_interval_ms: 100,
                state_dir: Some(dir.path().join(format!("state-{sub}"))),
                ..StandinConfig::default()
            };
            tweak(sub, &mut config);
            build_standin_wheel(
                &out,
                &StandinBuild {
                    config,
                    binary: bin.clone(),
                },
            )
            .unwrap()
        };
        let base = wheel("wb", "0.6.3.dev1+gf508e03");
        let human = wheel("wh", "0.6.3.dev2+ge358053");
        let toml = format!(
            "[local]\ncache_dir = {cache:?}\ncpu_only = true\nstop_grace_ms = 2000\n[local.wheels]\nbaseline = {base:?}\nhuman = {human:?}\n\
             [engine]\nretry_base_s = 0.05\nretry_max_s = 0.1\nmax_attempts = 3\nservers = \"warm\"\n[plan]\nwarmup_prompts = 2\n\
             [timeouts]\nserver_ready_s = 20\nbenchmark_s = 60\nprepare_s = 300\n",
            cache = dir.path().join("cache"),
        );
        std::fs::write(dir.path().join("perf-runner.toml"), toml).unwrap();
        World { dir }
    }

    /// Add a `[docker]` section: these images for the baseline and human builds, never
    /// pulled, the Hugging Face cache in the world, no GPUs (`cpu_only`: the stand-in runs on
    /// CPUs, and the host may have no `nvidia-smi`).
    pub fn use_docker(&self, baseline: &str, human: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("perf-runner.toml"))
            .unwrap();
        write!(
            f,
            "[docker]\npull = \"never\"\ncpu_only = true\nhf_cache = {:?}\n[docker.images]\nbaseline = {baseline:?}\nhuman = {human:?}\n",
            self.path("hf-cache")
        )
        .unwrap();
    }

    /// A fresh server for every job (`engine.servers = "restart"`) instead of warm servers.
    pub fn restart_servers(&self) {
        let p = self.path("perf-runner.toml");
        let toml = std::fs::read_to_string(&p).unwrap();
        assert!(toml.contains("servers = \"warm\""));
        std::fs::write(
            &p,
            toml.replace("servers = \"warm\"", "servers = \"restart\""),
        )
        .unwrap();
    }

    /// Measure with the engine's own serving client (`[client] kind = "engine"`), e.g. for
    /// the stand-in client's injected faults.
    pub fn use_engine_client(&self) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("perf-runner.toml"))
            .unwrap();
        writeln!(f, "[client]\nkind = \"engine\"").unwrap();
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `perf-runner --store <world>/results.sqlite`, run in the world's folder.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_perf-runner"));
        c.current_dir(self.dir.path())
            .env_remove("PERF_RUNNER_LOG")
            .args(["--store", self.path("results.sqlite").to_str().unwrap()]);
        c
    }

    /// The argv of an ad-hoc `run` of the human commit, artifacts and data in the world.
    pub fn run_args(&self) -> Vec<String> {
        let mut v: Vec<String> = ["run", "--commit", HUMAN, "--parent", PARENT]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(["--perf-command".to_string(), SERVE.to_string()]);
        v.extend([
            "--artifacts".to_string(),
            self.path("art").display().to_string(),
            "--data-dir".to_string(),
            self.path("data").display().to_string(),
        ]);
        v
    }

    pub fn run(&self, extra: &[&str]) -> Output {
        self.cmd()
            .args(self.run_args())
            .args(extra)
            .output()
            .unwrap()
    }

    /// `run` started in the background, its output discarded.
    pub fn spawn_run(&self, extra: &[&str]) -> Child {
        self.cmd()
            .args(self.run_args())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `batch --resume RUN` started in the background, its output piped.
    pub fn spawn_resume(&self, run: &RunId) -> Child {
        self.cmd()
            .args(["batch", "--resume", &run.0])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn store(&self) -> Store {
        Store::open(&self.path("results.sqlite")).unwrap()
    }

    pub fn only_run(&self) -> RunId {
        let runs = self.store().runs().unwrap();
        assert_eq!(runs.len(), 1);
        runs[0].id.clone()
    }

    pub fn attempts(&self, run: &RunId) -> Vec<AttemptRecord> {
        self.store().attempts(run).unwrap()
    }

    pub fn jobs(&self, run: &RunId) -> Vec<(runner_core::record::JobKey, JobStatus)> {
        self.store().jobs(run).unwrap()
    }

    /// `perf-runner gc RUN --grace-s 2`, which must succeed.
    pub fn gc(&self, run: &RunId) {
        let o = self
            .cmd()
            .args(["gc", &run.0, "--grace-s", "2"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Processes whose command line mentions `dir` (the stand-in runs from wheels under it).
pub fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) && !cmd.contains("perf-runner") {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Processes labelled with the run id in their environment (`PERF_RUNNER_RUN_ID`), not
/// zombies.
pub fn labelled(run: &RunId) -> Vec<String> {
    let needle = format!("PERF_RUNNER_RUN_ID={}", run.0);
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X");
        if !zombie && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Wait until `cond` holds, polling; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {limit:?}");
}

/// Wait until the world's only run has at least `n` recorded attempts.
pub fn wait_for_attempts(w: &World, n: usize, limit: Duration) {
    wait_until(&format!("{n} attempts"), limit, || {
        let Ok(runs) = w.store().runs() else {
            return false;
        };
        runs.first()
            .is_some_and(|r| w.store().attempts(&r.id).map(|a| a.len()).unwrap_or(0) >= n)
    });
}

/// Wait until the world's only run exists; its id.
pub fn wait_for_run(w: &World, limit: Duration) -> RunId {
    wait_until("the run in the store", limit, || {
        w.path("results.sqlite").exists() && w.store().runs().is_ok_and(|r| !r.is_empty())
    });
    w.only_run()
}

/// Wait for a child to exit; panics after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            t.elapsed() < limit,
            "pid {} still running after {limit:?}",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send `sig` to a child.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, sig) };
}
