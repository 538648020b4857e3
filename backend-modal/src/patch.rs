//! The agent patch: which files it touches and where they go (package files into
//! site-packages, benchmark scripts into the scripts dir; native code needs a source build),
//! and the image layer that applies it with `git apply`.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::config::ModalConfig;
use crate::protocol::ImageOp;
use crate::recipe::{PATCH_PATH, quote, scripts_dir};

/// The files an agent patch touches, sorted into where they go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchFiles {
    /// Python package files (`vllm/…`): applied in site-packages.
    pub package: Vec<String>,
    /// Benchmark scripts (`benchmarks/…`): applied to the scripts dir.
    pub scripts: Vec<String>,
    /// Native sources (CUDA/C++/CMake): need a source build.
    pub native: Vec<String>,
    /// Anything else (tests, docs): not part of what runs.
    pub other: Vec<String>,
}

/// The files of a unified diff, sorted.
pub fn patch_files(diff: &str) -> PatchFiles {
    let mut paths = BTreeSet::new();
    for line in diff.lines() {
        let p = if let Some(rest) = line.strip_prefix("diff --git ") {
            rest.rsplit_once(" b/").map(|(_, b)| b)
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            rest.strip_prefix("b/")
        } else if let Some(rest) = line.strip_prefix("--- ") {
            rest.strip_prefix("a/")
        } else {
            None
        };
        if let Some(p) = p {
            let p = p.split('\t').next().unwrap_or(p).trim();
            if !p.is_empty() && p != "/dev/null" {
                paths.insert(p.to_string());
            }
        }
    }
    let mut out = PatchFiles::default();
    for p in paths {
        let ext = p.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let name = p.rsplit('/').next().unwrap_or(&p);
        if p.starts_with("csrc/")
            || ["cu", "cuh", "cpp", "cc", "c", "h", "hpp", "cxx", "cmake"].contains(&ext)
            || name == "CMakeLists.txt"
        {
            out.native.push(p);
        } else if p.starts_with("vllm/") {
            out.package.push(p);
        } else if p.starts_with("benchmarks/") {
            out.scripts.push(p);
        } else {
            out.other.push(p);
        }
    }
    out
}

/// sha256 (hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The patch layer: copy the patch in, then `git apply` its package part in site-packages and
/// its scripts part in the scripts dir. `None` when nothing of it runs.
pub fn patch_ops(cfg: &ModalConfig, patch_path: &str, files: &PatchFiles) -> Option<Vec<ImageOp>> {
    let scripts = scripts_dir(cfg);
    let commands = patch_commands(cfg, files, PATCH_PATH, scripts.as_deref());
    if commands.is_empty() {
        return None;
    }
    Some(vec![
        ImageOp::AptInstall {
            packages: vec!["git".into()],
        },
        ImageOp::AddLocalFile {
            local_path: patch_path.to_string(),
            remote_path: PATCH_PATH.into(),
            copy: true,
        },
        ImageOp::RunCommands { commands },
    ])
}

/// The commands that apply the patch at `patch` (in the image): its package part in the
/// site-packages holding `vllm`, its scripts part in `scripts_dir`.
pub fn patch_commands(
    cfg: &ModalConfig,
    files: &PatchFiles,
    patch: &str,
    scripts_dir: Option<&str>,
) -> Vec<String> {
    let mut commands = Vec::new();
    if !files.package.is_empty() {
        let find = quote(
            "import importlib.util as u,os;print(os.path.dirname(os.path.dirname(u.find_spec(\"vllm\").origin)))",
        );
        commands.push(format!(
            "cd \"$({} -c {find})\" && git apply --verbose -p1 --include='vllm/*' {}",
            cfg.container_python,
            quote(patch)
        ));
    }
    if let Some(dir) = scripts_dir.filter(|_| !files.scripts.is_empty()) {
        commands.push(format!(
            "cd {} && git apply --verbose -p1 --include='benchmarks/*' {}",
            quote(dir),
            quote(patch)
        ));
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_files_are_sorted_by_where_they_go() {
        let diff = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n@@\n\
                    diff --git a/csrc/k.cu b/csrc/k.cu\n--- a/csrc/k.cu\n+++ b/csrc/k.cu\n\
                    diff --git a/benchmarks/b.py b/benchmarks/b.py\n--- /dev/null\n+++ b/benchmarks/b.py\n\
                    --- a/tests/t.py\n+++ b/tests/t.py\n";
        let f = patch_files(diff);
        assert_eq!(f.package, vec!["vllm/x.py"]);
        assert_eq!(f.native, vec!["csrc/k.cu"]);
        assert_eq!(f.scripts, vec!["benchmarks/b.py"]);
        assert_eq!(f.other, vec!["tests/t.py"]);
        let ops = patch_ops(&ModalConfig::default(), "/p.patch", &f).unwrap();
        assert!(matches!(&ops[2], ImageOp::RunCommands { commands } if commands.len() == 2));
        assert!(
            patch_ops(
                &ModalConfig::default(),
                "/p",
                &patch_files("--- a/docs/x\n")
            )
            .is_none()
        );
    }
}
