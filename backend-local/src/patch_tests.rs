use super::{apply_with, rejected_hunks_git, rejected_hunks_patch};
use runner_core::patch::conformance::CASES;
use runner_core::patch::{Target, decide};
use runner_core::{BuildSpec, Failure, RunContext, Variant};

use crate::config::LocalConfig;
use crate::prepare::{AgentPatch, read_patch};
use crate::venv::Marker;

const GIT_PATCH: &str = r#"From abc Mon Sep 17 00:00:00 2001
Subject: [PATCH] speed up

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
"#;

#[test]
fn names_rejected_hunks() {
    let p = decide(GIT_PATCH).unwrap();
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
    let parsed = decide(TREE_PATCH).unwrap();
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

/// The conformance cases through this backend's own use of the decision: `read_patch` refuses
/// what the decision refuses (no source build), and what applies lands, with the decision's
/// `-p` level, in a venv's site-packages (`vllm/`) and a copy of the scripts (`benchmarks/`),
/// with `patch` and with `git apply`.
#[tokio::test]
async fn conformance_cases_through_the_local_backend() {
    for case in CASES {
        let name = case.name;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LocalConfig {
            cache_dir: Some(tmp.path().join("cache")),
            ..LocalConfig::default()
        };
        let build = BuildSpec {
            variant: Variant::Agent,
            commit: "0".repeat(40),
            artifacts: Vec::new(),
            patch: Some(case.write_patch(tmp.path()).unwrap()),
            identity: "vllm-conformance".into(),
        };
        let Some(p) = case.outcome(read_patch(&cfg, &build)).unwrap() else {
            continue;
        };
        let p = p.unwrap();
        assert_eq!(p.decision.strip.level, case.expect.strip, "{name}");
        for program in ["patch", "/nonexistent/patch"] {
            let root = tmp.path().join(program.replace('/', "_"));
            let venv = root.join("venv");
            let site = venv.join("lib/python3.12/site-packages");
            let scripts = root.join("scripts");
            case.lay_out(&site, &scripts).unwrap();
            let scripts_dir = if program == "patch" {
                let mut marker = marker();
                crate::agent::apply_engine(&p, &venv, &mut marker, &cx())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                for path in case.expect.engine {
                    let gone = case.after.contains(&(*path, None));
                    assert_eq!(
                        marker.patched_files.contains_key(*path),
                        !gone,
                        "{name}: {path}"
                    );
                }
                let base = Some(scripts.display().to_string());
                crate::agent::apply_benchmarks(&cfg, &p, name, base, &cx())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .map(std::path::PathBuf::from)
                    .unwrap()
            } else {
                apply_part(program, &p, Target::Engine, &site).await;
                apply_part(program, &p, Target::Benchmarks, &scripts).await;
                scripts
            };
            case.check_after(&site, &scripts_dir).unwrap();
        }
    }
}

async fn apply_part(program: &str, p: &AgentPatch, target: Target, dir: &std::path::Path) {
    let text = p.decision.text(&[target]);
    if text.is_empty() {
        return;
    }
    let file = dir.join("part.patch");
    std::fs::write(&file, text).unwrap();
    apply_with(program, &file, dir, &p.decision, &cx())
        .await
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    std::fs::remove_file(file).unwrap();
}

fn marker() -> Marker {
    Marker {
        identity: String::new(),
        engine_version: None,
        digest: None,
        source: String::new(),
        patch_sha256: None,
        patched_files: Default::default(),
        ignored_files: Vec::new(),
        scripts_dir: None,
    }
}
