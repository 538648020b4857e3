//! The registry of backends: the one place that lists every backend this binary can use, with
//! how to configure it from its settings section, its defaults, its `gc` and its `plan` dry
//! run. Every command that names backends (`run`/`batch --backend`, `plan --backend`,
//! `doctor`, `gc`, `config --defaults`, the help texts, the settings' unknown-section check)
//! iterates [`REGISTRY`]; a new backend is one more entry here (and its crate in
//! `Cargo.toml`).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::builder::{PossibleValue, PossibleValuesParser};
use runner_core::Backend;
use runner_core::plan::TaskPlan;
use runner_core::settings::{Limits, Settings};
use runner_core::text;
use serde::de::DeserializeOwned;

/// A boxed future, for the registry's asynchronous hooks.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// `gc`: stop what runs of this backend left behind (`run_id` = only that run's, else every
/// perf-runner leftover; `grace` between SIGTERM and SIGKILL). Returns the lines to print.
pub type GcFn = for<'a> fn(&'a toml::Table, Option<&'a str>, Duration) -> Fut<'a, Vec<String>>;

/// `plan --backend NAME`: what the backend would build and run for each of the plan's builds,
/// without contacting it; one JSON value per build, in the plan's order.
pub type DryRunFn = for<'a> fn(&'a toml::Table, &'a TaskPlan) -> Fut<'a, Vec<serde_json::Value>>;

/// One backend this binary can use.
pub struct Registered {
    /// Its stable name: the `--backend` value and the name of its settings section.
    pub name: &'static str,
    /// One line for the help texts.
    pub about: &'static str,
    /// Its settings section with their defaults, as TOML (part of `config --defaults`).
    pub default_toml: &'static str,
    /// Check its section: the keys it does not know (each worth a warning), or why the section
    /// cannot be read.
    pub check_section: fn(&toml::Table) -> Result<Vec<String>>,
    /// The backend, configured from its section and the run's input limits (a backend that
    /// fetches files from far away bounds them by `max_result_bytes`).
    pub make: fn(&toml::Table, &Limits) -> Result<Arc<dyn Backend>>,
    /// Its `gc`, where runs can leave something behind.
    pub gc: Option<GcFn>,
    /// Its `plan --backend` dry run, where it has one.
    pub dry_run: Option<DryRunFn>,
}

/// Every backend of this binary, in the order `doctor` and `gc` show them.
pub const REGISTRY: &[Registered] = &[
    Registered {
        name: "local",
        about: "this host: its GPUs, a venv per build, processes",
        default_toml: backend_local::DEFAULT_TOML,
        check_section: unknown_keys::<backend_local::LocalConfig>,
        make: |t, _| {
            Ok(Arc::new(backend_local::LocalBackend::new(read(
                "local", t,
            )?)))
        },
        gc: Some(local_gc),
        dry_run: None,
    },
    Registered {
        name: "docker",
        about: "containers of the Docker Engine, an image per build",
        default_toml: backend_docker::DEFAULT_TOML,
        check_section: unknown_keys::<backend_docker::DockerConfig>,
        make: |t, _| {
            Ok(Arc::new(backend_docker::DockerBackend::new(read(
                "docker", t,
            )?)))
        },
        gc: Some(docker_gc),
        dry_run: None,
    },
    Registered {
        name: "modal",
        about: "Modal's cloud GPUs, through its Python SDK",
        default_toml: backend_modal::DEFAULT_TOML,
        check_section: unknown_keys::<backend_modal::ModalConfig>,
        make: |t, limits| {
            Ok(Arc::new(
                backend_modal::ModalBackend::new(read("modal", t)?)
                    .with_max_result_bytes(limits.max_result_bytes),
            ))
        },
        gc: None,
        dry_run: Some(modal_dry_run),
    },
    Registered {
        name: "slurm",
        about: "a Slurm cluster: an allocation per task, job steps, venvs on a shared filesystem",
        default_toml: backend_slurm::DEFAULT_TOML,
        check_section: unknown_keys::<backend_slurm::SlurmConfig>,
        make: |t, _| {
            Ok(Arc::new(backend_slurm::SlurmBackend::new(read(
                "slurm", t,
            )?)))
        },
        gc: Some(slurm_gc),
        dry_run: Some(slurm_dry_run),
    },
    #[cfg(feature = "dummy-backend")]
    Registered {
        name: "dummy",
        about: "test only: fictional GPUs; writes vLLM-format results it computes",
        default_toml: backend_dummy::DEFAULT_TOML,
        check_section: unknown_keys::<backend_dummy::DummyConfig>,
        make: |t, _| {
            Ok(Arc::new(backend_dummy::DummyBackend::new(read(
                "dummy", t,
            )?)))
        },
        gc: None,
        dry_run: None,
    },
];

/// The registered backend `name`.
pub fn find(name: &str) -> Result<&'static Registered> {
    REGISTRY.iter().find(|r| r.name == name).ok_or_else(|| {
        anyhow!(
            "--backend {}: unknown backend; expected one of {}",
            text::escape(name),
            names().join(", ")
        )
    })
}

/// The names of every registered backend.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.name).collect()
}

/// The `--backend` value parser: a registered name (anything else is a usage error that lists
/// them, with each one's line in `--help`).
pub fn parser() -> PossibleValuesParser {
    possible(REGISTRY.iter())
}

/// The `run`/`batch --backend` value parser: a registered name, or `auto` (per task, the first
/// backend of the setting `auto.order` that can take it).
pub fn run_parser() -> PossibleValuesParser {
    let auto = PossibleValue::new(runner_core::settings::AUTO_BACKEND)
        .help("per task, the first backend of the setting auto.order that can take it");
    PossibleValuesParser::new(
        REGISTRY
            .iter()
            .map(|r| PossibleValue::new(r.name).help(r.about))
            .chain([auto]),
    )
}

/// The `plan --backend` value parser: a backend that has a dry run.
pub fn dry_run_parser() -> PossibleValuesParser {
    possible(REGISTRY.iter().filter(|r| r.dry_run.is_some()))
}

fn possible<'a>(it: impl Iterator<Item = &'a Registered>) -> PossibleValuesParser {
    PossibleValuesParser::new(it.map(|r| PossibleValue::new(r.name).help(r.about)))
}

/// The backends with a `gc`, for the help text of `gc`.
pub fn gc_help() -> String {
    let with: Vec<&str> = REGISTRY
        .iter()
        .filter(|r| r.gc.is_some())
        .map(|r| r.name)
        .collect();
    format!("Backends with leftovers to collect: {}.", with.join(", "))
}

/// The embedded defaults: core's, then every registered backend's section.
pub fn default_toml() -> String {
    let mut out = runner_core::settings::DEFAULT_TOML.to_string();
    for r in REGISTRY {
        out.push('\n');
        out.push_str(r.default_toml);
    }
    out
}

/// The backend `name`, configured from its settings section.
pub fn make(name: &str, settings: &Settings) -> Result<Arc<dyn Backend>> {
    let r = find(name)?;
    (r.make)(&section(r, settings)?, &settings.limits)
}

/// The settings section of a registered backend (empty when the configuration has none).
pub fn section(r: &Registered, settings: &Settings) -> Result<toml::Table> {
    settings
        .section(r.name)
        .map_err(|e| anyhow!("invalid configuration value: {e}"))
}

/// A backend's configuration read from its section (unknown keys are warned about when the
/// settings load; see [`crate::settings::load`]).
fn read<T: DeserializeOwned>(name: &str, table: &toml::Table) -> Result<T> {
    toml::Value::Table(table.clone())
        .try_into()
        .with_context(|| format!("invalid [{name}] settings"))
}

/// The keys of a section that `T` does not read.
fn unknown_keys<T: DeserializeOwned>(table: &toml::Table) -> Result<Vec<String>> {
    let mut unknown = Vec::new();
    let _: T = serde_ignored::deserialize(toml::Value::Table(table.clone()), |path| {
        unknown.push(path.to_string())
    })?;
    Ok(unknown)
}

fn local_gc<'a>(
    _: &'a toml::Table,
    run_id: Option<&'a str>,
    grace: Duration,
) -> Fut<'a, Vec<String>> {
    Box::pin(async move {
        let found = backend_local::gc::collect(run_id, grace).await;
        let mut lines: Vec<String> = found
            .iter()
            .map(|l| {
                format!(
                    "stopped process {} (group {}, run {}): {}",
                    l.pid,
                    l.pgid,
                    text::escape(&l.run_id),
                    text::escape(&l.cmdline)
                )
            })
            .collect();
        lines.push(format!("{} leftover process(es) stopped", found.len()));
        Ok(lines)
    })
}

fn docker_gc<'a>(t: &'a toml::Table, run_id: Option<&'a str>, _: Duration) -> Fut<'a, Vec<String>> {
    Box::pin(async move {
        let docker = backend_docker::DockerBackend::new(read("docker", t)?);
        let n = docker.gc(run_id).await?;
        Ok(vec![format!("{n} leftover container(s) removed")])
    })
}

fn modal_dry_run<'a>(t: &'a toml::Table, plan: &'a TaskPlan) -> Fut<'a, Vec<serde_json::Value>> {
    Box::pin(async move {
        let modal = backend_modal::ModalBackend::new(read("modal", t)?);
        let mut out = Vec::new();
        for b in &plan.builds {
            out.push(modal.dry_run(b, &plan.step).await?);
        }
        Ok(out)
    })
}

fn slurm_gc<'a>(t: &'a toml::Table, run_id: Option<&'a str>, _: Duration) -> Fut<'a, Vec<String>> {
    Box::pin(async move {
        let slurm = backend_slurm::SlurmBackend::new(read("slurm", t)?);
        let found = slurm.gc(run_id).await?;
        let mut lines: Vec<String> = found
            .iter()
            .map(|l| {
                format!(
                    "cancelled Slurm job {} ({}): {}",
                    text::escape(&l.job),
                    text::escape(&l.name),
                    text::escape(&l.comment)
                )
            })
            .collect();
        lines.push(format!("{} leftover Slurm job(s) cancelled", found.len()));
        Ok(lines)
    })
}

fn slurm_dry_run<'a>(t: &'a toml::Table, plan: &'a TaskPlan) -> Fut<'a, Vec<serde_json::Value>> {
    Box::pin(async move {
        let slurm = backend_slurm::SlurmBackend::new(read("slurm", t)?);
        Ok(plan
            .builds
            .iter()
            .map(|b| slurm.dry_run(b, &plan.step))
            .collect())
    })
}

/// perf-runner's cache root (artifacts, datasets, environments).
pub fn cache_dir() -> PathBuf {
    dirs_cache().join("perf-runner")
}

fn dirs_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_default_section_is_its_own_and_fully_known() {
        let mut seen = std::collections::BTreeSet::new();
        for r in REGISTRY {
            assert!(seen.insert(r.name), "{} is registered twice", r.name);
            let doc: toml::Table = toml::from_str(r.default_toml)
                .unwrap_or_else(|e| panic!("{}'s DEFAULT_TOML: {e}", r.name));
            assert_eq!(
                doc.keys().collect::<Vec<_>>(),
                [r.name],
                "{}'s defaults hold exactly its own section",
                r.name
            );
            let section = doc[r.name].as_table().unwrap();
            assert_eq!((r.check_section)(section).unwrap(), Vec::<String>::new());
            (r.make)(section, &Limits::default()).unwrap();
        }
        assert!(seen.is_superset(&["local", "docker", "modal"].into()));
    }

    #[test]
    fn the_merged_defaults_parse_into_settings_with_every_backend_section() {
        let s: Settings = toml::from_str(&default_toml()).unwrap();
        assert_eq!(s.backends.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut n = names();
            n.sort();
            n
        });
        assert_eq!(s.plan, Settings::embedded().plan);
    }

    #[test]
    fn a_section_key_of_the_wrong_type_is_an_error_naming_the_section() {
        let t: toml::Table = toml::from_str("cpu_only = \"yes\"").unwrap();
        let e = (find("local").unwrap().make)(&t, &Limits::default()).unwrap_err();
        assert!(
            format!("{e:#}").contains("invalid [local] settings"),
            "{e:#}"
        );
        let unknown = (find("modal").unwrap().check_section)(
            &toml::from_str("colour = 1\n[hf_cache]\nname = \"h\"\npath = \"/h\"\nx = 2").unwrap(),
        )
        .unwrap();
        assert_eq!(unknown, ["colour", "hf_cache.x"]);
        let e = find("gpu").err().unwrap().to_string();
        assert!(e.contains("local, docker, modal, slurm"), "{e}");
    }
}
