//! Configuration layering: embedded defaults → one config file → `PERF_RUNNER__SECTION__KEY`
//! environment variables → command-line flags. The file is `--config FILE` (or
//! `$PERF_RUNNER_CONFIG`), else `./perf-runner.toml` when present, else the user's
//! `<config dir>/perf-runner/config.toml` when present.

use std::path::Path;

use anyhow::{Context, Result};
use config::{Config, Environment, File, FileFormat};
use runner_core::settings::Settings;

use crate::backends::{self, REGISTRY};

/// The optional config file looked up in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "perf-runner.toml";

/// The user's config file (`<config dir>/perf-runner/config.toml`), when it exists.
pub fn user_config() -> Option<std::path::PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("perf-runner").join("config.toml"))
        .filter(|p| p.is_file())
}

/// Settings and the unknown keys that were ignored (each worth a warning).
pub struct Loaded {
    /// The merged settings.
    pub settings: Settings,
    /// Dotted paths of keys no setting has, in core's sections or in a backend's.
    pub unknown_keys: Vec<String>,
    /// Top-level sections that are neither core settings nor a registered backend's.
    pub unknown_sections: Vec<String>,
}

/// Load the layered settings. `file` is `--config`; when absent, `./perf-runner.toml` is used
/// if present. The embedded defaults are core's and every registered backend's.
pub fn load(file: Option<&Path>) -> Result<Loaded> {
    let defaults = backends::default_toml();
    let mut builder = Config::builder().add_source(File::from_str(&defaults, FileFormat::Toml));
    builder = match file {
        Some(path) => {
            if !path.is_file() {
                anyhow::bail!(
                    "--config {}: no such file (give a TOML file like the embedded defaults: \
                     `perf-runner config --defaults`)",
                    path.display()
                );
            }
            builder.add_source(File::from(path).format(FileFormat::Toml).required(true))
        }
        None => match user_config().filter(|_| !Path::new(DEFAULT_CONFIG_FILE).is_file()) {
            Some(user) => builder.add_source(File::from(user).format(FileFormat::Toml)),
            None => {
                builder.add_source(File::new(DEFAULT_CONFIG_FILE, FileFormat::Toml).required(false))
            }
        },
    };
    builder = builder.add_source(
        Environment::with_prefix("PERF_RUNNER")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    let merged = builder.build().context("reading configuration")?;
    let value: serde_json::Value = merged.try_deserialize().context("reading configuration")?;
    let mut unknown_keys = Vec::new();
    let settings: Settings =
        serde_ignored::deserialize(value, |path| unknown_keys.push(path.to_string()))
            .context("invalid configuration value")?;
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
        unknown_keys,
        unknown_sections,
    })
}
