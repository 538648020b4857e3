//! A real PEP 427 wheel of the stand-in: `vllm-<version>-py3-none-any.whl`, with Python shims at
//! vLLM's entry-point modules that `exec` the bundled `vllm-standin` binary.

use super::config::StandinConfig;
use super::zip::{Entry, b64_urlsafe_nopad, write_zip};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};

/// One build to package: its config (shipped as `vllm/_standin/standin-config.json`) and the
/// stand-in binary to bundle.
#[derive(Debug, Clone)]
pub struct StandinBuild {
    /// What the build claims and how it behaves.
    pub config: StandinConfig,
    /// The `vllm-standin` executable bundled as `vllm/_standin/vllm-standin`.
    pub binary: PathBuf,
}

impl StandinBuild {
    /// A build of `config` bundling the binary found by [`super::standin_binary`].
    pub fn new(config: StandinConfig) -> StandinBuild {
        StandinBuild {
            config,
            binary: super::standin_binary(),
        }
    }
}

const PKG_INIT: &str = r#""""perf-runner's stand-in for vLLM: a test double, not vLLM.

Its modules exec the bundled binary `vllm-standin` (next to this file).
"""
import os
import sys


def binary_path():
    """Path of the bundled stand-in binary, made executable."""
    exe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vllm-standin")
    try:
        os.chmod(exe, 0o755)
    except OSError:
        pass
    return exe


def exec_module(module, args=None):
    """Replace this process by the stand-in with python-style argv `-m module args...`."""
    exe = binary_path()
    argv = list(sys.argv[1:] if args is None else args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, [exe, "-m", module] + argv)
"#;

fn entry_module(module: &str) -> String {
    format!(
        "\"\"\"Stand-in for {module} (perf-runner test double): execs the bundled binary.\"\"\"\n\
         from vllm._standin import exec_module\n\n\n\
         def main():\n    exec_module(\"{module}\")\n\n\n\
         if __name__ == \"__main__\":\n    main()\n"
    )
}

/// Whether `v` is a valid PEP 440 version (public part plus an optional `+local` label).
pub fn is_pep440_version(v: &str) -> bool {
    let (public, local) = match v.split_once('+') {
        Some((p, l)) => (p, Some(l)),
        None => (v, None),
    };
    if let Some(l) = local {
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !l.split('.').all(ok) {
            return false;
        }
    }
    let s = public.strip_prefix('v').unwrap_or(public);
    let s = match s.split_once('!') {
        Some((epoch, rest)) if is_num(epoch) => rest,
        Some(_) => return false,
        None => s,
    };
    let release_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    // A release ending in '.' hands that dot to a following suffix (`1.0.post1`).
    let release = s[..release_end].trim_end_matches('.');
    if release.is_empty() || !release.split('.').all(is_num) {
        return false;
    }
    let mut rest = &s[release.len()..];
    for tags in [
        &["a", "b", "rc"][..],
        &[".post", "post"][..],
        &[".dev", "dev"][..],
    ] {
        if let Some(tag) = tags.iter().find(|t| rest.starts_with(**t)) {
            let after = &rest[tag.len()..];
            let n = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if n == 0 {
                return false;
            }
            rest = &after[n..];
        }
    }
    rest.is_empty()
}

fn is_num(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// The wheel's file name for `version`: `vllm-<version>-py3-none-any.whl`.
pub fn wheel_file_name(version: &str) -> String {
    format!("vllm-{version}-py3-none-any.whl")
}

/// Writes the wheel of `build` into `out_dir` (created if missing) and returns its path.
///
/// Contents: `vllm/__init__.py` (`__version__`), shims at `vllm.entrypoints.openai.api_server`,
/// `vllm.entrypoints.api_server` and `vllm.entrypoints.cli.main` (also the `vllm` console
/// script), the binary as `vllm/_standin/vllm-standin`, the config as
/// `vllm/_standin/standin-config.json`, and `METADATA`, `WHEEL`, `entry_points.txt`, `RECORD`.
pub fn build_standin_wheel(out_dir: &Path, build: &StandinBuild) -> io::Result<PathBuf> {
    let version = &build.config.version;
    if !is_pep440_version(version) {
        let msg = format!("stand-in version {version:?} is not a valid PEP 440 version");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    let binary = std::fs::read(&build.binary).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", build.binary.display()),
        )
    })?;
    let text = |name: &str, body: String| Entry {
        name: name.into(),
        data: body.into_bytes(),
        mode: 0o644,
    };
    let mut entries = vec![
        text(
            "vllm/__init__.py",
            format!(
                "\"\"\"perf-runner's stand-in for vLLM (a test double, not vLLM).\"\"\"\n\
                 __version__ = {version:?}\n__version_tuple__ = tuple({version:?}.split(\".\"))\n"
            ),
        ),
        text("vllm/_standin/__init__.py", PKG_INIT.into()),
        text(
            "vllm/_standin/standin-config.json",
            build.config.to_json() + "\n",
        ),
        Entry {
            name: "vllm/_standin/vllm-standin".into(),
            data: binary,
            mode: 0o755,
        },
        text("vllm/entrypoints/__init__.py", String::new()),
        text(
            "vllm/entrypoints/api_server.py",
            entry_module("vllm.entrypoints.api_server"),
        ),
        text("vllm/entrypoints/openai/__init__.py", String::new()),
        text(
            "vllm/entrypoints/openai/api_server.py",
            entry_module("vllm.entrypoints.openai.api_server"),
        ),
        text("vllm/entrypoints/cli/__init__.py", String::new()),
        text(
            "vllm/entrypoints/cli/main.py",
            entry_module("vllm.entrypoints.cli.main"),
        ),
    ];
    let dist_info = format!("vllm-{version}.dist-info");
    entries.push(text(
        &format!("{dist_info}/METADATA"),
        format!(
            "Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n\
             Summary: perf-runner's stand-in engine: a test double of vLLM, not vLLM\n\
             License: Apache-2.0\nRequires-Python: >=3.8\n"
        ),
    ));
    entries.push(text(
        &format!("{dist_info}/WHEEL"),
        "Wheel-Version: 1.0\nGenerator: perf-runner-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .into(),
    ));
    entries.push(text(
        &format!("{dist_info}/entry_points.txt"),
        "[console_scripts]\nvllm = vllm.entrypoints.cli.main:main\n".into(),
    ));
    let mut record = String::new();
    for e in &entries {
        let digest = b64_urlsafe_nopad(&Sha256::digest(&e.data));
        record.push_str(&format!("{},sha256={digest},{}\n", e.name, e.data.len()));
    }
    let record_name = format!("{dist_info}/RECORD");
    record.push_str(&format!("{record_name},,\n"));
    entries.push(text(&record_name, record));

    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join(wheel_file_name(version));
    let tmp = out_dir.join(format!(".{}.partial", wheel_file_name(version)));
    let mut file = io::BufWriter::new(std::fs::File::create(&tmp)?);
    write_zip(&mut file, &entries)?;
    io::Write::flush(&mut file)?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep440_versions_are_checked() {
        for ok in [
            "0.6.3.dev1+gf508e03",
            "0.5.3.post1",
            "1.0",
            "2!1.0rc1",
            "0.10.1.1",
            "1.0a2.dev3",
        ] {
            assert!(is_pep440_version(ok), "{ok}");
        }
        for bad in [
            "",
            "abc",
            "1.0+",
            "1..0",
            "1.0-foo",
            "1.0+a_b",
            "1.0.dev",
            "0.6.3 dev",
        ] {
            assert!(!is_pep440_version(bad), "{bad}");
        }
    }
}

/// A baseline and a "human" stand-in wheel (versions `0.6.3.dev1+gf508e03` and
/// `0.6.3.dev2+ge358053`, start-up 200 ms), built once per test binary in a folder that lives
/// as long as it; the backends' conformance suites share them.
#[derive(Debug)]
pub struct SharedWheels {
    /// The folder holding them (and room for a venv cache).
    pub root: std::path::PathBuf,
    /// The baseline's wheel.
    pub baseline: std::path::PathBuf,
    /// The human build's wheel.
    pub human: std::path::PathBuf,
}

/// The [`SharedWheels`] of this test binary.
pub fn shared_wheels() -> &'static SharedWheels {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static WHEELS: std::sync::OnceLock<SharedWheels> = std::sync::OnceLock::new();
    WHEELS.get_or_init(|| {
        let root = DIR
            .get_or_init(|| tempfile::tempdir().expect("a temp dir"))
            .path()
            .to_path_buf();
        let build = |sub: &str, version: &str| {
            let config = crate::standin::StandinConfig {
                version: version.into(),
                startup_ms: 200,
                log_interval_ms: 200,
                state_dir: Some(root.join(format!("state-{sub}"))),
                ..crate::standin::StandinConfig::default()
            };
            build_standin_wheel(&root.join(sub), &StandinBuild::new(config))
                .expect("the stand-in wheel builds")
        };
        SharedWheels {
            baseline: build("wb", "0.6.3.dev1+gf508e03"),
            human: build("wh", "0.6.3.dev2+ge358053"),
            root,
        }
    })
}
