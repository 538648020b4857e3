//! `perf-runner doctor` (what each backend needs, present or not) and `perf-runner gc`
//! (leftovers of runs, found by their run-id label, never by name).

use std::time::Duration;

use anyhow::Result;
use runner_core::settings::Settings;
use runner_core::{exit, text};
use serde_json::json;

use crate::Format;
use crate::backends::{self, REGISTRY};

/// `doctor`: every registered backend's health here (or only `only`'s). A backend whose
/// settings cannot be read is reported not usable, with the reason. Exit 0 when one checked
/// backend is usable, [`exit::BACKEND_UNAVAILABLE`] when none is, [`exit::USAGE`] for a name
/// that is not registered (the `--backend` parser refuses it before this runs).
pub async fn doctor(settings: &Settings, only: Option<&str>, format: Format) -> Result<i32> {
    if let Some(name) = only {
        backends::find(name)?;
    }
    let mut reports = Vec::new();
    for r in REGISTRY.iter().filter(|r| only.is_none_or(|o| o == r.name)) {
        let made = backends::section(r, settings).and_then(|t| (r.make)(&t, &settings.limits));
        let health = match made {
            Ok(backend) => match backend.check().await {
                Ok(h) => json!({"usable": h.usable, "checks": h.checks}),
                Err(e) => json!({"usable": false, "error": e.to_string()}),
            },
            Err(e) => json!({"usable": false, "error": format!("{e:#}")}),
        };
        reports.push(json!({"backend": r.name, "health": health}));
    }
    match format {
        Format::Json => println!(
            "{}",
            text::json_pretty(&json!({"schema_version": 1, "backends": reports}))?
        ),
        Format::Text | Format::Table => {
            for r in &reports {
                let h = &r["health"];
                let usable = if h["usable"].as_bool() == Some(true) {
                    "usable"
                } else {
                    "not usable"
                };
                println!("{} — {usable}", r["backend"].as_str().unwrap_or("?"));
                if let Some(e) = h["error"].as_str() {
                    println!("  ✗ {}", text::escape(e));
                }
                for c in h["checks"].as_array().into_iter().flatten() {
                    let mark = if c["ok"].as_bool() == Some(true) {
                        "✓"
                    } else {
                        "✗"
                    };
                    println!(
                        "  {mark} {:<22} {}",
                        text::escape(c["name"].as_str().unwrap_or("")),
                        text::escape(c["detail"].as_str().unwrap_or(""))
                    );
                }
            }
        }
    }
    let any_usable = reports
        .iter()
        .any(|r| r["health"]["usable"].as_bool() == Some(true));
    Ok(if any_usable {
        exit::SUCCESS
    } else {
        exit::BACKEND_UNAVAILABLE
    })
}

/// `gc --format json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct GcJson {
    /// The version of this document's shape.
    pub schema_version: u32,
    /// The run whose leftovers were looked for (`null`: every run's).
    pub run_id: Option<String>,
    /// Every registered backend that can look.
    pub backends: Vec<GcBackend>,
}

/// What one backend found and stopped.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct GcBackend {
    /// The backend.
    pub backend: String,
    /// Whether it could look (its section is readable, its tools answer).
    pub checked: bool,
    /// What it stopped or removed, one line each (when it could look).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Vec<String>>,
    /// Why it could not look.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `gc`: every registered backend's leftovers (of `run_id`, or of every run). A backend that
/// cannot be checked here (no Docker Engine, unreadable settings) says so and the others go on.
pub async fn gc(
    settings: &Settings,
    run_id: Option<&str>,
    grace_s: u64,
    format: Format,
) -> Result<i32> {
    let grace = Duration::from_secs(grace_s);
    let mut found = Vec::new();
    for r in REGISTRY {
        let Some(collect) = r.gc else { continue };
        let outcome = match backends::section(r, settings) {
            Ok(section) => collect(&section, run_id, grace)
                .await
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        };
        match (&outcome, format) {
            (_, Format::Json) => {}
            (Ok(lines), _) => lines.iter().for_each(|l| println!("{}: {l}", r.name)),
            (Err(e), _) => println!("{}: not checked ({})", r.name, text::escape(e)),
        }
        found.push((r.name, outcome));
    }
    if format == Format::Json {
        let out = GcJson {
            schema_version: 1,
            run_id: run_id.map(str::to_string),
            backends: found
                .into_iter()
                .map(|(name, o)| GcBackend {
                    backend: name.to_string(),
                    checked: o.is_ok(),
                    stopped: o.as_ref().ok().cloned(),
                    error: o.err(),
                })
                .collect(),
        };
        println!("{}", text::json_pretty(&out)?);
    }
    Ok(exit::SUCCESS)
}
