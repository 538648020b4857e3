use super::*;

const GIT_PATCH: &str = "From abc Mon Sep 17 00:00:00 2001\n\
Subject: [PATCH] speed up\n\
\n\
--- a/not/a/header.txt but prose\n\
diff --git a/vllm/engine/x.py b/vllm/engine/x.py\n\
index 111..222 100644\n\
--- a/vllm/engine/x.py\n\
+++ b/vllm/engine/x.py\n\
@@ -1,3 +1,3 @@\n\
 a\n\
--- removed line that looks like a header\n\
+new\n\
 c\n\
@@ -10 +10,2 @@ def f():\n\
 x\n\
+y\n\
diff --git a/csrc/attention.cu b/csrc/attention.cu\n\
--- a/csrc/attention.cu\n\
+++ b/csrc/attention.cu\n\
@@ -1 +1 @@\n\
-int a;\n\
+int b;\n\
diff --git a/tests/test_x.py b/tests/test_x.py\n\
new file mode 100644\n\
--- /dev/null\n\
+++ b/tests/test_x.py\n\
@@ -0,0 +1 @@\n\
+assert True\n\
diff --git a/benchmarks/benchmark_serving.py b/benchmarks/benchmark_serving.py\n\
--- a/benchmarks/benchmark_serving.py\n\
+++ b/benchmarks/benchmark_serving.py\n\
@@ -2,1 +2,1 @@\n\
-old\n\
+new\n\
diff --git a/vllm/old.py b/vllm/new.py\n\
similarity index 100%\n\
rename from vllm/old.py\n\
rename to vllm/new.py\n";

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
    assert!(x.hunks[0].text.contains("+new"));
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
    let text = "--- vllm/a.py\t2024-01-01 00:00:00\n+++ vllm/a.py\t2024-01-02 00:00:00\n\
@@ -1 +1 @@\n-a\n+b\n--- vllm/b.py\n+++ vllm/b.py\n@@ -1 +1 @@\n-a\n+b\n";
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
    assert!(e.contains("rejected hunk #1") && e.contains("+new"), "{e}");
}
