//! A task's lease is one Slurm allocation (`salloc --no-shell`): the GPUs of `--gres` on one
//! node, held for all of the task's jobs, which run inside it as job steps. An allocation lost
//! to the cluster (node failure, preemption, requeue) is renewed — with the same request — by
//! the next server start, so a retried attempt runs once the cluster has room again.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backend_local::process::Spawned;
use runner_core::plan::GpuRequest;
use runner_core::{BackendError, Failure, RunContext};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::config::SlurmConfig;
use crate::sched::{self, err};

/// The job name of every allocation perf-runner makes starts with this (then `.<run id>`).
pub const JOB_PREFIX: &str = "perf-runner";

/// The job name of an allocation of run `run_id`.
pub fn job_name(run_id: Option<&str>) -> String {
    match run_id {
        Some(r) => format!("{JOB_PREFIX}.{r}"),
        None => JOB_PREFIX.to_string(),
    }
}

/// The `salloc` arguments of a task's allocation.
pub fn salloc_args(
    cfg: &SlurmConfig,
    gpu: &GpuRequest,
    labels: &BTreeMap<String, String>,
) -> Vec<String> {
    let run = labels.get("run-id").map(String::as_str);
    let mut comment = String::from(JOB_PREFIX);
    for (k, v) in [
        ("run", run),
        ("task", labels.get("task").map(String::as_str)),
    ] {
        if let Some(v) = v {
            comment.push_str(&format!(" {k}={v}"));
        }
    }
    let mut a = vec![
        "--no-shell".to_string(),
        format!("--job-name={}", job_name(run)),
        format!("--comment={comment}"),
        "--nodes=1".into(),
        "--ntasks=1".into(),
        format!("--time={}", cfg.time_limit),
    ];
    let opt = |a: &mut Vec<String>, flag: &str, v: &Option<String>| {
        if let Some(v) = v {
            a.push(format!("--{flag}={v}"));
        }
    };
    opt(&mut a, "partition", &cfg.partition);
    opt(&mut a, "account", &cfg.account);
    opt(&mut a, "qos", &cfg.qos);
    opt(
        &mut a,
        "cpus-per-task",
        &cfg.cpus_per_task.map(|c| c.to_string()),
    );
    opt(&mut a, "mem", &cfg.mem);
    if let Some(g) = gres(cfg, gpu) {
        a.push(format!("--gres={g}"));
    }
    a.extend(cfg.salloc_args.iter().cloned());
    a
}

/// `gpu:<type>:<N>` (or `gpu:<N>` without a kind); `None` without GPUs.
pub fn gres(cfg: &SlurmConfig, gpu: &GpuRequest) -> Option<String> {
    if cfg.cpu_only || gpu.count == 0 {
        return None;
    }
    Some(match &gpu.kind {
        Some(k) => format!("gpu:{}:{}", cfg.gres_type(k), gpu.count),
        None => format!("gpu:{}", gpu.count),
    })
}

/// A granted allocation: where its steps run and the GPUs Slurm gave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Granted {
    /// The job id.
    pub job: u64,
    /// Its node.
    pub node: String,
    /// The node's address (where clients reach servers).
    pub addr: String,
    /// The GPU indices of `scontrol show job -d`.
    pub gpu_indices: Vec<u32>,
    /// `CUDA_VISIBLE_DEVICES` of a step, as Slurm set it.
    pub cuda_visible_devices: Option<String>,
    /// `SLURM_STEP_GPUS` of a step, as Slurm set it.
    pub slurm_step_gpus: Option<String>,
    /// From `salloc` to the grant, s.
    pub wait_s: f64,
    /// From the grant to the end of the first job step (a probe), ms.
    pub first_step_ms: f64,
}

/// One task's lease.
#[derive(Debug)]
pub struct Alloc {
    cfg: SlurmConfig,
    args: Vec<String>,
    /// Serialises renewals.
    renew: tokio::sync::Mutex<()>,
    current: Mutex<Option<Granted>>,
    /// Every job id this lease was granted, in order.
    history: Mutex<Vec<u64>>,
}

impl Alloc {
    /// Request an allocation and wait until it is granted (cancellable).
    pub async fn acquire(
        cfg: &SlurmConfig,
        args: Vec<String>,
        cancel: &CancellationToken,
    ) -> Result<Alloc, BackendError> {
        let a = Alloc {
            cfg: cfg.clone(),
            args,
            renew: tokio::sync::Mutex::new(()),
            current: Mutex::new(None),
            history: Mutex::new(Vec::new()),
        };
        let g = grant(&a.cfg, &a.args, cancel).await?;
        a.set(Some(g));
        Ok(a)
    }

    fn set(&self, g: Option<Granted>) {
        if let Some(g) = &g {
            if let Ok(mut h) = self.history.lock() {
                h.push(g.job);
            }
        }
        if let Ok(mut c) = self.current.lock() {
            *c = g;
        }
    }

    /// The allocation as last granted.
    pub fn current(&self) -> Option<Granted> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// Every job id granted to this lease.
    pub fn history(&self) -> Vec<u64> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The running allocation. When Slurm ended it (a node failure …): with `renew`, a new
    /// one with the same request (waiting until granted); without, the transient error.
    pub async fn ensure(&self, renew: bool, cx: &RunContext) -> Result<Granted, BackendError> {
        let _guard = self.renew.lock().await;
        let cur = self.current();
        if let Some(g) = &cur {
            let info = sched::job(&self.cfg, g.job, &cx.cancel).await?;
            if info.as_ref().is_some_and(|i| i.running()) {
                return Ok(g.clone());
            }
            let lost = sched::ended(g.job, info.as_ref());
            if !renew {
                return Err(lost);
            }
            tracing::warn!(job = g.job, "{}; asking for a new allocation", lost.message);
            cx.progress
                .event("lease", &format!("{}; a new allocation", lost.message));
            cancel_job(&self.cfg, g.job).await;
        }
        let g = grant(&self.cfg, &self.args, &cx.cancel).await?;
        self.set(Some(g.clone()));
        Ok(g)
    }

    /// Give it back (`scancel`); idempotent.
    pub async fn release(&self) {
        let cur = self.current.lock().ok().and_then(|mut c| c.take());
        if let Some(g) = cur {
            cancel_job(&self.cfg, g.job).await;
        }
    }
}

impl Drop for Alloc {
    /// A lease dropped without `release` (the runner is going down): `scancel`, waited for
    /// briefly, so that nothing is left in the queue.
    fn drop(&mut self) {
        let cur = self.current.get_mut().ok().and_then(|c| c.take());
        if let Some(g) = cur {
            let _ = std::process::Command::new(self.cfg.program("scancel"))
                .arg(g.job.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `scancel ID`, best effort.
pub async fn cancel_job(cfg: &SlurmConfig, job: u64) {
    let never = CancellationToken::new();
    match sched::run(cfg, "scancel", &[job.to_string()], &never).await {
        Ok(c) if c.status.success() => tracing::debug!(job, "scancel"),
        Ok(c) => tracing::warn!(job, "scancel: {}", c.combined().trim()),
        Err(e) => tracing::warn!(job, "scancel: {e}"),
    }
}

/// `salloc` until granted, then where it runs and which GPUs it got (a probe step).
async fn grant(
    cfg: &SlurmConfig,
    args: &[String],
    cancel: &CancellationToken,
) -> Result<Granted, BackendError> {
    let t = Instant::now();
    let job = salloc(cfg, args, cancel).await?;
    let wait_s = t.elapsed().as_secs_f64();
    match describe(cfg, job, cancel).await {
        Ok(mut g) => {
            g.wait_s = wait_s;
            tracing::info!(job, node = %g.node, gpus = ?g.cuda_visible_devices, wait_s, first_step_ms = g.first_step_ms, "allocation granted");
            Ok(g)
        }
        Err(e) => {
            cancel_job(cfg, job).await;
            Err(e)
        }
    }
}

/// Run `salloc --no-shell`, reading its job id as soon as it is known; cancellation revokes
/// the request.
async fn salloc(
    cfg: &SlurmConfig,
    args: &[String],
    cancel: &CancellationToken,
) -> Result<u64, BackendError> {
    let mut cmd = Command::new(cfg.program("salloc"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut sp = Spawned::spawn(&mut cmd).map_err(|e| {
        err(
            Failure::EnvironmentBroken,
            format!("cannot run salloc: {e} (is Slurm's client installed?)"),
        )
    })?;
    let Some(stderr) = sp.child.stderr.take() else {
        return Err(err(Failure::InfraTransient, "salloc has no stderr"));
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut job: Option<u64> = None;
    let mut granted = false;
    let mut text = String::new();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => {
                    if let Some(id) = allocation_id(&l) {
                        job = Some(id);
                        granted |= l.contains("Granted");
                        if !granted {
                            tracing::info!(job = id, "allocation pending: {}", l.trim());
                        }
                    }
                    if text.len() < 8192 {
                        text.push_str(&l);
                        text.push('\n');
                    }
                }
                _ => break,
            },
            _ = cancel.cancelled() => {
                sp.stop(Duration::from_secs(2)).await;
                if let Some(j) = job {
                    cancel_job(cfg, j).await;
                }
                return Err(err(Failure::Cancelled, "cancelled while waiting for an allocation"));
            }
        }
    }
    let status = tokio::select! {
        s = sp.child.wait() => s.ok(),
        _ = cancel.cancelled() => None,
    };
    sp.stop(Duration::from_secs(2)).await;
    match (job, granted) {
        (Some(j), true) if cancel.is_cancelled() => {
            cancel_job(cfg, j).await;
            Err(err(
                Failure::Cancelled,
                "cancelled while waiting for an allocation",
            ))
        }
        (Some(j), true) => Ok(j),
        (j, _) => {
            if let Some(j) = j {
                cancel_job(cfg, j).await;
            }
            Err(salloc_error(&text, status.and_then(|s| s.code())))
        }
    }
}

fn allocation_id(line: &str) -> Option<u64> {
    let rest = &line[line.find("job allocation ")? + "job allocation ".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Why `salloc` gave no allocation: a request the cluster can never satisfy is `bad_config`;
/// anything else (the controller unreachable …) is transient.
pub fn salloc_error(text: &str, code: Option<i32>) -> BackendError {
    const NEVER: [&str; 8] = [
        "Invalid generic resource",
        "Requested node configuration is not available",
        "Invalid partition",
        "invalid partition",
        "Invalid account",
        "Invalid qos",
        "Invalid time limit",
        "More processors requested than permitted",
    ];
    let said = text.trim();
    let kind = if NEVER.iter().any(|n| said.contains(n)) {
        Failure::BadConfig
    } else {
        Failure::InfraTransient
    };
    err(
        kind,
        format!(
            "salloc gave no allocation (exit {}): {}",
            code.map_or("by signal".into(), |c| c.to_string()),
            if said.is_empty() { "no message" } else { said }
        ),
    )
}

/// Where a granted job runs and the GPUs a step of it sees (one probe step, timed).
async fn describe(
    cfg: &SlurmConfig,
    job: u64,
    cancel: &CancellationToken,
) -> Result<Granted, BackendError> {
    let t = Instant::now();
    let info = sched::job(cfg, job, cancel)
        .await?
        .ok_or_else(|| sched::ended(job, None))?;
    let mut args = vec![
        format!("--jobid={job}"),
        "--overlap".into(),
        "--nodes=1".into(),
        "--ntasks=1".into(),
        format!("--job-name={JOB_PREFIX}.probe"),
    ];
    args.extend(cfg.srun_args.iter().cloned());
    args.push("env".into());
    let c = sched::run(cfg, "srun", &args, cancel).await?;
    let first_step_ms = t.elapsed().as_secs_f64() * 1000.0;
    if !c.status.success() {
        return Err(err(
            Failure::InfraTransient,
            format!(
                "the first job step of allocation {job} failed: {}",
                c.combined().trim()
            ),
        ));
    }
    let var = |k: &str| {
        c.stdout
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('=').map(str::to_string))
    };
    let node = var("SLURMD_NODENAME").unwrap_or_else(|| info.nodes.clone());
    let addr = sched::node_addr(cfg, &node, cancel).await;
    Ok(Granted {
        job,
        node,
        addr,
        gpu_indices: info.gpu_indices,
        cuda_visible_devices: var("CUDA_VISIBLE_DEVICES"),
        slurm_step_gpus: var("SLURM_STEP_GPUS"),
        wait_s: 0.0,
        first_step_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_run_and_the_gpus() {
        let cfg = SlurmConfig {
            partition: Some("gpu".into()),
            qos: Some("high".into()),
            ..SlurmConfig::default()
        };
        let mut labels = BTreeMap::new();
        labels.insert("run-id".to_string(), "20240101-000000-abcd".to_string());
        labels.insert("task".to_string(), "e358".to_string());
        let gpu = GpuRequest {
            kind: Some("H100".into()),
            count: 2,
        };
        let a = salloc_args(&cfg, &gpu, &labels);
        assert!(a.contains(&"--job-name=perf-runner.20240101-000000-abcd".to_string()));
        assert!(
            a.contains(&"--comment=perf-runner run=20240101-000000-abcd task=e358".to_string())
        );
        assert!(a.contains(&"--gres=gpu:h100:2".to_string()));
        assert!(
            a.contains(&"--partition=gpu".to_string()) && a.contains(&"--qos=high".to_string())
        );
        assert!(!a.iter().any(|x| x.starts_with("--account")));
        let any = GpuRequest {
            kind: None,
            count: 1,
        };
        assert_eq!(gres(&cfg, &any).as_deref(), Some("gpu:1"));
        let cpu = SlurmConfig {
            cpu_only: true,
            ..cfg
        };
        assert_eq!(gres(&cpu, &gpu), None);
    }

    #[test]
    fn salloc_lines_and_errors() {
        assert_eq!(allocation_id("salloc: Granted job allocation 12"), Some(12));
        assert_eq!(allocation_id("salloc: Pending job allocation 7"), Some(7));
        assert_eq!(
            allocation_id("salloc: job 7 queued and waiting for resources"),
            None
        );
        let e = salloc_error(
            "salloc: error: Job submit/allocate failed: Invalid generic resource (gres) specification",
            Some(1),
        );
        assert_eq!(e.kind, Failure::BadConfig);
        assert!(
            salloc_error("salloc: error: Unable to contact slurm controller", Some(1))
                .is_transient()
        );
    }
}
