//! The test images: `FROM scratch` with a test double of vLLM at `/usr/bin/python3`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// The baseline build's image (the project's stand-in).
pub const BASELINE: &str = "perf-runner-test/vllm-standin:baseline";
/// The human build's image (the project's stand-in, 25 % faster).
pub const HUMAN: &str = "perf-runner-test/vllm-standin:human";
/// The baseline build's image with the C double.
pub const C_BASELINE: &str = "perf-runner-test/c-standin:baseline";
/// The human build's image with the C double.
pub const C_HUMAN: &str = "perf-runner-test/c-standin:human";
/// Where the stand-in's "installed vllm package" lives in the test images.
pub const SITE: &str = "/usr/lib/python3/dist-packages";

/// The stand-in's configuration of a build, one key per line (so a patch can change it).
pub fn standin_config(version: &str, speed: &str) -> String {
    format!(
        "{{\n  \"version\": \"{version}\",\n  \"speed\": {speed},\n  \"startup_ms\": 200,\n  \"jitter\": 0.0\n}}\n"
    )
}

/// The baseline build's version.
pub const BASELINE_VERSION: &str = "0.6.3.dev1+gf508e03";
/// The human build's version.
pub const HUMAN_VERSION: &str = "0.6.3.dev2+ge358053";
/// The agent build's version (set by the patch).
pub const AGENT_VERSION: &str = "0.6.3.dev1+gf508e03.agent";

/// The static stand-in binary, compiled once per test process.
pub fn standin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/standin.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("backend-docker-standin");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("python3-{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let st = Command::new(&cc)
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("{cc} (needed to build the stand-in): {e}"));
        assert!(st.success(), "compiling the stand-in failed");
        out
    })
}

/// Host programs (with the shared libraries they need, found by `ldd`) copied into the images:
/// `sh`, `patch` and `rm` for the agent build's `RUN /bin/sh -c …`, and `extra` (the double).
fn host_files(extra: &[(&Path, &str)]) -> Vec<(PathBuf, String)> {
    let tools = [
        (Path::new("/bin/sh"), "bin/sh"),
        (Path::new("/usr/bin/patch"), "usr/bin/patch"),
        (Path::new("/bin/rm"), "bin/rm"),
    ];
    let programs: Vec<(PathBuf, String)> = tools
        .iter()
        .chain(extra)
        .map(|(p, d)| (p.to_path_buf(), d.to_string()))
        .collect();
    perf_runner_tests::rootfs::with_libraries(&programs)
}

fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// Which test double an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Double {
    /// The project's `vllm-standin`.
    Standin,
    /// The C double.
    C,
}

/// A `FROM scratch` image: the double as `/usr/bin/python3`, a fake installed `vllm` package
/// (`build.txt` = `label`; for the stand-in also its `standin-config.json`), `/tmp`,
/// `/vllm-workspace`, and the host's sh, patch and rm. Not rebuilt while an image of that tag
/// was built from the same content (a label holds its hash).
pub async fn build_image(d: &Docker, tag: &str, double: Double, label: &str) {
    let site_config = format!("{SITE}/vllm/standin-config.json");
    let dockerfile = match double {
        Double::Standin => {
            format!("FROM scratch\nCOPY rootfs/ /\nENV VLLM_STANDIN_CONFIG={site_config}\n")
        }
        Double::C => "FROM scratch\nCOPY rootfs/ /\n".to_string(),
    };
    let mut files: Vec<(String, Vec<u8>, u32)> = vec![
        ("Dockerfile".into(), dockerfile.into_bytes(), 0o644),
        (
            format!("rootfs{SITE}/vllm/build.txt"),
            format!("{label}\n").into_bytes(),
            0o644,
        ),
        (format!("rootfs{SITE}/vllm/__init__.py"), Vec::new(), 0o644),
        (
            "rootfs/vllm-workspace/benchmarks/README".into(),
            Vec::new(),
            0o644,
        ),
    ];
    let binary = match double {
        Double::Standin => {
            let (version, speed) = if label == "human" {
                (HUMAN_VERSION, "1.25")
            } else {
                (BASELINE_VERSION, "1.0")
            };
            let config = standin_config(version, speed).into_bytes();
            files.push((format!("rootfs{site_config}"), config, 0o644));
            perf_runner_tests::standin::standin_binary()
        }
        Double::C => standin().to_path_buf(),
    };
    for (src, dest) in host_files(&[(&binary, "usr/bin/python3")]) {
        let data = std::fs::read(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        files.push((format!("rootfs/{dest}"), data, 0o755));
    }
    let mut hash = Sha256::new();
    for (name, data, mode) in &files {
        hash.update(name.as_bytes());
        hash.update(mode.to_le_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
    }
    let hash = hex::encode(hash.finalize());
    const LABEL: &str = "perf-runner-test.content";
    if let Ok(i) = d.inspect_image(tag).await {
        let labels = i.config.and_then(|c| c.labels).unwrap_or_default();
        if labels.get(LABEL) == Some(&hash) {
            return;
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, mode) in &files {
        append(&mut b, name, data, *mode);
    }
    let mut tmp = tar::Header::new_gnu();
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tmp.set_cksum();
    b.append_data(&mut tmp, "rootfs/tmp/", std::io::empty())
        .unwrap();
    let tar = b.into_inner().unwrap();
    let labels = HashMap::from([(LABEL, hash.as_str())]);
    let opts = BuildImageOptionsBuilder::new()
        .t(tag)
        .rm(true)
        .labels(&labels)
        .build();
    let mut s = d.build_image(opts, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = s.next().await {
        item.unwrap_or_else(|e| panic!("building {tag}: {e}"));
    }
}

/// The test images, built once per test process.
pub async fn images(d: &Docker) {
    static DONE: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
    let mut done = DONE.lock().await;
    if !*done {
        let t = Instant::now();
        let bin = perf_runner_tests::standin::standin_binary();
        if std::env::var_os("PR_TEST_PROGRESS").is_some() {
            eprintln!(
                "stand-in {} located in {:.1} s",
                bin.display(),
                t.elapsed().as_secs_f64()
            );
        }
        build_image(d, BASELINE, Double::Standin, "baseline").await;
        build_image(d, HUMAN, Double::Standin, "human").await;
        build_image(d, C_BASELINE, Double::C, "baseline").await;
        build_image(d, C_HUMAN, Double::C, "human").await;
        if std::env::var_os("PR_TEST_PROGRESS").is_some() {
            eprintln!("test images ready in {:.1} s", t.elapsed().as_secs_f64());
        }
        *done = true;
    }
}
