//! The input policy: what an untrusted `perf_command` may ask of the host.
//!
//! A dataset row chooses the benchmark and its flags — nothing else. It may not set environment
//! variables that change how processes load code, where they connect or which GPUs they see; it
//! may not point a script outside the engine's source tree; it may not name files outside the
//! configured roots; and it may not ask the engine to import code from a path or a foreign
//! module. Every refusal names the token and the fix. The user (through the settings, which are
//! trusted) can widen the environment allow-list and the roots.

use std::path::{Component, Path, PathBuf};

use crate::failure::Failure;
use crate::settings::Inputs;
use crate::spec::{BenchmarkSpec, EntryPoint, Flag};

/// Name prefixes of environment variables that tune the engine and its libraries.
const ENV_PREFIXES: &[&str] = &[
    "VLLM_",
    "NCCL_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "PYTORCH_",
    "CUDA_",
    "CUBLAS_",
    "CUBLASLT_",
    "CUDNN_",
    "TRITON_",
    "OMP_",
    "MKL_",
    "TOKENIZERS_",
    "FLASHINFER_",
];

/// Single names allowed besides the prefixes.
const ENV_NAMES: &[&str] = &[
    "NVIDIA_TF32_OVERRIDE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
];

/// Words (`_`-separated parts of a name) that make an otherwise allowed variable unsafe: it
/// names a file or folder, a network peer, a secret, a plugin or a loader.
const ENV_DENY_WORDS: &[&str] = &[
    "PATH",
    "PATHS",
    "DIR",
    "DIRS",
    "ROOT",
    "HOME",
    "FILE",
    "FILES",
    "PREFIX",
    "PLUGIN",
    "PLUGINS",
    "HOST",
    "HOSTS",
    "IP",
    "ADDR",
    "ADDRESS",
    "PORT",
    "URL",
    "URI",
    "ENDPOINT",
    "SERVER",
    "SOCKET",
    "IFNAME",
    "PROXY",
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "CREDENTIALS",
    "PRELOAD",
    "LIBRARY",
    "LIB",
    "CMD",
    "COMMAND",
    "EXECUTABLE",
    "INSECURE",
    "MODELSCOPE",
];

/// Variables the runner itself owns, whatever their prefix.
const ENV_OWNED: &[(&str, &str)] = &[
    (
        "CUDA_VISIBLE_DEVICES",
        "the GPU lease decides which devices a job sees",
    ),
    (
        "VLLM_SERVER_DEV_MODE",
        "the runner decides which development endpoints the server serves",
    ),
];

/// Flags whose value is a file or folder the engine or its client reads (never copied).
const LOCAL_PATH_FLAGS: &[&str] = &[
    "--model",
    "--tokenizer",
    "--download-dir",
    "--hf-config-path",
    "--chat-template",
    "--speculative-model",
    "--qlora-adapter-name-or-path",
    "--quantization-param-path",
    "--allowed-local-media-path",
    "--lora-path",
    "--ssl-keyfile",
    "--ssl-certfile",
    "--ssl-ca-certs",
    "--lora-modules",
];

/// Flags that make the engine import code named by the value.
const CODE_FLAGS: &[&str] = &[
    "--scheduler-cls",
    "--worker-cls",
    "--worker-extension-cls",
    "--middleware",
    "--logits-processors",
    "--tool-parser-plugin",
    "--reasoning-parser-plugin",
];

/// Flags whose value is a dataset file the runner provides to every variant.
pub const DATASET_FLAGS: &[&str] = &["--dataset-path", "--dataset"];

/// A request the policy refuses: the token, what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message} (token '{token}'); fix: {fix}")]
pub struct Violation {
    /// The failure a task with this command gets: `bad_config`, or `dataset_missing` for a
    /// dataset file outside the configured roots (a setting of this host can fix that).
    pub code: Failure,
    /// The offending token as written.
    pub token: String,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub fix: String,
}

fn violation(token: impl Into<String>, message: impl Into<String>, fix: &str) -> Violation {
    Violation {
        code: Failure::BadConfig,
        token: token.into(),
        message: message.into(),
        fix: fix.to_string(),
    }
}

/// Check a parsed command against the policy. `Ok` carries notes worth a warning (variables
/// allowed only by the settings).
pub fn check(spec: &BenchmarkSpec, inputs: &Inputs) -> Result<Vec<String>, Violation> {
    let mut notes = Vec::new();
    for (name, value) in &spec.env {
        if let Some(note) = check_env(name, value, inputs)? {
            notes.push(note);
        }
    }
    if let EntryPoint::Script { path } = &spec.entry {
        check_script_path(path)?;
    }
    for f in &spec.flags {
        check_flag(f, inputs)?;
    }
    for p in &spec.positionals {
        check_text(p)?;
    }
    Ok(notes)
}

/// A control character in a word: it cannot be meant, and it would reach logs and terminals.
fn check_text(text: &str) -> Result<(), Violation> {
    if text.chars().any(char::is_control) {
        return Err(violation(
            text.escape_default().to_string(),
            "a control character in the perf command",
            "remove control characters (NUL, ESC, newlines …) from the command",
        ));
    }
    Ok(())
}

/// Whether an environment variable name may be set by a dataset row; `Ok(Some(note))` when only
/// the settings allow it.
pub fn check_env(name: &str, value: &str, inputs: &Inputs) -> Result<Option<String>, Violation> {
    check_text(value)?;
    let token = format!("{name}={value}");
    if let Some((_, why)) = ENV_OWNED.iter().find(|(n, _)| *n == name) {
        return Err(violation(
            token,
            format!("the perf command sets {name}, which the runner owns: {why}"),
            "remove the assignment",
        ));
    }
    if inputs
        .allow_env
        .iter()
        .any(|a| env_pattern_matches(a, name))
    {
        return Ok(Some(format!(
            "the perf command sets {name}, allowed only by the setting inputs.allow_env"
        )));
    }
    let allowed_family =
        ENV_NAMES.contains(&name) || ENV_PREFIXES.iter().any(|p| name.starts_with(p));
    let denied_word = name.split('_').find(|w| ENV_DENY_WORDS.contains(w));
    match (allowed_family, denied_word) {
        (true, None) => Ok(None),
        (true, Some(word)) => Err(violation(
            token,
            format!(
                "the perf command sets {name}, whose name says it points at a {} — a dataset \
                 row may not choose files, peers, secrets or code on the host",
                word.to_ascii_lowercase()
            ),
            "remove the assignment, or allow the name in the setting inputs.allow_env if you \
             trust this dataset",
        )),
        (false, _) => Err(violation(
            token,
            format!(
                "the perf command sets {name}, which is not an engine setting (allowed: {}*, {})",
                ENV_PREFIXES.join("*, "),
                ENV_NAMES.join(", ")
            ),
            "remove the assignment, or allow the name in the setting inputs.allow_env if you \
             trust this dataset",
        )),
    }
}

/// `NAME` matches exactly; `PREFIX_*` matches by prefix.
fn env_pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A benchmark script must stay inside the engine's source tree: no `..`, `.` or empty
/// component anywhere in its path.
pub fn check_script_path(path: &str) -> Result<(), Violation> {
    check_text(path)?;
    let rel = path.rfind("benchmarks/").map_or(path, |i| &path[i..]);
    let bad = rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
        || path.split('/').any(|c| c == "..");
    if bad {
        return Err(violation(
            path,
            "the benchmark script path leaves the engine's source tree or is not plain",
            "name the script as benchmarks/<name>.py inside the engine's source (no '..', '.' \
             or empty components)",
        ));
    }
    Ok(())
}

fn check_flag(f: &Flag, inputs: &Inputs) -> Result<(), Violation> {
    check_text(&f.name)?;
    let Some(value) = f.value.as_deref() else {
        return Ok(());
    };
    check_text(value)?;
    let token = format!("{} {value}", f.name);
    let name = f.name.as_str();
    if CODE_FLAGS.contains(&name) {
        let engine_own = value
            .split(',')
            .all(|v| v.trim().starts_with("vllm.") && !v.contains('/'));
        if !engine_own {
            return Err(violation(
                token,
                format!("{name} makes the engine import code the dataset names"),
                "remove the flag, or name a class of the engine itself (vllm.…)",
            ));
        }
    }
    if DATASET_FLAGS.contains(&name) && is_pathlike(value) {
        check_dataset_value(&token, value, inputs)?;
    }
    if LOCAL_PATH_FLAGS.contains(&name) {
        let values: Vec<&str> = if name == "--lora-modules" {
            value
                .split_whitespace()
                .map(|m| m.split_once('=').map_or(m, |(_, p)| p))
                .collect()
        } else {
            vec![value]
        };
        for v in values {
            check_local_path(&token, v, inputs)?;
        }
    }
    Ok(())
}

/// Whether a value is written as a path (not a hub id or a dataset name).
fn is_pathlike(v: &str) -> bool {
    v.contains('/') || v.contains('.')
}

fn has_parent_component(v: impl AsRef<Path>) -> bool {
    v.as_ref()
        .components()
        .any(|c| matches!(c, Component::ParentDir))
}

fn check_dataset_value(token: &str, value: &str, inputs: &Inputs) -> Result<(), Violation> {
    if has_parent_component(value) || value.starts_with('~') {
        return Err(violation(
            token,
            "the dataset path climbs out of its folder ('..') or relies on shell expansion",
            "name the file relative to a configured dataset root (inputs.dataset_roots), or \
             by an absolute path inside one",
        ));
    }
    let p = Path::new(value);
    if p.is_absolute() && !inside_any(p, &inputs.dataset_roots) {
        return Err(Violation {
            code: Failure::DatasetMissing,
            ..violation(
                token,
                format!(
                    "the dataset file is outside the configured dataset roots ({})",
                    describe_roots(&inputs.dataset_roots)
                ),
                "put the file in a dataset root and name it relative to it, or add its folder to \
             the setting inputs.dataset_roots if you trust it",
            )
        });
    }
    Ok(())
}

/// A local model/tokenizer path: absolute, inside a configured model root, no `..`. A hub id
/// (`org/name`) is not a local path.
fn check_local_path(token: &str, value: &str, inputs: &Inputs) -> Result<(), Violation> {
    let local = value.starts_with('/')
        || value.starts_with('~')
        || value.starts_with("./")
        || value == "."
        || has_parent_component(value);
    if !local {
        return Ok(());
    }
    if has_parent_component(value) || !value.starts_with('/') {
        return Err(violation(
            token,
            "a local path that is relative, climbs with '..' or relies on shell expansion",
            "use a hub id (org/name) or an absolute path inside a configured model root \
             (inputs.model_roots)",
        ));
    }
    if !inside_any(Path::new(value), &inputs.model_roots) {
        return Err(violation(
            token,
            format!(
                "the local path is outside the configured model roots ({})",
                describe_roots(&inputs.model_roots)
            ),
            "use a hub id, or add the folder holding the model to the setting \
             inputs.model_roots if you trust it",
        ));
    }
    Ok(())
}

fn describe_roots(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        "none configured".into()
    } else {
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Lexical containment (no `..` in `path`): `path` equals a root or lies below one.
pub fn inside_any(path: &Path, roots: &[PathBuf]) -> bool {
    !has_parent_component(path) && roots.iter().any(|r| path.starts_with(r))
}

/// Containment after resolving symlinks: `path` (which must exist) resolves inside `root`.
/// Used where the files exist (a script in a source tree, a dataset file in a root).
pub fn resolves_inside(path: &Path, root: &Path) -> bool {
    // An empty root is the current folder (the parent of a bare file name such as `d.jsonl`).
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    match (path.canonicalize(), root.canonicalize()) {
        (Ok(p), Ok(r)) => p.starts_with(r),
        _ => false,
    }
}
