//! Settings shared by every crate, with the embedded defaults.
//!
//! Layering (embedded defaults → `perf-runner.toml` → `PERF_RUNNER__SECTION__KEY` env → flags)
//! is done by the CLI with config-rs; this module owns the shape and the defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::build::ArtifactSources;

/// The embedded default configuration, as TOML. Every key a user may set appears here.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Where per-commit builds come from.
    pub artifacts: ArtifactSources,
    /// Per-phase deadlines.
    pub timeouts: Timeouts,
    /// How run plans are built.
    pub plan: PlanSettings,
    /// The engine: retries, concurrency, noise floor.
    pub engine: EngineSettings,
    /// What untrusted dataset rows may name: environment variables and file roots.
    #[serde(default)]
    pub inputs: Inputs,
    /// The local backend's own settings (read by that backend; see its README).
    #[serde(default)]
    pub local: toml::Table,
    /// The Docker backend's own settings.
    #[serde(default)]
    pub docker: toml::Table,
    /// The Modal backend's own settings.
    #[serde(default)]
    pub modal: toml::Table,
}

/// How the engine schedules and retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Attempts per job for transient failures, the first included.
    pub max_attempts: u32,
    /// First retry delay, seconds (doubles each retry, ±50 % jitter).
    pub retry_base_s: f64,
    /// Largest retry delay, seconds.
    pub retry_max_s: f64,
    /// Wall time a job may spend across retries, seconds.
    pub retry_wall_s: f64,
    /// Tasks run at once (each still needs free GPUs).
    pub concurrency: usize,
    /// Relative noise floor used when a run has no A/A measurement.
    pub noise_floor: f64,
}

/// Per-phase deadlines, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Obtaining the environment (download, install, image pull).
    pub prepare_s: u64,
    /// From server start to readiness.
    pub server_ready_s: u64,
    /// The benchmark client (or offline script) itself.
    pub benchmark_s: u64,
}

/// How run plans are built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    /// The module that starts the OpenAI-compatible server (present in every vLLM version).
    pub server_module: String,
    /// Prompts sent by the warm-up run before anything is measured (serving); 0 disables it.
    pub warmup_prompts: u32,
    /// Default repeats per variant.
    pub repeats: u32,
}

/// What an untrusted dataset row may name on the host. Empty lists mean: only the built-in
/// environment allow-list, no local dataset or model files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Inputs {
    /// Extra environment variable names a `perf_command` may set (`NAME`, or `PREFIX_*`); each
    /// use is warned about.
    #[serde(deserialize_with = "string_or_list")]
    pub allow_env: Vec<String>,
    /// Folders dataset files (`--dataset-path`) may be taken from; relative paths resolve
    /// against them in order.
    #[serde(deserialize_with = "string_or_list")]
    pub dataset_roots: Vec<PathBuf>,
    /// Folders local model and tokenizer paths may point into.
    #[serde(deserialize_with = "string_or_list")]
    pub model_roots: Vec<PathBuf>,
}

/// A list, or one string of comma-separated items (as an environment variable gives it).
fn string_or_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items.into_iter().map(T::from).collect())
}

impl Settings {
    /// The embedded defaults.
    pub fn embedded() -> Settings {
        // The embedded TOML is part of the binary and covered by a test; it always parses.
        toml::from_str(DEFAULT_TOML).unwrap_or_else(|e| panic!("embedded defaults: {e}"))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::embedded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_match_code_defaults() {
        let s = Settings::embedded();
        assert_eq!(s.artifacts, ArtifactSources::default());
        assert!(s.timeouts.server_ready_s > 0);
        assert_eq!(s.plan.server_module, "vllm.entrypoints.openai.api_server");
        assert_eq!(s.inputs, Inputs::default());
    }

    #[test]
    fn input_lists_accept_a_comma_separated_string() {
        let i: Inputs =
            toml::from_str("allow_env = \"FOO, BAR_*\"\ndataset_roots = [\"/data\"]").unwrap();
        assert_eq!(i.allow_env, vec!["FOO", "BAR_*"]);
        assert_eq!(i.dataset_roots, vec![PathBuf::from("/data")]);
    }
}
