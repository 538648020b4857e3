//! Loading the dataset a command names, or the embedded example, with what comes around it:
//! agent patches from a predictions file and parents resolved from a local vLLM clone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use runner_core::dataset::{Dataset, LoadOptions};
use runner_core::settings::Settings;
use runner_core::text::escape;
use serde::{Deserialize, Serialize};

/// The embedded example dataset: a handful of real vLLM perf commits with their public facts.
pub const EMBEDDED: &str = include_str!("../../examples/vllm-perf-commits.jsonl");

/// The origin name of the embedded dataset.
pub const EMBEDDED_ORIGIN: &str = "embedded:examples/vllm-perf-commits.jsonl";

/// What a command reads besides the dataset (`tasks`, `triage`, `plan`, `run`, `batch`).
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct Intake {
    /// A predictions file (SWE-bench style: `instance_id`, `model_patch`; JSON, JSONL or an
    /// object keyed by instance id): each prediction is the agent patch of the task it matches
    /// (by commit, instance id, or the hash inside the instance id).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// A vLLM source: a local clone resolves missing parent commits (`COMMIT^`) and gives
    /// triage its version evidence; a raw-file URL template with {commit} and {path} (or a
    /// github.com/OWNER/REPO URL) gives triage evidence only.
    #[arg(long, value_name = "PATH|URL")]
    pub vllm_source: Option<String>,
}

impl Intake {
    /// The local clone named by `--vllm-source`, if it is one (not a URL).
    pub fn local_clone(&self) -> Option<&Path> {
        self.vllm_source
            .as_deref()
            .filter(|s| !s.starts_with("http://") && !s.starts_with("https://"))
            .map(Path::new)
    }

    /// The same intake with absolute paths, so a resumed run reads the same files.
    pub fn absolute(&self) -> Intake {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Intake {
            predictions: self.predictions.as_deref().map(abs),
            vllm_source: match self.local_clone() {
                Some(p) => Some(abs(p).display().to_string()),
                None => self.vllm_source.clone(),
            },
        }
    }
}

/// Where inline diffs (a dataset's diff texts, a predictions file's patches) are written:
/// content-addressed files under the cache dir.
pub fn patch_dir() -> PathBuf {
    crate::backends::cache_dir().join("patches")
}

/// Load `path` (at most `limits.max_dataset_bytes`; JSON, JSONL or Parquet), or the embedded
/// example when `None`, checking every command against the input policy (`inputs`); then apply
/// `intake`'s predictions and resolve missing parents from its local clone. Rejected rows and
/// predictions are logged to stderr, each with its line and field (their messages quote the
/// row: shown escaped); the caller decides the exit code.
pub fn load(path: Option<&Path>, settings: &Settings, intake: &Intake) -> Result<Dataset> {
    let patches = patch_dir();
    let opts = LoadOptions {
        inputs: &settings.inputs,
        cap: settings.limits.dataset(),
        patch_dir: Some(&patches),
    };
    let mut ds = match path {
        // One message: the error's own text already carries its cause.
        Some(p) => Dataset::load_opts(p, &opts)
            .map_err(|e| crate::errors::coded(runner_core::exit::INPUT, e.to_string()))?,
        None => Dataset::from_str_opts(EMBEDDED, EMBEDDED_ORIGIN, Path::new("examples"), &opts),
    };
    for e in &ds.errors {
        eprintln!(
            "{}: rejected row: {}",
            escape(&ds.origin),
            escape(&e.to_string())
        );
    }
    if let Some(file) = &intake.predictions {
        let text = runner_core::input::read_text(file, settings.limits.dataset())
            .with_context(|| format!("--predictions {}", file.display()))?;
        let shown = escape(&file.display().to_string()).into_owned();
        for e in ds.apply_predictions(&text, &patches) {
            eprintln!("{shown}: prediction not used: {}", escape(&e.to_string()));
        }
    }
    if let Some(repo) = intake.local_clone() {
        // A clone that is not there is a mistake in the command line, said at once (not a
        // triage that silently reads nothing from it).
        if !repo.join(".git").exists() && !repo.join("HEAD").is_file() {
            return Err(crate::errors::coded(
                runner_core::exit::USAGE,
                format!(
                    "--vllm-source {}: not a git clone (no such folder, or no .git in it); give a local clone of vLLM or a URL",
                    escape(&repo.display().to_string())
                ),
            ));
        }
        // Short hashes first: wheels, images and names need the whole commit.
        let s = ds
            .resolve_short_commits(repo)
            .map_err(|e| anyhow::anyhow!("--vllm-source: {e}"))?;
        if s.resolved > 0 {
            tracing::info!(
                resolved = s.resolved,
                "short commit hashes resolved from the clone"
            );
        }
        for (prefix, why) in &s.unresolved {
            eprintln!("{prefix}: short commit hash kept: {}", escape(why));
        }
        if ds.tasks.iter().any(|t| t.parent.is_none()) {
            let r = ds
                .resolve_parents(repo)
                .map_err(|e| anyhow::anyhow!("--vllm-source: {e}"))?;
            if r.resolved > 0 {
                tracing::info!(
                    resolved = r.resolved,
                    "parent commits resolved from the clone"
                );
            }
            for (commit, why) in &r.unresolved {
                eprintln!("{commit}: no parent commit: {}", escape(why));
            }
        }
    }
    Ok(ds)
}
