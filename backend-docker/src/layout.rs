//! How a step's processes become container specs: placeholders, mounts, environment, GPUs,
//! IPC and networking.

use std::path::{Path, PathBuf};

use bollard::models::{DeviceRequest, HostConfig, Mount, MountType, PortBinding};
use runner_core::RunContext;
use runner_core::backend::GpuLease;
use runner_core::stepkit::{Role, ScriptCheck, SourceTree, Values};

use crate::LABEL_GPUS;
use crate::config::{DockerConfig, GpuDevices, NetworkMode};
use crate::containers::{DATA_MOUNT, HF_MOUNT, RESULTS_MOUNT, Spec};

/// How one container of a step is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Net {
    /// The default bridge, with the server port published on the probe host.
    BridgePublish(u16),
    /// The default bridge, nothing published (offline steps).
    Bridge,
    /// The network namespace of another container (the server's).
    JoinContainer(String),
    /// The host's network.
    Host,
}

/// The placeholder values of a process of `role` in a container of an image whose vLLM
/// source tree is `scripts_dir` (else the configured `vllm_source`), with the server on `port`.
/// Paths are the container's: the mounts below and the image's interpreter.
pub(crate) fn values(
    cfg: &DockerConfig,
    role: Role,
    scripts_dir: Option<&str>,
    port: Option<u16>,
) -> Values {
    let host = match (role, cfg.network) {
        // Bridge: the server listens on every address of its own network namespace.
        (Role::Server, NetworkMode::Bridge) => "0.0.0.0",
        _ => "127.0.0.1",
    };
    Values {
        python: Some(cfg.python.clone()),
        host: Some(host.to_string()),
        port,
        result_dir: Some(RESULTS_MOUNT.to_string()),
        vllm_source: Some(SourceTree {
            path: scripts_dir.unwrap_or(&cfg.vllm_source).to_string(),
            check: ScriptCheck::InImage,
        }),
        data_dir: Some(DATA_MOUNT.to_string()),
        // The image has no perf-runner: plans for Docker keep the engine's client.
        perf_runner: None,
    }
}

/// The port the server listens on: `server_port` in its own network namespace (bridge), or a
/// port free on this machine a moment ago (host network).
pub(crate) fn server_port(cfg: &DockerConfig) -> std::io::Result<u16> {
    match cfg.network {
        NetworkMode::Bridge => Ok(cfg.server_port),
        NetworkMode::Host => {
            let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            Ok(l.local_addr()?.port())
        }
    }
}

/// An absolute path (bind mounts need one).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn bind(source: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        source: Some(absolute(source).display().to_string()),
        target: Some(target.to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// The mounts of every container of a step: results (read-write), datasets (read-only), the
/// Hugging Face cache (read-write). Missing host directories are created.
pub(crate) fn mounts(cfg: &DockerConfig, cx: &RunContext, results: &Path) -> Vec<Mount> {
    let mut out = vec![bind(results, RESULTS_MOUNT, false)];
    match std::fs::create_dir_all(&cx.data_dir) {
        Ok(()) => out.push(bind(&cx.data_dir, DATA_MOUNT, true)),
        Err(e) => tracing::warn!(dir = %cx.data_dir.display(), "datasets dir unavailable: {e}"),
    }
    if let Some(hf) = cfg.hf_cache_dir() {
        match std::fs::create_dir_all(&hf) {
            Ok(()) => out.push(bind(&hf, HF_MOUNT, false)),
            Err(e) => tracing::warn!(dir = %hf.display(), "Hugging Face cache unavailable: {e}"),
        }
    }
    out
}

/// `KEY=VALUE` pairs: the plan's, the configured extras, then the secrets.
pub(crate) fn environment(
    plan: &[(String, String)],
    cfg: &DockerConfig,
    secrets: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<String> = plan.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.extend(cfg.env.iter().map(|(k, v)| format!("{k}={v}")));
    out.extend(secrets.iter().map(|(k, v)| format!("{k}={v}")));
    out
}

/// The environment variable that names a container's GPUs to the NVIDIA runtime.
pub(crate) const NVIDIA_VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

/// The lease's device ids as the engine takes them: UUIDs, else indices.
fn device_ids(lease: &GpuLease) -> Vec<String> {
    lease
        .devices
        .iter()
        .map(|g| {
            if g.uuid.is_empty() {
                g.index.to_string()
            } else {
                g.uuid.clone()
            }
        })
        .collect()
}

/// Give a container the GPUs of the lease (nothing for a lease without devices: CPU-only or
/// zero GPUs). Per `gpu_devices`: a device request with the lease's ids (`request`), or
/// `NVIDIA_VISIBLE_DEVICES=<ids>` only (`env`). Either way the container is labelled
/// [`crate::LABEL_GPUS`] with the ids, and the step's own `NVIDIA_VISIBLE_DEVICES` is dropped:
/// the lease decides which GPUs a container sees.
pub(crate) fn give_gpus(spec: &mut Spec, cfg: &DockerConfig, lease: &GpuLease) {
    if lease.devices.is_empty() {
        return;
    }
    let ids = device_ids(lease);
    let joined = ids.join(",");
    let prefix = format!("{NVIDIA_VISIBLE_DEVICES}=");
    spec.env.retain(|kv| !kv.starts_with(&prefix));
    spec.labels.insert(LABEL_GPUS.to_string(), joined.clone());
    match cfg.gpu_devices {
        GpuDevices::Request => {
            spec.host.device_requests = Some(vec![DeviceRequest {
                driver: Some(cfg.gpu_driver.clone()),
                device_ids: Some(ids),
                capabilities: Some(vec![vec!["gpu".to_string()]]),
                ..Default::default()
            }]);
        }
        GpuDevices::Env => spec.env.push(format!("{prefix}{joined}")),
    }
}

/// The host config of one container (without GPUs: see [`give_gpus`]).
pub(crate) fn host_config(cfg: &DockerConfig, mounts: Vec<Mount>, net: &Net) -> HostConfig {
    let (network_mode, port_bindings) = match net {
        Net::BridgePublish(port) => {
            let binding = PortBinding {
                host_ip: Some(cfg.probe_host.clone()),
                host_port: Some(String::new()),
            };
            let map = [(format!("{port}/tcp"), Some(vec![binding]))]
                .into_iter()
                .collect();
            (Some("bridge".to_string()), Some(map))
        }
        Net::Bridge => (Some("bridge".to_string()), None),
        Net::JoinContainer(id) => (Some(format!("container:{id}")), None),
        Net::Host => (Some("host".to_string()), None),
    };
    HostConfig {
        mounts: Some(mounts),
        ipc_mode: cfg.ipc_host.then(|| "host".to_string()),
        shm_size: (!cfg.ipc_host)
            .then(|| i64::try_from(cfg.shm_size_mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX)),
        network_mode,
        port_bindings,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_core::backend::GpuDevice;

    #[test]
    fn placeholders_are_the_container_s() {
        let mut cfg = DockerConfig::default();
        let argv: Vec<String> = [
            "{PYTHON}",
            "{VLLM_SOURCE}/benchmarks/b.py",
            "--host",
            "{HOST}",
            "--port",
            "{PORT}",
            "--result-dir",
            "{RESULT_DIR}",
            "--dataset-path",
            "{DATA_DIR}/d.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = values(&cfg, Role::Client, None, Some(8000))
            .fill(&argv)
            .unwrap();
        assert_eq!(out.argv[0], "python3");
        assert_eq!(out.argv[1], "/vllm-workspace/benchmarks/b.py");
        assert_eq!(out.argv[3], "127.0.0.1");
        assert_eq!(out.argv[5], "8000");
        assert_eq!(out.argv[7], RESULTS_MOUNT);
        assert_eq!(out.argv[9], format!("{DATA_MOUNT}/d.json"));
        // The script is checked where it runs, not on this host.
        assert_eq!(out.required, ["/vllm-workspace/benchmarks/b.py"]);
        let server = values(&cfg, Role::Server, Some("/src"), Some(8000));
        assert_eq!(server.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(server.vllm_source.unwrap().path, "/src");
        // Without a server there is no {PORT}: the step kit's rule, bad_config.
        let e = values(&cfg, Role::Client, None, None)
            .fill(&argv)
            .unwrap_err();
        assert_eq!(e.failure(), runner_core::Failure::BadConfig);
        cfg.network = NetworkMode::Host;
        assert_eq!(
            values(&cfg, Role::Server, None, Some(1)).host.as_deref(),
            Some("127.0.0.1")
        );
        assert_ne!(server_port(&cfg).unwrap(), 0);
    }

    fn spec_with(env: &[&str]) -> Spec {
        Spec {
            name: "c".into(),
            image: "i".into(),
            argv: vec!["python3".into()],
            env: env.iter().map(|s| s.to_string()).collect(),
            labels: Default::default(),
            host: host_config(&DockerConfig::default(), vec![], &Net::Bridge),
            exposed: None,
        }
    }

    fn two_gpus() -> GpuLease {
        let dev = |index, uuid: &str| GpuDevice {
            index,
            uuid: uuid.into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_mib: 1,
        };
        GpuLease {
            id: "l".into(),
            devices: vec![dev(0, "GPU-a"), dev(3, "")],
        }
    }

    #[test]
    fn gpu_requests_follow_the_lease() {
        let cfg = DockerConfig::default();
        let mut s = spec_with(&["NVIDIA_VISIBLE_DEVICES=all", "A=1"]);
        give_gpus(&mut s, &cfg, &GpuLease::default());
        assert!(s.host.device_requests.is_none() && s.labels.is_empty());
        assert_eq!(s.env.len(), 2, "an empty lease changes nothing");

        give_gpus(&mut s, &cfg, &two_gpus());
        let r = s.host.device_requests.as_ref().unwrap();
        assert_eq!(
            r[0].device_ids.as_deref(),
            Some(&["GPU-a".to_string(), "3".to_string()][..])
        );
        assert_eq!(r[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(r[0].capabilities, Some(vec![vec!["gpu".to_string()]]));
        assert_eq!(s.labels[LABEL_GPUS], "GPU-a,3");
        assert_eq!(
            s.env,
            ["A=1"],
            "the step's own NVIDIA_VISIBLE_DEVICES is dropped"
        );
    }

    #[test]
    fn env_mode_names_the_gpus_without_a_device_request() {
        let cfg = DockerConfig {
            gpu_devices: GpuDevices::Env,
            ..DockerConfig::default()
        };
        let mut s = spec_with(&["NVIDIA_VISIBLE_DEVICES=all", "A=1"]);
        give_gpus(&mut s, &cfg, &two_gpus());
        assert!(s.host.device_requests.is_none());
        assert_eq!(s.env, ["A=1", "NVIDIA_VISIBLE_DEVICES=GPU-a,3"]);
        assert_eq!(s.labels[LABEL_GPUS], "GPU-a,3");
    }

    #[test]
    fn ipc_or_shm_and_networks() {
        let mut cfg = DockerConfig::default();
        let h = host_config(&cfg, vec![], &Net::BridgePublish(8000));
        assert_eq!(h.ipc_mode.as_deref(), Some("host"));
        assert!(h.shm_size.is_none());
        assert!(h.port_bindings.unwrap().contains_key("8000/tcp"));
        cfg.ipc_host = false;
        let h = host_config(&cfg, vec![], &Net::JoinContainer("abc".into()));
        assert_eq!(h.shm_size, Some(16 << 30));
        assert_eq!(h.network_mode.as_deref(), Some("container:abc"));
    }
}
