//! The Docker backend's settings: the `[docker]` section of perf-runner's configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use runner_core::{BackendError, Failure, Variant};
use serde::{Deserialize, Serialize};

use crate::NAME;

/// Where the measured containers are reachable and how the serving client reaches the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The server runs on the default bridge and listens on `0.0.0.0:<server_port>` inside its
    /// container; the port is published on `127.0.0.1` with a host port the engine picks (the
    /// readiness probe uses it). The client and warm-up containers join the server's network
    /// namespace (`container:<server>`) and connect to `127.0.0.1:<server_port>`. Nothing is
    /// reachable from outside the host, and no network object is created that could leak.
    #[default]
    Bridge,
    /// Every container uses the host's network; the server listens on `127.0.0.1` on a free port
    /// chosen per run. For GPU hosts where bridge networking costs or is unavailable; it needs
    /// the Docker Engine on this machine.
    Host,
}

/// When images are pulled from a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally (the default).
    #[default]
    Missing,
    /// Never pull: a missing image is `no_image` (offline hosts, tests).
    Never,
    /// Always pull, to refresh moving tags.
    Always,
}

/// The `[docker]` section of perf-runner's embedded defaults: every key is optional (the values
/// of [`DockerConfig::default`] apply); the commented keys are the ones most hosts set.
pub const DEFAULT_TOML: &str = r#"[docker]
# docker_host = "unix:///var/run/docker.sock"   # else DOCKER_HOST, else the default socket
# images = { baseline = "my/vllm:base", human = "my/vllm:human" }
# versions = { "f508e03e7f2d" = "0.6.3" }        # commit prefix (>= 7) -> release version
# base_image = "my/cuda-python:12.4"            # for base + wheel images
# pull = "missing"                              # missing | never | always
# network = "bridge"                            # bridge | host
# hf_cache = "/data/hf"                         # else $HF_HOME, else ~/.cache/huggingface
# secret_env = ["HF_TOKEN"]
# nvidia_smi = "nvidia-smi"                     # how this host's GPUs are found for leases
# gpu_lock_dir = "/run/perf-runner"             # GPU lock files shared by every perf-runner of this host
# cpu_only = false                              # true: lease no GPU (CPU engines, tests)
# gpu_devices = "request"                       # request (DeviceRequest) | env (NVIDIA_VISIBLE_DEVICES)
"#;

/// How a container is given the GPUs of its task's lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuDevices {
    /// A device request `{driver: gpu_driver, device_ids: the lease's UUIDs (else indices),
    /// capabilities: [[gpu]]}`: the Docker Engine with the NVIDIA Container Toolkit (runtime or
    /// CDI) exposes exactly those GPUs. An engine without it fails the container's start
    /// (`bad_config`).
    #[default]
    Request,
    /// No device request: `NVIDIA_VISIBLE_DEVICES=<the lease's UUIDs>` in the container's
    /// environment only. For engines whose default runtime is `nvidia` (which reads the
    /// variable), and for engines without GPUs (tests with a fake `nvidia-smi`).
    Env,
}

/// The Docker backend's settings. Every key is optional; see the crate README for the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerConfig {
    /// Engine address (`unix:///var/run/docker.sock`, `tcp://host:2375`); `None` = `DOCKER_HOST`
    /// or the default socket.
    pub docker_host: Option<String>,
    /// Seconds one Engine API request may take before its response headers arrive (bollard's
    /// default of 120 s is too short for pulls and builds on a busy engine).
    pub request_timeout_s: u64,
    /// Explicit images per variant (`baseline`, `human`, `agent`), tried before anything else
    /// and never substituted when missing. The agent's patch is applied on top of `agent` (or
    /// of `baseline` when `agent` is not set).
    pub images: BTreeMap<String, String>,
    /// Known vLLM release versions per commit (a full hash or a prefix of at least 7
    /// characters), used for the release image.
    pub versions: BTreeMap<String, String>,
    /// The release image template; `{version}` is replaced by the commit's known version.
    pub release_image: String,
    /// A base image (with Python and pip) for images derived from per-commit wheels; unset = no
    /// derived wheel images.
    pub base_image: Option<String>,
    /// When images are pulled.
    pub pull: PullPolicy,
    /// The interpreter inside images (`{PYTHON}`).
    pub python: String,
    /// Where images keep a vLLM source tree with `benchmarks/` (`{VLLM_SOURCE}`).
    pub vllm_source: String,
    /// How containers are networked.
    pub network: NetworkMode,
    /// The server's port inside its container (bridge mode).
    pub server_port: u16,
    /// The host the readiness probe connects to for published ports.
    pub probe_host: String,
    /// Run containers with `--ipc=host` (vLLM's recommendation); else `shm_size_mib` applies.
    pub ipc_host: bool,
    /// Size of `/dev/shm` when `ipc_host` is off, MiB.
    pub shm_size_mib: u64,
    /// Whether the Hugging Face cache is mounted at `/root/.cache/huggingface`.
    pub mount_hf_cache: bool,
    /// Host directory of the Hugging Face cache; `None` = `$HF_HOME`, else
    /// `$HOME/.cache/huggingface`.
    pub hf_cache: Option<PathBuf>,
    /// Environment variables copied from the caller's environment into every container when
    /// set. Their values are secrets: never logged, never in records or error messages.
    pub secret_env: Vec<String>,
    /// Extra environment for every container (after the plan's).
    pub env: BTreeMap<String, String>,
    /// The device-request driver for GPUs.
    pub gpu_driver: String,
    /// The `nvidia-smi` program that lists the engine host's GPUs for leases (a name looked up
    /// on `PATH`, or a path; for a remote engine, a wrapper that runs it on that host).
    pub nvidia_smi: PathBuf,
    /// The folder of host-wide GPU lock files shared with the local backend and other
    /// perf-runner processes of this host; `None` = `/var/tmp/perf-runner-gpu-leases`. (For a
    /// remote engine, GPUs are kept apart per process only unless every client of that engine
    /// shares this folder.)
    pub gpu_lock_dir: Option<PathBuf>,
    /// Run without GPUs: leases hold no devices and containers get none (CPU images, such as
    /// the test stand-in). Off by default: a GPU step on a host without `nvidia-smi` is refused.
    pub cpu_only: bool,
    /// How containers are given their lease's GPUs.
    pub gpu_devices: GpuDevices,
    /// Keep containers after a step (debugging); `gc` removes them later.
    pub keep_containers: bool,
    /// Ask each new image for its installed vLLM version (a short container run).
    pub probe_version: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            docker_host: None,
            request_timeout_s: 900,
            images: BTreeMap::new(),
            versions: BTreeMap::new(),
            release_image: "vllm/vllm-openai:v{version}".into(),
            base_image: None,
            pull: PullPolicy::Missing,
            python: "python3".into(),
            vllm_source: "/vllm-workspace".into(),
            network: NetworkMode::Bridge,
            server_port: 8000,
            probe_host: "127.0.0.1".into(),
            ipc_host: true,
            shm_size_mib: 16 * 1024,
            mount_hf_cache: true,
            hf_cache: None,
            secret_env: vec!["HF_TOKEN".into()],
            env: BTreeMap::new(),
            gpu_driver: "nvidia".into(),
            nvidia_smi: PathBuf::from("nvidia-smi"),
            gpu_lock_dir: None,
            cpu_only: false,
            gpu_devices: GpuDevices::Request,
            keep_containers: false,
            probe_version: true,
        }
    }
}

impl DockerConfig {
    /// Read the `[docker]` section of the settings. Returns the config and the keys it did not
    /// know (the caller warns about them).
    pub fn from_table(table: &toml::Table) -> Result<(DockerConfig, Vec<String>), BackendError> {
        let mut unknown = Vec::new();
        let value = toml::Value::Table(table.clone());
        let config: DockerConfig =
            serde_ignored::deserialize(value, |path| unknown.push(path.to_string())).map_err(
                |e| BackendError::new(NAME, Failure::BadConfig, format!("[docker] settings: {e}")),
            )?;
        Ok((config, unknown))
    }

    /// The explicit image configured for a variant (the agent falls back to the baseline's).
    pub fn explicit_image(&self, variant: Variant) -> Option<&str> {
        let own = self.images.get(variant.as_str());
        let fallback = (variant == Variant::Agent)
            .then(|| self.images.get(Variant::Baseline.as_str()))
            .flatten();
        own.or(fallback).map(String::as_str)
    }

    /// The release image of a commit whose version is configured.
    pub fn release_image_for(&self, commit: &str) -> Option<String> {
        self.versions
            .iter()
            .find(|(k, _)| {
                k.len() >= 7 && (commit.starts_with(k.as_str()) || k.starts_with(commit))
            })
            .map(|(_, v)| {
                let v = v.strip_prefix('v').unwrap_or(v);
                self.release_image.replace("{version}", v)
            })
    }

    /// The host directory mounted as the Hugging Face cache, when mounting is on.
    pub fn hf_cache_dir(&self) -> Option<PathBuf> {
        if !self.mount_hf_cache {
            return None;
        }
        if let Some(p) = &self.hf_cache {
            return Some(p.clone());
        }
        if let Some(h) = std::env::var_os("HF_HOME").filter(|h| !h.is_empty()) {
            return Some(PathBuf::from(h));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache").join("huggingface"))
    }

    /// The secret values present in the caller's environment, by variable name.
    pub(crate) fn secrets(&self) -> Vec<(String, String)> {
        self.secret_env
            .iter()
            .filter_map(|k| {
                std::env::var(k)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| (k.clone(), v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_with_unknown_keys_is_read_and_reported() {
        let t: toml::Table = toml::from_str(
            r#"
            network = "host"
            keep_containers = true
            colour = "blue"
            cpu_only = true
            gpu_devices = "env"
            nvidia_smi = "/opt/bin/nvidia-smi"
            [images]
            baseline = "img:base"
            "#,
        )
        .unwrap();
        let (c, unknown) = DockerConfig::from_table(&t).unwrap();
        assert_eq!(c.network, NetworkMode::Host);
        assert!(c.keep_containers);
        assert_eq!(c.explicit_image(Variant::Agent), Some("img:base"));
        assert_eq!(c.explicit_image(Variant::Human), None);
        assert_eq!(unknown, vec!["colour".to_string()]);
        assert_eq!(c.server_port, 8000);
        assert!(c.cpu_only);
        assert_eq!(c.gpu_devices, GpuDevices::Env);
        assert_eq!(c.nvidia_smi, PathBuf::from("/opt/bin/nvidia-smi"));
        let d = DockerConfig::default();
        assert!(!d.cpu_only && d.gpu_devices == GpuDevices::Request);
        assert_eq!(d.nvidia_smi, PathBuf::from("nvidia-smi"));
    }

    #[test]
    fn bad_values_are_bad_config() {
        let t: toml::Table = toml::from_str("network = 3").unwrap();
        let e = DockerConfig::from_table(&t).unwrap_err();
        assert_eq!(e.kind, Failure::BadConfig);
    }

    #[test]
    fn release_image_by_commit_prefix() {
        let mut c = DockerConfig::default();
        c.versions.insert("abcdef1".into(), "v0.6.3".into());
        assert_eq!(
            c.release_image_for("abcdef1234567890").as_deref(),
            Some("vllm/vllm-openai:v0.6.3")
        );
        assert_eq!(c.release_image_for("1234567"), None);
    }
}
