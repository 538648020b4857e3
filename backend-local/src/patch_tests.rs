use super::apply::{apply_with, rejected_hunks_git, rejected_hunks_patch};
use super::*;
use runner_core::{Failure, RunContext};

const GIT_PATCH: &str = r#"From abc Mon Sep 17 00:00:00 2001
Subject: [PATCH] speed up

--- a/not/a/header.txt but prose
diff --git a/vllm/engine/x.py b/vllm/engine/x.py
index 111..222 100644
--- a/vllm/engine/x.py
+++ b/vllm/engine/x.py
@@ -1,3 +1,3 @@
 a
--- removed line that looks like a header
+++ added line that looks like a header
 c
@@ -10 +10,2 @@ def f():
 x
+y
diff --git a/csrc/attention.cu b/csrc/attention.cu
--- a/csrc/attention.cu
+++ b/csrc/attention.cu
@@ -1 +1 @@
-int a;
+int b;
diff --git a/tests/test_x.py b/tests/test_x.py
new file mode 100644
--- /dev/null
+++ b/tests/test_x.py
@@ -0,0 +1 @@
+assert True
diff --git a/benchmarks/benchmark_serving.py b/benchmarks/benchmark_serving.py
--- a/benchmarks/benchmark_serving.py
+++ b/benchmarks/benchmark_serving.py
@@ -2,1 +2,1 @@
-old
+new
diff --git a/vllm/old.py b/vllm/new.py
similarity index 100%
rename from vllm/old.py
rename to vllm/new.py
"#;

#[test]
fn parses_git_patches_by_file() {
    let p = parse(GIT_PATCH).unwrap();
    assert_eq!(p.strip, 1);
    let paths: Vec<&str> = p.files.iter().map(|f| f.path()).collect();
    assert_eq!(
        paths,
        [
            "vllm/engine/x.py",
            "csrc/attention.cu",
            "tests/test_x.py",
            "benchmarks/benchmark_serving.py",
            "vllm/new.py"
        ]
    );
    let x = &p.files[0];
    assert_eq!(x.hunks.len(), 2, "a removed '-- ' line is not a header");
    assert_eq!(x.hunks[1].old_start, 10);
    assert!(x.hunks[0].text.contains("+++ added"));
    assert_eq!(p.files[2].old_path, None);
    assert_eq!(p.files[4].old_path.as_deref(), Some("vllm/old.py"));
    let targets: Vec<Target> = p.files.iter().map(|f| f.target()).collect();
    assert_eq!(
        targets,
        [
            Target::Engine,
            Target::Native,
            Target::Ignored,
            Target::Benchmarks,
            Target::Engine
        ]
    );
    let engine = p.subset(Target::Engine);
    assert!(engine.starts_with("diff --git a/vllm/engine/x.py"));
    assert!(engine.contains("rename to vllm/new.py"));
    assert!(!engine.contains("csrc") && !engine.contains("Subject"));
    assert_eq!(p.paths(Target::Native), ["csrc/attention.cu"]);
}

#[test]
fn parses_plain_diffs_without_prefixes() {
    let text = r#"--- vllm/a.py	2024-01-01 00:00:00
+++ vllm/a.py	2024-01-02 00:00:00
@@ -1 +1 @@
-a
+b
--- vllm/b.py
+++ vllm/b.py
@@ -1 +1 @@
-a
+b
"#;
    let p = parse(text).unwrap();
    assert_eq!(p.strip, 0);
    assert_eq!(p.files.len(), 2);
    assert_eq!(p.files[0].path(), "vllm/a.py");
    assert_eq!(p.files[1].path(), "vllm/b.py");
}

#[test]
fn rejects_non_patches_and_bad_headers() {
    assert!(parse("just prose\n").is_err());
    assert!(parse("").is_err());
    assert!(parse("--- a/x\n+++ b/x\n@@ nonsense @@\n").is_err());
}

#[test]
fn classifies_native_and_python_paths() {
    assert_eq!(classify("csrc/ops.h"), Target::Native);
    assert_eq!(classify("vllm/_custom_ops.py"), Target::Engine);
    assert_eq!(classify("vllm/attention/kernel.cuh"), Target::Native);
    assert_eq!(classify("CMakeLists.txt"), Target::Native);
    assert_eq!(classify("cmake/utils.cmake"), Target::Native);
    assert_eq!(classify("setup.py"), Target::Native);
    assert_eq!(classify("benchmarks/kernels/bench.py"), Target::Benchmarks);
    assert_eq!(classify("docs/source/index.md"), Target::Ignored);
}

#[test]
fn names_rejected_hunks() {
    let p = parse(GIT_PATCH).unwrap();
    let out = "checking file vllm/engine/x.py\nHunk #2 FAILED at 10.\n1 out of 2 hunks FAILED\n";
    let e = rejected_hunks_patch(out, &p);
    assert!(e.contains("rejected hunk #2 of vllm/engine/x.py"), "{e}");
    assert!(e.contains("+y"));
    let e = rejected_hunks_git("error: patch failed: vllm/engine/x.py:1\n", &p);
    assert!(
        e.contains("rejected hunk #1") && e.contains("+++ added"),
        "{e}"
    );
}

fn cx() -> RunContext {
    RunContext {
        cancel: Default::default(),
        deadline: None,
        artifact_dir: std::env::temp_dir(),
        data_dir: std::env::temp_dir(),
        lease: Default::default(),
        labels: Default::default(),
        progress: std::sync::Arc::new(runner_core::backend::NoProgress),
    }
}

const TREE_PATCH: &str = r#"--- a/vllm/m.py
+++ b/vllm/m.py
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
"#;

/// Both tools: `patch`, and `git apply` where `patch` is missing (a program that does not exist).
#[tokio::test]
async fn applies_with_patch_or_git_apply_all_or_nothing() {
    let parsed = parse(TREE_PATCH).unwrap();
    for program in ["patch", "/nonexistent/patch"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("vllm")).unwrap();
        let file = dir.path().join("vllm/m.py");
        std::fs::write(&file, "one\ntwo\nthree\n").unwrap();
        let patch_file = dir.path().join("p.patch");
        std::fs::write(&patch_file, TREE_PATCH).unwrap();
        apply_with(program, &patch_file, dir.path(), &parsed, &cx())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "one\nTWO\nthree\n",
            "{program}"
        );

        std::fs::write(&file, "one\nzwei\nthree\n").unwrap();
        let e = apply_with(program, &patch_file, dir.path(), &parsed, &cx())
            .await
            .unwrap_err();
        assert_eq!(e.kind, Failure::PatchFailed, "{program}");
        assert!(
            e.message.contains("rejected hunk #1 of vllm/m.py"),
            "{program}: {e}"
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "one\nzwei\nthree\n",
            "untouched"
        );
    }
}
