//! The dry run with the REAL `modal` SDK: the shim builds the SDK's own objects (images,
//! GPU config, volumes, secrets, the sandbox definition proto) without contacting Modal, and
//! these tests assert on what the SDK recorded. Skipped, with a note, where `import modal`
//! fails.

mod common;

use std::path::Path;

use backend_modal::{ModalBackend, ModalConfig};
use common::*;
use runner_core::plan::TaskPlan;
use runner_core::task::Variant;
use serde_json::{Value, json};

fn backend(dir: &Path, tweak: impl FnOnce(&mut ModalConfig)) -> ModalBackend {
    let mut cfg = ModalConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..ModalConfig::default()
    };
    tweak(&mut cfg);
    ModalBackend::new(cfg)
}

fn build(p: &TaskPlan, v: Variant) -> runner_core::BuildSpec {
    p.builds.iter().find(|b| b.variant == v).cloned().unwrap()
}

/// Every Dockerfile command of the final image, in order.
fn commands(plan: &Value) -> Vec<String> {
    plan["image"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["commands"].as_array().unwrap().iter())
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn layer<'a>(plan: &'a Value, method: &str) -> Option<&'a Value> {
    plan["image"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["method"] == method)
}

#[tokio::test]
async fn one_two_and_four_gpu_tasks_build_pinned_sdk_objects() {
    if !modal_ok("one_two_and_four_gpu_tasks_build_pinned_sdk_objects") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path(), |_| {});
    for n in [1u32, 2, 4] {
        let p = plan(&serving(n), &format!("H100:{n}"));
        let plan = b
            .dry_run(&build(&p, Variant::Human), &p.step)
            .await
            .unwrap();
        let gpu = if n == 1 {
            "H100!".to_string()
        } else {
            format!("H100!:{n}")
        };
        assert_eq!(plan["gpu"], gpu.as_str());
        // The SDK's parse of the string, and the definition it would send.
        assert_eq!(plan["gpu_config"], json!({"gpuType": "H100!", "count": n}));
        let def = &plan["sandbox_definition"];
        assert_eq!(
            def["resources"]["gpuConfig"],
            json!({"gpuType": "H100!", "count": n}),
            "{plan:#}"
        );
        assert_eq!(def["entrypointArgs"], json!(["sleep", "infinity"]));
        // server-ready 900 + warm-up 3600 + benchmark 3600 + slack 900.
        assert_eq!(plan["timeout"], 9000);
        assert_eq!(def["timeoutSecs"], 9000);
        assert_eq!(
            plan["volumes"],
            json!({"/root/.cache/huggingface": "perf-runner-hf-cache", "/datasets": "perf-runner-datasets"})
        );
        let mounts: Vec<_> = def["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].clone())
            .collect();
        assert_eq!(
            mounts,
            [json!("/datasets"), json!("/root/.cache/huggingface")]
        );
        assert_eq!(plan["secrets"], json!(["huggingface"]));
        assert_eq!(def["secretIds"].as_array().unwrap().len(), 1);
        assert_eq!(plan["env"]["HF_HOME"], "/root/.cache/huggingface");

        // The image: Modal's slim Python, then the per-commit wheel installed by uv.
        let cmds = commands(&plan);
        assert!(cmds[0].starts_with("FROM python:3.12-slim"), "{cmds:?}");
        let uv = layer(&plan, "uv_pip_install").expect("a uv_pip_install layer");
        let install = uv["commands"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap();
        assert!(install.starts_with("RUN /.uv/uv pip install"), "{install}");
        assert!(
            install.contains(&format!("--extra-index-url https://wheels.vllm.ai/{C}/")),
            "{install}"
        );
        assert!(
            install.contains("--prerelease allow") && install.ends_with(" vllm"),
            "{install}"
        );
        let scripts = cmds
            .iter()
            .find(|c| c.contains("benchmarks/benchmark_serving.py"))
            .expect("a scripts layer");
        assert!(
            scripts.contains(C) && scripts.contains("/opt/vllm-src"),
            "{scripts}"
        );

        let client: Vec<String> =
            serde_json::from_value(plan["processes"]["client"]["argv"].clone()).unwrap();
        assert_eq!(
            client[..2],
            ["python3", "/opt/vllm-src/benchmarks/benchmark_serving.py"]
        );
        let server = plan["processes"]["server"]["argv"].to_string();
        assert!(
            server.contains(&format!("\"--tensor-parallel-size\",\"{n}\"")),
            "{server}"
        );
        assert_eq!(plan["candidates"].as_array().unwrap().len(), 3);
        assert!((plan["usd_per_hour"].as_f64().unwrap() - 3.95 * f64::from(n)).abs() < 1e-9);
    }
}

#[tokio::test]
async fn an_agent_patch_is_a_git_apply_layer_and_images_can_come_from_a_registry() {
    if !modal_ok("an_agent_patch_is_a_git_apply_layer_and_images_can_come_from_a_registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("agent.patch");
    std::fs::write(
        &patch,
        "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    let p = plan(&latency(2), "H100:2");
    let mut agent = build(&p, Variant::Baseline);
    agent.patch = Some(runner_core::build::PatchSpec {
        path: patch.display().to_string(),
        sha256: None,
    });
    let b = backend(dir.path(), |_| {});
    let plan = b.dry_run(&agent, &p.step).await.unwrap();
    let cmds = commands(&plan);
    assert!(
        cmds.contains(&"RUN apt-get install -y git".to_string()),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| c.contains("git apply --verbose -p1 /opt/perf-runner/agent.patch.engine")),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| c.contains(&format!("--extra-index-url https://wheels.vllm.ai/{P}/"))),
        "baseline = parent"
    );
    assert!(
        plan["volumes"].get("/datasets").is_none(),
        "no datasets, no datasets volume"
    );
    assert_eq!(plan["timeout"], 3600 + 900);

    // A configured release image for the commit, unpinned.
    let b = backend(dir.path(), |c| {
        c.images
            .insert(C[..10].to_string(), "vllm/vllm-openai:v0.6.3".into());
        c.pin_sku = false;
    });
    let plan = b
        .dry_run(&build(&p, Variant::Human), &p.step)
        .await
        .unwrap();
    let cmds = commands(&plan);
    assert_eq!(cmds[0], "FROM vllm/vllm-openai:v0.6.3");
    assert!(cmds.contains(&"ENTRYPOINT []".to_string()), "{cmds:?}");
    assert!(layer(&plan, "uv_pip_install").is_none());
    assert_eq!(plan["gpu"], "H100:2");
    assert_eq!(
        plan["sandbox_definition"]["resources"]["gpuConfig"],
        json!({"gpuType": "H100", "count": 2})
    );
}
