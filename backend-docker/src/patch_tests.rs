use std::path::Path;
use std::process::Command;

use runner_core::patch::conformance::{CASES, Case};

use super::*;

/// A folder of links to the programs the script may use: `patch` only when `with_patch`, so
/// the `git apply` branch runs too.
fn bin_dir(root: &Path, with_patch: bool) -> std::path::PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut tools = vec!["sh", "python3", "git", "rm"];
    if with_patch {
        tools.push("patch");
    }
    for tool in tools {
        // The interpreter itself, not a shim that needs other programs.
        let ask = match tool {
            "python3" => "python3 -c 'import sys; print(sys.executable)'".to_string(),
            _ => format!("command -v {tool}"),
        };
        let out = Command::new("sh").args(["-c", &ask]).output().unwrap();
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!found.is_empty(), "{tool} is needed by this test");
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    bin
}

/// Lay out an image's file system in `root`, run the layer's script there as the image build
/// would, and return its output.
fn run_layer(case: &Case, root: &Path, layer: &PatchLayer, with_patch: bool) -> (bool, String) {
    let ctx = root.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let site = root.join("site");
    case.lay_out(&site, &root.join("src")).unwrap();
    for (name, text) in &layer.files {
        std::fs::write(ctx.join(name), text).unwrap();
    }
    let out = Command::new("/bin/sh")
        .args(["-c", &layer.script])
        .env("PATH", bin_dir(root, with_patch))
        .env("PYTHONPATH", &site)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The conformance cases through this backend's own use of the decision: `agent_layer`
/// refuses what the decision refuses, and the layer's script, run against an image-like tree,
/// applies each part where the decision says with its `-p` level (with `patch`, and with
/// `git apply` where the image has no `patch`).
#[test]
fn conformance_cases_through_the_agent_image_step() {
    for case in CASES {
        let name = case.name;
        let tmp = tempfile::tempdir().unwrap();
        let spec = case.write_patch(tmp.path()).unwrap();
        let config = DockerConfig {
            python: "python3".into(),
            ..DockerConfig::default()
        };
        let Some((decision, _)) = case.outcome(agent_layer(&spec, &config)).unwrap() else {
            continue;
        };
        assert_eq!(decision.strip.level, case.expect.strip, "{name}");
        for with_patch in [true, false] {
            let root = tmp.path().join(format!("image-{with_patch}"));
            let layer = PatchLayer::new(
                &decision,
                "python3",
                &root.join("src").display().to_string(),
                &root.join("ctx").display().to_string(),
            );
            let names: Vec<&str> = layer.files.iter().map(|(n, _)| *n).collect();
            let parts = [
                (!case.expect.engine.is_empty(), ENGINE_PART),
                (!case.expect.benchmarks.is_empty(), BENCHMARKS_PART),
            ];
            let want: Vec<&str> = parts.iter().filter(|p| p.0).map(|p| p.1).collect();
            assert_eq!(names, want, "{name}");
            let (ok, out) = run_layer(case, &root, &layer, with_patch);
            assert!(ok, "{name} (patch: {with_patch}):\n{}\n{out}", layer.script);
            case.check_after(&root.join("site"), &root.join("src"))
                .unwrap_or_else(|e| panic!("patch: {with_patch}: {e}"));
            for (n, _) in &layer.files {
                assert!(!root.join("ctx").join(n).exists(), "{n} is removed");
            }
        }
    }
}

#[test]
fn a_part_that_does_not_apply_fails_the_step_and_missing_scripts_are_said() {
    let stale = "--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-human\n+agent\n";
    let d = runner_core::patch::decide(stale).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layer = PatchLayer::new(
        &d,
        "python3",
        &root.join("src").display().to_string(),
        &root.join("ctx").display().to_string(),
    );
    let case = Case {
        before: &[("vllm/x.py", "baseline\n")],
        ..CASES[0]
    };
    let (ok, out) = run_layer(&case, root, &layer, true);
    assert!(!ok && out.contains("FAILED"), "{out}");
    assert_eq!(
        std::fs::read_to_string(root.join("site/vllm/x.py")).unwrap(),
        "baseline\n",
        "untouched"
    );

    // Without scripts in the image, the benchmarks/ part is left out and said, unless it is
    // the whole patch.
    let both = CASES
        .iter()
        .find(|c| c.name == "vllm/ and benchmarks/")
        .unwrap();
    let bench_only = "--- a/benchmarks/b.py\n+++ b/benchmarks/b.py\n@@ -1 +1 @@\n-a\n+b\n";
    for (text, ok) in [(both.patch, true), (bench_only, false)] {
        let d = runner_core::patch::decide(text).unwrap();
        let root = tmp.path().join(format!("no-scripts-{ok}"));
        let layer = PatchLayer::new(
            &d,
            "python3",
            "/nonexistent/src dir",
            &root.join("ctx").display().to_string(),
        );
        let (done, out) = run_layer(both, &root, &layer, true);
        assert_eq!(done, ok, "{out}");
        assert!(
            out.contains("no benchmark scripts at /nonexistent/src dir/benchmarks"),
            "{out}"
        );
    }
}
