//! `perf-runner runs`: the runs in the results store.

use std::path::Path;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use runner_core::exit;
use runner_core::store::Store;
use serde_json::json;

use crate::Format;

pub fn run(store_path: &Path, format: Format) -> Result<i32> {
    let store = Store::open(store_path)?;
    let runs = store.runs()?;
    match format {
        Format::Json => {
            let out = json!({"schema_version": 1, "store": store_path.display().to_string(), "runs": runs});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text | Format::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header([
                "run",
                "created",
                "status",
                "backend",
                "jobs ok/failed/total",
                "dataset",
            ]);
            for r in &runs {
                t.add_row([
                    r.id.0.clone(),
                    r.created_at.chars().take(19).collect(),
                    r.status.clone(),
                    r.backend.clone(),
                    format!("{}/{}/{}", r.jobs.1, r.jobs.2, r.jobs.0),
                    r.origin.clone(),
                ]);
            }
            println!("{t}");
            println!("{} run(s) in {}", runs.len(), store_path.display());
        }
    }
    Ok(exit::SUCCESS)
}
