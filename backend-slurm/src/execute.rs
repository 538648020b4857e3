//! `execute`: the step kit's lifecycle ([`runner_core::stepkit::run_step`]) over job steps of
//! the task's allocation. Every process is `srun --jobid=<allocation> --overlap …` (the
//! variants' servers and clients share the allocation's node and GPUs, as on a local host);
//! the `srun` runs here in its own process group, its output going to the attempt's files.
//! A step's end is judged by Slurm, not by `srun`'s exit status alone (it was seen exiting 0 on
//! a node failure): the allocation's state and slurmstepd's lines decide. Stopping a step is
//! `scancel --signal=TERM <job>.<step>`, the grace period, then `scancel` and SIGKILL to `srun`.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_local::process::{Spawned, free_port};
use backend_local::step::child_env;
use backend_local::venv;
use runner_core::backend::{GpuLease, JobEnvs, PreparedEnv};
use runner_core::plan::StepPlan;
use runner_core::stepkit::{
    AttemptFiles, Endpoint, Exit, Launch, Output, Role, Running, ScriptCheck, SourceTree,
    StepPolicy, StepRuntime, Values, run_step,
};
use runner_core::{BackendError, Failure, RunContext, StepOutput};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::alloc::{Alloc, Granted, JOB_PREFIX};
use crate::config::SlurmConfig;
use crate::sched::{self, err};

static STEP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The lifecycle's settings from a Slurm configuration.
pub fn policy(cfg: &SlurmConfig) -> StepPolicy {
    StepPolicy {
        stop_grace: cfg.stop_grace(),
        health_poll: Duration::from_millis(cfg.health_poll_ms.max(10)),
        port_attempts: cfg.port_attempts.max(1),
        log_tail_lines: cfg.log_tail_lines,
    }
}

/// Run one step inside the allocation (see the module docs).
pub async fn execute(
    cfg: &SlurmConfig,
    alloc: Arc<Alloc>,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> Result<StepOutput, BackendError> {
    let serving = step.server.is_some();
    venv::check_envs(crate::NAME, envs, serving)?;
    let _ = std::fs::create_dir_all(&cx.artifact_dir);
    let rt = Steps::new(cfg, alloc, step, cx);
    run_step(&rt, envs, step, cx, &policy(cfg)).await
}

/// The Slurm primitives of one step: job steps of the task's allocation.
pub struct Steps<'a> {
    cfg: &'a SlurmConfig,
    alloc: Arc<Alloc>,
    step: &'a StepPlan,
    cx: &'a RunContext,
}

impl<'a> Steps<'a> {
    /// The primitives for `step` in `cx`, inside `alloc`.
    pub fn new(
        cfg: &'a SlurmConfig,
        alloc: Arc<Alloc>,
        step: &'a StepPlan,
        cx: &'a RunContext,
    ) -> Steps<'a> {
        Steps {
            cfg,
            alloc,
            step,
            cx,
        }
    }

    /// Write what Slurm granted next to the attempt's files (`slurm.json`).
    fn record(&self, g: &Granted, role: Role, name: &str) {
        let path = AttemptFiles::of(self.cx).backend_file("slurm.json");
        let mut doc = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .unwrap_or_else(|| serde_json::json!({ "steps": [] }));
        doc["allocation"] = serde_json::to_value(g).unwrap_or_default();
        doc["allocations"] = serde_json::to_value(self.alloc.history()).unwrap_or_default();
        if let Some(steps) = doc["steps"].as_array_mut() {
            steps.push(serde_json::json!({ "role": role.as_str(), "name": name, "job": g.job }));
        }
        if let Ok(text) = serde_json::to_string_pretty(&doc) {
            let _ = std::fs::write(path, text);
        }
    }
}

/// The `srun` arguments of a step named `name` in job `job` (before the process's argv).
pub fn srun_args(cfg: &SlurmConfig, job: &str, name: &str) -> Vec<String> {
    let mut a = vec![
        format!("--jobid={job}"),
        "--overlap".to_string(),
        "--nodes=1".into(),
        "--ntasks=1".into(),
        format!("--job-name={name}"),
        "--kill-on-bad-exit=1".into(),
    ];
    a.extend(cfg.srun_args.iter().cloned());
    a
}

#[async_trait]
impl StepRuntime for Steps<'_> {
    fn backend(&self) -> &'static str {
        NAME
    }

    fn values(&self, role: Role, env: &PreparedEnv, port: Option<u16>) -> Values {
        let host = match role {
            Role::Server => Some(self.cfg.server_bind.clone()),
            _ => self.alloc.current().map(|g| g.addr),
        };
        Values {
            python: Some(venv::python(Path::new(&env.handle)).display().to_string()),
            host,
            port,
            result_dir: Some(
                AttemptFiles::of(self.cx)
                    .results_dir()
                    .display()
                    .to_string(),
            ),
            vllm_source: env.scripts_dir.clone().map(|path| SourceTree {
                path,
                check: ScriptCheck::OnHost,
            }),
            data_dir: Some(self.cx.data_dir.display().to_string()),
            perf_runner: self
                .cfg
                .perf_runner
                .clone()
                .or_else(|| std::env::current_exe().ok())
                .map(|p| p.display().to_string()),
        }
    }

    fn server_port(&self) -> Result<u16, BackendError> {
        free_port().map_err(|e| err(Failure::InfraTransient, format!("no free port: {e}")))
    }

    fn shown_env(&self, _role: Role) -> Vec<(String, String)> {
        let Some(g) = self.alloc.current() else {
            return Vec::new();
        };
        let mut v = vec![("SLURM_JOB_ID".to_string(), g.job.to_string())];
        if let Some(c) = g.cuda_visible_devices {
            v.push(("CUDA_VISIBLE_DEVICES".into(), c));
        }
        if let Some(c) = g.slurm_step_gpus {
            v.push(("SLURM_STEP_GPUS".into(), c));
        }
        v
    }

    async fn spawn(&self, launch: Launch<'_>) -> Result<Box<dyn Running>, BackendError> {
        let what = launch.role.describe();
        if launch.argv.is_empty() {
            return Err(err(
                Failure::BadConfig,
                format!("the {what} has an empty argv"),
            ));
        }
        // A lost allocation is renewed by the process that starts a step's work (the server,
        // or an offline step's client); a client of a lost server fails with the loss.
        let renew = launch.role == Role::Server || self.step.server.is_none();
        let g = self.alloc.ensure(renew, self.cx).await?;
        let name = format!(
            "{JOB_PREFIX}.{}.{}",
            launch.role.as_str(),
            STEP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // Slurm sets CUDA_VISIBLE_DEVICES for the allocation's GPUs; the step's own value only
        // applies to an allocation without GPUs.
        let mut env = child_env(
            self.step,
            Path::new(&launch.env.handle),
            &GpuLease::default(),
        );
        if g.cuda_visible_devices.is_some() {
            env.retain(|(k, _)| k != "CUDA_VISIBLE_DEVICES");
        }
        env.extend(backend_local::gc::run_label(self.cx));
        let mut cmd = Command::new(self.cfg.program("srun"));
        cmd.args(srun_args(self.cfg, &g.job.to_string(), &name))
            .args(&launch.argv)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let opts = launch.output.open_options();
        let open = |p: &Path| opts.open(p).map_err(|e| broken(p, e));
        let tail_file = match &launch.output {
            Output::Merged(log) => {
                let file = open(log)?;
                let copy = file.try_clone().map_err(|e| broken(log, e))?;
                cmd.stdout(file).stderr(copy);
                log.clone()
            }
            Output::Split { stdout, stderr } => {
                cmd.stdout(open(stdout)?).stderr(open(stderr)?);
                stderr.clone()
            }
        };
        let sp = Spawned::spawn(&mut cmd).map_err(|e| {
            err(
                Failure::EnvironmentBroken,
                format!("cannot start the {what} (srun): {e}"),
            )
        })?;
        self.record(&g, launch.role, &name);
        let step_id = Arc::new(Mutex::new(None));
        tokio::spawn(find_step(
            self.cfg.clone(),
            g.job,
            name.clone(),
            step_id.clone(),
        ));
        let port = launch.port.filter(|_| launch.role == Role::Server);
        Ok(Box::new(JobStep {
            cfg: self.cfg.clone(),
            sp,
            job: g.job,
            addr: g.addr,
            port,
            step_id,
            tail_file,
            verdict: None,
        }))
    }

    fn host(&self) -> Option<String> {
        self.alloc.current().map(|g| g.node)
    }
}

fn broken(path: &Path, e: std::io::Error) -> BackendError {
    err(
        Failure::EnvironmentBroken,
        format!("{}: {e}", path.display()),
    )
}

/// Find the id (`<job>.<step>`) of the step named `name` (it shows in `squeue -s` once
/// started), for `scancel`.
async fn find_step(cfg: SlurmConfig, job: u64, name: String, into: Arc<Mutex<Option<String>>>) {
    let never = CancellationToken::new();
    let args: Vec<String> = ["-h", "-s", "-j", &job.to_string(), "-o", "%i|%j"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(c) = sched::run(&cfg, "squeue", &args, &never).await {
            let found = c.stdout.lines().find_map(|l| {
                let (id, n) = l.trim().split_once('|')?;
                (n == name).then(|| id.to_string())
            });
            if let Some(id) = found {
                if let Ok(mut s) = into.lock() {
                    *s = Some(id);
                }
                return;
            }
        }
        tokio::time::sleep(cfg.poll()).await;
    }
}

/// One job step, through its `srun`.
struct JobStep {
    cfg: SlurmConfig,
    sp: Spawned,
    job: u64,
    addr: String,
    port: Option<u16>,
    step_id: Arc<Mutex<Option<String>>>,
    /// The file srun's own messages go to (stderr, or the merged log).
    tail_file: std::path::PathBuf,
    /// How it ended, once judged.
    verdict: Option<Result<Exit, (Failure, String)>>,
}

impl JobStep {
    fn step_id(&self) -> Option<String> {
        self.step_id.lock().ok().and_then(|s| s.clone())
    }

    /// Judge an ended `srun`: by what Slurm wrote of the step and the allocation's state.
    async fn judge(&mut self, exit: Exit) -> Result<Exit, BackendError> {
        if let Some(v) = &self.verdict {
            return v.clone().map_err(|(k, m)| err(k, m));
        }
        let tail = AttemptFiles::tail(&self.tail_file, 20);
        let mut v = match sched::step_verdict(&tail) {
            Some((kind, line)) => {
                Err((kind, format!("job step of allocation {}: {line}", self.job)))
            }
            None => Ok(exit),
        };
        let never = CancellationToken::new();
        match sched::job(&self.cfg, self.job, &never).await {
            Ok(info) if info.as_ref().is_some_and(|i| i.running()) => {}
            Ok(info) => {
                let e = sched::ended(self.job, info.as_ref());
                if v.is_ok() || e.kind != Failure::InfraTransient {
                    v = Err((e.kind, format!("{} (srun exited {exit})", e.message)));
                }
            }
            Err(e) => tracing::warn!(job = self.job, "the allocation's state is unknown: {e}"),
        }
        self.verdict = Some(v.clone());
        v.map_err(|(k, m)| err(k, m))
    }

    async fn scancel(&self, signal: Option<&str>) -> bool {
        let Some(id) = self.step_id() else {
            return false;
        };
        let mut args = Vec::new();
        if let Some(s) = signal {
            args.push(format!("--signal={s}"));
        }
        args.push(id);
        let never = CancellationToken::new();
        sched::run(&self.cfg, "scancel", &args, &never)
            .await
            .is_ok_and(|c| c.status.success())
    }

    async fn srun_gone_within(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            if !self.sp.leader_alive() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[async_trait]
impl Running for JobStep {
    async fn endpoint(&mut self) -> Option<Endpoint> {
        self.port.map(|port| Endpoint {
            host: self.addr.clone(),
            port,
        })
    }

    async fn try_wait(&mut self) -> Result<Option<Exit>, BackendError> {
        match self.sp.child.try_wait() {
            Ok(Some(s)) => self.judge(Exit::from(s)).await.map(Some),
            _ => Ok(None),
        }
    }

    async fn wait(&mut self) -> Result<Exit, BackendError> {
        let exit = self
            .sp
            .child
            .wait()
            .await
            .map(Exit::from)
            .unwrap_or_default();
        self.judge(exit).await
    }

    async fn stop(&mut self, grace: Duration) {
        if self.sp.leader_alive() {
            // The step's processes first (Slurm signals them on their node), srun follows.
            if !self.scancel(Some("TERM")).await {
                self.sp.signal(libc::SIGTERM);
            }
            if !self.srun_gone_within(grace).await {
                tracing::warn!(
                    job = self.job,
                    "job step still running after {grace:?}; scancel"
                );
                self.scancel(None).await;
                if !self.srun_gone_within(Duration::from_secs(3)).await {
                    self.sp.signal(libc::SIGKILL);
                }
            }
        }
        self.sp.stop(Duration::from_secs(2)).await;
    }
}

impl Drop for JobStep {
    /// A step dropped while running (a dropped attempt): `scancel` it and kill its `srun`.
    fn drop(&mut self) {
        if !self.sp.leader_alive() {
            return;
        }
        if let Some(id) = self.step_id() {
            let _ = std::process::Command::new(self.cfg.program("scancel"))
                .arg(id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.sp.signal(libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_overlap_inside_the_allocation() {
        let cfg = SlurmConfig {
            srun_args: vec!["--mpi=none".into()],
            ..SlurmConfig::default()
        };
        let a = srun_args(&cfg, "12", "perf-runner.server.3");
        assert_eq!(a[0], "--jobid=12");
        assert!(a.contains(&"--overlap".to_string()));
        assert_eq!(a.last().map(String::as_str), Some("--mpi=none"));
    }
}
