//! The Modal primitive of the agent patch: an image layer that copies in the parts the
//! [`Decision`] (`runner_core::patch`) sends to the installed `vllm` package and to the
//! benchmark scripts, and applies each with `git apply` and the decision's `-p` level.
//!
//! Modal runs prebuilt wheels and images: a patch that needs a source build is refused. The
//! parts are written under the cache folder, named by their sha256, so the same part is the
//! same layer (Modal's image cache keeps working).

use std::path::{Path, PathBuf};

use runner_core::build::PatchSpec;
use runner_core::patch::{self, Decision, Target};
use runner_core::{BackendError, Failure};

use crate::NAME;
use crate::config::ModalConfig;
use crate::protocol::ImageOp;
use crate::recipe::{PATCH_PATH, quote, scripts_dir};

pub use runner_core::digest::sha256_hex;

/// The agent patch layer of a build.
#[derive(Debug, Clone)]
pub struct PatchLayer {
    /// The decision it applies.
    pub decision: Decision,
    /// The image operations.
    pub ops: Vec<ImageOp>,
    /// What is not applied, for the log and the progress.
    pub left_out: Vec<String>,
}

/// Where the parts of agent patches are written: next to the shim, under the cache folder.
pub fn parts_dir(cfg: &ModalConfig) -> PathBuf {
    cfg.shim_dir().with_file_name("modal-patches")
}

/// One part of the patch in the image: the local file, its path in the image, and the
/// folder it is applied in (a shell word: `"$(…)"` or a quoted path).
struct Part {
    local: PathBuf,
    remote: String,
    dir: String,
}

/// Read and decide the patch of `spec` (`runner_core::patch::load`), refuse it as the decision
/// says for a backend without source builds, write its parts under `parts_dir` and give the
/// layer that applies them.
pub fn patch_layer(
    cfg: &ModalConfig,
    spec: &PatchSpec,
    parts_dir: &Path,
) -> Result<PatchLayer, BackendError> {
    let decision = patch::load(spec).map_err(|e| e.backend_error(NAME))?;
    decision.check(false).map_err(|e| e.backend_error(NAME))?;
    let mut left_out = decision.left_out();
    let mut parts = Vec::new();
    let engine = decision.text(&[Target::Engine]);
    if !engine.is_empty() {
        let find = quote(
            "import importlib.util as u,os;print(os.path.dirname(os.path.dirname(u.find_spec(\"vllm\").origin)))",
        );
        parts.push(Part {
            local: write_part(parts_dir, &engine)?,
            remote: format!("{PATCH_PATH}.engine"),
            dir: format!("\"$({} -c {find})\"", cfg.container_python),
        });
    }
    let benchmarks = decision.text(&[Target::Benchmarks]);
    match scripts_dir(cfg) {
        _ if benchmarks.is_empty() => {}
        Some(dir) => parts.push(Part {
            local: write_part(parts_dir, &benchmarks)?,
            remote: format!("{PATCH_PATH}.benchmarks"),
            dir: quote(&dir),
        }),
        None => left_out.extend(
            decision
                .without_benchmarks()
                .map_err(|e| e.backend_error(NAME))?,
        ),
    }
    let mut ops = vec![ImageOp::AptInstall {
        packages: vec!["git".into()],
    }];
    let mut commands = Vec::new();
    for p in &parts {
        ops.push(ImageOp::AddLocalFile {
            local_path: p.local.display().to_string(),
            remote_path: p.remote.clone(),
            copy: true,
        });
        commands.push(apply_command(&p.dir, &decision.strip.arg(), &p.remote));
    }
    ops.push(ImageOp::RunCommands { commands });
    Ok(PatchLayer {
        decision,
        ops,
        left_out,
    })
}

/// `cd DIR && git apply` of `file`, all or nothing.
pub fn apply_command(dir: &str, strip: &str, file: &str) -> String {
    format!("cd {dir} && git apply --verbose {strip} {}", quote(file))
}

/// Write a part of the patch under `dir`, named by its sha256 (written once, atomically).
fn write_part(dir: &Path, text: &str) -> Result<PathBuf, BackendError> {
    let path = dir.join(format!("{}.patch", sha256_hex(text.as_bytes())));
    if std::fs::read(&path).is_ok_and(|b| b == text.as_bytes()) {
        return Ok(path);
    }
    let broken = |e: std::io::Error| {
        BackendError::new(
            NAME,
            Failure::EnvironmentBroken,
            format!(
                "cannot write a part of the agent patch to {}: {e}",
                dir.display()
            ),
        )
    };
    std::fs::create_dir_all(dir).map_err(broken)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        sha256_hex(text.as_bytes()),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(broken)?;
    std::fs::rename(&tmp, &path).map_err(broken)?;
    Ok(path)
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
