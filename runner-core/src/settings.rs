//! Settings shared by every crate, with the embedded defaults.
//!
//! Layering (embedded defaults → `perf-runner.toml` → `PERF_RUNNER__SECTION__KEY` env → flags)
//! is done by the CLI with config-rs; this module owns the shape and the defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::build::ArtifactSources;
use crate::input::Cap;

/// The embedded default configuration, as TOML. Every key a user may set appears here.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Where `run` and `batch` run their jobs (`--backend` overrides it): a backend's name, or
    /// `auto` (per task, the first backend of [`AutoSettings::order`] that is usable here and
    /// has the GPUs the task asks for).
    #[serde(default = "default_backend")]
    pub backend: String,
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
    /// Size caps on the untrusted files read (datasets, results, logs, patches).
    #[serde(default)]
    pub limits: Limits,
    /// Catalogued benchmark datasets (ShareGPT, sonnet, BurstGPT): the local mirror they are
    /// provided from, and pinned hashes.
    #[serde(default)]
    pub datasets: crate::catalogue::DatasetSettings,
    /// Which program measures serving steps.
    #[serde(default)]
    pub client: ClientSettings,
    /// `backend = "auto"`: which backends are tried, in which order.
    #[serde(default)]
    pub auto: AutoSettings,
    /// Named profiles (`[profile.NAME]`): tables of any settings — `backend`, a core section,
    /// a backend's section — that the program applies over the configuration when the profile
    /// is selected (`default` when none is named). Kept as written; core never reads them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, toml::Value>,
    /// Every other top-level entry, by name: the backends' own sections (`[local]`,
    /// `[docker]` …), each read by the backend of that name through [`Settings::section`].
    /// Core does not know which backends exist: the program that registers them warns about
    /// entries here that none of them claims, and adds each backend's defaults.
    #[serde(flatten)]
    pub backends: BTreeMap<String, toml::Value>,
}

/// The backend of the embedded defaults.
pub const DEFAULT_BACKEND: &str = "local";

fn default_backend() -> String {
    DEFAULT_BACKEND.to_string()
}

/// The name that asks for per-task routing (`backend = "auto"`, `--backend auto`).
pub const AUTO_BACKEND: &str = "auto";

/// `[auto]`: how `backend = "auto"` chooses a backend per task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoSettings {
    /// Backends tried in this order (a list, or one comma-separated string); for each task the
    /// first one that is usable here and whose GPUs satisfy the task's request takes all its
    /// variants. Empty: every backend the program has, in its own order.
    #[serde(deserialize_with = "string_or_list")]
    pub order: Vec<String>,
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
    /// How serving steps run their servers: `warm` (one server per build and task, put to
    /// sleep between its jobs, where the backend and the build can) or `restart` (a fresh
    /// server for every job).
    #[serde(default)]
    pub servers: Servers,
    /// Warm servers: after each server start, run the measured client's workload once,
    /// recorded in the server's folder and not scored (the first run after a start is slower).
    #[serde(default = "yes")]
    pub burn_in: bool,
}

fn yes() -> bool {
    true
}

/// How serving steps run their servers (the setting `engine.servers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Servers {
    /// One server per build and task, started once (one after another, each put to sleep
    /// before the next starts) and switched with vLLM's sleep mode between jobs; where the
    /// backend or a build cannot, `restart`, with the reason recorded.
    #[default]
    Warm,
    /// A fresh server for every job.
    Restart,
}

impl Servers {
    /// Its name in the settings (`warm`, `restart`).
    pub fn as_str(self) -> &'static str {
        match self {
            Servers::Warm => "warm",
            Servers::Restart => "restart",
        }
    }
}

/// Per-phase deadlines, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Size caps on untrusted files, in bytes. A file over its cap is refused with an error that
/// names the file, its size, the cap and the setting (logs keep their last `max_result_bytes`
/// instead). See [`crate::input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Dataset files (`tasks`, `plan`, `triage`, `run`, `batch`) and skip lists.
    pub max_dataset_bytes: u64,
    /// Result files and captured outputs parsed (`parse`, `compare`, the engine's result
    /// files); logs larger than this are read from their end.
    pub max_result_bytes: u64,
    /// Agent patch files.
    pub max_patch_bytes: u64,
}

/// 256 MiB: far above any real dataset or result, far below what hurts a host.
const MIB_256: u64 = 256 * 1024 * 1024;

impl Limits {
    /// The largest value any cap may be set to (4 GiB).
    pub const CEILING: u64 = 4 * 1024 * 1024 * 1024;
    /// The largest value `max_patch_bytes` may be set to (1 GiB); backends re-reading a
    /// planned patch enforce this bound (the sha256 recorded at planning pins the content).
    pub const PATCH_CEILING: u64 = 1024 * 1024 * 1024;

    /// The cap on dataset files, with its setting's name.
    pub fn dataset(&self) -> Cap {
        Cap::new(self.max_dataset_bytes, "limits.max_dataset_bytes")
    }

    /// The cap on result files and captured outputs, with its setting's name.
    pub fn result(&self) -> Cap {
        Cap::new(self.max_result_bytes, "limits.max_result_bytes")
    }

    /// The cap on agent patches, with its setting's name.
    pub fn patch(&self) -> Cap {
        Cap::new(self.max_patch_bytes, "limits.max_patch_bytes")
    }

    /// The cap backends apply when re-reading a planned patch.
    pub fn patch_ceiling() -> Cap {
        Cap::new(Self::PATCH_CEILING, "limits.max_patch_bytes")
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dataset_bytes: MIB_256,
            max_result_bytes: MIB_256,
            max_patch_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Which serving client a plan uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// `perf-runner bench serve`, the same program for every variant and engine version, where
    /// the command's client flags are all supported and the backend can run it.
    #[default]
    Native,
    /// The engine's own client (`vllm bench serve`, `benchmark_serving.py`) from the client
    /// build.
    Engine,
}

/// `[client]`: the serving client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    /// `native` (default) or `engine`.
    #[serde(default)]
    pub kind: ClientKind,
    /// Whether the backend of the run can run the native client (its
    /// [`Capabilities::native_client`](crate::backend::Capabilities)); `None` = not known, and
    /// plans keep the engine's client. Set by the program through [`Settings::for_backend`],
    /// never read from a file.
    #[serde(skip)]
    pub backend_runs_native: Option<bool>,
}

impl Settings {
    /// These settings for planning on a backend with `caps`: whether the native serving client
    /// can run there decides which client plans use.
    pub fn for_backend(mut self, caps: &crate::backend::Capabilities) -> Settings {
        self.client.backend_runs_native = Some(caps.native_client);
        self
    }
}

impl Settings {
    /// The embedded defaults.
    pub fn embedded() -> Settings {
        // The embedded TOML is part of the binary and covered by a test; it always parses.
        toml::from_str(DEFAULT_TOML).unwrap_or_else(|e| panic!("embedded defaults: {e}"))
    }
}

/// A backend section that is not a table of settings (e.g. `local = 3`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{name}] must be a table of settings, not {found}")]
pub struct SectionError {
    /// The section's name.
    pub name: String,
    /// What stands there instead (`an integer` …).
    pub found: String,
}

impl Settings {
    /// The backend section `[name]`: its table, or an empty table when the configuration has
    /// none (every backend key is optional).
    pub fn section(&self, name: &str) -> Result<toml::Table, SectionError> {
        match self.backends.get(name) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(t)) => Ok(t.clone()),
            Some(other) => {
                let kind = other.type_str();
                let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                Err(SectionError {
                    name: name.to_string(),
                    found: format!("{article} {kind}"),
                })
            }
        }
    }
}

/// A setting outside the range it may take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {key} = {value}: {expected}")]
pub struct SettingError {
    /// The dotted key, e.g. `plan.repeats`.
    pub key: &'static str,
    /// The value as configured.
    pub value: String,
    /// The accepted range.
    pub expected: String,
}

/// Check a whole-number setting against an inclusive range.
fn int_in(key: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), SettingError> {
    if (lo..=hi).contains(&v) {
        return Ok(());
    }
    Err(SettingError {
        key,
        value: v.to_string(),
        expected: format!("expected {lo} to {hi}"),
    })
}

/// Check a seconds setting: finite, `>= 0`, at most `hi`.
fn secs_in(key: &'static str, v: f64, hi: f64) -> Result<(), SettingError> {
    if v.is_finite() && (0.0..=hi).contains(&v) {
        return Ok(());
    }
    Err(SettingError {
        key,
        value: v.to_string(),
        expected: format!("expected a finite number of seconds from 0 to {hi}"),
    })
}

/// The longest any phase or retry window may be configured to last: 30 days.
const MAX_SECONDS: u64 = 30 * 24 * 3600;

impl Settings {
    /// Check every numeric setting against the range it may take, so that no configuration
    /// value can make the tool allocate, wait or retry without bound. The first setting out of
    /// range is returned.
    pub fn validate(&self) -> Result<(), SettingError> {
        let (p, e, t, l) = (&self.plan, &self.engine, &self.timeouts, &self.limits);
        int_in("plan.repeats", p.repeats.into(), 1, 1000)?;
        int_in("plan.warmup_prompts", p.warmup_prompts.into(), 0, 100_000)?;
        int_in("engine.max_attempts", e.max_attempts.into(), 1, 100)?;
        int_in("engine.concurrency", e.concurrency as u64, 1, 256)?;
        let hi = MAX_SECONDS as f64;
        secs_in("engine.retry_base_s", e.retry_base_s, hi)?;
        secs_in("engine.retry_max_s", e.retry_max_s, hi)?;
        secs_in("engine.retry_wall_s", e.retry_wall_s, hi)?;
        if !(e.noise_floor.is_finite() && (0.0..1.0).contains(&e.noise_floor)) {
            return Err(SettingError {
                key: "engine.noise_floor",
                value: e.noise_floor.to_string(),
                expected: "expected a fraction in [0, 1), e.g. 0.02 for ±2 %".into(),
            });
        }
        int_in("timeouts.prepare_s", t.prepare_s, 1, MAX_SECONDS)?;
        int_in("timeouts.server_ready_s", t.server_ready_s, 1, MAX_SECONDS)?;
        int_in("timeouts.benchmark_s", t.benchmark_s, 1, MAX_SECONDS)?;
        let ceiling = Limits::CEILING;
        int_in("limits.max_dataset_bytes", l.max_dataset_bytes, 1, ceiling)?;
        int_in("limits.max_result_bytes", l.max_result_bytes, 1, ceiling)?;
        int_in(
            "limits.max_patch_bytes",
            l.max_patch_bytes,
            1,
            Limits::PATCH_CEILING,
        )?;
        Ok(())
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
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_settings_name_the_key() {
        let mut s = Settings::embedded();
        s.plan.repeats = 0;
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "plan.repeats");
        assert!(e.to_string().contains("1 to 1000"), "{e}");
        let mut s = Settings::embedded();
        s.engine.retry_max_s = f64::INFINITY;
        assert_eq!(s.validate().unwrap_err().key, "engine.retry_max_s");
        let mut s = Settings::embedded();
        s.engine.noise_floor = f64::NAN;
        assert_eq!(s.validate().unwrap_err().key, "engine.noise_floor");
        let mut s = Settings::embedded();
        s.limits.max_result_bytes = 0;
        assert_eq!(s.validate().unwrap_err().key, "limits.max_result_bytes");
        let mut s = Settings::embedded();
        s.limits.max_patch_bytes = Limits::PATCH_CEILING + 1;
        assert_eq!(s.validate().unwrap_err().key, "limits.max_patch_bytes");
        let mut s = Settings::embedded();
        s.timeouts.benchmark_s = u64::MAX;
        assert_eq!(s.validate().unwrap_err().key, "timeouts.benchmark_s");
    }

    #[test]
    fn limits_section_may_be_omitted() {
        let text = DEFAULT_TOML.replace("[limits]", "[ignored_limits]");
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        table.remove("ignored_limits");
        let s: Settings = table.try_into().unwrap();
        assert_eq!(s.limits, Limits::default());
    }

    #[test]
    fn backend_sections_are_kept_by_name_with_core_settings_unchanged() {
        let text = format!(
            "{DEFAULT_TOML}\n[local]\ncpu_only = true\n[local.wheels]\nbaseline = \"/w.whl\"\n\
             [docker]\nnetwork = \"host\"\n[modal]\n"
        );
        let s: Settings = toml::from_str(&text).unwrap();
        let core = Settings::embedded();
        assert_eq!(
            (&s.plan, &s.engine, &s.limits),
            (&core.plan, &core.engine, &core.limits)
        );
        assert_eq!(
            s.backends.keys().collect::<Vec<_>>(),
            ["docker", "local", "modal"]
        );
        let local = s.section("local").unwrap();
        assert_eq!(local["cpu_only"].as_bool(), Some(true));
        assert_eq!(local["wheels"]["baseline"].as_str(), Some("/w.whl"));
        assert_eq!(
            s.section("docker").unwrap()["network"].as_str(),
            Some("host")
        );
        assert!(s.section("modal").unwrap().is_empty());
        // A backend without a section reads an empty one.
        assert!(s.section("nosuch").unwrap().is_empty());
        // The sections survive a round trip through the printed form (`perf-runner config`).
        let printed = toml::to_string_pretty(&s).unwrap();
        let again: Settings = toml::from_str(&printed).unwrap();
        assert_eq!(again, s, "{printed}");
    }

    #[test]
    fn a_section_that_is_not_a_table_is_an_error_naming_it() {
        let s: Settings = toml::from_str(&format!("local = 3\n{DEFAULT_TOML}")).unwrap();
        let e = s.section("local").unwrap_err();
        assert_eq!(e.name, "local");
        assert_eq!(
            e.to_string(),
            "[local] must be a table of settings, not an integer"
        );
    }

    #[test]
    fn embedded_defaults_name_no_backend() {
        let s = Settings::embedded();
        assert!(s.backends.is_empty());
        assert_eq!(s.backend, DEFAULT_BACKEND);
        assert!(s.auto.order.is_empty() && s.profile.is_empty());
    }

    #[test]
    fn profiles_and_the_auto_order_are_settings_not_backend_sections() {
        let text = format!(
            "{DEFAULT_TOML}\n[profile.lab]\nbackend = \"auto\"\n[profile.lab.plan]\nrepeats = 3\n"
        )
        .replace("order = []", "order = \"local, modal\"");
        let s: Settings = toml::from_str(&text).unwrap();
        assert!(s.backends.is_empty(), "{:?}", s.backends);
        assert_eq!(s.auto.order, ["local", "modal"]);
        assert_eq!(s.profile["lab"]["backend"].as_str(), Some("auto"));
        // The printed form (backend first, before any table) reads back the same.
        let printed = toml::to_string_pretty(&s).unwrap();
        assert_eq!(
            toml::from_str::<Settings>(&printed).unwrap(),
            s,
            "{printed}"
        );
    }

    #[test]
    fn input_lists_accept_a_comma_separated_string() {
        let i: Inputs =
            toml::from_str("allow_env = \"FOO, BAR_*\"\ndataset_roots = [\"/data\"]").unwrap();
        assert_eq!(i.allow_env, vec!["FOO", "BAR_*"]);
        assert_eq!(i.dataset_roots, vec![PathBuf::from("/data")]);
    }
}
