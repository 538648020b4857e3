//! Image resolution: missing images (locally and from a registry that says so or fails),
//! images derived from a base image plus a wheel, and agent patches that cannot apply.

use std::collections::BTreeMap;

use runner_core::build::PatchSpec;
use runner_core::{Artifact, Backend, BuildSpec, Failure, Variant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, C_BASELINE};

/// A fake registry on loopback: `/v2/` answers 200, everything else `status` (a 404 with
/// the registry's MANIFEST_UNKNOWN error). TLS attempts are refused, so the engine falls back
/// to plain HTTP as it does for loopback registries.
async fn fake_registry(status: u16) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 || buf[0] == 0x16 {
                    return;
                }
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let (code, body) = if path == "/v2/" {
                    (200, "{}".to_string())
                } else if status == 404 {
                    (
                        404,
                        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                            .to_string(),
                    )
                } else {
                    (status, "upstream trouble".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_images_are_no_image_and_registry_trouble_is_transient() {
    let Some(_d) = support::engine("missing_images").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plan = support::plan(dir.path(), support::SERVE);
    let base = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Baseline)
        .unwrap();
    let cx = support::context(dir.path(), &support::run_id("noimg"), "baseline");

    // No explicit image, the commit image is absent and pulls are off.
    let b = support::backend(dir.path(), |c| c.images = BTreeMap::new());
    let e = b.prepare(base, &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::NoImage, "{e}");
    assert!(e.message.contains("vllm-ci-postmerge-repo:f508e03e"), "{e}");
    assert!(e.message.contains("docker.base_image"), "{e}");

    // A registry that does not know the image.
    let port = fake_registry(404).await;
    let reference = format!("127.0.0.1:{port}/vllm/missing:v1");
    let b = support::backend(dir.path(), |c| {
        c.images = BTreeMap::from([("baseline".into(), reference.clone())]);
        c.pull = backend_docker::PullPolicy::Missing;
    });
    let e = b.prepare(base, &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::NoImage, "{e}");
    assert!(
        e.message
            .contains(&format!("failed to pull image '{reference}'")),
        "{e}"
    );

    // A registry failing with 503 is transient.
    let port = fake_registry(503).await;
    let b = support::backend(dir.path(), |c| {
        c.images = BTreeMap::from([("baseline".into(), format!("127.0.0.1:{port}/vllm/x:v1"))]);
        c.pull = backend_docker::PullPolicy::Missing;
    });
    let e = b.prepare(base, &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wheel_images_are_derived_from_the_base_and_reused() {
    let Some(d) = support::engine("wheel_images").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let b = support::backend(dir.path(), |c| {
        c.images = BTreeMap::new();
        c.base_image = Some(C_BASELINE.into());
    });
    let plan = support::plan(dir.path(), support::SERVE);
    let human = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Human)
        .unwrap();
    let cx = support::context(dir.path(), &support::run_id("wheel"), "human");
    let first = b.prepare(human, &cx).await.unwrap();
    assert!(
        first
            .handle
            .starts_with(&format!("perf-runner/vllm:vllm-{}-", support::COMMIT)),
        "{}",
        first.handle
    );
    let again = b.prepare(human, &cx).await.unwrap();
    assert!(again.reused && again.handle == first.handle);
    // The first wheel candidate of the build, the commit's wheel index, went into the image.
    let i = d.inspect_image(&first.handle).await.unwrap();
    let labels = i.config.and_then(|c| c.labels).unwrap_or_default();
    let want = format!("https://wheels.vllm.ai/{}/", support::COMMIT);
    assert_eq!(labels.get("perf-runner.wheel"), Some(&want));

    let missing = BuildSpec {
        variant: Variant::Human,
        commit: "0".repeat(40),
        artifacts: vec![Artifact::Wheel {
            location: "https://wheels.example/missing/vllm-0.0.0-py3-none-any.whl".into(),
        }],
        patch: None,
        identity: format!("vllm-missing-{}", support::run_id("w")),
    };
    let e = b.prepare(&missing, &cx).await.unwrap_err();
    assert_eq!(e.kind, Failure::NoWheel, "{e}");
    assert!(e.message.contains("HTTP error 404"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_that_do_not_apply_fail_and_native_ones_need_compile() {
    let Some(d) = support::engine("bad_patches").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let b = support::backend_c(dir.path(), |_| {});
    let cx = support::context(dir.path(), &support::run_id("patch"), "agent");
    let agent = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        BuildSpec {
            variant: Variant::Agent,
            commit: support::PARENT.into(),
            artifacts: Vec::new(),
            patch: Some(PatchSpec {
                path: path.display().to_string(),
                sha256: None,
            }),
            identity: format!("vllm-test+{name}-{}", std::process::id()),
        }
    };
    // The baseline's build.txt says "baseline": this hunk cannot apply.
    let stale = "--- a/vllm/build.txt\n+++ b/vllm/build.txt\n@@ -1 +1 @@\n-human\n+agent\n";
    let e = b
        .prepare(&agent("stale.patch", stale), &cx)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::PatchFailed, "{e}");
    assert!(
        e.message.contains("FAILED"),
        "the patch's own output is quoted: {e}"
    );

    let native = format!(
        "{}--- a/csrc/ops.cu\n+++ b/csrc/ops.cu\n@@ -1 +1 @@\n-a\n+b\n",
        support::AGENT_PATCH
    );
    let e = b
        .prepare(&agent("native.patch", &native), &cx)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::NeedsCompile, "{e}");
    assert!(e.message.contains("csrc/ops.cu"));
}
