//! The knobs of the Slurm backend: where allocations go (partition, account, QoS, time limit),
//! how GPU kinds map to Slurm's GPU types, and the environments' settings (the local backend's
//! keys, for a cache dir on the cluster's shared filesystem).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use backend_local::LocalConfig;
use serde::{Deserialize, Serialize};

/// The `[slurm]` section of perf-runner's embedded defaults: every key is optional (the values
/// of [`SlurmConfig::default`] apply); the commented keys are the ones most clusters set.
pub const DEFAULT_TOML: &str = r#"[slurm]
# partition = "gpu"                        # --partition of every allocation
# account = "lab"                          # --account
# qos = "normal"                           # --qos
# time_limit = "02:00:00"                  # --time of an allocation (one task's jobs)
# cpus_per_task = 8                        # --cpus-per-task
# mem = "64G"                              # --mem
# gres_types = { H100 = "h100" }           # Slurm's GPU type of a GPU kind (default: lower case)
# [slurm.env]                              # environments: the [local] keys, on the shared filesystem
# cache_dir = "/shared/perf-runner"
# find_links = "/shared/wheelhouse"
"#;

/// Configuration of [`crate::SlurmBackend`]. Every field has a default (`#[serde(default)]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmConfig {
    /// `--partition` of every allocation (`None`: the cluster's default partition).
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--time` of an allocation, which holds all of one task's jobs (Slurm's formats:
    /// `MM`, `HH:MM:SS`, `D-HH`).
    pub time_limit: String,
    /// `--cpus-per-task` of an allocation (`None`: the partition's default).
    pub cpus_per_task: Option<u32>,
    /// `--mem` of an allocation (`None`: the partition's default).
    pub mem: Option<String>,
    /// Slurm's GPU type for a GPU kind (`H100` → `h100`); a kind not listed is asked for in
    /// lower case. A request without a kind asks for any GPU (`--gres=gpu:N`).
    pub gres_types: BTreeMap<String, String>,
    /// GPU kinds and how many of each one allocation may hold, for `capabilities` (what the
    /// cluster offers is asked of Slurm by `doctor`).
    pub gpus: BTreeMap<String, u32>,
    /// Allocate no GPUs (CPU engines, such as the test stand-in).
    pub cpu_only: bool,
    /// More `salloc` arguments, after perf-runner's own (e.g. `--constraint=…`).
    pub salloc_args: Vec<String>,
    /// More `srun` arguments for every job step.
    pub srun_args: Vec<String>,
    /// The address a server binds to (`{HOST}` of the server); clients reach it at the
    /// node's address.
    pub server_bind: String,
    /// The perf-runner program the native serving client runs as (`{PERF_RUNNER}`); `None`:
    /// this program, which must then be reachable at the same path on the nodes.
    pub perf_runner: Option<PathBuf>,
    /// The directory holding `salloc`, `srun`, `squeue`, `scontrol`, `scancel`, `sinfo`
    /// (`None`: looked up on `PATH`).
    pub bin_dir: Option<PathBuf>,
    /// How often a pending allocation and a job step's start are polled, ms.
    pub poll_ms: u64,
    /// Grace period between SIGTERM and SIGKILL to a job step, ms.
    pub stop_grace_ms: u64,
    /// Interval between readiness probes of a server, ms.
    pub health_poll_ms: u64,
    /// Server starts tried with a fresh port when the port was taken meanwhile.
    pub port_attempts: u32,
    /// Lines of `server.log` quoted in errors.
    pub log_tail_lines: usize,
    /// The environments (venvs, wheels, offline wheelhouse, scripts): the local backend's
    /// settings; `cache_dir` must be on a filesystem the nodes share.
    pub env: LocalConfig,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            time_limit: "02:00:00".into(),
            cpus_per_task: None,
            mem: None,
            gres_types: BTreeMap::new(),
            gpus: BTreeMap::new(),
            cpu_only: false,
            salloc_args: Vec::new(),
            srun_args: Vec::new(),
            server_bind: "0.0.0.0".into(),
            perf_runner: None,
            bin_dir: None,
            poll_ms: 250,
            stop_grace_ms: 10_000,
            health_poll_ms: 500,
            port_attempts: 3,
            log_tail_lines: 40,
            env: LocalConfig::default(),
        }
    }
}

impl SlurmConfig {
    /// A Slurm program (`srun` …): in `bin_dir` when set, else looked up on `PATH`.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Slurm's GPU type for a GPU kind.
    pub fn gres_type(&self, kind: &str) -> String {
        self.gres_types
            .get(kind)
            .cloned()
            .unwrap_or_else(|| kind.to_ascii_lowercase())
    }

    pub(crate) fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }

    pub(crate) fn stop_grace(&self) -> Duration {
        Duration::from_millis(self.stop_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_configs_fill_in_and_kinds_map_to_types() {
        let c: SlurmConfig =
            serde_json::from_str(r#"{"partition": "gpu", "gres_types": {"A100": "a100_80g"}, "env": {"cache_dir": "/s"}}"#)
                .unwrap();
        assert_eq!(c.partition.as_deref(), Some("gpu"));
        assert_eq!(c.gres_type("A100"), "a100_80g");
        assert_eq!(c.gres_type("H100"), "h100");
        assert_eq!(c.env.cache_dir, Some(PathBuf::from("/s")));
        assert_eq!(c.time_limit, "02:00:00");
        assert_eq!(c.program("srun"), PathBuf::from("srun"));
    }
}
