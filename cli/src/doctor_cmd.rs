//! `perf-runner doctor` (what each backend needs, present or not) and `perf-runner gc`
//! (leftovers of runs, found by their run-id label, never by name).

use std::time::Duration;

use anyhow::Result;
use runner_core::settings::Settings;
use runner_core::{exit, text};
use serde_json::json;

use crate::{Format, backends};

pub async fn doctor(settings: &Settings, only: Option<&str>, format: Format) -> Result<i32> {
    let mut reports = Vec::new();
    for name in backends::NAMES
        .iter()
        .filter(|n| only.is_none_or(|o| o == **n))
    {
        let backend = backends::make(name, settings)?;
        let health = match backend.check().await {
            Ok(h) => json!({"usable": h.usable, "checks": h.checks}),
            Err(e) => json!({"usable": false, "error": e.to_string()}),
        };
        reports.push(json!({"backend": name, "health": health}));
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

pub async fn gc(settings: &Settings, run_id: Option<&str>, grace_s: u64) -> Result<i32> {
    let found = backend_local::gc::collect(run_id, Duration::from_secs(grace_s)).await;
    for l in &found {
        println!(
            "local: stopped process {} (group {}, run {}): {}",
            l.pid,
            l.pgid,
            text::escape(&l.run_id),
            text::escape(&l.cmdline)
        );
    }
    println!("local: {} leftover process(es) stopped", found.len());
    let (cfg, _) = backend_docker::DockerConfig::from_table(&settings.docker)
        .map_err(|e| anyhow::anyhow!("invalid [docker] settings: {e}"))?;
    match backend_docker::DockerBackend::new(cfg).gc(run_id).await {
        Ok(n) => println!("docker: {n} leftover container(s) removed"),
        Err(e) => println!("docker: not checked ({})", text::escape(&e.to_string())),
    }
    Ok(exit::SUCCESS)
}
