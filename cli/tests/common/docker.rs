//! `FROM scratch` images of the stand-in engine for the Docker backend, built with the
//! `docker` CLI: the stand-in as `/usr/bin/python3` with the shared libraries it needs (found
//! by `ldd`), its build config as the installed `vllm` package's `standin-config.json`.

use std::path::Path;
use std::process::Command;

use perf_runner_tests::standin::{StandinConfig, standin_binary};
use sha2::{Digest, Sha256};

const SITE: &str = "usr/lib/python3/dist-packages";
const CONTENT_LABEL: &str = "perf-runner-test.content";

/// Whether a Docker Engine answers; prints why a test is skipped when not.
pub fn available(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || perf_runner_tests::require::skip_or_fail(
        "docker",
        test,
        "no Docker Engine reachable (start dockerd or set DOCKER_HOST)",
    )
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The stand-in binary and its shared libraries: (host path, path in the image).
fn binary_files() -> Vec<(std::path::PathBuf, String)> {
    perf_runner_tests::rootfs::with_libraries(&[(standin_binary(), "usr/bin/python3".to_string())])
}

/// Build (unless an image of `tag` has the same content) a stand-in image with `config`.
pub fn standin_image(tag: &str, config: &StandinConfig) {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path().join("rootfs");
    let mut files: Vec<(String, Vec<u8>, u32)> = vec![
        (
            format!("{SITE}/vllm/standin-config.json"),
            config.to_json().into_bytes(),
            0o644,
        ),
        (format!("{SITE}/vllm/__init__.py"), Vec::new(), 0o644),
        ("vllm-workspace/benchmarks/README".into(), Vec::new(), 0o644),
    ];
    for (src, dest) in binary_files() {
        files.push((dest, std::fs::read(&src).unwrap(), 0o755));
    }
    let mut hash = Sha256::new();
    for (name, data, mode) in &files {
        hash.update(name.as_bytes());
        hash.update(mode.to_le_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
    }
    let hash = hex::encode(hash.finalize());
    let have = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{CONTENT_LABEL}\"}}}}"),
            tag,
        ])
        .output()
        .unwrap();
    if have.status.success() && String::from_utf8_lossy(&have.stdout).trim() == hash {
        return;
    }
    for (name, data, mode) in &files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        set_mode(&p, *mode);
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    set_mode(&root.join("tmp"), 0o1777);
    let dockerfile = format!(
        "FROM scratch\nCOPY rootfs/ /\nENV VLLM_STANDIN_CONFIG=/{SITE}/vllm/standin-config.json\nLABEL {CONTENT_LABEL}={hash}\n"
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    docker(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Containers (any state) labelled with the run id: `name state` lines.
pub fn containers(run: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={}={run}", backend_docker::LABEL_RUN_ID),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    out.lines().map(str::to_string).collect()
}
