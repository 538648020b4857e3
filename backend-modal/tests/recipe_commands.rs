//! The shell commands the image recipes put into `RUN` lines, executed here with bash, python3
//! and git against temp dirs: quoting survives, the scripts are fetched from a URL template,
//! and the patch lands in site-packages and the scripts dir.

use std::path::Path;
use std::process::Command;

use backend_modal::ModalConfig;
use backend_modal::patch::{patch_commands, patch_files};
use backend_modal::recipe::scripts_command;

fn bash(cmd: &str, pythonpath: Option<&Path>) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg("-c").arg(cmd);
    if let Some(p) = pythonpath {
        c.env("PYTHONPATH", p);
    }
    c.output().expect("bash runs")
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_scripts_layer_fetches_from_the_template_and_skips_missing_files() {
    if !have("python3") {
        eprintln!("SKIPPED: no python3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src/abc123/benchmarks");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("benchmark_serving.py"), "print('hi')\n").unwrap();
    let cfg = ModalConfig {
        vllm_source: Some(format!(
            "file://{}/src/{{commit}}/{{path}}",
            dir.path().display()
        )),
        script_files: vec![
            "benchmarks/benchmark_serving.py".into(),
            "benchmarks/gone.py".into(),
        ],
        ..ModalConfig::default()
    };
    let out_dir = dir.path().join("vllm src");
    let cmd = scripts_command(&cfg, "abc123", &out_dir.display().to_string(), "python3").unwrap();
    let out = bash(&cmd, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("fetched 1 benchmark scripts"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("benchmarks/benchmark_serving.py")).unwrap(),
        "print('hi')\n"
    );
}

#[test]
fn the_patch_layer_applies_package_and_script_hunks_where_they_run() {
    if !have("python3") || !have("git") {
        eprintln!("SKIPPED: needs python3 and git");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site-packages");
    std::fs::create_dir_all(site.join("vllm")).unwrap();
    std::fs::write(site.join("vllm/__init__.py"), "").unwrap();
    std::fs::write(site.join("vllm/x.py"), "a = 1\n").unwrap();
    let scripts = dir.path().join("vllm-src");
    std::fs::create_dir_all(scripts.join("benchmarks")).unwrap();
    std::fs::write(scripts.join("benchmarks/b.py"), "n = 1\n").unwrap();
    let patch = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n\
                 diff --git a/benchmarks/b.py b/benchmarks/b.py\n--- a/benchmarks/b.py\n+++ b/benchmarks/b.py\n@@ -1 +1 @@\n-n = 1\n+n = 2\n\
                 diff --git a/tests/t.py b/tests/t.py\n--- a/tests/t.py\n+++ b/tests/t.py\n@@ -1 +1 @@\n-x\n+y\n";
    let patch_path = dir.path().join("agent.patch");
    std::fs::write(&patch_path, patch).unwrap();
    let files = patch_files(patch);
    assert_eq!(files.other, ["tests/t.py"]);
    let cmds = patch_commands(
        &ModalConfig::default(),
        &files,
        &patch_path.display().to_string(),
        Some(&scripts.display().to_string()),
    );
    assert_eq!(cmds.len(), 2);
    for cmd in &cmds {
        let out = bash(cmd, Some(&site));
        assert!(
            out.status.success(),
            "{cmd}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(site.join("vllm/x.py")).unwrap(),
        "a = 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(scripts.join("benchmarks/b.py")).unwrap(),
        "n = 2\n"
    );
    // A hunk that does not apply fails the layer.
    let out = bash(&cmds[0], Some(&site));
    assert!(!out.status.success(), "applying twice must fail");
}
