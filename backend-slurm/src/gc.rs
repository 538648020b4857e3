//! Leftover allocations, found by their job name (`perf-runner.<run id>`) and comment
//! (`perf-runner run=<run id> task=<commit>`), never by user or partition alone. A runner
//! killed with SIGKILL cannot give its allocation back; `perf-runner gc` does.

use tokio_util::sync::CancellationToken;

use crate::alloc::JOB_PREFIX;
use crate::config::SlurmConfig;
use crate::sched;
use runner_core::BackendError;

/// A job of perf-runner's found in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its id.
    pub job: String,
    /// Its name.
    pub name: String,
    /// Its comment.
    pub comment: String,
}

/// Parse `squeue -h -o '%i|%j|%k'`: perf-runner's jobs of run `run_id` (any run when `None`).
pub fn parse(text: &str, run_id: Option<&str>) -> Vec<Leftover> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.trim().splitn(3, '|');
            let (job, name, comment) = (it.next()?, it.next()?, it.next().unwrap_or(""));
            let ours = name == JOB_PREFIX
                || name.starts_with(&format!("{JOB_PREFIX}."))
                || comment.starts_with(&format!("{JOB_PREFIX} "));
            let of_run = match run_id {
                None => true,
                Some(r) => {
                    name == format!("{JOB_PREFIX}.{r}")
                        || comment.split_whitespace().any(|w| w == format!("run={r}"))
                }
            };
            (ours && of_run && !job.is_empty()).then(|| Leftover {
                job: job.to_string(),
                name: name.to_string(),
                comment: comment.to_string(),
            })
        })
        .collect()
}

/// `scancel` perf-runner's jobs of run `run_id` (any run when `None`); returns them.
pub async fn collect(
    cfg: &SlurmConfig,
    run_id: Option<&str>,
) -> Result<Vec<Leftover>, BackendError> {
    let never = CancellationToken::new();
    let args: Vec<String> = ["-h", "-o", "%i|%j|%k"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let c = sched::run(cfg, "squeue", &args, &never).await?;
    if !c.status.success() {
        return Err(sched::err(
            runner_core::Failure::InfraTransient,
            format!("squeue: {}", c.combined().trim()),
        ));
    }
    let found = parse(&c.stdout, run_id);
    if !found.is_empty() {
        let ids: Vec<String> = found.iter().map(|l| l.job.clone()).collect();
        let c = sched::run(cfg, "scancel", &ids, &never).await?;
        if !c.status.success() {
            tracing::warn!("scancel: {}", c.combined().trim());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_jobs_of_the_run() {
        let q = "5|perf-runner.r1|perf-runner run=r1 task=abc\n6|perf-runner.r2|perf-runner run=r2 task=abc\n\
                 7|train|(null)\n8|x|perf-runner run=r1 task=d\n9|perf-runnerX|(null)\n";
        let ids = |r| parse(q, r).into_iter().map(|l| l.job).collect::<Vec<_>>();
        assert_eq!(ids(Some("r1")), ["5", "8"]);
        assert_eq!(ids(None), ["5", "6", "8"]);
        assert!(ids(Some("r3")).is_empty());
    }
}
