//! The knobs of the local backend, with defaults that suit a CUDA host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runner_core::Variant;
use serde::{Deserialize, Serialize};

/// The benchmark scripts fetched from an HTTP vLLM source (best effort: missing ones are
/// skipped).
pub const DEFAULT_SCRIPT_FILES: [&str; 10] = [
    "benchmarks/benchmark_serving.py",
    "benchmarks/benchmark_throughput.py",
    "benchmarks/benchmark_latency.py",
    "benchmarks/benchmark_prefix_caching.py",
    "benchmarks/backend_request_func.py",
    "benchmarks/benchmark_utils.py",
    "benchmarks/benchmark_dataset.py",
    "benchmarks/benchmark_serving_structured_output.py",
    "benchmarks/benchmark_prioritization.py",
    "benchmarks/benchmark_long_document_qa_throughput.py",
];

/// The `[local]` section of perf-runner's embedded defaults: every key is optional (the values
/// of [`LocalConfig::default`] apply); the commented keys are the ones most hosts set.
pub const DEFAULT_TOML: &str = r#"[local]
# cache_dir = "/var/cache/perf-runner"     # venvs, wheels, scripts
# find_links = "/opt/wheelhouse"           # offline installs: --no-index --find-links
# system_site_packages = true              # reuse the host's torch/CUDA stack
# vllm_source = "/src/vllm"                # a clone, or an HTTP raw-file template with {commit} and {path}
# gpu_lock_dir = "/run/perf-runner"         # GPU lock files shared by every perf-runner of this host
"#;

/// Configuration of [`crate::LocalBackend`]. Every field has a default (`#[serde(default)]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalConfig {
    /// Where venvs, downloaded wheels and benchmark scripts are cached; `None` =
    /// `$XDG_CACHE_HOME/perf-runner` (or `~/.cache/perf-runner`).
    pub cache_dir: Option<PathBuf>,
    /// The `nvidia-smi` program (a name looked up on `PATH`, or a path).
    pub nvidia_smi: PathBuf,
    /// The folder of host-wide GPU lock files that keeps the leases of every perf-runner
    /// process of this host apart (the Docker backend's too); `None` =
    /// `/var/tmp/perf-runner-gpu-leases`.
    pub gpu_lock_dir: Option<PathBuf>,
    /// The `uv` program; when it does not run, `python -m venv` + pip is used instead.
    pub uv: PathBuf,
    /// The base interpreter new venvs are made from.
    pub python: PathBuf,
    /// An explicit wheel (local path or URL) per variant; the agent falls back to the
    /// baseline's. Tried before the build's artifacts.
    pub wheels: BTreeMap<Variant, String>,
    /// Offline installs: `--no-index --find-links DIR` for every install.
    pub find_links: Option<PathBuf>,
    /// Make venvs with `--system-site-packages` (reuse a host's torch).
    pub system_site_packages: bool,
    /// Allow building the engine from source (`Artifact::Source`, native patches).
    pub allow_source_build: bool,
    /// A vLLM source for `benchmarks/*.py`: a local git clone, or an HTTP template with
    /// `{commit}` and `{path}` (e.g.
    /// `https://raw.githubusercontent.com/vllm-project/vllm/{commit}/{path}`).
    pub vllm_source: Option<String>,
    /// The files fetched from an HTTP `vllm_source` (best effort).
    pub script_files: Vec<String>,
    /// Link the configured interpreter's site-packages into every venv (a `.pth` file), so a
    /// host's PyTorch/CUDA stack is reused even when that interpreter is itself a venv.
    pub host_site_packages: bool,
    /// Install the engine wheel without its dependencies (`--no-deps`): for offline hosts whose
    /// stack (torch and the engine's requirements) is already prepared and visible to the venv.
    pub no_deps: bool,
    /// Run without GPUs: leases hold no devices and nothing is pinned (CPU engines, such as
    /// the test stand-in). Off by default: a GPU job on a host without `nvidia-smi` is refused.
    pub cpu_only: bool,
    /// How long `release` waits for a lease's GPU memory to fall, ms.
    pub release_timeout_ms: u64,
    /// How often `release` polls `nvidia-smi`, ms.
    pub release_poll_ms: u64,
    /// GPU memory in use (MiB) below which a released GPU counts as free.
    pub release_memory_mib: u64,
    /// How often a waiting `acquire` re-checks, ms (it is also woken by every release).
    pub acquire_poll_ms: u64,
    /// Grace period between SIGTERM and SIGKILL to a process group, ms.
    pub stop_grace_ms: u64,
    /// Interval between readiness probes of the server, ms.
    pub health_poll_ms: u64,
    /// Server starts tried with a fresh port when the port was taken meanwhile.
    pub port_attempts: u32,
    /// Lines of `server.log` quoted in errors.
    pub log_tail_lines: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            cache_dir: None,
            nvidia_smi: PathBuf::from("nvidia-smi"),
            gpu_lock_dir: None,
            uv: PathBuf::from("uv"),
            python: PathBuf::from("python3"),
            wheels: BTreeMap::new(),
            find_links: None,
            system_site_packages: false,
            cpu_only: false,
            no_deps: false,
            host_site_packages: false,
            allow_source_build: false,
            vllm_source: None,
            script_files: DEFAULT_SCRIPT_FILES.iter().map(|s| s.to_string()).collect(),
            release_timeout_ms: 120_000,
            release_poll_ms: 1_000,
            release_memory_mib: 1_024,
            acquire_poll_ms: 2_000,
            stop_grace_ms: 10_000,
            health_poll_ms: 500,
            port_attempts: 3,
            log_tail_lines: 40,
        }
    }
}

impl LocalConfig {
    /// The cache root: the configured one, else the user's cache dir, else a temp dir.
    pub fn cache_root(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| Path::new(&h).join(".cache"))
            })
            .unwrap_or_else(std::env::temp_dir);
        base.join("perf-runner")
    }

    /// The directory of the venv of a build identity.
    pub fn venv_dir(&self, identity: &str) -> PathBuf {
        self.cache_root().join("venvs").join(safe_name(identity))
    }

    /// The explicit wheel for a variant (the agent falls back to the baseline's).
    pub fn wheel_for(&self, variant: Variant) -> Option<&str> {
        self.wheels
            .get(&variant)
            .or_else(|| match variant {
                Variant::Agent => self.wheels.get(&Variant::Baseline),
                _ => None,
            })
            .map(String::as_str)
    }

    pub(crate) fn stop_grace(&self) -> Duration {
        Duration::from_millis(self.stop_grace_ms)
    }
}

/// A file-name-safe version of an identity or commit: characters outside `[A-Za-z0-9._+-]`
/// become `_`, and names that could escape a directory are prefixed.
pub fn safe_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_partial_configs_fill_in() {
        let c: LocalConfig = serde_json::from_str(r#"{"stop_grace_ms": 5}"#).unwrap();
        assert_eq!(c.stop_grace_ms, 5);
        assert_eq!(c.nvidia_smi, PathBuf::from("nvidia-smi"));
        let mut c = LocalConfig::default();
        c.wheels.insert(Variant::Baseline, "/w/b.whl".into());
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<LocalConfig>(&json).unwrap(), c);
        assert_eq!(c.wheel_for(Variant::Agent), Some("/w/b.whl"));
        assert_eq!(c.wheel_for(Variant::Human), None);
    }

    #[test]
    fn names_cannot_escape() {
        assert_eq!(safe_name("vllm-abc+patch-01"), "vllm-abc+patch-01");
        assert_eq!(safe_name("../x"), "_.._x");
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name("a/b c"), "a_b_c");
    }
}
