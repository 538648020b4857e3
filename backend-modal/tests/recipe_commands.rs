//! The shell commands the image recipes put into `RUN` lines, executed here with bash and
//! python3 against temp dirs: quoting survives and the scripts are fetched from a URL template
//! (the agent patch layer's commands are run the same way by `patch`'s conformance test).

use std::path::Path;
use std::process::Command;

use backend_modal::ModalConfig;
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
        perf_runner_tests::require::skip_or_fail("python3", "recipe_commands", "no python3");
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
