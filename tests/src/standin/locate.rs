//! Finding the `vllm-standin` binary from any crate's tests.
//!
//! Tests of this crate can use `env!("CARGO_BIN_EXE_vllm-standin")`; tests of other crates cannot,
//! so [`standin_binary`] builds it once per test process with the same cargo, profile and target
//! folder as the running test (a no-op when it is up to date), and returns its path.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable naming a prebuilt stand-in binary; when set, nothing is built.
pub const BINARY_ENV: &str = "VLLM_STANDIN_BIN";

/// The path of an up-to-date `vllm-standin` binary. Panics with the reason when none can be had
/// (this is a test helper); see [`try_standin_binary`].
pub fn standin_binary() -> PathBuf {
    try_standin_binary().unwrap_or_else(|e| panic!("no vllm-standin binary: {e}"))
}

/// Like [`standin_binary`], returning the error. Order: `$VLLM_STANDIN_BIN`; else the binary in
/// the running test's target folder (`target/<profile>/vllm-standin`) when it is newer than this
/// crate's sources; else, under cargo (`$CARGO` set), `cargo build -p perf-runner-tests --bin
/// vllm-standin` into that folder, once per process (guarded by a `OnceLock`).
pub fn try_standin_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| locate_or_build().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// Where cargo puts things for the running executable.
struct Layout {
    target_dir: PathBuf,
    triple: Option<String>,
    profile: String,
}

fn layout() -> io::Result<Layout> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if matches!(
        dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        dir.pop();
    }
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let is_target = |p: &Path| p.join("CACHEDIR.TAG").is_file();
    if is_target(&parent) {
        return Ok(Layout {
            target_dir: parent,
            triple: None,
            profile,
        });
    }
    let grand = parent.parent().map(Path::to_path_buf).unwrap_or_default();
    let triple = parent
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string);
    if is_target(&grand) && triple.is_some() {
        return Ok(Layout {
            target_dir: grand,
            triple,
            profile,
        });
    }
    Ok(Layout {
        target_dir: parent,
        triple: None,
        profile,
    })
}

fn binary_in(l: &Layout) -> PathBuf {
    let mut p = l.target_dir.clone();
    if let Some(t) = &l.triple {
        p.push(t);
    }
    p.push(&l.profile);
    p.push("vllm-standin");
    p
}

/// Whether `bin` exists and is newer than every source of this crate (then no cargo is needed,
/// e.g. in `cargo test --workspace`, which builds it anyway).
fn is_fresh(bin: &Path, manifest_dir: &Path) -> bool {
    fn newest(p: &Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(p).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        let mut t = meta.modified().ok()?;
        for entry in std::fs::read_dir(p).ok()?.flatten() {
            t = t.max(newest(&entry.path())?);
        }
        Some(t)
    }
    let Some(built) = std::fs::metadata(bin).and_then(|m| m.modified()).ok() else {
        return false;
    };
    let sources = [manifest_dir.join("src"), manifest_dir.join("Cargo.toml")];
    sources
        .iter()
        .all(|s| newest(s).is_some_and(|t| t <= built))
}

fn locate_or_build() -> io::Result<PathBuf> {
    let l = layout()?;
    let bin = binary_in(&l);
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if is_fresh(&bin, manifest_dir) {
        return Ok(bin);
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is missing and $CARGO is unset (set ${BINARY_ENV})",
                    bin.display()
                ),
            ))
        };
    };
    let manifest = manifest_dir.join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "perf-runner-tests",
        "--bin",
        "vllm-standin",
    ])
    .arg("--manifest-path")
    .arg(&manifest)
    .env("CARGO_TARGET_DIR", &l.target_dir);
    match l.profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(t) = &l.triple {
        cmd.args(["--target", t]);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "cargo build of vllm-standin failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not built", bin.display()),
        ))
    }
}
