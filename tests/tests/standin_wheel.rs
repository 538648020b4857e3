//! The stand-in wheel installs into a real venv made by a real `uv` (or `python3 -m venv` + pip)
//! and serves for real through vLLM's module paths; the binary locator works from any crate.

mod common;

use common::{bin, metric};
use perf_runner_tests::standin::{
    StandinBuild, StandinConfig, StandinServer, build_standin_wheel, http_get, run_standin,
    standin_binary, write_source_tree,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const VERSION: &str = "0.5.3.post1";

fn has(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn check(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A venv with the wheel installed: uv when on PATH, else `python3 -m venv` and pip (offline).
fn venv_with(wheel: &Path, dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let uv_here = has("uv", "--version");
    if !uv_here && perf_runner_tests::require::required("uv") {
        panic!("uv is required here (PERF_RUNNER_TEST_REQUIRE) but not on PATH");
    }
    if uv_here {
        let uv = |args: &[&str]| {
            let mut c = Command::new("uv");
            c.args(args)
                .env("UV_CACHE_DIR", dir.join("uv-cache"))
                .env("UV_PYTHON_DOWNLOADS", "never")
                .env("UV_OFFLINE", "1");
            c
        };
        check(uv(&["venv", "-q", "--python", "python3"]).arg(&venv));
        check(
            uv(&["pip", "install", "-q", "--no-index", "--python"])
                .arg(&python)
                .arg(wheel),
        );
    } else {
        check(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        check(
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "--no-index"])
                .arg(wheel),
        );
    }
    python
}

#[test]
fn wheel_installs_into_a_real_venv_and_serves_for_real() {
    if !has("python3", "-V") {
        perf_runner_tests::require::skip_or_fail("python3", "standin wheel", "no python3 on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = StandinConfig {
        version: VERSION.into(),
        old_format: true,
        startup_ms: 100,
        ..StandinConfig::default()
    };
    let build = StandinBuild {
        config,
        binary: bin().to_path_buf(),
    };
    let wheel = build_standin_wheel(&tmp.path().join("dist"), &build).unwrap();
    assert_eq!(
        wheel.file_name().unwrap(),
        "vllm-0.5.3.post1-py3-none-any.whl"
    );

    // The archive is a valid zip and every RECORD hash matches (checked by Python's zipfile).
    let verify = r#"
import base64, hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None
rec = [l for l in z.read("vllm-0.5.3.post1.dist-info/RECORD").decode().splitlines() if l]
for line in rec:
    path, h, size = line.rsplit(",", 2)
    if not h: continue
    data = z.read(path)
    d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert h == "sha256=" + d and int(size) == len(data), path
print(len(rec))
"#;
    let n = check(Command::new("python3").args(["-c", verify]).arg(&wheel));
    assert!(n.trim().parse::<usize>().unwrap() >= 14, "{n}");

    let python = venv_with(&wheel, tmp.path());
    let v = check(Command::new(&python).args(["-c", "import vllm; print(vllm.__version__)"]));
    assert_eq!(v.trim(), VERSION);

    let mut srv = StandinServer::start(&python, None, "m", &[]).unwrap();
    srv.wait_ready(Duration::from_secs(10)).unwrap();
    assert_eq!(
        http_get(srv.port(), "/v1/models", Duration::from_secs(2))
            .unwrap()
            .0,
        200
    );
    assert!(
        srv.stderr_text()
            .contains(&format!("vLLM API server version {VERSION}"))
    );

    // The `vllm` console script of the wheel runs the serving benchmark against it.
    let port = srv.port().to_string();
    let vllm = python.with_file_name("vllm");
    let args = [
        "bench",
        "serve",
        "--port",
        &port,
        "--model",
        "m",
        "--dataset-name",
        "random",
        "--num-prompts",
        "3",
        "--random-input-len",
        "4",
        "--random-output-len",
        "4",
    ];
    let r = run_standin(&vllm, None, &args, Duration::from_secs(10)).unwrap();
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(metric(&r.stdout, "Successful requests:"), 3.0);

    // An old benchmark script run by the venv's Python uses the installed build (old format).
    let src = tmp.path().join("src");
    write_source_tree(&src, bin()).unwrap();
    let script = src.join("benchmarks/benchmark_throughput.py");
    let args = [
        script.to_str().unwrap(),
        "--input-len",
        "4",
        "--output-len",
        "4",
        "--num-prompts",
        "2",
    ];
    let r = run_standin(&python, None, &args, Duration::from_secs(10)).unwrap();
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Throughput:"))
        .unwrap();
    assert!(
        line.ends_with(" tokens/s") && !line.contains("total tokens/s"),
        "{line}"
    );
    assert!(r.stderr.contains(&format!("(v{VERSION})")));
}

#[test]
fn invalid_versions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = StandinConfig {
        version: "not a version".into(),
        ..StandinConfig::default()
    };
    let build = StandinBuild {
        config,
        binary: bin().to_path_buf(),
    };
    let e = build_standin_wheel(tmp.path(), &build).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn the_locator_provides_an_up_to_date_binary() {
    let found = standin_binary();
    assert!(found.is_file(), "{}", found.display());
    let out = check(
        Command::new(&found)
            .args(["-c", "import vllm; print(vllm.__version__)"])
            .env_remove("VLLM_STANDIN_CONFIG"),
    );
    assert_eq!(out.trim(), StandinConfig::default().version);
}
