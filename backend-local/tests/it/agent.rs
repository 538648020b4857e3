//! The agent variant: the baseline wheel plus a patch, all or nothing.

use std::path::Path;

use backend_local::LocalBackend;
use runner_core::build::PatchSpec;
use runner_core::{Backend, BuildSpec, Failure, Variant};

use crate::common::*;

const CLEAN: &str = r#"diff --git a/vllm/target.py b/vllm/target.py
--- a/vllm/target.py
+++ b/vllm/target.py
@@ -1,3 +1,3 @@
 def answer():
-    return 41
+    return 42
 
diff --git a/docs/perf.md b/docs/perf.md
new file mode 100644
--- /dev/null
+++ b/docs/perf.md
@@ -0,0 +1 @@
+faster
"#;

/// The second hunk's context does not match the installed file.
const STALE: &str = r#"--- a/vllm/target.py
+++ b/vllm/target.py
@@ -1,3 +1,3 @@
 def answer():
-    return 41
+    return 42
 
@@ -5,2 +5,2 @@
 def name():
-    return 'something else'
+    return 'agent'
"#;

const NATIVE: &str = r#"--- a/csrc/attention/attention_kernels.cu
+++ b/csrc/attention/attention_kernels.cu
@@ -1 +1 @@
-#define BLOCK 128
+#define BLOCK 256
--- a/vllm/target.py
+++ b/vllm/target.py
@@ -1,3 +1,3 @@
 def answer():
-    return 41
+    return 42
 
"#;

fn agent_build(s: &Scratch, patch: &str) -> BuildSpec {
    let path = s.path("agent.patch");
    std::fs::write(&path, patch).unwrap();
    let sha = backend_local::wheel::sha256_file(&path).unwrap();
    let mut b = build(Variant::Agent, &s.wheel());
    b.identity = format!("vllm-{COMMIT}+patch-{sha}");
    b.patch = Some(PatchSpec {
        path: path.display().to_string(),
        sha256: Some(sha),
    });
    b
}

fn installed(env_dir: &str, rel: &str) -> String {
    let sp = backend_local::venv::site_packages(Path::new(env_dir)).unwrap();
    std::fs::read_to_string(sp.join(rel)).unwrap()
}

#[tokio::test]
async fn a_clean_patch_changes_the_installed_file() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let baseline = backend
        .prepare(&build(Variant::Baseline, &s.wheel()), &s.cx())
        .await
        .unwrap();
    let agent = backend
        .prepare(&agent_build(&s, CLEAN), &s.cx())
        .await
        .unwrap();
    assert_ne!(agent.handle, baseline.handle, "the agent gets its own env");
    assert!(installed(&agent.handle, "vllm/target.py").contains("return 42"));
    assert!(
        installed(&baseline.handle, "vllm/target.py").contains("return 41"),
        "baseline untouched"
    );
    assert_eq!(agent.engine_version.as_deref(), Some(VERSION));

    // The patched code is what Python imports.
    let out = std::process::Command::new(Path::new(&agent.handle).join("bin/python"))
        .args(["-c", "import vllm.target as t; print(t.answer())"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    let marker = backend_local::venv::read_marker(Path::new(&agent.handle)).unwrap();
    assert!(marker.patched_files.contains_key("vllm/target.py"));
    assert_eq!(marker.ignored_files, ["docs/perf.md"]);

    let again = backend
        .prepare(&agent_build(&s, CLEAN), &s.cx())
        .await
        .unwrap();
    assert!(again.reused);
}

#[tokio::test]
async fn a_hunk_that_does_not_match_is_patch_failed_with_the_hunk() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let b = agent_build(&s, STALE);
    let e = backend.prepare(&b, &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::PatchFailed, "{e}");
    assert!(
        e.message.contains("rejected hunk #2 of vllm/target.py"),
        "{e}"
    );
    assert!(e.message.contains("return 'something else'"), "{e}");
    assert!(
        !s.config().venv_dir(&b.identity).exists(),
        "no half-patched env is left"
    );
}

#[tokio::test]
async fn a_native_patch_needs_compile() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let e = backend
        .prepare(&agent_build(&s, NATIVE), &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::NeedsCompile);
    assert!(
        e.message.contains("csrc/attention/attention_kernels.cu"),
        "{e}"
    );
}

#[tokio::test]
async fn a_patch_that_changed_since_planning_is_refused() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let mut b = agent_build(&s, CLEAN);
    if let Some(p) = b.patch.as_mut() {
        p.sha256 = Some("0".repeat(64));
    }
    let e = backend.prepare(&b, &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig);
}

#[tokio::test]
async fn a_patch_that_is_a_fifo_or_device_is_refused_at_once() {
    let s = Scratch::new();
    let backend = LocalBackend::new(s.config());
    let fifo = s.path("agent.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [fifo.display().to_string(), "/dev/zero".to_string()] {
        let mut b = build(Variant::Agent, &s.wheel());
        b.patch = Some(PatchSpec {
            path: path.clone(),
            sha256: None,
        });
        let started = std::time::Instant::now();
        let e = backend.prepare(&b, &s.cx()).await.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.kind, Failure::BadConfig, "{e}");
        assert!(
            e.message.contains(&path) && e.message.contains("not a regular file"),
            "{e}"
        );
    }
}
