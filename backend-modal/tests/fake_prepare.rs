//! `prepare` and `check` against the fake shim (`tests/fake_shim.py`): image candidates in
//! order, agent patches checked and layered, and what `check` reports.

mod common;

use backend_modal::ModalBackend;
use common::*;
use runner_core::task::Variant;
use runner_core::{Backend, Failure, PreparedEnv};

#[tokio::test]
async fn prepare_tries_candidates_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "first_build_fails", |_| {});
    let p = plan(&latency(1), "H100:1");
    let cx = cx(dir.path());
    let env: PreparedEnv = b.prepare(&build(&p, Variant::Human), &cx).await.unwrap();
    assert_eq!(
        env.handle, "im-fake-registry",
        "the wheel candidates failed; the image built"
    );
    assert!(env.reused && env.scripts_dir.as_deref() == Some("/opt/vllm-src"));
    let kinds: Vec<_> = requests(dir.path())
        .iter()
        .map(|r| r["image"]["base"]["kind"].clone())
        .collect();
    assert_eq!(kinds, ["debian_slim", "debian_slim", "registry"]);

    let b = fake(dir.path(), "prepare_unavailable", |_| {});
    let e = b
        .prepare(&build(&p, Variant::Human), &cx)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        Failure::InfraTransient,
        "a transient failure is not a missing wheel"
    );
}

#[tokio::test]
async fn agent_patches_are_checked_and_layered() {
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("agent.patch");
    let py = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a\n+b\n";
    std::fs::write(&patch, py).unwrap();
    let p = plan(&latency(1), "H100:1");
    let mut agent = build(&p, Variant::Baseline);
    agent.patch = Some(runner_core::build::PatchSpec {
        path: patch.display().to_string(),
        sha256: None,
    });
    let cx = cx(dir.path());
    let b = fake(dir.path(), "patch_fails", |_| {});
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::PatchFailed
    );
    let sent = requests(dir.path());
    assert!(
        sent[0]["patch"]
            .to_string()
            .contains("git apply --verbose -p1"),
        "{}",
        sent[0]["patch"]
    );

    // A -p0 patch is a layer too, applied with -p0: never dropped.
    std::fs::write(
        &patch,
        "--- vllm/x.py\t2024-05-01\n+++ vllm/x.py\t2024-05-02\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::PatchFailed
    );
    let sent = requests(dir.path());
    let layer = sent.last().unwrap()["patch"].to_string();
    assert!(layer.contains("git apply --verbose -p0"), "{layer}");
    assert!(layer.contains("add_local_file"), "{layer}");

    std::fs::write(
        &patch,
        format!(
            "{py}diff --git a/csrc/k.cu b/csrc/k.cu\n--- a/csrc/k.cu\n+++ b/csrc/k.cu\n@@ -1 +1 @@\n-a\n+b\n"
        ),
    )
    .unwrap();
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::NeedsCompile
    );
    agent.patch = Some(runner_core::build::PatchSpec {
        path: patch.display().to_string(),
        sha256: Some("00".into()),
    });
    assert_eq!(
        b.prepare(&agent, &cx).await.unwrap_err().kind,
        Failure::BadConfig,
        "changed since planning"
    );
}

#[tokio::test]
async fn check_reports_python_modal_and_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let h = fake(dir.path(), "ok", |_| {}).check().await.unwrap();
    let names: Vec<_> = h.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["python", "modal", "token"]);
    assert!(h.checks[0].ok && h.checks[1].detail == "0.0-fake");
    let broken = ModalBackend::new(backend_modal::ModalConfig {
        python: "/nonexistent/python".into(),
        cache_dir: Some(dir.path().into()),
        ..Default::default()
    });
    let h = broken.check().await.unwrap();
    assert!(!h.usable && !h.checks[0].ok);
}
