use std::path::Path;
use std::process::Command;

use runner_core::patch::conformance::CASES;

use super::*;
use crate::recipe::SCRIPTS_DIR;

fn config(with_scripts: bool) -> ModalConfig {
    ModalConfig {
        vllm_source: with_scripts.then(|| "https://example.invalid/{commit}/{path}".into()),
        ..ModalConfig::default()
    }
}

/// Run a layer's commands here, as the image build would: the files it adds are read where
/// they were written, the scripts dir is `scripts`, `python3` finds `vllm` in `site`.
fn run_layer(layer: &PatchLayer, site: &Path, scripts: &Path) -> Result<(), String> {
    let mut commands = Vec::new();
    let mut files = Vec::new();
    for op in &layer.ops {
        match op {
            ImageOp::AddLocalFile {
                local_path,
                remote_path,
                ..
            } => files.push((remote_path.clone(), local_path.clone())),
            ImageOp::RunCommands { commands: c } => commands.extend(c.iter().cloned()),
            ImageOp::AptInstall { .. } => {}
            other => return Err(format!("unexpected op {other:?}")),
        }
    }
    for cmd in commands {
        let mut local = cmd.replace(SCRIPTS_DIR, &scripts.display().to_string());
        for (remote, path) in &files {
            local = local.replace(remote.as_str(), path);
        }
        let out = Command::new("bash")
            .args(["-c", &local])
            .env("PYTHONPATH", site)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{local}\n{}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

/// The conformance cases through this backend's own use of the decision: `patch_layer`
/// refuses what the decision refuses, and the layer's commands, run here against an
/// image-like tree, apply each part where the decision says with its `-p` level — a `-p0`
/// patch included, which is applied, never dropped.
#[test]
fn conformance_cases_through_the_patch_layer() {
    for case in CASES {
        let name = case.name;
        let tmp = tempfile::tempdir().unwrap();
        let spec = case.write_patch(tmp.path()).unwrap();
        let parts = tmp.path().join("parts");
        let Some(layer) = case
            .outcome(patch_layer(&config(true), &spec, &parts))
            .unwrap()
        else {
            continue;
        };
        assert_eq!(layer.decision.strip.level, case.expect.strip, "{name}");
        let want: Vec<String> = case.expect.left_out.iter().map(|s| s.to_string()).collect();
        assert_eq!(layer.left_out, want, "{name}");
        let site = tmp.path().join("site");
        let scripts = tmp.path().join("scripts");
        case.lay_out(&site, &scripts).unwrap();
        run_layer(&layer, &site, &scripts).unwrap_or_else(|e| panic!("{name}: {e}"));
        case.check_after(&site, &scripts).unwrap();
        // Applying again fails: the layer is all or nothing, never a silent no-op.
        assert!(run_layer(&layer, &site, &scripts).is_err(), "{name}");
    }
}

#[test]
fn without_scripts_the_benchmarks_part_is_left_out_or_the_patch_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let both = CASES
        .iter()
        .find(|c| c.name == "vllm/ and benchmarks/")
        .unwrap();
    let write = |text: &str| {
        let path = tmp.path().join("agent.patch");
        std::fs::write(&path, text).unwrap();
        PatchSpec {
            path: path.display().to_string(),
            sha256: None,
        }
    };
    let parts = tmp.path().join("parts");
    let layer = patch_layer(&config(false), &write(both.patch), &parts).unwrap();
    assert_eq!(
        layer.left_out,
        ["tests/test_llm.py", "benchmarks/benchmark_latency.py"]
    );
    let adds = layer
        .ops
        .iter()
        .filter(|o| matches!(o, ImageOp::AddLocalFile { .. }))
        .count();
    assert_eq!(adds, 1, "the vllm/ part only");

    let bench = "--- a/benchmarks/b.py\n+++ b/benchmarks/b.py\n@@ -1 +1 @@\n-a\n+b\n";
    let e = patch_layer(&config(false), &write(bench), &parts).unwrap_err();
    assert_eq!(e.kind, Failure::PatchFailed, "{e}");
    assert!(e.message.contains("benchmarks/b.py"), "{e}");
}
