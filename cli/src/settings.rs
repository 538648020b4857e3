//! Configuration layering: embedded defaults → one config file → the selected profile
//! (`[profile.NAME]`) → `PERF_RUNNER__SECTION__KEY` environment variables → command-line flags.
//! The file is `--config FILE` (or `$PERF_RUNNER_CONFIG`), else `./perf-runner.toml` when
//! present, else the user's `<config dir>/perf-runner/config.toml` when present. Every value
//! remembers where it came from (`config` shows it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use config::builder::DefaultState;
use config::{Config, ConfigBuilder, Environment, File, FileFormat, Map, Source, Value, ValueKind};
use runner_core::settings::Settings;

use crate::backends::{self, REGISTRY};

/// The optional config file looked up in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "perf-runner.toml";

/// The user's config file (`<config dir>/perf-runner/config.toml`), when it exists.
pub fn user_config() -> Option<std::path::PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("perf-runner").join("config.toml"))
        .filter(|p| p.symlink_metadata().is_ok())
}

/// The profile applied when none is named (when the configuration has one of that name).
pub const DEFAULT_PROFILE: &str = "default";

/// Settings and the unknown keys that were ignored (each worth a warning).
pub struct Loaded {
    /// The merged settings.
    pub settings: Settings,
    /// The profile applied (`None`: the configuration has none of the name asked for, or none
    /// named `default`).
    pub profile: Option<String>,
    /// Where each value came from, by dotted key (`plan.repeats` → `[profile.lab] in
    /// perf-runner.toml`); values of the embedded defaults are left out.
    pub origins: BTreeMap<String, String>,
    /// Dotted paths of keys no setting has, in core's sections or in a backend's.
    pub unknown_keys: Vec<String>,
    /// Top-level sections that are neither core settings nor a registered backend's.
    pub unknown_sections: Vec<String>,
}

/// Load the layered settings. `file` is `--config`; when absent, `./perf-runner.toml` is used
/// if present. The embedded defaults are core's and every registered backend's. `profile` is
/// `--profile` (or `PERF_RUNNER_PROFILE`); when absent, `[profile.default]` applies if the
/// configuration has one. A named profile the configuration lacks is an error naming those
/// it has (`default` may always be named).
pub fn load(file: Option<&Path>, profile: Option<&str>) -> Result<Loaded> {
    let base = base_layers(file)?;
    let first = base
        .clone()
        .add_source(environment())
        .build()
        .context("reading configuration")?;
    let profiles = match first.get_table("profile") {
        Ok(t) => t,
        Err(config::ConfigError::NotFound(_)) => Map::new(),
        Err(e) => return Err(e).context("invalid configuration value: [profile]"),
    };
    let chosen = match profile {
        Some(name) if profiles.contains_key(name) => Some(name.to_string()),
        Some(DEFAULT_PROFILE) | None => profiles
            .contains_key(DEFAULT_PROFILE)
            .then(|| DEFAULT_PROFILE.to_string()),
        Some(name) => {
            let mut have: Vec<&str> = profiles.keys().map(String::as_str).collect();
            have.sort();
            anyhow::bail!(
                "--profile {}: the configuration has no [profile.{0}] (it has: {})",
                runner_core::text::escape(name),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            );
        }
    };
    let merged = match &chosen {
        None => first,
        Some(name) => {
            let table = profiles.get(name).cloned().unwrap_or_default();
            let source = ProfileSource::new(name, table)?;
            base.add_source(source)
                .add_source(environment())
                .build()
                .context("reading configuration")?
        }
    };
    let mut origins = BTreeMap::new();
    for (key, value) in merged.collect().context("reading configuration")? {
        if key != "profile" {
            collect_origins(&key, &value, &mut origins);
        }
    }
    let value: serde_json::Value = merged.try_deserialize().context("reading configuration")?;
    let mut unknown_keys = Vec::new();
    let settings: Settings = {
        let mut note = |path: serde_ignored::Path| unknown_keys.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(value, &mut note);
        serde_path_to_error::deserialize(ignored).map_err(|e| {
            // Name the key, and the environment variable that may have set it.
            let key = e.path().to_string();
            let env = format!(
                "PERF_RUNNER__{}",
                key.to_ascii_uppercase().replace('.', "__")
            );
            anyhow::anyhow!(
                "invalid configuration value for {key} (from a config file or ${env}): {}",
                e.inner()
            )
        })?
    };
    settings.validate().context("invalid configuration value")?;
    let mut unknown_sections = Vec::new();
    for name in settings.backends.keys() {
        let Some(r) = REGISTRY.iter().find(|r| r.name == name) else {
            unknown_sections.push(name.clone());
            continue;
        };
        // A section that cannot be read at all fails the commands that use its backend, with
        // the reason; here only its unknown keys are collected.
        if let Ok(Ok(keys)) = backends::section(r, &settings).map(|t| (r.check_section)(&t)) {
            unknown_keys.extend(keys.into_iter().map(|k| format!("{name}.{k}")));
        }
    }
    Ok(Loaded {
        settings,
        profile: chosen,
        origins,
        unknown_keys,
        unknown_sections,
    })
}

/// The most a configuration file may hold.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Whether `path` is a configuration file to read: `false` when there is none; an error (an
/// input error, exit code 3) when it is something else than a regular file — a FIFO or a
/// device would block or never end — or larger than 4 MiB.
fn readable_config(path: &Path) -> Result<bool> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(crate::errors::coded(
                runner_core::exit::INPUT,
                format!("configuration {}: {e}", path.display()),
            ));
        }
    };
    let problem = if !meta.is_file() {
        Some("not a regular file (a FIFO, device or folder is never read)".to_string())
    } else if meta.len() > MAX_CONFIG_BYTES {
        Some(format!(
            "{} bytes, more than a configuration file holds ({MAX_CONFIG_BYTES})",
            meta.len()
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(crate::errors::coded(
            runner_core::exit::INPUT,
            format!("configuration {}: {p}", path.display()),
        )),
        None => Ok(true),
    }
}

/// The embedded defaults and the config file.
fn base_layers(file: Option<&Path>) -> Result<ConfigBuilder<DefaultState>> {
    let defaults = backends::default_toml();
    let builder = Config::builder().add_source(File::from_str(&defaults, FileFormat::Toml));
    Ok(match file {
        Some(path) => {
            if !readable_config(path)? {
                anyhow::bail!(
                    "--config {}: no such file (give a TOML file like the embedded defaults: \
                     `perf-runner config --defaults`)",
                    path.display()
                );
            }
            builder.add_source(File::from(path).format(FileFormat::Toml).required(true))
        }
        None if readable_config(Path::new(DEFAULT_CONFIG_FILE))? => {
            builder.add_source(File::new(DEFAULT_CONFIG_FILE, FileFormat::Toml).required(true))
        }
        None => match user_config() {
            Some(user) if readable_config(&user)? => {
                builder.add_source(File::from(user).format(FileFormat::Toml))
            }
            _ => builder,
        },
    })
}

/// `PERF_RUNNER__SECTION__KEY` variables.
fn environment() -> Environment {
    Environment::with_prefix("PERF_RUNNER")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
}

/// One profile's table as a layer of its own: its values keep where they were written,
/// prefixed with the profile's name.
#[derive(Debug, Clone)]
struct ProfileSource {
    values: Map<String, Value>,
}

impl ProfileSource {
    fn new(name: &str, table: Value) -> Result<Self> {
        let label = format!("[profile.{name}]");
        let values = match table.kind {
            ValueKind::Table(t) => t
                .into_iter()
                // A profile does not select another profile.
                .filter(|(k, _)| k != "profile")
                .map(|(k, v)| (k, relabel(v, &label)))
                .collect(),
            other => anyhow::bail!(
                "invalid configuration value: {label} must be a table of settings, not {other}"
            ),
        };
        Ok(ProfileSource { values })
    }
}

/// A value (and everything in it) as coming from `label` in the place it was written.
fn relabel(v: Value, label: &str) -> Value {
    let origin = match v.origin() {
        Some(o) => format!("{label} in {o}"),
        None => label.to_string(),
    };
    let kind = match v.kind {
        ValueKind::Table(t) => {
            ValueKind::Table(t.into_iter().map(|(k, v)| (k, relabel(v, label))).collect())
        }
        ValueKind::Array(a) => ValueKind::Array(a.into_iter().map(|v| relabel(v, label)).collect()),
        other => other,
    };
    Value::new(Some(&origin), kind)
}

impl Source for ProfileSource {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.values.clone())
    }
}

/// The origin of every leaf under `key` that did not come from the embedded defaults.
fn collect_origins(key: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    if let ValueKind::Table(t) = &v.kind {
        for (k, child) in t {
            collect_origins(&format!("{key}.{k}"), child, out);
        }
        return;
    }
    let Some(origin) = v.origin() else {
        return;
    };
    let origin = if origin == "the environment" {
        format!(
            "the environment (PERF_RUNNER__{})",
            key.replace('.', "__").to_ascii_uppercase()
        )
    } else {
        origin.to_string()
    };
    out.insert(key.to_string(), origin);
}

/// `perf-runner config`: the merged settings as TOML (the profiles' own tables left out: the
/// selected one is applied), then where each value that is not an embedded default came from.
pub fn describe(loaded: &Loaded) -> Result<String> {
    let mut settings = loaded.settings.clone();
    let profiles: Vec<String> = settings.profile.keys().cloned().collect();
    settings.profile.clear();
    let mut out = String::new();
    match &loaded.profile {
        Some(p) => out.push_str(&format!("# profile: {p}\n")),
        None => out.push_str("# profile: none\n"),
    }
    if !profiles.is_empty() {
        out.push_str(&format!("# profiles defined: {}\n", profiles.join(", ")));
    }
    out.push('\n');
    out.push_str(&toml::to_string_pretty(&settings)?);
    out.push_str("\n# Where each value came from (every other value is an embedded default):\n");
    if loaded.origins.is_empty() {
        out.push_str("#   (none)\n");
    }
    for (key, origin) in &loaded.origins {
        out.push_str(&format!(
            "#   {} ← {}\n",
            runner_core::text::escape(key),
            runner_core::text::escape(origin)
        ));
    }
    Ok(out)
}
