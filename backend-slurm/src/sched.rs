//! Asking the scheduler: `scontrol show job|node` parsed into [`JobInfo`] and the address of a
//! node, job states classified into the failure taxonomy, and the short helper commands run
//! with cancellation (in their own process groups).

use std::collections::BTreeMap;
use std::time::Instant;

use backend_local::process::{Captured, RunError, run_captured};
use runner_core::{BackendError, Failure};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::config::SlurmConfig;

pub(crate) fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// Run a Slurm program with `args`, capturing its output (bounded to 60 s; `cancel` stops it).
pub async fn run(
    cfg: &SlurmConfig,
    program: &str,
    args: &[String],
    cancel: &CancellationToken,
) -> Result<Captured, BackendError> {
    let mut cmd = Command::new(cfg.program(program));
    cmd.args(args);
    let deadline = Some(Instant::now() + std::time::Duration::from_secs(60));
    run_captured(cmd, cancel, deadline)
        .await
        .map_err(|e| match e {
            RunError::Spawn(e) => err(
                Failure::EnvironmentBroken,
                format!("cannot run {program}: {e} (is Slurm's client installed?)"),
            ),
            RunError::Cancelled => err(Failure::Cancelled, format!("cancelled during {program}")),
            RunError::TimedOut => err(
                Failure::InfraTransient,
                format!("{program} did not answer within 60 s"),
            ),
        })
}

/// `key=value` fields of one `scontrol show … -o` line (values run to the next ` key=`).
pub fn fields(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for tok in line.split_whitespace() {
        match tok.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_:/".contains(c)) =>
            {
                out.insert(k.to_string(), v.to_string());
            }
            _ => {}
        }
    }
    out
}

/// What Slurm says of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInfo {
    /// Its id.
    pub id: u64,
    /// `JobState` (`PENDING`, `RUNNING`, `NODE_FAIL` …).
    pub state: String,
    /// `Reason` (`NodeDown`, `Resources` …).
    pub reason: String,
    /// `NodeList` (`(null)` while pending).
    pub nodes: String,
    /// The GPU indices it holds on its node (`GRES=gpu:h100:1(IDX:1)` of `-d`).
    pub gpu_indices: Vec<u32>,
}

impl JobInfo {
    /// Whether it is still scheduled or running.
    pub fn live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" | "RESIZING"
        )
    }

    /// Whether its steps can run now.
    pub fn running(&self) -> bool {
        self.state == "RUNNING"
    }
}

/// Parse `scontrol show job -d -o ID`.
pub fn parse_job(text: &str) -> Option<JobInfo> {
    let line = text.lines().find(|l| l.contains("JobId="))?;
    let f = fields(line);
    Some(JobInfo {
        id: f.get("JobId")?.parse().ok()?,
        state: f.get("JobState").cloned().unwrap_or_default(),
        reason: f.get("Reason").cloned().unwrap_or_default(),
        nodes: f.get("NodeList").cloned().unwrap_or_default(),
        gpu_indices: gpu_indices(line),
    })
}

/// The indices of `(IDX:0-1,3)` in a job's detail line.
pub fn gpu_indices(line: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("(IDX:") {
        let after = &rest[i + 5..];
        let end = after.find(')').unwrap_or(after.len());
        for part in after[..end].split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                        out.extend(a..=b.min(a.saturating_add(1024)));
                    }
                }
                None => out.extend(part.parse::<u32>().ok()),
            }
        }
        rest = &after[end..];
    }
    out
}

/// The job `id` as Slurm knows it now; `None` once Slurm forgot it (`Invalid job id`).
pub async fn job(
    cfg: &SlurmConfig,
    id: u64,
    cancel: &CancellationToken,
) -> Result<Option<JobInfo>, BackendError> {
    let args = ["show", "job", "-d", "-o"]
        .iter()
        .map(|s| s.to_string())
        .chain([id.to_string()])
        .collect::<Vec<_>>();
    let c = run(cfg, "scontrol", &args, cancel).await?;
    if c.status.success() {
        return Ok(parse_job(&c.stdout));
    }
    if c.combined().contains("Invalid job id") {
        return Ok(None);
    }
    Err(err(
        Failure::InfraTransient,
        format!("scontrol show job {id}: {}", c.combined().trim()),
    ))
}

/// The address of a node (`NodeAddr`), else its name.
pub async fn node_addr(cfg: &SlurmConfig, node: &str, cancel: &CancellationToken) -> String {
    let args: Vec<String> = ["show", "node", "-o", node]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match run(cfg, "scontrol", &args, cancel).await {
        Ok(c) if c.status.success() => fields(&c.stdout)
            .get("NodeAddr")
            .cloned()
            .unwrap_or_else(|| node.to_string()),
        _ => node.to_string(),
    }
}

/// The failure of an allocation that ended while perf-runner still used it: node failures,
/// preemption and requeues are transient (a new allocation may do); running out of memory or
/// time is not.
pub fn ended(id: u64, info: Option<&JobInfo>) -> BackendError {
    let Some(info) = info else {
        return err(
            Failure::InfraTransient,
            format!("allocation {id} is gone (Slurm no longer knows it)"),
        );
    };
    let what = format!(
        "allocation {id} ended: {} ({})",
        info.state,
        info.reason.trim()
    );
    let kind = match info.state.as_str() {
        "OUT_OF_MEMORY" => Failure::Oom,
        "TIMEOUT" | "DEADLINE" => Failure::Timeout,
        _ => Failure::InfraTransient,
    };
    err(kind, what)
}

/// What srun and slurmstepd wrote of a step's end, in its output: a node failure, preemption
/// or requeue (transient), an out-of-memory kill or the time limit (deterministic).
pub fn step_verdict(tail: &str) -> Option<(Failure, String)> {
    for line in tail.lines().rev() {
        let l = line.trim();
        if !(l.starts_with("srun:") || l.starts_with("slurmstepd:")) {
            continue;
        }
        let transient = [
            "Node failure",
            "DUE TO NODE FAILURE",
            "DUE TO PREEMPTION",
            "requeue",
        ];
        let kind = if transient.iter().any(|t| l.contains(t)) {
            Failure::InfraTransient
        } else if l.contains("DUE TO TIME LIMIT") {
            Failure::Timeout
        } else if l.contains("oom-kill") || l.contains("Out Of Memory") {
            Failure::Oom
        } else {
            continue;
        };
        return Some((kind, l.chars().take(300).collect()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_line_parses() {
        let line = "JobId=7 JobName=perf-runner.r1 UserId=root(0) JobState=RUNNING Reason=None \
                    NodeList=vm BatchHost=vm Nodes=vm CPU_IDs=1 Mem=0 GRES=gpu:h100:2(IDX:0-1) \
                    TresPerNode=gres:gpu:h100:2";
        let j = parse_job(line).unwrap();
        assert_eq!(j.id, 7);
        assert!(j.running() && j.live());
        assert_eq!(j.nodes, "vm");
        assert_eq!(j.gpu_indices, [0, 1]);
        assert_eq!(
            gpu_indices("GRES=gpu:a:1(IDX:3),gpu:b:2(IDX:0,5)"),
            [3, 0, 5]
        );
        assert_eq!(gpu_indices("GRES=gpu(IDX:x-)"), Vec::<u32>::new());
        assert!(parse_job("slurm_load_jobs error: Invalid job id specified").is_none());
    }

    #[test]
    fn ends_are_classified() {
        let info = |s: &str| JobInfo {
            state: s.into(),
            ..JobInfo::default()
        };
        assert!(ended(1, Some(&info("NODE_FAIL"))).is_transient());
        assert!(ended(1, Some(&info("PREEMPTED"))).is_transient());
        assert!(ended(1, None).is_transient());
        assert_eq!(ended(1, Some(&info("OUT_OF_MEMORY"))).kind, Failure::Oom);
        assert_eq!(ended(1, Some(&info("TIMEOUT"))).kind, Failure::Timeout);
        assert_eq!(
            step_verdict("x\nsrun: error: Node failure on vm\n")
                .unwrap()
                .0,
            Failure::InfraTransient
        );
        assert_eq!(
            step_verdict(
                "slurmstepd: error: *** STEP 3.1 ON vm CANCELLED AT 2024 DUE TO TIME LIMIT ***"
            )
            .unwrap()
            .0,
            Failure::Timeout
        );
        assert_eq!(
            step_verdict("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=3.1")
                .unwrap()
                .0,
            Failure::Oom
        );
        assert!(step_verdict("srun: error: vm: task 0: Exited with exit code 1").is_none());
    }
}
