//! The created container's configuration, read back through the Engine API: GPU device
//! requests from a (fake) lease, IPC/shm, mounts, labels, environment, ports and argv.

use runner_core::backend::{GpuDevice, GpuLease, JobEnvs};
use runner_core::{Backend, Failure, Variant};

use crate::support::{self, BASELINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_container_is_configured_as_planned() {
    let Some(d) = support::engine("container_config").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let b = support::backend(dir.path(), |c| {
        c.keep_containers = true;
        c.ipc_host = false;
        c.shm_size_mib = 256;
        c.env.insert("EXTRA_VAR".into(), "1".into());
        c.probe_version = false;
    });
    let nvidia = b
        .check()
        .await
        .unwrap()
        .checks
        .iter()
        .any(|c| c.name == "nvidia runtime" && c.ok);
    let mut plan = support::plan(dir.path(), support::SERVE);
    plan.step.env.push(("PLAN_VAR".into(), "x".into()));
    let run = support::run_id("inspect");
    let mut cx = support::context(dir.path(), &run, "baseline");
    let build = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Baseline)
        .unwrap();
    let env = b.prepare(build, &cx).await.unwrap();
    cx.lease = GpuLease {
        id: "fake".into(),
        devices: vec![GpuDevice {
            index: 1,
            uuid: "GPU-00000000-fake-0000-0000-000000000001".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_mib: 81559,
        }],
    };
    let job = JobEnvs {
        engine: env.clone(),
        client: env,
    };
    // Without the NVIDIA runtime the server is created but cannot start.
    let r = b.execute(&job, &plan.step, &cx).await;
    if !nvidia {
        let e = r.expect_err("no engine here can start a GPU container");
        assert_eq!(e.kind, Failure::BadConfig, "{e}");
        assert!(e.message.contains("could not select device driver"), "{e}");
    }
    let name = format!("pr-{run}-{}-baseline-1-server", support::COMMIT);
    let i = d.inspect_container(&name, None).await.unwrap();
    let host = i.host_config.unwrap();
    let req = &host.device_requests.unwrap()[0];
    assert_eq!(req.driver.as_deref(), Some("nvidia"));
    assert_eq!(
        req.device_ids.as_deref(),
        Some(&["GPU-00000000-fake-0000-0000-000000000001".to_string()][..])
    );
    assert_eq!(req.capabilities, Some(vec![vec!["gpu".to_string()]]));
    assert_ne!(host.ipc_mode.as_deref(), Some("host"));
    assert_eq!(host.shm_size, Some(256 << 20));
    let bindings = host.port_bindings.unwrap()["8000/tcp"].clone().unwrap();
    assert_eq!(bindings[0].host_ip.as_deref(), Some("127.0.0.1"));

    let mounts = i.mounts.unwrap();
    let find = |target: &str| {
        mounts
            .iter()
            .find(|m| m.destination.as_deref() == Some(target))
            .unwrap_or_else(|| panic!("no mount at {target}: {mounts:?}"))
    };
    let results = find("/perf-runner/results");
    assert_eq!(results.rw, Some(true));
    assert_eq!(results.typ.as_deref(), Some("bind"));
    assert_eq!(
        results.source.as_deref(),
        Some(cx.artifact_dir.join("results").to_str().unwrap())
    );
    assert_eq!(find("/perf-runner/data").rw, Some(false));
    assert_eq!(find("/root/.cache/huggingface").rw, Some(true));

    let config = i.config.unwrap();
    let labels = config.labels.unwrap();
    assert_eq!(labels["perf-runner.run-id"], run);
    assert_eq!(labels["perf-runner.task"], support::COMMIT);
    assert_eq!(labels["perf-runner.variant"], "baseline");
    assert_eq!(labels["perf-runner.attempt"], "1");
    assert_eq!(labels["perf-runner.role"], "server");
    assert_eq!(
        labels[backend_docker::LABEL_GPUS],
        "GPU-00000000-fake-0000-0000-000000000001"
    );
    let env = config.env.unwrap();
    assert!(env.contains(&"PLAN_VAR=x".to_string()) && env.contains(&"EXTRA_VAR=1".to_string()));
    assert_eq!(config.entrypoint, Some(vec!["python3".to_string()]));
    let cmd = config.cmd.unwrap().join(" ");
    assert!(
        cmd.starts_with("-m vllm.entrypoints.openai.api_server --host 0.0.0.0 --port 8000"),
        "{cmd}"
    );
    assert_eq!(config.image.as_deref(), Some(BASELINE));
    assert_eq!(b.gc(Some(&run)).await.unwrap(), 1);
}
